package powerfail

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// ForTest mounts a power-fail view of a fresh directory under t.TempDir:
// the backing directory is Backing(), the mount Mountpoint(). It skips t,
// saying why, when this machine cannot mount FUSE (ErrUnavailable), and
// unmounts when t ends (the FS may be Cut before that).
func ForTest(t testing.TB, opts Options) *FS {
	t.Helper()
	root := t.TempDir()
	backing, mnt := filepath.Join(root, "disk"), filepath.Join(root, "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return MountForTest(t, backing, mnt, opts)
}

// MountForTest is Mount for a test: it skips t when FUSE is unavailable,
// fails it on any other error, and unmounts when t ends.
func MountForTest(t testing.TB, backing, mountpoint string, opts Options) *FS {
	t.Helper()
	f, err := Mount(backing, mountpoint, opts)
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("power-loss tests need FUSE: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Unmount(); err != nil {
			t.Error(err)
		}
	})
	return f
}
