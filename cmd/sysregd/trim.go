package main

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Memory an idle daemon gives back (issue #14's appliance footprint).
//
// Two things make an idle sysregd look several times larger than what it
// uses. The Go heap keeps what a burst of work (recovery's replay, a large
// snapshot sent to a client) left free: the runtime returns memory to the
// kernel only down to about its heap goal, twice the live heap. And the
// kernel maps a file's pages into a process 64 KiB around every page it
// touches (fault-around), so starting up — every package's init, the
// runtime's tables — leaves most of the executable's code and read-only
// data in the resident set, although an idle daemon runs a small part of
// it. Those pages are clean and shared: unmapping them frees nothing that
// the page cache does not still hold, but it makes them reclaimable
// without unmapping under memory pressure, and it makes RSS say what the
// daemon uses.
//
// So serve runs idleTrim, which calls trimMemory whenever the daemon goes
// quiet after having allocated at least trimAfter since the last trim —
// the first time once start-up is over: one full collection per quiet
// spell, never while busy (a busy daemon's heap is reused, not
// returned). A page unmapped here is mapped again by the next instruction
// that needs it.
//
// serve also turns off the runtime's heap profiling (nothing in sysregd
// reads it): its sampled stacks are memory the daemon never uses.

const (
	// trimAfter: bytes allocated since the last trim before a quiet tick
	// trims again, so an idle daemon does not collect over and over.
	trimAfter = 256 << 10
	// trimQuiet: at most this many bytes allocated during one tick count as
	// quiet.
	trimQuiet = 64 << 10
	// trimTick: how often idleTrim looks.
	trimTick = 250 * time.Millisecond
)

// noHeapProfile turns off heap profiling for the rest of the process.
func noHeapProfile() { runtime.MemProfileRate = 0 }

// trimMemory returns the free Go heap to the kernel and unmaps the
// executable's read-only pages (Linux; elsewhere only the heap).
func trimMemory() {
	debug.FreeOSMemory()
	releaseImage()
}

// trimDue reports whether a tick that saw the cumulative allocations go
// from prev to now should trim, the last trim having been at last.
func trimDue(last, prev, now uint64) bool {
	return now-last >= trimAfter && now-prev <= trimQuiet
}

// heapAllocs returns the bytes allocated on the heap since the process
// started (runtime/metrics; cheap, no stop-the-world).
func heapAllocs(sample []metrics.Sample) uint64 {
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return sample[0].Value.Uint64()
}

// idleTrim calls trim whenever the process goes quiet after allocating
// trimAfter bytes since the last trim (see above), until stop is closed;
// then it closes done. Each tick reads one runtime metric.
func idleTrim(stop <-chan struct{}, done chan<- struct{}, tick time.Duration, trim func()) {
	defer close(done)
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	t := time.NewTicker(tick)
	defer t.Stop()
	// The first quiet tick trims whatever start-up left, however little
	// it allocated (the executable's pages are the most of it then).
	prev := heapAllocs(sample)
	last, first := prev, true
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		now := heapAllocs(sample)
		if trimDue(last, prev, now) || first && now-prev <= trimQuiet {
			first = false
			// What is allocated from here on counts towards the next
			// trim, including a burst that the collection ran beside;
			// the trim's own allocations do not break the next quiet
			// tick.
			last = now
			trim()
			now = heapAllocs(sample)
		}
		prev = now
	}
}
