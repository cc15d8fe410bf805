package store_test

import (
	"context"
	"testing"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

// TestR51_PreviousRun: a store knows how the previous run of its data
// directory ended (R51): none for a new directory, clean after Close,
// unclean after a failed journal (and after SIGKILL: TestR24_CrashRecovery).
func TestR51_PreviousRun(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := open(t, dir, store.Options{})
	if p := s.PreviousRun(); p != store.PreviousRunNone {
		t.Fatalf("new data directory: previous run %q, want %q", p, store.PreviousRunNone)
	}
	o, err := s.Owner(ctx, "o", core.OwnerOptions{KeepConfig: true})
	must(t, err)
	must(t, o.Update(ctx, core.ConfigScope("a", "b"), core.Values{"k": 1}))
	must(t, s.Close())

	s = open(t, dir, store.Options{})
	if p := s.PreviousRun(); p != store.PreviousRunClean {
		t.Fatalf("after Close: previous run %q, want %q", p, store.PreviousRunClean)
	}
	if st := statsOf(t, s); st.PreviousRun != store.PreviousRunClean {
		t.Fatalf("Stats.PreviousRun %q, want %q", st.PreviousRun, store.PreviousRunClean)
	}
	must(t, s.Close())

	// A journal that failed: the run did not end cleanly.
	f, sw := openFaulty(t, dir, true)
	o, err = f.Owner(ctx, "o", core.OwnerOptions{KeepConfig: true})
	must(t, err)
	sw.on.Store(true)
	if err := o.Update(ctx, core.ConfigScope("a", "b"), core.Values{"k": 2}); err == nil {
		t.Fatal("a write with a failing fsync succeeded")
	}
	must(t, f.Close())
	s = open(t, dir, store.Options{})
	if p := s.PreviousRun(); p != store.PreviousRunUnclean {
		t.Fatalf("after a failed journal: previous run %q, want %q", p, store.PreviousRunUnclean)
	}
	must(t, s.Close())
}

// TestR7_SeqAcrossIdleRestarts: sequence numbers, as Stats, the recovery
// report and Snapshot give them, agree, and idle restarts skip few of
// them (issue #8 item 9; they skipped 2^20 each time).
func TestR7_SeqAcrossIdleRestarts(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	var first uint64
	const restarts = 5
	for i := range restarts {
		s := open(t, dir, store.Options{})
		st := statsOf(t, s)
		snap, err := s.Snapshot(ctx)
		must(t, err)
		if st.Seq != snap.Seq() || st.Seq != st.Recovery.SeqFloor || st.Seq < st.Recovery.Seq {
			t.Fatalf("restart %d: Stats.Seq %d, Snapshot.Seq %d, recovery %+v: they disagree", i, st.Seq, snap.Seq(), st.Recovery)
		}
		if i == 0 {
			first = st.Seq
		}
		o, err := s.Owner(ctx, "o", core.OwnerOptions{})
		must(t, err)
		must(t, o.Update(ctx, core.StateScope("a", "b"), core.Values{"k": i}))
		must(t, s.Close())
	}
	s := open(t, dir, store.Options{})
	defer s.Close()
	if got := statsOf(t, s).Seq - first; got > restarts*1024 {
		t.Fatalf("%d idle restarts moved seq by %d, want at most %d", restarts, got, restarts*1024)
	}
}
