module github.com/sysreg/sysreg

go 1.26.0

require (
	github.com/fxamacker/cbor/v2 v2.9.0
	github.com/hashicorp/go-hclog v1.6.3
	go.etcd.io/bbolt v1.4.3
	go.uber.org/goleak v1.3.0
	golang.org/x/sys v0.50.0
)

require (
	github.com/fatih/color v1.13.0 // indirect
	github.com/mattn/go-colorable v0.1.12 // indirect
	github.com/mattn/go-isatty v0.0.14 // indirect
	github.com/x448/float16 v0.8.4 // indirect
)
