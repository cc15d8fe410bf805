package main

import (
	"bufio"
	"maps"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/sysreg/sysreg/internal/testexec"
)

func TestReleasableMappings(t *testing.T) {
	dev, ok := parseDev("fe:00")
	if !ok || dev != 0xfe00 {
		t.Fatalf(`parseDev("fe:00") = %#x, %v; want 0xfe00`, dev, ok)
	}
	if d, _ := parseDev("103:2"); d != 0x10302 { // makedev(259, 2): NVMe partitions
		t.Fatalf(`parseDev("103:2") = %#x, want 0x10302`, d)
	}
	// The code files: those with an executable mapping in the table.
	code := map[fileID]bool{{dev: dev, ino: 10020619}: true, {dev: dev, ino: 77}: true} // sysregd, libc
	for _, c := range []struct {
		header string
		anon   string // the mapping's Anonymous: line, "" for none
		lo, hi uint64 // uint64: the table holds 64-bit addresses on 32-bit builds too
		want   bool
	}{
		{"00400000-00bc5000 r-xp 00000000 fe:00 10020619                           /usr/sbin/sysregd", "0 kB", 0x400000, 0xbc5000, true},
		{"00bc5000-01427000 r--p 007c5000 fe:00 10020619                           /usr/sbin/sysregd", "0 kB", 0xbc5000, 0x1427000, true},
		{"7f017f4c7000-7f017f61d000 r-xp 00028000 fe:00 77                        /usr/lib/x86_64-linux-gnu/libc.so.6", "0 kB", 0x7f017f4c7000, 0x7f017f61d000, true},
		{"7f017f4a0000-7f017f4c7000 r--p 00000000 fe:00 77                        /usr/lib/x86_64-linux-gnu/libc.so.6", "0 kB", 0x7f017f4a0000, 0x7f017f4c7000, true},
		// Not a code file: mappings that can move. bbolt remaps journal.db
		// elsewhere when it grows, and anonymous memory can take its old
		// range between the read of smaps and the madvise (which would
		// discard that memory's contents).
		{"7f0100000000-7f0100040000 r--s 00000000 fe:00 99                        /var/lib/sysreg/journal.db", "0 kB", 0x7f0100000000, 0x7f0100040000, false},
		{"00400000-00bc5000 r-xp 00000000 fe:00 10020619 /opt/my apps/sysregd", "0 kB", 0x400000, 0xbc5000, true},
		// Another device, same inode: another file (not mapped executable).
		{"00400000-00bc5000 r-xp 00000000 fe:01 10020619                           /usr/sbin/sysregd", "0 kB", 0x400000, 0xbc5000, false},
		// Relocated, then made read-only (RELRO): the process's own copies.
		{"7f017f670000-7f017f674000 r--p 001a8000 fe:00 77                        /usr/lib/x86_64-linux-gnu/libc.so.6", "16 kB", 0x7f017f670000, 0x7f017f674000, false},
		// Not known to hold no anonymous page.
		{"7f017f670000-7f017f674000 r--p 001a8000 fe:00 77                        /usr/lib/x86_64-linux-gnu/libc.so.6", "", 0x7f017f670000, 0x7f017f674000, false},
		{"7f017f670000-7f017f674000 r--p 001a8000 fe:00 77                        /usr/lib/x86_64-linux-gnu/libc.so.6", "x kB", 0x7f017f670000, 0x7f017f674000, false},
		// Writable: the process's variables.
		{"01427000-0149b000 rw-p 01027000 fe:00 10020619                           /usr/sbin/sysregd", "0 kB", 0x1427000, 0x149b000, false},
		// Anonymous memory, pseudo-files, devices.
		{"7f013563a000-7f01357da000 r--p 00000000 00:00 0 ", "0 kB", 0x7f013563a000, 0x7f01357da000, false},
		{"7ffc8f25a000-7ffc8f25c000 r-xp 00000000 00:00 0                          [vdso]", "0 kB", 0x7ffc8f25a000, 0x7ffc8f25c000, false},
		{"7f0100000000-7f0100001000 r--s 00000000 00:05 12                         /dev/mem", "0 kB", 0x7f0100000000, 0x7f0100001000, false},
	} {
		e, ok := parseMapping(c.header)
		if c.hi > uint64(^uintptr(0)) {
			// A 32-bit build: such a line cannot be one of its mappings.
			if ok {
				t.Errorf("parseMapping(%q) = %+v on a %d-bit build, want no mapping", c.header, e, strconv.IntSize)
			}
			continue
		}
		if !ok || uint64(e.lo) != c.lo || uint64(e.hi) != c.hi {
			t.Errorf("parseMapping(%q) = %+v, %v; want range %#x-%#x", c.header, e, ok, c.lo, c.hi)
			continue
		}
		if c.anon != "" {
			kb, err := strconv.ParseUint(strings.TrimSuffix(c.anon, " kB"), 10, 64)
			e.anon, e.anonKnown = err != nil || kb > 0, true
		}
		if got := e.releasable(code); got != c.want {
			t.Errorf("%q with Anonymous: %q: releasable %v, want %v", c.header, c.anon, got, c.want)
		}
	}
	// codeFiles finds the same code files in smaps headers: the files
	// mapped r-x, not journal.db (r--s) nor anonymous memory. (Addresses
	// that fit 32 bits: the table runs on 32-bit builds too.)
	var ms []smapsEntry
	for _, h := range []string{
		"00400000-00bc5000 r-xp 00000000 fe:00 10020619                           /usr/sbin/sysregd",
		"40000000-40040000 r--s 00000000 fe:00 99                        /var/lib/sysreg/journal.db",
		"50000000-50027000 r--p 00000000 fe:00 77                        /usr/lib/x86_64-linux-gnu/libc.so.6",
		"50027000-5017d000 r-xp 00028000 fe:00 77                        /usr/lib/x86_64-linux-gnu/libc.so.6",
		"60000000-601a0000 r-xp 00000000 00:00 0 ",
		"70000000-70002000 r-xp 00000000 00:00 0                          [vdso]",
	} {
		e, ok := parseMapping(h)
		if !ok {
			t.Fatalf("parseMapping(%q) failed", h)
		}
		ms = append(ms, e)
	}
	if got := codeFiles(ms); !maps.Equal(got, code) {
		t.Errorf("codeFiles = %v, want %v", got, code)
	}
	for _, line := range []string{"", "Rss:                6548 kB", "VmFlags: rd ex mr mw me", "zz-00bc5000 r--p 00000000 fe:00 1 /x", "00bc5000-00bc4000 r--p 00000000 fe:00 1 /x"} {
		if e, ok := parseMapping(line); ok {
			t.Errorf("parseMapping(%q) = %+v, want no mapping", line, e)
		}
	}
}

// imageRSS is the resident size in kB of this process's read-only
// mappings of its executable.
func imageRSS(t *testing.T) int {
	t.Helper()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Skipf("no /proc/self/exe: %v", err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps (a kernel without CONFIG_PROC_PAGE_MONITOR, or a sandbox): %v", err)
	}
	defer f.Close()
	total, in, mapped, fields := 0, false, false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if e, ok := parseMapping(line); ok {
			in = e.path == exe && !e.writable
			mapped = mapped || in
			continue
		}
		if rest, ok := strings.CutPrefix(line, "Rss:"); in && ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			if err != nil {
				t.Fatalf("smaps: %q: %v", line, err)
			}
			total += kb
			fields = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	switch {
	case !mapped:
		t.Skipf("smaps lists no read-only mapping of %s (a sandbox that hides it)", exe)
	case !fields:
		t.Skip("smaps has no Rss fields for the executable's mappings (a sandbox that leaves them out)")
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
