package testexec

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
)

// Env is the environment variable that holds the wrapper command children
// run under, for example "qemu-arm"; the same program `go test -exec` is
// given.
const Env = "SYSREG_TEST_EXEC"

// Wrapper returns the words of SYSREG_TEST_EXEC, or nil when it is unset
// or blank.
func Wrapper() []string { return strings.Fields(os.Getenv(Env)) }

// Emulated reports whether children run under a wrapper.
func Emulated() bool { return len(Wrapper()) > 0 }

// Command is exec.Command(name, arg...) run through the wrapper, if any.
func Command(name string, arg ...string) *exec.Cmd {
	w := Wrapper()
	if len(w) == 0 {
		return exec.Command(name, arg...)
	}
	return exec.Command(w[0], append(append(w[1:], name), arg...)...)
}

// CommandContext is exec.CommandContext(ctx, name, arg...) run through the
// wrapper, if any. Cancelling ctx kills the wrapper, which is the child.
func CommandContext(ctx context.Context, name string, arg ...string) *exec.Cmd {
	w := Wrapper()
	if len(w) == 0 {
		return exec.CommandContext(ctx, name, arg...)
	}
	return exec.CommandContext(ctx, w[0], append(append(w[1:], name), arg...)...)
}

// Reexec returns a command that runs the current test binary again with
// arg (typically "-test.run=^TestSomethingChild$"), through the wrapper if
// any. Under qemu-user, os.Executable names the emulated binary, not the
// emulator.
func Reexec(arg ...string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("testexec: re-execute the test binary: %w", err)
	}
	return Command(exe, arg...), nil
}

// archSettings are the build settings, besides GOOS and GOARCH, that select
// the instructions a binary may use; Build passes on those the test binary
// was built with.
var archSettings = []string{"GOARM", "GOARM64", "GOAMD64", "GO386", "GOMIPS", "GOMIPS64", "GOPPC64", "GORISCV64"}

// BuildEnv returns the environment for a go command that builds for the
// test binary's own target: the current environment with GOOS, GOARCH and
// the sub-architecture settings of the running binary.
func BuildEnv() []string {
	env := append(os.Environ(), "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			for _, k := range archSettings {
				if s.Key == k {
					env = append(env, k+"="+s.Value)
				}
			}
		}
	}
	return env
}

// Build runs `go build -o out flags... pkg` with the host's go command
// (the first on PATH: go test puts its own GOROOT/bin first) for the test
// binary's own target (BuildEnv). The compiler's output goes to os.Stderr.
func Build(out, pkg string, flags ...string) error {
	args := append(append([]string{"build", "-o", out}, flags...), pkg)
	cmd := exec.Command("go", args...)
	cmd.Env = BuildEnv()
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("testexec: go %s (GOARCH=%s): %w", strings.Join(args, " "), runtime.GOARCH, err)
	}
	return nil
}
