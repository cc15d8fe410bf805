package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// releaseImage unmaps, with madvise(MADV_DONTNEED), the pages of the
// read-only mappings of the process's code files — the executable and the
// shared libraries the dynamic linker loaded (libc, ld.so in a cgo build):
// their code, read-only data and runtime tables. The kernel maps them
// again from the page cache when they are next used, so nothing changes
// but the resident set (see trim.go).
//
// A code file is a file with an executable mapping; all its read-only
// mappings go. Mappings of other files are left alone: they can move.
// bbolt maps journal.db read-only and remaps it elsewhere when the file
// grows, and anonymous memory can take the old range between the read of
// smaps and the madvise — MADV_DONTNEED on anonymous memory discards its
// contents. Code files stay where they were mapped: the executable's
// mappings are made at exec and never unmapped, and nothing in sysregd
// unloads a shared library (dlclose).
//
// Only mappings that hold no anonymous page are released: a private
// mapping that was written before it became read-only (a library's or a
// position-independent executable's relocated data, RELRO) holds the
// process's own copies, which dropping would lose. Best effort: a failure
// leaves the pages mapped.
func releaseImage() {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return
	}
	defer f.Close()
	var maps []smapsEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if e, ok := parseMapping(line); ok {
			maps = append(maps, e)
			continue
		}
		if rest, ok := strings.CutPrefix(line, "Anonymous:"); ok && len(maps) > 0 {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			cur := &maps[len(maps)-1]
			cur.anon = err != nil || kb > 0 // unreadable: assume some
			cur.anonKnown = true
		}
	}
	if sc.Err() != nil {
		return
	}
	code := codeFiles(maps)
	for _, e := range maps {
		if e.releasable(code) {
			syscall.Syscall(syscall.SYS_MADVISE, e.lo, e.hi-e.lo, syscall.MADV_DONTNEED)
		}
	}
}

// codeFiles returns the files that maps maps executable.
func codeFiles(maps []smapsEntry) map[fileID]bool {
	code := make(map[fileID]bool)
	for _, e := range maps {
		if e.exec && e.file.ino != 0 && strings.HasPrefix(e.path, "/") {
			code[e.file] = true
		}
	}
	return code
}

// smapsEntry is one mapping of /proc/PID/smaps: its range, whether it is
// writable, the file it maps (its device and inode; path "" for anonymous
// memory and pseudo-files like [vdso]), and whether it holds anonymous
// pages.
type smapsEntry struct {
	lo, hi          uintptr
	writable, exec  bool
	file            fileID
	path            string
	anon, anonKnown bool
}

// fileID is a file's device and inode as stat(2) gives them.
type fileID struct{ dev, ino uint64 }

// releasable: a read-only mapping of one of the code files, known to hold
// no anonymous page.
func (e smapsEntry) releasable(code map[fileID]bool) bool {
	return e.hi > e.lo && !e.writable && e.anonKnown && !e.anon &&
		e.file.ino != 0 && code[e.file] && strings.HasPrefix(e.path, "/")
}

// parseDev parses smaps' "major:minor" (hexadecimal) into the encoding of
// Linux's stat st_dev (glibc's makedev).
func parseDev(s string) (uint64, bool) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, false
	}
	major, err1 := strconv.ParseUint(a, 16, 32)
	minor, err2 := strconv.ParseUint(b, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return major&0xfff<<8 | major&^0xfff<<32 | minor&0xff | minor&^0xff<<12, true
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
	e := smapsEntry{lo: uintptr(x), hi: uintptr(y), writable: f[1][1] == 'w', exec: f[1][2] == 'x'}
	dev, okDev := parseDev(f[3])
	ino, err3 := strconv.ParseUint(strings.TrimSpace(f[4]), 10, 64)
	if okDev && err3 == nil {
		e.file = fileID{dev: dev, ino: ino}
	}
	if len(f) == 6 {
		e.path = strings.TrimLeft(f[5], " ")
	}
	return e, true
}
