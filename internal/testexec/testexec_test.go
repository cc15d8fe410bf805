package testexec_test

import (
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/sysreg/sysreg/internal/testexec"
)

// TestCommandWrapper: with SYSREG_TEST_EXEC set, the child is the wrapper
// with the program and its arguments after the wrapper's own words;
// without it, the program itself.
func TestCommandWrapper(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want []string
	}{
		{"", []string{"prog", "-a", "b"}},
		{"   ", []string{"prog", "-a", "b"}},
		{"qemu-arm", []string{"qemu-arm", "prog", "-a", "b"}},
		{"qemu-arm -cpu arm1176", []string{"qemu-arm", "-cpu", "arm1176", "prog", "-a", "b"}},
	} {
		t.Run("env="+strings.ReplaceAll(tc.env, " ", "_"), func(t *testing.T) {
			t.Setenv(testexec.Env, tc.env)
			if got := testexec.Command("prog", "-a", "b").Args; !slices.Equal(got, tc.want) {
				t.Errorf("Command args = %q, want %q", got, tc.want)
			}
			if got := testexec.CommandContext(t.Context(), "prog", "-a", "b").Args; !slices.Equal(got, tc.want) {
				t.Errorf("CommandContext args = %q, want %q", got, tc.want)
			}
			if got, want := testexec.Emulated(), len(tc.want) > 3; got != want {
				t.Errorf("Emulated() = %v, want %v", got, want)
			}
		})
	}
}

// TestBuildRunsUnderTheWrapper: what Build makes is for this binary's own
// target, and Command runs it (under the wrapper when cross-testing).
func TestBuildRunsUnderTheWrapper(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "hello")
	if err := testexec.Build(bin, "./testdata/hello"); err != nil {
		t.Fatal(err)
	}
	out, err := testexec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	arm := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "GOARM" {
				arm = s.Value
			}
		}
	}
	if got, want := strings.TrimSpace(string(out)), strings.TrimSpace(runtime.GOOS+" "+runtime.GOARCH+" "+arm); got != want {
		t.Fatalf("built program says %q, want %q", got, want)
	}
}
