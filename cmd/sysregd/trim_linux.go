package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// releaseImage unmaps the pages of this process's executable that are
// mapped read-only (code, read-only data, the runtime's tables) with
// madvise(MADV_DONTNEED): the kernel maps them again from the page cache
// when they are next used, so nothing changes but the resident set (see
// trim.go). Writable mappings (data, bss) are left alone: dropping those
// would lose the process's variables. Best effort: a failure leaves the
// pages mapped.
func releaseImage() {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return
	}
	var ino uint64
	if fi, err := os.Stat("/proc/self/exe"); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			ino = uint64(st.Ino)
		}
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lo, hi, ok := imageMapping(sc.Text(), exe, ino)
		if ok {
			syscall.Syscall(syscall.SYS_MADVISE, lo, hi-lo, syscall.MADV_DONTNEED)
		}
	}
}

// imageMapping parses one line of /proc/PID/maps ("start-end perms offset
// dev inode path") and reports the range of a read-only mapping of the
// file path with inode ino (0: any).
func imageMapping(line, path string, ino uint64) (lo, hi uintptr, ok bool) {
	f := strings.SplitN(line, " ", 6)
	if len(f) < 6 || len(f[1]) < 2 || f[1][1] != '-' || strings.TrimLeft(f[5], " ") != path {
		return 0, 0, false
	}
	if n, err := strconv.ParseUint(f[4], 10, 64); err != nil || n == 0 || (ino != 0 && n != ino) {
		return 0, 0, false
	}
	a, b, found := strings.Cut(f[0], "-")
	if !found {
		return 0, 0, false
	}
	x, err1 := strconv.ParseUint(a, 16, 64)
	y, err2 := strconv.ParseUint(b, 16, 64)
	if err1 != nil || err2 != nil || y <= x {
		return 0, 0, false
	}
	return uintptr(x), uintptr(y), true
}
