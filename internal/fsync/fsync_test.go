package fsync_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sysreg/sysreg/internal/fsync"
)

func TestMkdirAll(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "a", "b", "c")
	if err := fsync.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Join(root, "a"), filepath.Join(root, "a", "b"), dir} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want a directory 0700", d, fi.Mode())
		}
	}
	// Again: nothing to do.
	if err := fsync.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := fsync.MkdirAll(file, 0o700); err == nil {
		t.Error("MkdirAll of an existing file succeeded")
	}
	if err := fsync.Dir(filepath.Join(root, "missing")); err == nil {
		t.Error("Dir of a missing directory succeeded")
	}
}
