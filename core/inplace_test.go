package core_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sysreg/sysreg/core"
)

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestInPlaceUpdate: a state Update of keys its owner holds is applied in
// place, without publishing, and published when something reads
// (inplace.go, issue #14). Here a's update of k to 5 is applied in place,
// then another mutation runs (before) with no snapshot taken, then a
// updates k to 2: the result is the one the ordinary path gives, whichever
// path each took — R4's merge, R6's no-op, R7's numbers, R42's metadata,
// R10's ownership, R24's order behind a queued config update, the
// session's end (R13, R48) — and a snapshot taken before any of it (or in
// between) never changes.
func TestInPlaceUpdate(t *testing.T) {
	ctx := context.Background()
	sc := core.StateScope("inplace", "s")
	other := core.StateScope("inplace", "other")
	cfg := core.ConfigScope("inplace", "c")
	type env struct {
		r    *core.Registry
		a, b *core.Owner
		mid  core.Snapshot // taken by before, if it takes one
	}
	for _, tc := range []struct {
		name string
		// gate: a Log whose calls complete only when the test says so
		// (gateLog), in a synctest bubble: what before appends stays in
		// flight until the second update is queued behind it.
		gate    bool
		before  func(e *env) // runs between a's two updates
		err     error        // the second update's error
		seqs    uint64       // sequence numbers taken in all
		k       any          // sc's "k" after (nil: gone)
		ver     uint64       // its Version (R42)
		inPlace uint64       // updates applied in place
		chained uint64       // of them, on nodes not yet published
		extra   func(*testing.T, *env, core.Snapshot)
	}{
		{name: "nothing", before: func(*env) {}, seqs: 2, k: int64(2), ver: 3, inPlace: 2, chained: 1},
		{name: "R10 another owner updates its key of the scope", before: func(e *env) {
			mustOK(t, e.b.Update(ctx, sc, core.Values{"b": 2}))
		}, seqs: 3, k: int64(2), ver: 3, inPlace: 3, chained: 2, extra: func(t *testing.T, _ *env, s core.Snapshot) {
			if v, _ := s.Get(sc, "b"); v != int64(2) {
				t.Errorf("b = %v, want 2", v)
			}
		}},
		{name: "R10 another owner's key is refused", before: func(e *env) {
			if err := e.b.Update(ctx, sc, core.Values{"k": 7}); !errors.Is(err, core.ErrReservedKeys) {
				t.Errorf("b updating a's key: %v, want ErrReservedKeys", err)
			}
		}, seqs: 2, k: int64(2), ver: 3, inPlace: 2}, // the refusal took the ordinary path, which publishes first
		{name: "R6 the same owner puts the same value first", before: func(e *env) {
			mustOK(t, e.a.Update(ctx, sc, core.Values{"k": 2}))
		}, seqs: 2, k: int64(2), ver: 3, inPlace: 2, chained: 1},
		{name: "R4 the same owner changes the value first", before: func(e *env) {
			mustOK(t, e.a.Update(ctx, sc, core.Values{"k": 3}))
		}, seqs: 3, k: int64(2), ver: 4, inPlace: 3, chained: 2},
		{name: "R4 a map value merges in place", before: func(e *env) {
			mustOK(t, e.a.Update(ctx, sc, core.Values{"m": map[string]any{"y": 2}}))
		}, seqs: 3, k: int64(2), ver: 3, inPlace: 3, chained: 2, extra: func(t *testing.T, _ *env, s core.Snapshot) {
			if v, _ := s.Get(sc, "m"); fmt.Sprint(v) != "map[x:1 y:2]" {
				t.Errorf("m = %v, want map[x:1 y:2]", v)
			}
		}},
		{name: "R42 the key is deleted and made anew", before: func(e *env) {
			mustOK(t, e.a.Delete(ctx, sc, "k"))
		}, seqs: 3, k: int64(2), ver: 1, inPlace: 1, extra: func(t *testing.T, _ *env, s core.Snapshot) {
			if m, _ := s.Meta(sc, "k"); m.CreateSeq != s.Seq() {
				t.Errorf("CreateSeq %d, want %d: the key was created anew", m.CreateSeq, s.Seq())
			}
		}},
		{name: "another state scope changes in place", before: func(e *env) {
			mustOK(t, e.b.Update(ctx, other, core.Values{"o": 1}))
		}, seqs: 3, k: int64(2), ver: 3, inPlace: 3, chained: 2, extra: func(t *testing.T, _ *env, s core.Snapshot) {
			if v, _ := s.Get(other, "o"); v != int64(1) {
				t.Errorf("%s o = %v, want 1: an update of another scope was lost", other, v)
			}
		}},
		{name: "a snapshot in between publishes, then nodes are copied again", before: func(e *env) {
			e.mid = e.r.Snapshot()
		}, seqs: 2, k: int64(2), ver: 3, inPlace: 2, extra: func(t *testing.T, e *env, s core.Snapshot) {
			if v, _ := e.mid.Get(sc, "k"); v != int64(5) {
				t.Errorf("the snapshot in between: k = %v, want 5 (read-your-writes, and never changed after)", v)
			}
			if m, _ := e.mid.Meta(sc, "k"); m.Version != 2 {
				t.Errorf("the snapshot in between: k Version %d, want 2", m.Version)
			}
		}},
		{name: "R24 a config update in flight: queued behind it", gate: true, before: func(e *env) {
			// Not waited for: the state update is sequenced after it and
			// published only after it is durable.
			_ = e.b.CommitAsync(ctx, core.Put(cfg, core.Values{"c": 1}))
		}, seqs: 3, k: int64(2), ver: 3, inPlace: 1, extra: func(t *testing.T, _ *env, s core.Snapshot) {
			if v, _ := s.Get(cfg, "c"); v != int64(1) {
				t.Errorf("%s c = %v, want 1 published before the state update", cfg, v)
			}
			if m, _ := s.Meta(sc, "k"); m.ModSeq != s.Seq() {
				t.Errorf("k ModSeq %d, want %d: after the config update", m.ModSeq, s.Seq())
			}
		}},
		{name: "R48 the session is abandoned into grace", before: func(e *env) {
			mustOK(t, e.a.Abandon())
		}, err: core.ErrClosed, seqs: 1, k: int64(5), ver: 2, inPlace: 1},
		{name: "R13 the session is closed", before: func(e *env) {
			mustOK(t, e.a.Close())
		}, err: core.ErrClosed, seqs: 2, k: nil, inPlace: 1},
		{name: "the registry is closed", before: func(e *env) {
			mustOK(t, e.r.Close())
		}, err: core.ErrClosed, seqs: 1, k: int64(5), ver: 2, inPlace: 1},
	} {
		body := func(t *testing.T) {
			opts := core.Options{}
			var l *gateLog
			if tc.gate {
				l = &gateLog{}
				opts.Log = l
			}
			r := core.New(opts)
			defer r.Close()
			if l != nil {
				l.complete(nil) // New's reservation: state updates publish at once
			}
			a, err := r.Owner(ctx, "a", core.OwnerOptions{Grace: time.Hour})
			mustOK(t, err)
			b, err := r.Owner(ctx, "b", core.OwnerOptions{})
			mustOK(t, err)
			mustOK(t, a.Update(ctx, sc, core.Values{"k": 1, "m": map[string]any{"x": 1}}))
			mustOK(t, b.Update(ctx, sc, core.Values{"b": 1}))
			mustOK(t, b.Update(ctx, other, core.Values{"o": 0}))
			first := r.Snapshot()
			start := first.Seq()
			e := &env{r: r, a: a, b: b}
			mustOK(t, a.Update(ctx, sc, core.Values{"k": 5}))
			tc.before(e)
			if l != nil {
				// The update queues behind what before appended and
				// waits for it: complete the Log's calls once it does.
				errc := make(chan error, 1)
				go func() { errc <- a.Update(ctx, sc, core.Values{"k": 2}) }()
				synctest.Wait()
				l.complete(nil)
				err = <-errc
			} else {
				err = a.Update(ctx, sc, core.Values{"k": 2})
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
				if m.ModSeq > s.Seq() || m.CreateSeq > m.ModSeq {
					t.Errorf("R42: k CreateSeq %d, ModSeq %d, snapshot Seq %d", m.CreateSeq, m.ModSeq, s.Seq())
				}
			}
			if n, chained := core.InPlaceUpdates(r); n != tc.inPlace || chained != tc.chained {
				t.Errorf("%d updates applied in place, %d of them on unpublished nodes; want %d, %d", n, chained, tc.inPlace, tc.chained)
			}
			// The snapshot taken before never changed.
			if v, _ := first.Get(sc, "k"); v != int64(1) || first.Seq() != start {
				t.Errorf("the first snapshot changed: k = %v, Seq %d (want 1, %d)", v, first.Seq(), start)
			}
			if m, _ := first.Meta(sc, "k"); m.Version != 1 || m.ModSeq > start {
				t.Errorf("the first snapshot changed: k Version %d, ModSeq %d", m.Version, m.ModSeq)
			}
			if v, _ := first.Get(other, "o"); v != int64(0) {
				t.Errorf("the first snapshot changed: o = %v, want 0", v)
			}
			if tc.extra != nil {
				tc.extra(t, e, s)
			}
		}
		t.Run(tc.name, func(t *testing.T) {
			if tc.gate {
				synctest.Test(t, body)
			} else {
				body(t)
			}
		})
	}
}

// readersSeeFrozenSnapshots takes snapshots until done and checks each
// against what it showed when taken: a snapshot never changes (the nodes an
// update changes in place are never published ones), and snapshots move
// only forward. It sends at most one error.
func readersSeeFrozenSnapshots(r *core.Registry, sc core.Scope, keys []string, done <-chan struct{}, errs chan<- error) {
	seeFrozenSnapshots(func() (core.Snapshot, bool) {
		select {
		case <-done:
			return core.Snapshot{}, false
		default:
			runtime.Gosched()
			return r.Snapshot(), true
		}
	}, sc, keys, errs)
}

// subscriberSeesFrozenSnapshots is readersSeeFrozenSnapshots for the
// snapshots a subscription delivers (the notifier reads the published
// state without the write lock), until it is closed.
func subscriberSeesFrozenSnapshots(sub *core.Subscription, sc core.Scope, keys []string, errs chan<- error) {
	seeFrozenSnapshots(func() (core.Snapshot, bool) {
		s, ok := <-sub.C()
		return s, ok
	}, sc, keys, errs)
}

func seeFrozenSnapshots(next func() (core.Snapshot, bool), sc core.Scope, keys []string, errs chan<- error) {
	type seen struct {
		snap core.Snapshot
		vals []any
		vers []uint64
	}
	look := func(s core.Snapshot) seen {
		x := seen{snap: s}
		for _, k := range keys {
			v, _ := s.Get(sc, k)
			m, _ := s.Meta(sc, k)
			x.vals, x.vers = append(x.vals, v), append(x.vers, m.Version)
		}
		return x
	}
	var kept []seen
	for i := 0; ; i++ {
		snap, ok := next()
		if !ok {
			return
		}
		s := look(snap)
		if n := len(kept); n > 0 && s.snap.Seq() < kept[n-1].snap.Seq() {
			errs <- fmt.Errorf("a snapshot went back: seq %d after %d", s.snap.Seq(), kept[n-1].snap.Seq())
			return
		}
		kept = append(kept, s)
		if len(kept) > 64 {
			kept = kept[len(kept)-32:]
		}
		old := kept[i%len(kept)]
		if again := look(old.snap); fmt.Sprint(again.vals, again.vers) != fmt.Sprint(old.vals, old.vers) {
			errs <- fmt.Errorf("the snapshot of seq %d changed: %v %v, then %v %v", old.snap.Seq(), old.vals, old.vers, again.vals, again.vers)
			return
		}
	}
}

// TestUpdateConcurrentSameScope: goroutines flap keys of one state scope —
// two of them as the same owner, one as another owner — while another
// owner adds and deletes a key of the scope, and a reader checks every
// snapshot it sees. Updates applied in place and by the ordinary path
// (the inserts and deletes, which publish first) interleave and are never
// lost: each flapped key's value is its Version - 1 in every snapshot
// (R42: one Version per effective update), sequence numbers count the
// effective updates exactly (R6, R7), snapshots only move forward and
// never change once taken.
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

	var wg sync.WaitGroup
	errs := make(chan error, len(flappers)+4)
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
		vers := map[string]uint64{}
		for {
			s := r.Snapshot()
			for _, f := range flappers {
				v, _ := s.Get(sc, f.key)
				m, _ := s.Meta(sc, f.key)
				if v != int64(m.Version)-1 || m.Version < vers[f.key] || m.ModSeq > s.Seq() || m.Owner != f.o.Name() {
					errs <- errors.New("R42: " + f.key + " in snapshot " + strconv.FormatUint(s.Seq(), 10) + " is not its own last update")
					return
				}
				vers[f.key] = m.Version
			}
			select {
			case <-done:
				return
			default:
				runtime.Gosched()
			}
		}
	})
	keys := []string{"a1", "a2", "b1", "c"}
	rg.Go(func() { readersSeeFrozenSnapshots(r, sc, keys, done, errs) })
	sub, err := r.Subscribe(ctx, core.SubscribeOptions{})
	mustOK(t, err)
	rg.Go(func() { subscriberSeesFrozenSnapshots(sub, sc, keys, errs) })
	wg.Wait()
	close(done)
	sub.Close()
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
	inPlace, chained := core.InPlaceUpdates(r)
	t.Logf("%d updates, %d applied in place, %d of them on unpublished nodes", 5*n, inPlace, chained)
	if inPlace == 0 {
		t.Error("no update was applied in place")
	}
}

// TestR18_InPlaceUpdatesReachSubscribers: updates applied in place are not
// published until something reads; the notifier is such a reader. Nobody
// but the subscribers reads here (no Snapshot call until the end), and
// every subscriber still holds the last of a flapping run within
// MinInterval (+ the 1 ms tick) of it (R17, R18), with at most one delivery
// per window (R19).
func TestR18_InPlaceUpdatesReachSubscribers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := core.New(core.Options{})
		defer r.Close()
		o := mustOwner(t, r, "flapper")
		sc := core.StateScope("net", "eth0")
		update(t, o, sc, core.Values{"n": 0})
		const interval = 100 * time.Millisecond
		const subs = 20
		type got struct {
			last       atomic.Int64
			deliveries atomic.Int64
		}
		gots := make([]*got, subs)
		var wg sync.WaitGroup
		for i := range subs {
			sub, err := r.Subscribe(t.Context(), core.SubscribeOptions{MinInterval: interval})
			mustOK(t, err)
			g := &got{}
			gots[i] = g
			wg.Go(func() {
				for s := range sub.C() {
					v, _ := s.Get(sc, "n")
					g.last.Store(v.(int64))
					g.deliveries.Add(1)
				}
			})
			time.Sleep(7 * time.Millisecond) // windows that do not line up
		}
		synctest.Wait()
		const steps, per = 500, 40 // 500 ms of bubble time, 40 updates a step
		last := 0
		for range steps {
			for range per {
				last++
				update(t, o, sc, core.Values{"n": last})
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(interval + time.Millisecond)
		synctest.Wait()
		for i, g := range gots {
			if g.last.Load() != int64(last) {
				t.Errorf("R18: subscriber %d holds n=%d %v after the last update, want %d", i, g.last.Load(), interval+time.Millisecond, last)
			}
			// The initial delivery, one per window of the run, and the last.
			if d, max := g.deliveries.Load(), int64(1+steps*int(time.Millisecond)/int(interval)+2); d > max {
				t.Errorf("R19: subscriber %d got %d deliveries, want at most %d", i, d, max)
			}
		}
		if n, chained := core.InPlaceUpdates(r); n < steps*per-1 || chained == 0 {
			t.Errorf("%d updates applied in place (%d on unpublished nodes), want about %d", n, chained, steps*per)
		}
		r.Close()
		wg.Wait()
	})
}

// TestInPlaceUpdateAllocations: an update applied in place allocates
// nothing in the registry (issue #14) — with a scope the owner keeps
// updating, and with an owner alternating between two scopes (its memo of
// the last scope is not replaced on every update) — and the memo never lets
// an invalid scope through (R1).
func TestInPlaceUpdateAllocations(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts are not meaningful under -cover or -race")
	}
	ctx := context.Background()
	r := core.New(core.Options{})
	defer r.Close()
	o := mustOwner(t, r, "flapper")
	a, b := core.StateScope("net", "eth0"), core.StateScope("net", "eth1")
	on, off := core.Values{"up": true}, core.Values{"up": false}
	mustOK(t, o.Update(ctx, a, on))
	mustOK(t, o.Update(ctx, b, on))
	c, d, e := core.StateScope("net", "eth2"), core.StateScope("net", "eth3"), core.StateScope("net", "eth4")
	for _, sc := range []core.Scope{c, d, e} {
		mustOK(t, o.Update(ctx, sc, on))
	}
	for _, tc := range []struct {
		name   string
		scopes []core.Scope
	}{
		{"one scope", []core.Scope{a}},
		{"two scopes in turn", []core.Scope{a, b}},
		{"five scopes in turn", []core.Scope{a, b, c, d, e}},
	} {
		i := 0
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		before := ms.Mallocs
		allocs := testing.AllocsPerRun(1000, func() {
			v := on // each update changes its scope's value
			if (i/len(tc.scopes))%2 == 0 {
				v = off
			}
			if err := o.Update(ctx, tc.scopes[i%len(tc.scopes)], v); err != nil {
				t.Fatal(err)
			}
			i++
		})
		runtime.ReadMemStats(&ms)
		// AllocsPerRun rounds down: the total says more. The memo of
		// the last scope is replaced a few times while the rotation is
		// learnt (remember), then never; the process (the registry's
		// clock timer, the runtime) allocates a little meanwhile. A memo
		// per update or two would be 500 or more.
		if total := ms.Mallocs - before; allocs != 0 || total > 100 {
			t.Errorf("%s: %v allocations per in-place update (%d in 1,001), want 0", tc.name, allocs, total)
		}
	}
	for _, bad := range []core.Scope{
		{Bucket: core.State, Type: "net/x", Subtype: "eth0"},
		{Bucket: core.State, Type: "net", Subtype: ""},
		{Bucket: core.State, Type: "net\x00eth0", Subtype: "x"},
	} {
		if err := o.Update(ctx, bad, on); !errors.Is(err, core.ErrInvalidScope) {
			t.Errorf("Update(%q) after the memo: %v, want ErrInvalidScope", bad, err)
		}
	}
	if n, _ := core.InPlaceUpdates(r); n < 2990 {
		t.Errorf("%d updates applied in place, want about 3,000", n)
	}
}

// TestR16_FirstDeliveryHoldsInPlaceUpdates: the first delivery of a
// subscription is the current state (R16), updates applied in place and
// not yet published included (read-your-writes): a subscriber with a long
// MinInterval must not see the state from before an update acknowledged
// before it subscribed, and then wait a window for it (R17, R18). Nobody
// else reads here, so only Subscribe can publish the update.
func TestR16_FirstDeliveryHoldsInPlaceUpdates(t *testing.T) {
	for _, match := range []core.Pattern{{}, {Bucket: core.State, Type: "net", Subtype: "eth0"}} {
		t.Run(match.String(), func(t *testing.T) {
			r := core.New(core.Options{})
			defer r.Close()
			o := mustOwner(t, r, "a")
			sc := core.StateScope("net", "eth0")
			update(t, o, sc, core.Values{"n": 0})
			update(t, o, sc, core.Values{"n": 1})
			if n, _ := core.InPlaceUpdates(r); n != 1 {
				t.Fatalf("%d updates applied in place, want 1", n)
			}
			sub, err := r.Subscribe(t.Context(), core.SubscribeOptions{MinInterval: time.Hour, Match: match})
			mustOK(t, err)
			defer sub.Close()
			if v, _ := (<-sub.C()).Get(sc, "n"); v != int64(1) {
				t.Errorf("R16: first delivery holds n=%v, want the acknowledged 1", v)
			}
		})
	}
}

// TestR16_SubscribeChurnWithInPlaceUpdates: subscriptions opened and closed
// while a producer updates in place and a reader publishes (R16, R18): the
// first delivery of each holds every update acknowledged before Subscribe
// was called (R16), every subscription sees the value grow and never go
// back (R7), and the ones kept open all end on the last update once the
// notifier is idle (R18), whoever published it.
func TestR16_SubscribeChurnWithInPlaceUpdates(t *testing.T) {
	n := 5000
	if testing.Short() {
		n = 500
	}
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		r := core.New(core.Options{})
		defer r.Close()
		o := mustOwner(t, r, "flapper")
		sc := core.StateScope("net", "eth0")
		update(t, o, sc, core.Values{"n": 0})
		var acked atomic.Int64
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() { // the producer
			defer close(done)
			for i := 1; i <= n; i++ {
				if err := o.Update(ctx, sc, core.Values{"n": i}); err != nil {
					t.Error(err)
					return
				}
				acked.Store(int64(i))
			}
		})
		wg.Go(func() { // a reader: publishes what it finds pending
			last := int64(-1)
			for {
				select {
				case <-done:
					return
				default:
				}
				v, _ := r.Snapshot().Get(sc, "n")
				if v.(int64) < last {
					t.Errorf("R7: a snapshot holds n=%d after one with %d", v, last)
				}
				last = v.(int64)
			}
		})
		patterns := []core.Pattern{{}, {Bucket: core.State, Type: "net"}, {Bucket: core.State, Type: "net", Subtype: "eth0"}}
		type kept struct {
			sub  *core.Subscription
			last int64
		}
		var keep []*kept
		var mu sync.Mutex // guards the lasts of keep
		var subs sync.WaitGroup
	churn:
		for i := 0; ; i++ {
			select {
			case <-done:
				break churn
			default:
			}
			before := acked.Load()
			sub, err := r.Subscribe(ctx, core.SubscribeOptions{Match: patterns[i%len(patterns)]})
			mustOK(t, err)
			first, _ := (<-sub.C()).Get(sc, "n")
			if first.(int64) < before {
				t.Errorf("R16: first delivery holds n=%d, %d was acknowledged before Subscribe", first, before)
				sub.Close()
				break
			}
			if i%8 != 0 || len(keep) >= 64 {
				sub.Close()
				continue
			}
			k := &kept{sub: sub, last: first.(int64)}
			keep = append(keep, k)
			subs.Go(func() {
				for s := range sub.C() {
					v, _ := s.Get(sc, "n")
					mu.Lock()
					if v.(int64) < k.last {
						t.Errorf("R7: a delivery holds n=%d after one with %d", v, k.last)
					}
					k.last = v.(int64)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		synctest.Wait() // the notifier and every subscriber idle
		mu.Lock()
		for i, k := range keep {
			if k.last != int64(n) {
				t.Errorf("R18: kept subscription %d ends on n=%d, want %d", i, k.last, n)
			}
		}
		mu.Unlock()
		for _, k := range keep {
			k.sub.Close()
		}
		subs.Wait()
		t.Logf("%d subscriptions kept", len(keep))
	})
}

// gateLog is a Log whose calls complete only when the test says so.
type gateLog struct {
	mu    sync.Mutex
	calls []func(error) // done of the calls not yet completed, in order
	marks []uint64      // the marks asked of Reserve
}

func (l *gateLog) Append(_ *core.Mutation, done func(error)) error {
	l.mu.Lock()
	l.calls = append(l.calls, done)
	l.mu.Unlock()
	return nil
}

func (l *gateLog) Reserve(seq uint64, done func(error)) {
	l.mu.Lock()
	l.calls = append(l.calls, done)
	l.marks = append(l.marks, seq)
	l.mu.Unlock()
}

// complete completes every call made so far with err and reports how many.
func (l *gateLog) complete(err error) int {
	l.mu.Lock()
	calls := l.calls
	l.calls = nil
	l.mu.Unlock()
	for _, done := range calls {
		done(err)
	}
	return len(calls)
}

// TestR29_LogFailsWithInPlaceUpdatesPending: the Log fails (a sequence
// number reservation) while updates applied in place are not yet
// published. They were acknowledged, with durably reserved numbers (R7):
// they stay, state keeps working in place (R29), config writes are refused,
// and no snapshot taken before changes.
func TestR29_LogFailsWithInPlaceUpdatesPending(t *testing.T) {
	ctx := context.Background()
	l := &gateLog{}
	r := core.New(core.Options{Log: l, ReserveBlock: 4})
	defer r.Close()
	if n := l.complete(nil); n != 1 { // New's reservation: numbers up to 4
		t.Fatalf("%d Log calls at New, want 1 (a reservation)", n)
	}
	o := mustOwner(t, r, "a")
	sc, other := core.StateScope("net", "eth0"), core.StateScope("net", "eth1")
	update(t, o, sc, core.Values{"k": 0}) // 1: inserted, published
	update(t, o, sc, core.Values{"k": 1}) // 2: in place
	old := r.Snapshot()                   // publishes 2
	for _, err := range r.UpdateBatch(ctx, []core.BatchUpdate{{Owner: o, Scope: other, Values: core.Values{"x": 1}}}) {
		mustOK(t, err) // 3: published at once, and reserves ahead
	}
	l.mu.Lock()
	marks := slices.Clone(l.marks)
	l.mu.Unlock()
	if len(marks) != 2 || marks[1] <= 4 {
		t.Fatalf("Reserve marks %v: want a second one above 4 in flight", marks)
	}
	update(t, o, sc, core.Values{"k": 2}) // 4: in place, unpublished
	if n, _ := core.InPlaceUpdates(r); n != 2 {
		t.Fatalf("%d updates applied in place, want 2", n)
	}
	l.complete(errors.New("disk gone")) // the reservation fails: R29
	s := r.Snapshot()
	if v, _ := s.Get(sc, "k"); v != int64(2) || s.Seq() != 4 {
		t.Errorf("after the Log failed: k=%v at seq %d, want the acknowledged 2 at 4", v, s.Seq())
	}
	update(t, o, sc, core.Values{"k": 3}) // state keeps working (R29)
	if err := o.Update(ctx, core.ConfigScope("net", "eth0"), core.Values{"c": 1}); !errors.Is(err, core.ErrLog) {
		t.Errorf("config update after the Log failed: %v, want ErrLog", err)
	}
	s = r.Snapshot()
	if v, _ := s.Get(sc, "k"); v != int64(3) || s.Seq() != 5 {
		t.Errorf("k=%v at seq %d, want 3 at 5", v, s.Seq())
	}
	if v, _ := old.Get(sc, "k"); v != int64(1) || old.Seq() != 2 {
		t.Errorf("an earlier snapshot changed: k=%v at seq %d, want 1 at 2", v, old.Seq())
	}
}

// TestInPlaceMemoAcrossScopeLifetimes: an owner's memo of the scope it
// updates in place (its key and hash, validated once) stays right while
// the scope goes away (R5: its last key deleted) and comes back, while
// another owner takes the scope's keys, and after the owner's session
// ends (R13); every state read then has the numbers of the ordinary path
// (R7: one per effective update; R42: ModSeq, CreateSeq, Version).
func TestInPlaceMemoAcrossScopeLifetimes(t *testing.T) {
	ctx := context.Background()
	r := core.New(core.Options{})
	defer r.Close()
	a, b := mustOwner(t, r, "a"), mustOwner(t, r, "b")
	sc := core.StateScope("net", "eth0")
	check := func(step string, o *core.Owner, k any, ver uint64, created uint64) {
		t.Helper()
		s := r.Snapshot()
		if st := r.Stats(); s.Seq() != st.Seq || st.Mutations != st.Seq {
			t.Errorf("%s: snapshot Seq %d, Stats Seq %d, Mutations %d: want all equal (R7)", step, s.Seq(), st.Seq, st.Mutations)
		}
		v, ok := s.Get(sc, "k")
		m, _ := s.Meta(sc, "k")
		if !ok || v != k || m.Owner != o.Name() || m.Version != ver || m.ModSeq != s.Seq() || m.CreateSeq != created {
			t.Errorf("%s: k = %v (%v) owner %q Version %d ModSeq %d CreateSeq %d; want %v owner %q Version %d ModSeq %d CreateSeq %d",
				step, v, ok, m.Owner, m.Version, m.ModSeq, m.CreateSeq, k, o.Name(), ver, s.Seq(), created)
		}
	}
	update(t, a, sc, core.Values{"k": 0})
	update(t, a, sc, core.Values{"k": 1}) // in place: a's memo of sc
	update(t, a, sc, core.Values{"k": 2})
	check("in place", a, int64(2), 3, 1)
	mustOK(t, a.Delete(ctx, sc, "k")) // 4: sc is gone (R5)
	if _, ok := r.Snapshot().Get(sc, "k"); ok {
		t.Fatal("k still there after its delete")
	}
	update(t, a, sc, core.Values{"k": 3}) // 5: made anew, ordinary path
	update(t, a, sc, core.Values{"k": 4}) // 6: in place again, through the memo
	check("deleted and made anew", a, int64(4), 2, 5)
	mustOK(t, a.Close())                  // 7: a's keys go (R13)
	update(t, b, sc, core.Values{"k": 5}) // 8: b's now
	update(t, b, sc, core.Values{"k": 6}) // 9: in place, b's
	check("another owner's", b, int64(6), 2, 8)
	if err := a.Update(ctx, sc, core.Values{"k": 7}); !errors.Is(err, core.ErrClosed) {
		t.Errorf("the closed session's update through its memo: %v, want ErrClosed", err)
	}
	a2 := mustOwner(t, r, "a")
	if err := a2.Update(ctx, sc, core.Values{"k": 7}); !errors.Is(err, core.ErrReservedKeys) {
		t.Errorf("a new session of a updating b's key: %v, want ErrReservedKeys (R10)", err)
	}
	check("refused", b, int64(6), 2, 8)
	if n, _ := core.InPlaceUpdates(r); n != 4 {
		t.Errorf("%d updates applied in place, want 4", n)
	}
}

// TestR47_TapAfterInPlaceUpdates: a logged mutation that follows updates
// applied in place and not yet published is published after them: its tap
// item's Old is the state holding them, numbered just below the item (R7),
// and its changes are the record's alone (R47).
func TestR47_TapAfterInPlaceUpdates(t *testing.T) {
	ctx := context.Background()
	l := newRecLog()
	defer l.Close()
	r := core.New(core.Options{Log: l})
	defer r.Close()
	tap := r.Tap(16)
	defer tap.Close()
	a := mustOwner(t, r, "a")
	sc, cfg := core.StateScope("net", "eth0"), core.ConfigScope("net", "eth0")
	update(t, a, sc, core.Values{"k": 0})
	update(t, a, sc, core.Values{"k": 1}) // in place, not published
	update(t, a, sc, core.Values{"k": 2})
	if n, _ := core.InPlaceUpdates(r); n != 2 {
		t.Fatalf("%d updates applied in place, want 2", n)
	}
	mustOK(t, a.Update(ctx, cfg, core.Values{"c": 1})) // logged: waits until published
	<-tap.Ready()
	items, lost := tap.Take(nil)
	if lost || len(items) != 1 {
		t.Fatalf("%d tap items (lost %v), want 1", len(items), lost)
	}
	it := items[0]
	if it.Seq != 4 || it.New.Seq() != 4 || it.Old.Seq() != 3 {
		t.Errorf("tap item Seq %d, New %d, Old %d; want 4, 4, 3", it.Seq, it.New.Seq(), it.Old.Seq())
	}
	if v, _ := it.Old.Get(sc, "k"); v != int64(2) {
		t.Errorf("the item's Old holds k=%v, want 2 (the updates applied in place)", v)
	}
	if m, _ := it.Old.Meta(sc, "k"); m.ModSeq != 3 || m.Version != 3 {
		t.Errorf("Old's k ModSeq %d Version %d, want 3, 3 (R42)", m.ModSeq, m.Version)
	}
	if ch := it.Changes(); len(ch) != 1 || ch[0].Scope != cfg {
		t.Errorf("changes %+v, want the config update alone", ch)
	}
}
