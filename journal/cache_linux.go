package journal

import (
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// dropCache evicts the file's pages from the page cache (best effort: an
// error only means they stay). The kernel keeps a file's cached pages in
// folios of one or more pages, and accounts (and some filesystems write
// back) a whole folio when any byte of it is written. bbolt creates its
// file with one 16 KiB write, so its two meta pages share a folio, and a
// checkpoint's overflow pages are written as one run: every later commit
// would then count 16 KiB for its 4 KiB meta page, and every page reused
// from a freed run as much as that run. After the eviction, pages come
// back one at a time: bbolt reads through an mmap advised MADV_RANDOM (one
// page per fault) and writes single pages (each a new 4 KiB folio).
//
// The committer calls it, between transactions, before its first commit
// (after recovery's reads) and after each checkpoint. The mapping is
// bbolt's own, valid while the file is open; dropping its page table
// entries (MADV_DONTNEED on a shared file mapping) only makes the next
// read fault the page in again, from the page cache or the file, which
// holds every committed byte (each commit ended with fdatasync).
func (j *Journal) dropCache() {
	// Only the pages below bbolt's high-water mark: bbolt maps at least
	// those (the file may be longer than the mapping, and madvise past the
	// mapping would hit other memory).
	var size int64
	if err := j.db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil }); err != nil || size <= 0 {
		return
	}
	// Errors are ignored: the pages stay cached, which costs only wear
	// accounting.
	_, _, _ = unix.Syscall(unix.SYS_MADVISE, j.db.Info().Data, uintptr(size), unix.MADV_DONTNEED)
	_ = unix.Fadvise(int(j.file.Fd()), 0, 0, unix.FADV_DONTNEED)
}
