package core_test

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sysreg/sysreg/core"
)

// TestUpdateRacedInstall: a state Update is built outside the write lock
// and installed under it only if its scope is unchanged (issue #14); a
// mutation that lands in between (core.SetBeforeInstall runs it there)
// makes the update be done again under the lock, with the result it would
// have had after that mutation: R4's merge, R6's no-op, R7's numbers,
// R42's metadata, R10's ownership, and the session's end (R13, R48).
func TestUpdateRacedInstall(t *testing.T) {
	ctx := context.Background()
	sc := core.StateScope("race", "s")
	other := core.StateScope("race", "other")
	cfg := core.ConfigScope("race", "c")
	type env struct {
		r    *core.Registry
		a, b *core.Owner
	}
	for _, tc := range []struct {
		name    string
		log     bool         // a Log that acknowledges from its own goroutine: publication can lag
		between func(e *env) // runs between a's build and its install
		err     error        // a.Update's error
		seqs    uint64       // sequence numbers taken in all
		k       any          // sc's "k" after (nil: gone)
		ver     uint64       // its Version (R42)
		misses  uint64       // optimistic updates redone under the lock
		extra   func(*testing.T, core.Snapshot)
	}{
		{name: "nothing", between: func(*env) {}, seqs: 1, k: int64(2), ver: 2},
		{name: "R10 another owner updates its key of the scope", between: func(e *env) {
			mustOK(t, e.b.Update(ctx, sc, core.Values{"b": 2}))
		}, seqs: 2, k: int64(2), ver: 2, misses: 1, extra: func(t *testing.T, s core.Snapshot) {
			if v, _ := s.Get(sc, "b"); v != int64(2) {
				t.Errorf("b = %v, want 2", v)
			}
		}},
		{name: "R6 the same owner puts the same value first", between: func(e *env) {
			mustOK(t, e.a.Update(ctx, sc, core.Values{"k": 2}))
		}, seqs: 1, k: int64(2), ver: 2, misses: 1},
		{name: "R4 the same owner changes the value first", between: func(e *env) {
			mustOK(t, e.a.Update(ctx, sc, core.Values{"k": 3}))
		}, seqs: 2, k: int64(2), ver: 3, misses: 1},
		{name: "R42 the key is deleted and made anew", between: func(e *env) {
			mustOK(t, e.a.Delete(ctx, sc, "k"))
		}, seqs: 2, k: int64(2), ver: 1, misses: 1, extra: func(t *testing.T, s core.Snapshot) {
			if m, _ := s.Meta(sc, "k"); m.CreateSeq != s.Seq() {
				t.Errorf("CreateSeq %d, want %d: the key was created anew", m.CreateSeq, s.Seq())
			}
		}},
		{name: "another state scope changes: installed on the latest state", between: func(e *env) {
			mustOK(t, e.b.Update(ctx, other, core.Values{"o": 1}))
		}, seqs: 2, k: int64(2), ver: 2, extra: func(t *testing.T, s core.Snapshot) {
			if v, _ := s.Get(other, "o"); v != int64(1) {
				t.Errorf("%s o = %v, want 1: the install lost a mutation of another scope", other, v)
			}
		}},
		{name: "R24 a config update in flight: queued behind it", log: true, between: func(e *env) {
			// Not waited for: the state update is sequenced after it and
			// published only after it is durable.
			_ = e.b.CommitAsync(ctx, core.Put(cfg, core.Values{"c": 1}))
		}, seqs: 2, k: int64(2), ver: 2, extra: func(t *testing.T, s core.Snapshot) {
			if v, _ := s.Get(cfg, "c"); v != int64(1) {
				t.Errorf("%s c = %v, want 1 published before the state update", cfg, v)
			}
			if m, _ := s.Meta(sc, "k"); m.ModSeq != s.Seq() {
				t.Errorf("k ModSeq %d, want %d: after the config update", m.ModSeq, s.Seq())
			}
		}},
		{name: "R48 the session is abandoned into grace", between: func(e *env) {
			mustOK(t, e.a.Abandon())
		}, err: core.ErrClosed, seqs: 0, k: int64(1), ver: 1},
		{name: "R13 the session is closed", between: func(e *env) {
			mustOK(t, e.a.Close())
		}, err: core.ErrClosed, seqs: 1, k: nil},
		{name: "the registry is closed", between: func(e *env) {
			mustOK(t, e.r.Close())
		}, err: core.ErrClosed, seqs: 0, k: int64(1), ver: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := core.Options{}
			if tc.log {
				l := newRecLog()
				defer l.Close()
				opts.Log = l
			}
			r := core.New(opts)
			defer r.Close()
			a, err := r.Owner(ctx, "a", core.OwnerOptions{Grace: time.Hour})
			mustOK(t, err)
			b, err := r.Owner(ctx, "b", core.OwnerOptions{})
			mustOK(t, err)
			mustOK(t, a.Update(ctx, sc, core.Values{"k": 1}))
			mustOK(t, b.Update(ctx, sc, core.Values{"b": 1}))
			start := r.Snapshot().Seq()
			e := &env{r, a, b}
			ran := false
			core.SetBeforeInstall(r, func() {
				if !ran { // not again in the mutations it makes itself
					ran = true
					tc.between(e)
				}
			})
			err = a.Update(ctx, sc, core.Values{"k": 2})
			core.SetBeforeInstall(r, nil)
			if !ran {
				t.Fatal("the hook did not run: the update did not take the optimistic path")
			}
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("Update: %v, want %v", err, tc.err)
			}
			s := r.Snapshot()
			if got := s.Seq() - start; got != tc.seqs {
				t.Errorf("R7: %d sequence numbers taken, want %d", got, tc.seqs)
			}
			v, ok := s.Get(sc, "k")
			if tc.k == nil {
				if ok {
					t.Errorf("k = %v, want gone", v)
				}
			} else {
				m, _ := s.Meta(sc, "k")
				if v != tc.k || m.Version != tc.ver || m.Owner != "a" {
					t.Errorf("k = %v (%v), Version %d, Owner %q; want %v, Version %d, Owner a", v, ok, m.Version, m.Owner, tc.k, tc.ver)
				}
				if tc.err == nil && tc.seqs > 0 && tc.k == int64(2) && tc.ver > 1 && m.ModSeq != s.Seq() {
					t.Errorf("R42: k ModSeq %d, want %d (the update's)", m.ModSeq, s.Seq())
				}
			}
			if got := core.OptimisticMisses(r); got != tc.misses {
				t.Errorf("%d optimistic updates redone under the lock, want %d", got, tc.misses)
			}
			if tc.extra != nil {
				tc.extra(t, s)
			}
		})
	}
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestUpdateConcurrentSameScope: goroutines flap keys of one state scope —
// two of them as the same owner, one as another owner — while another
// owner adds and deletes a key of the scope, and a reader checks every
// snapshot it sees. The optimistic updates race each other on the scope's
// node (SetBeforeInstall yields the processor between build and install)
// and must be redone, never lost: each flapped key's value is its
// Version - 1 in every snapshot (R42: one Version per effective update),
// sequence numbers count the effective updates exactly (R6, R7), and
// snapshots only move forward.
func TestUpdateConcurrentSameScope(t *testing.T) {
	ctx := context.Background()
	n := 2000
	if testing.Short() {
		n = 300
	}
	r := core.New(core.Options{})
	defer r.Close()
	sc := core.StateScope("race", "flap")
	a, err := r.Owner(ctx, "a", core.OwnerOptions{})
	mustOK(t, err)
	b, err := r.Owner(ctx, "b", core.OwnerOptions{})
	mustOK(t, err)
	c, err := r.Owner(ctx, "c", core.OwnerOptions{})
	mustOK(t, err)
	flappers := []struct {
		o   *core.Owner
		key string
	}{{a, "a1"}, {a, "a2"}, {b, "b1"}}
	for _, f := range flappers {
		mustOK(t, f.o.Update(ctx, sc, core.Values{f.key: 0}))
	}
	start := r.Snapshot().Seq()
	core.SetBeforeInstall(r, runtime.Gosched)
	defer core.SetBeforeInstall(r, nil)

	var wg sync.WaitGroup
	errs := make(chan error, len(flappers)+2)
	for _, f := range flappers {
		wg.Go(func() {
			for i := 1; i <= n; i++ {
				if err := f.o.Update(ctx, sc, core.Values{f.key: i}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() { // R10: its own key, in and out of the same scope
		for i := range n {
			err := c.Update(ctx, sc, core.Values{"c": i})
			if err == nil {
				err = c.Delete(ctx, sc, "c")
			}
			if err != nil {
				errs <- err
				return
			}
		}
	})
	done := make(chan struct{})
	var rg sync.WaitGroup
	rg.Go(func() {
		var last core.Snapshot
		vers := map[string]uint64{}
		for {
			s := r.Snapshot()
			if s.Seq() < last.Seq() {
				errs <- errors.New("a snapshot went back: seq " + strconv.FormatUint(s.Seq(), 10) + " after " + strconv.FormatUint(last.Seq(), 10))
				return
			}
			for _, f := range flappers {
				v, _ := s.Get(sc, f.key)
				m, _ := s.Meta(sc, f.key)
				if v != int64(m.Version)-1 || m.Version < vers[f.key] || m.ModSeq > s.Seq() || m.Owner != f.o.Name() {
					errs <- errors.New("R42: " + f.key + " in snapshot " + strconv.FormatUint(s.Seq(), 10) + " is not its own last update")
					return
				}
				vers[f.key] = m.Version
			}
			last = s
			select {
			case <-done:
				return
			default:
				runtime.Gosched()
			}
		}
	})
	wg.Wait()
	close(done)
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s := r.Snapshot()
	for _, f := range flappers {
		v, _ := s.Get(sc, f.key)
		m, _ := s.Meta(sc, f.key)
		if v != int64(n) || m.Version != uint64(n)+1 {
			t.Errorf("%s = %v, Version %d; want %d, Version %d", f.key, v, m.Version, n, n+1)
		}
	}
	if _, ok := s.Get(sc, "c"); ok {
		t.Error("c is there after its last delete")
	}
	if got, want := s.Seq()-start, uint64(5*n); got != want {
		t.Errorf("R7: %d sequence numbers for %d effective updates", got, want)
	}
	misses := core.OptimisticMisses(r)
	t.Logf("%d updates, %d optimistic ones redone under the lock", 5*n, misses)
	if misses == 0 {
		t.Error("no optimistic update was redone: the test did not race them")
	}
}
