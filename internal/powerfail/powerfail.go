package powerfail

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Options choose what survives of the unsynced writes at a power cut. The
// zero value loses every one of them.
type Options struct {
	// Reorder: each unsynced write or size change of a file survives the
	// cut with probability 1/2, independently of the others (the kernel
	// writes dirty pages back in any order, at any time).
	Reorder bool
	// Torn: the last unsynced write of each file survives as a random
	// 512-byte-aligned prefix (possibly empty, never all of it), and every
	// unsynced change before it survives (unless Reorder drops it): a cut
	// in the middle of a write that reaches the disk sector by sector.
	Torn bool
	// Seed seeds the random choices of Reorder and Torn.
	Seed uint64
	// KillAt, if set, is called before every fsync of a file or directory;
	// if it returns true, the calling process is SIGKILLed and that fsync
	// does not take effect: a crash point inside a sync. (A process blocked
	// in a FUSE request cannot die until the request is answered, so the
	// filesystem kills it and then answers.)
	KillAt func(s Sync) bool
}

// Sync is an fsync or fdatasync the filesystem received.
type Sync struct {
	Dir  bool   // a directory's fsync
	Path string // in the backing directory
}

// Sector is the unit of a torn write.
const Sector = 512

// FS is one mounted power-fail filesystem: a loopback of a backing
// directory that records what was not yet synced. See the package
// documentation for the model.
type FS struct {
	backing, mnt, stash string
	opts                Options
	server              fuseServer

	mu        sync.Mutex // guards everything below, and every backing write (so the undo log is exact)
	files     map[fileKey]*fileLog
	meta      []*metaOp // unsynced directory changes, oldest first
	stashN    int
	unmounted bool
	cut       bool
	stats     Stats
}

// Stats count what the filesystem saw while mounted.
type Stats struct {
	Writes, Truncates   int // data changes recorded
	FileSyncs, DirSyncs int // fsync/fdatasync of files, fsync of directories
	Creates, Removes    int // directory entries created, removed
	Renames             int
	Unsupported         int // operations refused because the model cannot undo them
	BytesWritten        int64
	Synced              int64 // recorded changes made durable by a sync
}

// Report says what a power cut undid.
type Report struct {
	Files        int // files whose contents were rolled back
	Lost         int // unsynced writes and size changes dropped
	Kept         int // unsynced writes and size changes kept (Reorder, Torn)
	Torn         int // writes kept as a prefix
	Entries      int // directory changes undone
	Gone         int // files whose unsynced changes no longer mattered (their name was never durable)
	Inconsistent []string
}

type fileKey struct{ dev, ino uint64 }

// fileLog is what was done to one file (inode) since its last sync.
type fileLog struct{ ops []dataOp }

// dataOp is one write or size change, with what it replaced.
type dataOp struct {
	trunc   bool
	off     int64  // write: offset; truncate: the new size
	data    []byte // write: the bytes written
	old     []byte // the bytes it overwrote (write) or cut off (truncate), at off
	oldSize int64
}

type metaKind uint8

const (
	metaCreate metaKind = iota + 1
	metaRemove
	metaRename
)

// metaOp is one unsynced change of a directory entry, in backing paths.
type metaOp struct {
	kind   metaKind
	dir    string      // the directory whose fsync makes it durable
	path   string      // create, remove: the entry; rename: the new name
	from   string      // rename: the old name
	stash  string      // remove, rename over an entry: a hard link to the entry that went ("" for a directory)
	isDir  bool        // the entry (create), or the removed/replaced entry, is a directory
	mode   fs.FileMode // of a removed/replaced directory
	exists bool        // rename: an entry was replaced
}

// ErrUnavailable is returned by Mount when this machine cannot mount FUSE
// filesystems (no /dev/fuse, or not allowed to mount).
var ErrUnavailable = errors.New("powerfail: FUSE unavailable")

// fuseServer is the mounted go-fuse server (mount_fuse.go), which does
// not build for every GOARCH (mount_other.go).
type fuseServer interface {
	Unmount() error
	Wait()
}

// Mount mounts a power-fail view of the directory backing at mountpoint
// (an existing empty directory). Everything done through mountpoint
// reaches backing at once (the machine's page cache still holds it), but
// is recorded until it is synced; Cut, after Unmount, undoes what was not.
func Mount(backing, mountpoint string, opts Options) (*FS, error) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	backing, err := filepath.Abs(backing)
	if err != nil {
		return nil, err
	}
	// Hard links to removed entries live beside backing: same filesystem,
	// outside the view.
	stash, err := os.MkdirTemp(filepath.Dir(backing), ".powerfail-stash-")
	if err != nil {
		return nil, err
	}
	f := &FS{backing: backing, mnt: mountpoint, stash: stash, opts: opts, files: map[fileKey]*fileLog{}}
	server, err := mountFUSE(f)
	if err != nil {
		os.Remove(stash)
		return nil, err
	}
	f.server = server
	return f, nil
}

// Mountpoint returns where the filesystem is mounted.
func (f *FS) Mountpoint() string { return f.mnt }

// Backing returns the directory underneath.
func (f *FS) Backing() string { return f.backing }

// Stats returns what the filesystem has seen so far.
func (f *FS) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// Unmount unmounts the filesystem and waits for its server to stop. Every
// process writing through it must be gone (killed) first: it retries for
// a few seconds while the mount is busy. Safe to call twice.
func (f *FS) Unmount() error {
	f.mu.Lock()
	done := f.unmounted
	f.mu.Unlock()
	if done {
		return nil
	}
	var err error
	for range 100 {
		if err = f.server.Unmount(); err == nil || !errors.Is(err, syscall.EBUSY) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("powerfail: unmount %s: %w", f.mnt, err)
	}
	f.server.Wait()
	f.mu.Lock()
	f.unmounted = true
	f.mu.Unlock()
	return nil
}

// Cut is the power cut: it unmounts if needed, then rolls the backing
// directory back to what was synced — directory changes first (newest
// first), then file contents, inode by inode — keeping what Options say
// may survive. The FS is spent afterwards: mount again for the next boot.
func (f *FS) Cut() (Report, error) {
	if err := f.Unmount(); err != nil {
		return Report{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		return Report{}, errors.New("powerfail: cut twice")
	}
	f.cut = true
	defer os.RemoveAll(f.stash)
	var rep Report
	rng := rand.New(rand.NewPCG(f.opts.Seed, 0x706f776572))
	for i := len(f.meta) - 1; i >= 0; i-- {
		if err := f.meta[i].undo(); err != nil {
			rep.Inconsistent = append(rep.Inconsistent, err.Error())
		}
		rep.Entries++
	}
	f.meta = nil
	pending := len(f.files)
	err := filepath.WalkDir(f.backing, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || pending == 0 {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return err
		}
		key := fileKey{uint64(st.Dev), st.Ino}
		lg := f.files[key]
		if lg == nil {
			return nil
		}
		delete(f.files, key)
		pending--
		return lg.cut(path, f.opts, rng, &rep)
	})
	rep.Gone = len(f.files)
	f.files = nil
	if err != nil {
		return rep, fmt.Errorf("powerfail: cut: %w", err)
	}
	return rep, nil
}

// cut rolls the file at path back to its last synced contents, then
// applies what survives.
func (lg *fileLog) cut(path string, opts Options, rng *rand.Rand, rep *Report) error {
	if len(lg.ops) == 0 {
		return nil
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for i := len(lg.ops) - 1; i >= 0; i-- {
		if err := lg.ops[i].undo(fd); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	rep.Files++
	last := len(lg.ops) - 1
	for i, op := range lg.ops {
		keep := len(op.data)
		switch {
		case opts.Torn && i == last && !op.trunc:
			keep = tornPrefix(op, rng)
			rep.Torn++
		case opts.Reorder && rng.IntN(2) == 0, !opts.Reorder && !opts.Torn:
			rep.Lost++
			continue
		}
		if err := op.redo(fd, keep); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		rep.Kept++
	}
	return nil
}

// tornPrefix picks how much of op survives: a length that ends on a sector
// boundary of the file (or 0), below the write's length.
func tornPrefix(op dataOp, rng *rand.Rand) int {
	var cuts []int
	for k := 0; k < len(op.data); {
		cuts = append(cuts, k)
		k = int((op.off+int64(k))/Sector+1)*Sector - int(op.off)
	}
	if len(cuts) == 0 {
		return 0
	}
	return cuts[rng.IntN(len(cuts))]
}

func (op dataOp) undo(fd int) error {
	if err := unix.Ftruncate(fd, op.oldSize); err != nil {
		return err
	}
	return pwriteAll(fd, op.old, op.off)
}

func (op dataOp) redo(fd int, keep int) error {
	if op.trunc {
		return unix.Ftruncate(fd, op.off)
	}
	return pwriteAll(fd, op.data[:keep], op.off)
}

func pwriteAll(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if err != nil {
			return err
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

func preadAll(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pread(fd, b, off)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("short read at %d", off)
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

func (m *metaOp) undo() error {
	switch m.kind {
	case metaCreate:
		if m.isDir {
			return os.RemoveAll(m.path)
		}
		if err := os.Remove(m.path); err != nil {
			return fmt.Errorf("undo create: %w", err)
		}
	case metaRemove:
		return m.restore(m.path)
	case metaRename:
		if err := os.Rename(m.path, m.from); err != nil {
			return fmt.Errorf("undo rename: %w", err)
		}
		if m.exists {
			return m.restore(m.path)
		}
	}
	return nil
}

// restore puts the entry that was removed or replaced back at path.
func (m *metaOp) restore(path string) error {
	if m.isDir {
		if err := os.Mkdir(path, m.mode.Perm()); err != nil {
			return fmt.Errorf("undo remove: %w", err)
		}
		return nil
	}
	if err := os.Rename(m.stash, path); err != nil {
		return fmt.Errorf("undo remove: %w", err)
	}
	return nil
}

// Recording. Each runs under f.mu and performs the change itself, so that
// what it saves as "old" is exactly what the change replaced.

func keyOf(fd int) (fileKey, int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fileKey{}, 0, err
	}
	return fileKey{uint64(st.Dev), st.Ino}, st.Size, nil
}

func (f *FS) logOf(key fileKey) *fileLog {
	lg := f.files[key]
	if lg == nil {
		lg = &fileLog{}
		f.files[key] = lg
	}
	return lg
}

// write writes data at off to fd, recording it.
func (f *FS) write(fd int, data []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key, size, err := keyOf(fd)
	if err != nil {
		return 0, err
	}
	op := dataOp{off: off, oldSize: size}
	if off < size {
		op.old = make([]byte, min(int64(len(data)), size-off))
		if err := preadAll(fd, op.old, off); err != nil {
			return 0, err
		}
	}
	n, err := unix.Pwrite(fd, data, off)
	if n > 0 {
		op.data = slices.Clone(data[:n])
		f.logOf(key).ops = append(f.logOf(key).ops, op)
		f.stats.Writes++
		f.stats.BytesWritten += int64(n)
	}
	return n, err
}

// truncate sets fd's size, recording it.
func (f *FS) truncate(fd int, size int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	key, old, err := keyOf(fd)
	if err != nil {
		return err
	}
	op := dataOp{trunc: true, off: size, oldSize: old}
	if size < old {
		op.old = make([]byte, old-size)
		if err := preadAll(fd, op.old, size); err != nil {
			return err
		}
	}
	if err := unix.Ftruncate(fd, size); err != nil {
		return err
	}
	f.logOf(key).ops = append(f.logOf(key).ops, op)
	f.stats.Truncates++
	return nil
}

// killed reports whether the sync s is a crash point (Options.KillAt):
// then it has SIGKILLed the caller, thread tid.
func (f *FS) killed(s Sync, tid uint32) bool {
	if f.opts.KillAt == nil || !f.opts.KillAt(s) {
		return false
	}
	if tid == 0 {
		return true // no caller to kill (kill(0) would be our own group)
	}
	// FUSE names the calling thread; kill its whole process.
	pid := int(tid)
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Tgid:"); ok {
				if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
					pid = n
				}
			}
		}
	}
	_ = unix.Kill(pid, unix.SIGKILL) // already gone: nothing to do
	return true
}

// syncFile makes the file's contents durable (fsync and fdatasync alike).
func (f *FS) syncFile(fd int, path string, tid uint32) error {
	if f.killed(Sync{Path: path}, tid) {
		return syscall.EIO
	}
	key, _, err := keyOf(fd)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if lg := f.files[key]; lg != nil {
		f.stats.Synced += int64(len(lg.ops))
		delete(f.files, key)
	}
	f.stats.FileSyncs++
	return nil
}

// syncDir makes the entry changes of directory dir durable.
func (f *FS) syncDir(dir string, tid uint32) syscall.Errno {
	if f.killed(Sync{Dir: true, Path: dir}, tid) {
		return syscall.EIO
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats.DirSyncs++
	f.meta = slices.DeleteFunc(f.meta, func(m *metaOp) bool {
		if m.dir != dir {
			return false
		}
		if m.stash != "" {
			os.Remove(m.stash)
		}
		return true
	})
	return 0
}

// stashEntry hard-links the file at path into the stash (a directory:
// remembers its mode) before it is removed or replaced.
func (f *FS) stashEntry(m *metaOp, path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		m.isDir, m.mode = true, fi.Mode()
		return nil
	}
	f.stashN++
	m.stash = filepath.Join(f.stash, fmt.Sprint(f.stashN))
	return os.Link(path, m.stash)
}
