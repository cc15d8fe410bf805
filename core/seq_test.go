package core_test

import (
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sysreg/sysreg/core"
)

// markLog is a Log that records the marks asked of Reserve and completes
// every call at once.
type markLog struct {
	mu    sync.Mutex
	marks []uint64
}

func (l *markLog) Append(m *core.Mutation, done func(error)) error { go done(nil); return nil }

func (l *markLog) Reserve(seq uint64, done func(error)) {
	l.mu.Lock()
	l.marks = append(l.marks, seq)
	l.mu.Unlock()
	go done(nil)
}

func (l *markLog) last() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.marks[len(l.marks)-1]
}

func (l *markLog) all() []uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.marks)
}

func (l *markLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.marks)
}

// TestR7_ReserveAdapts: sequence numbers are reserved in blocks that adapt
// to the load (issue #8 item 9). An idle registry reserves a small block,
// so a restart — which starts above the reserved mark — skips few numbers
// (it skipped 2^20 each time); under a burst of state updates the block
// grows, so reservations (an fsync each in a store) stay few; after a quiet
// time it is small again.
func TestR7_ReserveAdapts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Ten idle restarts, each with one state update.
		floor := uint64(0)
		for range 10 {
			log := &markLog{}
			r := core.New(core.Options{Log: log, SeqFloor: floor})
			o := rtOwner(t, r, "o", core.OwnerOptions{})
			rtUpdate(t, o, rtS0, core.Values{"k": 1})
			r.Close()
			floor = log.last() // what the journal's mark holds at the next start
		}
		if floor > 10*1024 {
			t.Errorf("after 10 idle restarts the sequence starts at %d, want at most %d", floor, 10*1024)
		}

		// A burst of state updates: the block grows. Under -short (the
		// qemu-arm suite, where a million updates take over a minute) 100k,
		// which a fixed block of 1024 would still need ~100 reservations for.
		log := &markLog{}
		r := core.New(core.Options{Log: log})
		defer r.Close()
		o := rtOwner(t, r, "o", core.OwnerOptions{})
		burst := 1_000_000
		if testing.Short() {
			burst = 100_000
		}
		for i := range burst {
			rtUpdate(t, o, rtS0, core.Values{"k": i})
		}
		if n := log.count(); n > 20 {
			t.Errorf("%d state updates made %d reservations (marks %v), want at most 20", burst, n, log.all())
		}
		// Quiet for a while: the next reservation is small again.
		time.Sleep(10 * time.Second)
		before := log.count()
		seq := r.Snapshot().Seq()
		for i := 0; log.count() == before; i++ {
			rtUpdate(t, o, rtS0, core.Values{"k": -i})
		}
		synctest.Wait()
		if d := log.last() - r.Snapshot().Seq(); d > 1024 {
			t.Errorf("after a quiet time the reservation reaches %d above seq %d (was %d), want a small block", d, r.Snapshot().Seq(), seq)
		}
		if m := log.all(); !slices.IsSorted(m) {
			t.Errorf("marks not increasing: %v", m)
		}
	})
}

// New reserves its first block at once (R7), so the mark is queued ahead of
// the first config record instead of costing a commit of its own after it
// (R25: never more than one fsync per update).
func TestR7_NewReservesAtOnce(t *testing.T) {
	log := &markLog{}
	r := core.New(core.Options{Log: log})
	defer r.Close()
	if n := log.count(); n != 1 {
		t.Fatalf("New made %d reservations before any mutation, want 1", n)
	}
	o := rtOwner(t, r, "o", core.OwnerOptions{})
	rtUpdate(t, o, rtS0, core.Values{"k": 1})
	if n := log.count(); n != 1 {
		t.Errorf("the first update made %d reservations in all, want the one of New", n)
	}
}
