// Package testexec starts the child processes of sysreg's tests — a
// re-executed test binary (the crash and power-loss tests), a freshly built
// sysregd (the end-to-end tests) — the way `go test -exec` starts the test
// binary itself, so that a suite cross-compiled for another architecture
// runs whole under an emulator:
//
//	SYSREG_TEST_EXEC=qemu-arm GOOS=linux GOARCH=arm GOARM=6 \
//		go test -short -exec qemu-arm ./...
//
// SYSREG_TEST_EXEC (Env) names the wrapper and its leading arguments,
// separated by spaces (no quoting). When it is unset or blank, children run
// directly, exactly as exec.Command would run them: nothing changes for a
// native `go test`.
//
// Build compiles a package for the architecture the test binary itself was
// compiled for (runtime.GOOS and runtime.GOARCH, and the sub-architecture
// settings such as GOARM recorded in its build information), with the host's
// go command, so that the wrapper can run the result too.
//
// Emulated reports that a wrapper is set. Tests that need what an emulator
// does not provide (FUSE, running a child as another user) skip with a
// printed reason when it reports true; everything else runs.
//
// The package is imported by tests only.
//
// # Concurrency
//
// Every function is safe for concurrent use; none keeps state between calls.
package testexec
