// Command hello prints the architecture it was built for; testexec's tests
// build it with Build and run it with Command.
package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

func main() {
	arm := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "GOARM" {
				arm = s.Value
			}
		}
	}
	fmt.Println(runtime.GOOS, runtime.GOARCH, arm)
}
