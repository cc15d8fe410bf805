package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// releaseImage unmaps, with madvise(MADV_DONTNEED), the pages of every
// read-only mapping of a file (the executable's code, read-only data and
// runtime tables; shared libraries; journal.db, which bbolt maps read-only):
// the kernel maps them again from the page cache when they are next used,
// so nothing changes but the resident set (see trim.go).
//
// Only mappings that hold no anonymous page are released: a private
// mapping that was written before it became read-only (a library's or a
// position-independent executable's relocated data, RELRO) holds the
// process's own copies, which dropping would lose. Writable mappings,
// anonymous memory and devices are left alone. Best effort: a failure
// leaves the pages mapped.
func releaseImage() {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return
	}
	defer f.Close()
	var cur smapsEntry
	release := func() {
		if cur.releasable() {
			syscall.Syscall(syscall.SYS_MADVISE, cur.lo, cur.hi-cur.lo, syscall.MADV_DONTNEED)
		}
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if e, ok := parseMapping(line); ok {
			release()
			cur = e
			continue
		}
		if rest, ok := strings.CutPrefix(line, "Anonymous:"); ok && cur.hi != 0 {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			cur.anon = err != nil || kb > 0 // unreadable: assume some
			cur.anonKnown = true
		}
	}
	if sc.Err() == nil {
		release()
	}
}

// smapsEntry is one mapping of /proc/PID/smaps: its range, whether it is
// writable, the file it maps ("" for anonymous memory and pseudo-files
// like [vdso]), and whether it holds anonymous pages.
type smapsEntry struct {
	lo, hi          uintptr
	writable        bool
	path            string
	anon, anonKnown bool
}

// releasable: a read-only mapping of a regular file, known to hold no
// anonymous page.
func (e smapsEntry) releasable() bool {
	return e.hi > e.lo && !e.writable && e.anonKnown && !e.anon &&
		strings.HasPrefix(e.path, "/") && !strings.HasPrefix(e.path, "/dev/")
}

// parseMapping parses the first line of a mapping in /proc/PID/smaps (or a
// line of /proc/PID/maps): "start-end perms offset dev inode [path]".
func parseMapping(line string) (smapsEntry, bool) {
	f := strings.SplitN(line, " ", 6)
	if len(f) < 5 || len(f[1]) != 4 || strings.HasSuffix(f[0], ":") {
		return smapsEntry{}, false
	}
	a, b, found := strings.Cut(f[0], "-")
	if !found {
		return smapsEntry{}, false
	}
	// An address that does not fit a uintptr (a 64-bit kernel's line on a
	// 32-bit build's test table) is not a mapping of this process.
	x, err1 := strconv.ParseUint(a, 16, strconv.IntSize)
	y, err2 := strconv.ParseUint(b, 16, strconv.IntSize)
	if err1 != nil || err2 != nil || y < x {
		return smapsEntry{}, false
	}
	e := smapsEntry{lo: uintptr(x), hi: uintptr(y), writable: f[1][1] == 'w'}
	if len(f) == 6 {
		e.path = strings.TrimLeft(f[5], " ")
	}
	return e, true
}
