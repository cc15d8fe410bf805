// Package powerfail is a test-only FUSE filesystem that loses, at a
// simulated power cut, everything that was not made durable: the
// power-loss half of sysreg's durability promise (R24), which a SIGKILL
// alone cannot test because the kernel's page cache survives a process
// kill. It plays the part LazyFS plays in etcd's robustness tests.
//
// # Model
//
// Mount puts a loopback view (github.com/hanwen/go-fuse/v2) of a backing
// directory at a mountpoint. Every operation reaches the backing directory
// at once — to the processes of this "boot" the filesystem behaves like
// any other — but is recorded until it is synced:
//
//   - Data, per file (inode): every write and size change (truncate,
//     O_TRUNC) since the file's last fsync or fdatasync (both commit all of
//     the file's data and size; neither commits its name). Each record
//     keeps the bytes it replaced, so the cut can undo it.
//   - Names, per directory: every entry created (file, directory, symlink,
//     hard link), removed (unlink, rmdir) or renamed since the directory's
//     last fsync. A rename is made durable by an fsync of the directory the
//     new name is in. Removed or replaced files are kept as hard links
//     beside the backing directory until the change is durable, so that a
//     cut can bring them back.
//
// Cut, after the writers are killed and the mount is gone, is the power
// cut: it undoes the unsynced directory changes, newest first (a created
// entry disappears, even if the file itself was fsynced; a removed or
// replaced one comes back), then rolls every file with unsynced changes
// back to its last synced contents. What survives of the unsynced changes
// depends on Options:
//
//   - zero value: nothing (the whole page cache is lost);
//   - Reorder: each unsynced write or size change of a file survives or
//     not, independently (write-back in any order);
//   - Torn: every unsynced change but the last survives, and the last write
//     survives as a random 512-byte-aligned prefix, never whole (a cut in
//     the middle of a write);
//   - both: a random subset, then the torn last write.
//
// Options.KillAt adds crash points: it is asked before every fsync, and
// can have the calling process SIGKILLed there, before the sync takes
// effect — to test what the next process in the same boot does with what
// the killed one left only in the page cache.
//
// # Kernel interface
//
// The kernel's FUSE default is write-through (no writeback cache), so every
// write(2)/pwrite(2) reaches the filesystem before it returns; reads go
// through the page cache, which is what makes a read-only shared mmap work
// (bbolt reads its file that way) and shows every write. Direct I/O is not
// used (it would break MAP_SHARED on older kernels), FUSE passthrough is
// refused (the kernel would write the backing file itself, unrecorded), and
// attribute, entry and negative-entry caching are off, so sizes and names
// always come from the backing directory. fsync is not passed on to the
// backing files: the machine never loses power, the model does. flock
// locks are the kernel's own (local to the mount), which is all bbolt
// needs. Write-only opens are made read-write underneath, because a record
// reads the bytes it replaces.
//
// # Limits
//
//   - One mount is one boot: Cut spends the FS; mount again for the next.
//   - Directory changes are kept by path: a renamed directory's earlier
//     unsynced changes no longer undo cleanly (reported in
//     Report.Inconsistent). RENAME_EXCHANGE, fallocate and copy_file_range
//     are refused (EINVAL/EOPNOTSUPP; callers fall back to plain writes).
//   - Stricter than ext4 in one respect: fsync of a new file does not make
//     its name durable (ext4's journal usually does); POSIX asks for the
//     directory's fsync, and so does this model.
//   - A torn write tears at 512-byte boundaries of the file only; the
//     kernel splits unaligned writes at page boundaries before we see them.
//   - Writes through a shared writable mmap arrive as ordinary writes when
//     the kernel writes the pages back, which may be later than the store.
//   - Linux only (FUSE, /proc); needs /dev/fuse and the right to mount
//     (root: Mount uses mount(2) directly). Without them Mount fails with
//     ErrUnavailable, and ForTest/MountForTest skip the test saying why.
//
// # Concurrency
//
// The FS serves requests on go-fuse's goroutines; one mutex serialises
// every recorded change with its backing write (so the undo log is exact)
// and the model's state. Unmount stops the server and waits for its
// goroutines; Cut runs after it.
package powerfail
