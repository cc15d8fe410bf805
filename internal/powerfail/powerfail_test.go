package powerfail_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/sysreg/sysreg/internal/powerfail"
	"github.com/sysreg/sysreg/internal/testexec"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The helpers work on the mount; the checks after a cut read the backing
// directory, as the next boot would.

func writeFile(t *testing.T, path string, data []byte, sync bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func pwrite(t *testing.T, path string, data []byte, off int64, sync bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			t.Fatal(err)
		}
	}
}

func syncDir(t *testing.T, dir string) {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Fatalf("fsync %s: %v", dir, err)
	}
}

func cut(t *testing.T, f *powerfail.FS) powerfail.Report {
	t.Helper()
	rep, err := f.Cut()
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Inconsistent) > 0 {
		t.Fatalf("cut: %v", rep.Inconsistent)
	}
	return rep
}

func content(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return "<none>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Synced data survives a cut, unsynced writes and size changes go — for a
// file that existed before the mount and for one created (and made
// durable) through it.
func TestCutKeepsSyncedDropsUnsynced(t *testing.T) {
	f := powerfail.ForTest(t, powerfail.Options{})
	disk, mnt := f.Backing(), f.Mountpoint()
	if err := os.WriteFile(filepath.Join(disk, "old"), []byte("before the mount"), 0o600); err != nil {
		t.Fatal(err)
	}
	pwrite(t, filepath.Join(mnt, "old"), []byte("AFTER"), 0, false)
	if err := os.Truncate(filepath.Join(mnt, "old"), 3); err != nil {
		t.Fatal(err)
	}

	writeFile(t, filepath.Join(mnt, "new"), []byte("synced"), true)
	syncDir(t, mnt)
	pwrite(t, filepath.Join(mnt, "new"), []byte(" and more"), 6, false)
	pwrite(t, filepath.Join(mnt, "new"), []byte("S"), 0, false)

	writeFile(t, filepath.Join(mnt, "resized"), []byte("0123456789"), true)
	syncDir(t, mnt)
	if err := os.Truncate(filepath.Join(mnt, "resized"), 4); err != nil {
		t.Fatal(err)
	}
	pwrite(t, filepath.Join(mnt, "resized"), []byte("x"), 20, false)

	if got := content(t, filepath.Join(disk, "new")); got != "Synced and more" {
		t.Fatalf("before the cut, the backing file holds %q: writes must reach it at once", got)
	}
	rep := cut(t, f)
	for name, want := range map[string]string{"old": "before the mount", "new": "synced", "resized": "0123456789"} {
		if got := content(t, filepath.Join(disk, name)); got != want {
			t.Errorf("%s after the cut = %q, want %q", name, got, want)
		}
	}
	if rep.Lost != 6 || rep.Kept != 0 || rep.Files != 3 {
		t.Errorf("report %+v, want 6 changes lost in 3 files", rep)
	}
}

// fdatasync and fsync both make a file's contents durable; a later
// unsynced write to it still goes.
func TestSyncIsPerFile(t *testing.T) {
	f := powerfail.ForTest(t, powerfail.Options{})
	disk, mnt := f.Backing(), f.Mountpoint()
	writeFile(t, filepath.Join(mnt, "a"), []byte("a1"), true)
	writeFile(t, filepath.Join(mnt, "b"), []byte("b1"), true)
	syncDir(t, mnt)
	pwrite(t, filepath.Join(mnt, "a"), []byte("a2"), 0, true) // fdatasync
	pwrite(t, filepath.Join(mnt, "b"), []byte("b2"), 0, false)
	pwrite(t, filepath.Join(mnt, "a"), []byte("a3"), 0, false)
	cut(t, f)
	if a, b := content(t, filepath.Join(disk, "a")), content(t, filepath.Join(disk, "b")); a != "a2" || b != "b1" {
		t.Fatalf("a = %q, b = %q; want a2 (synced) and b1 (b's write was never synced)", a, b)
	}
}

// Directory entries: a created, renamed or removed entry whose directory
// was not fsynced afterwards reverts at the cut, even when the file itself
// was fsynced; after the directory's fsync it stays.
func TestCutRevertsUnsyncedEntries(t *testing.T) {
	f := powerfail.ForTest(t, powerfail.Options{})
	disk, mnt := f.Backing(), f.Mountpoint()
	if err := os.Mkdir(filepath.Join(mnt, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	syncDir(t, mnt)
	sub := filepath.Join(mnt, "sub")

	// Durable: created, fsynced, directory fsynced.
	writeFile(t, filepath.Join(sub, "kept"), []byte("k"), true)
	writeFile(t, filepath.Join(sub, "target"), []byte("old target"), true)
	writeFile(t, filepath.Join(sub, "doomed"), []byte("d"), true)
	syncDir(t, sub)

	// Not durable: the directory is not fsynced after these.
	writeFile(t, filepath.Join(sub, "fresh"), []byte("fsynced file, unsynced name"), true)
	writeFile(t, filepath.Join(sub, "target.tmp"), []byte("new target"), true)
	if err := os.Rename(filepath.Join(sub, "target.tmp"), filepath.Join(sub, "target")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(sub, "doomed")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(mnt, "newdir"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(mnt, "newdir", "inside"), []byte("x"), true)
	syncDir(t, filepath.Join(mnt, "newdir")) // its own entries, not its name in mnt

	cut(t, f)
	disksub := filepath.Join(disk, "sub")
	for name, want := range map[string]string{
		"kept": "k", "target": "old target", "doomed": "d",
		"fresh": "<none>", "target.tmp": "<none>", // its creation was not durable either
	} {
		if got := content(t, filepath.Join(disksub, name)); got != want {
			t.Errorf("sub/%s after the cut = %q, want %q", name, got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(disk, "newdir")); !os.IsNotExist(err) {
		t.Errorf("newdir survived the cut though its parent was never fsynced: %v", err)
	}
}

// The same changes, each followed by an fsync of the directory, survive.
func TestDirSyncMakesEntriesDurable(t *testing.T) {
	f := powerfail.ForTest(t, powerfail.Options{})
	disk, mnt := f.Backing(), f.Mountpoint()
	writeFile(t, filepath.Join(mnt, "target"), []byte("old"), true)
	writeFile(t, filepath.Join(mnt, "doomed"), []byte("d"), true)
	syncDir(t, mnt)
	writeFile(t, filepath.Join(mnt, "target.tmp"), []byte("new"), true)
	if err := os.Rename(filepath.Join(mnt, "target.tmp"), filepath.Join(mnt, "target")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(mnt, "doomed")); err != nil {
		t.Fatal(err)
	}
	syncDir(t, mnt)
	cut(t, f)
	for name, want := range map[string]string{"target": "new", "target.tmp": "<none>", "doomed": "<none>"} {
		if got := content(t, filepath.Join(disk, name)); got != want {
			t.Errorf("%s after the cut = %q, want %q", name, got, want)
		}
	}
}

// Reorder: each unsynced write survives or not, independently; each sector
// holds either its synced or its written contents, and over a few seeds
// both outcomes happen.
func TestReorderKeepsARandomSubset(t *testing.T) {
	const n = 16
	seen := map[bool]int{}
	for seed := range uint64(4) {
		f := powerfail.ForTest(t, powerfail.Options{Reorder: true, Seed: seed})
		disk, mnt := f.Backing(), f.Mountpoint()
		writeFile(t, filepath.Join(mnt, "f"), bytes.Repeat([]byte{'o'}, n*powerfail.Sector), true)
		syncDir(t, mnt)
		for i := range n {
			pwrite(t, filepath.Join(mnt, "f"), bytes.Repeat([]byte{'n'}, powerfail.Sector), int64(i*powerfail.Sector), false)
		}
		rep := cut(t, f)
		got := []byte(content(t, filepath.Join(disk, "f")))
		if len(got) != n*powerfail.Sector {
			t.Fatalf("seed %d: %d bytes after the cut, want %d", seed, len(got), n*powerfail.Sector)
		}
		kept := 0
		for i := range n {
			sec := got[i*powerfail.Sector : (i+1)*powerfail.Sector]
			switch {
			case bytes.Equal(sec, bytes.Repeat([]byte{'n'}, powerfail.Sector)):
				kept++
				seen[true]++
			case bytes.Equal(sec, bytes.Repeat([]byte{'o'}, powerfail.Sector)):
				seen[false]++
			default:
				t.Fatalf("seed %d: sector %d is neither old nor new: %q", seed, i, sec)
			}
		}
		if kept != rep.Kept || rep.Kept+rep.Lost != n {
			t.Fatalf("seed %d: %d sectors kept, report %+v", seed, kept, rep)
		}
	}
	if seen[true] == 0 || seen[false] == 0 {
		t.Fatalf("over 4 seeds, sectors kept/lost: %v; want both", seen)
	}
}

// Torn: the last unsynced write survives as a sector-aligned prefix, never
// whole; the writes before it survive. (The kernel splits a write that
// crosses a page boundary unaligned, so the torn write is a page-aligned
// one here.)
func TestTornKeepsAnAlignedPrefix(t *testing.T) {
	const base, size = 4096, 4096
	lengths := map[int]bool{}
	for seed := range uint64(6) {
		f := powerfail.ForTest(t, powerfail.Options{Torn: true, Seed: seed})
		disk, mnt := f.Backing(), f.Mountpoint()
		writeFile(t, filepath.Join(mnt, "f"), bytes.Repeat([]byte{'o'}, base), true)
		syncDir(t, mnt)
		pwrite(t, filepath.Join(mnt, "f"), []byte("early"), 0, false)
		pwrite(t, filepath.Join(mnt, "f"), bytes.Repeat([]byte{'n'}, size), base, false)
		rep := cut(t, f)
		got := content(t, filepath.Join(disk, "f"))
		if rep.Torn != 1 || got[:5] != "early" || got[5:base] != string(bytes.Repeat([]byte{'o'}, base-5)) {
			t.Fatalf("seed %d: report %+v, file starts %q", seed, rep, got[:min(len(got), 100)])
		}
		tail := got[base:]
		if tail != string(bytes.Repeat([]byte{'n'}, len(tail))) {
			t.Fatalf("seed %d: the torn write left %q", seed, tail)
		}
		if len(tail)%powerfail.Sector != 0 || len(tail) >= size {
			t.Fatalf("seed %d: %d bytes of the write kept: want a multiple of %d below %d", seed, len(tail), powerfail.Sector, size)
		}
		lengths[len(tail)] = true
	}
	if len(lengths) < 2 {
		t.Fatalf("over 6 seeds the torn prefix was always the same: %v", lengths)
	}
}

// bbolt reads its file through a read-only shared mmap while it writes
// with pwrite: the mapping must work on the mount and show the writes.
func TestMmapSeesWrites(t *testing.T) {
	f := powerfail.ForTest(t, powerfail.Options{})
	path := filepath.Join(f.Mountpoint(), "mapped")
	writeFile(t, path, make([]byte, 3*4096), true)
	fd, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	m, err := unix.Mmap(int(fd.Fd()), 0, 3*4096, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatalf("mmap on the mount: %v", err)
	}
	defer unix.Munmap(m)
	if _, err := fd.WriteAt([]byte("seen through the map"), 4096+10); err != nil {
		t.Fatal(err)
	}
	if got := string(m[4096+10 : 4096+30]); got != "seen through the map" {
		t.Fatalf("mmap shows %q after a pwrite", got)
	}
	if st := f.Stats(); st.Writes < 2 {
		t.Fatalf("stats %+v: the kernel did not forward the writes", st)
	}
}

// TestKillAtChild is the child of TestKillAtKillsInsideTheSync: it writes
// a file in the mount and fsyncs it; it must die in that fsync.
func TestKillAtChild(t *testing.T) {
	path := os.Getenv("POWERFAIL_KILLAT_FILE")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		os.Exit(3)
	}
	f.WriteAt([]byte("unsynced"), 0)
	f.Sync()
	os.Exit(4) // not reached: killed in Sync
}

// KillAt: the process that calls the chosen fsync dies of SIGKILL inside
// it, and the fsync does not count: its write is lost at the cut.
func TestKillAtKillsInsideTheSync(t *testing.T) {
	var asked []powerfail.Sync
	f := powerfail.ForTest(t, powerfail.Options{KillAt: func(s powerfail.Sync) bool {
		asked = append(asked, s) // the child's syncs come one at a time
		return !s.Dir
	}})
	disk, mnt := f.Backing(), f.Mountpoint()
	if err := os.WriteFile(filepath.Join(disk, "f"), []byte("durable!"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, err := testexec.Reexec("-test.run=^TestKillAtChild$", "-test.count=1")
	if err != nil {
		t.Skipf("cannot re-execute the test binary: %v", err)
	}
	cmd.Env = append(os.Environ(), "POWERFAIL_KILLAT_FILE="+filepath.Join(mnt, "f"))
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child: %v, want death by SIGKILL", err)
	}
	cut(t, f)
	if got := content(t, filepath.Join(disk, "f")); got != "durable!" {
		t.Fatalf("after the cut: %q; the fsync the child was killed in must not count", got)
	}
	if len(asked) != 1 || asked[0].Path != filepath.Join(disk, "f") {
		t.Fatalf("KillAt asked about %+v, want the one fsync of %s", asked, filepath.Join(disk, "f"))
	}
}
