package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/sysreg/sysreg/internal/testexec"
)

func TestImageMapping(t *testing.T) {
	const exe = "/usr/sbin/sysregd"
	for _, c := range []struct {
		line   string
		ino    uint64
		lo, hi uintptr
		ok     bool
	}{
		{"00400000-00bc5000 r-xp 00000000 fe:00 10020619                           /usr/sbin/sysregd", 10020619, 0x400000, 0xbc5000, true},
		{"00bc5000-01427000 r--p 007c5000 fe:00 10020619                           /usr/sbin/sysregd", 0, 0xbc5000, 0x1427000, true},
		// Writable: the process's variables.
		{"01427000-0149b000 rw-p 01027000 fe:00 10020619                           /usr/sbin/sysregd", 10020619, 0, 0, false},
		// Another file, another inode, anonymous memory, junk.
		{"7f01357da000-7f01357db000 r-xp 00000000 fe:00 77                         /usr/lib/libc.so.6", 77, 0, 0, false},
		{"00400000-00bc5000 r-xp 00000000 fe:00 42                                 /usr/sbin/sysregd", 10020619, 0, 0, false},
		{"7f013563a000-7f01357da000 r--p 00000000 00:00 0 ", 0, 0, 0, false},
		{"00bc5000-00bc5000 r--p 00000000 fe:00 10020619 /usr/sbin/sysregd", 0, 0, 0, false},
		{"zz-00bc5000 r--p 00000000 fe:00 10020619 /usr/sbin/sysregd", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	} {
		lo, hi, ok := imageMapping(c.line, exe, c.ino)
		if lo != c.lo || hi != c.hi || ok != c.ok {
			t.Errorf("imageMapping(%q, ino %d) = %#x, %#x, %v; want %#x, %#x, %v", c.line, c.ino, lo, hi, ok, c.lo, c.hi, c.ok)
		}
	}
	// A path with spaces is one path.
	if _, _, ok := imageMapping("00400000-00bc5000 r-xp 00000000 fe:00 9 /opt/my apps/sysregd", "/opt/my apps/sysregd", 9); !ok {
		t.Error("a path with a space is not matched")
	}
}

// imageRSS is the resident size in kB of this process's read-only
// mappings of its executable.
func imageRSS(t *testing.T) int {
	t.Helper()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	total, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) > 0 && !strings.HasSuffix(f[0], ":") { // a mapping's first line
			_, _, in = imageMapping(line, exe, 0)
			continue
		}
		if rest, ok := strings.CutPrefix(line, "Rss:"); in && ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			total += kb
		}
	}
	return total
}

// The executable's pages that start-up mapped leave the resident set, and
// the program goes on running (its code is mapped again as it runs).
func TestReleaseImageShrinksTheResidentSet(t *testing.T) {
	if testexec.Emulated() {
		t.Skip("under qemu-user madvise leaves the guest's file mappings alone")
	}
	before := imageRSS(t)
	releaseImage()
	after := imageRSS(t)
	if before == 0 || after >= before {
		t.Fatalf("executable's resident read-only pages: %d kB before releaseImage, %d kB after", before, after)
	}
	t.Logf("executable's resident read-only pages: %d kB → %d kB", before, after)
}
