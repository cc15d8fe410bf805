package core_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"

	"github.com/sysreg/sysreg/core"
)

// TestUpdateBatchConcurrent: goroutines updating at once, half of them
// through UpdateBatch, half through Owner.Update (R7's one sequence number
// per effective update, R6's no-ops, per-update errors, config records in
// sequence order, R24). Every effective update takes exactly one sequence
// number, every config update one record, and the final view holds every
// goroutine's last values. Run it with -race.
func TestUpdateBatchConcurrent(t *testing.T) {
	ctx := context.Background()
	log := newRecLog()
	defer log.Close()
	r := core.New(core.Options{Log: log})
	defer r.Close()
	const writers, n = 8, 400
	squat := rtOwner(t, r, "squatter", core.OwnerOptions{})
	taken := core.StateScope("shared", "taken")
	rtUpdate(t, squat, taken, core.Values{"k": 0})
	before := r.Stats().Mutations

	var wg sync.WaitGroup
	effective := make([]int, writers)
	errs := make([]error, writers)
	for w := range writers {
		o := rtOwner(t, r, "w"+strconv.Itoa(w), core.OwnerOptions{})
		update := o.Update
		if w%2 == 1 {
			update = func(ctx context.Context, sc core.Scope, v core.Values) error {
				return r.UpdateBatch(ctx, []core.BatchUpdate{{Owner: o, Scope: sc, Values: v}})[0]
			}
		}
		wg.Go(func() {
			st := core.StateScope("flap", strconv.Itoa(w))
			cf := core.ConfigScope("flap", strconv.Itoa(w))
			lastK := -1
			for i := range n {
				switch {
				case i%10 == 3: // another owner's state key (R10): fails, changes nothing
					var rk *core.ReservedKeysError
					if err := update(ctx, taken, core.Values{"k": i}); !errors.As(err, &rk) {
						errs[w] = err
						return
					}
				case i%10 == 6: // the value it already holds: a no-op (R6)
					if err := update(ctx, st, core.Values{"k": lastK}); err != nil {
						errs[w] = err
						return
					}
				case i%5 == 0: // config: a record each, published once durable
					if err := update(ctx, cf, core.Values{"c": i}); err != nil {
						errs[w] = err
						return
					}
					effective[w]++
				default:
					if err := update(ctx, st, core.Values{"k": i}); err != nil {
						errs[w] = err
						return
					}
					effective[w]++
					lastK = i
				}
			}
		})
	}
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", w, err)
		}
	}
	total := 0
	for _, e := range effective {
		total += e
	}
	st := r.Stats()
	if got := st.Mutations - before; got != uint64(total) {
		t.Errorf("R7: %d effective updates counted %d mutations", total, got)
	}
	snap := r.Snapshot()
	if got := snap.Seq(); got != st.Seq {
		t.Errorf("published seq %d, last handed out %d", got, st.Seq)
	}
	recs := log.Records()
	var last uint64
	for _, rec := range recs {
		if rec.Seq <= last {
			t.Errorf("R24: record seq %d after %d", rec.Seq, last)
		}
		last = rec.Seq
	}
	if got, want := len(recs), writers*(n/5); got != want {
		t.Errorf("%d config records, want %d (one per config update)", got, want)
	}
	for w := range writers {
		sc := strconv.Itoa(w)
		if v, _ := snap.Get(core.StateScope("flap", sc), "k"); v != int64(n-1) {
			t.Errorf("writer %d: state k = %v, want %d", w, v, n-1)
		}
		if v, _ := snap.Get(core.ConfigScope("flap", sc), "c"); v != int64(n-5) {
			t.Errorf("writer %d: config c = %v, want %d", w, v, n-5)
		}
	}
	if v, _ := snap.Get(taken, "k"); v != int64(0) {
		t.Errorf("R10: another owner's key became %v", v)
	}
	if st.Batched < st.Batches {
		t.Errorf("Stats: %d batches of %d updates", st.Batches, st.Batched)
	}
}

// TestUpdateBatch: a batch is its updates one by one — each its own error,
// no-op (R6), sequence number (R7), metadata (R42) and, for config, record
// (R24) — while a run of state updates is published once: a key flapped
// a hundred times is one publication, and the view after it is what the
// updates one by one leave.
func TestUpdateBatch(t *testing.T) {
	ctx := context.Background()
	log := newRecLog()
	defer log.Close()
	r := core.New(core.Options{Log: log})
	defer r.Close()
	a := rtOwner(t, r, "a", core.OwnerOptions{})
	b := rtOwner(t, r, "b", core.OwnerOptions{})
	gone := rtOwner(t, r, "gone", core.OwnerOptions{})
	gone.Close()
	other := core.New(core.Options{})
	defer other.Close()
	foreign := rtOwner(t, other, "a", core.OwnerOptions{})
	sa, sb := core.StateScope("net", "a"), core.StateScope("net", "b")
	ca := core.ConfigScope("net", "a")
	rtUpdate(t, b, sb, core.Values{"up": true})
	seq0, st0 := r.Snapshot().Seq(), r.Stats()

	var us []core.BatchUpdate
	for i := range 100 { // flapping: 100 effective updates
		us = append(us, core.BatchUpdate{Owner: a, Scope: sa, Values: core.Values{"up": i%2 == 0}})
	}
	us = append(us,
		core.BatchUpdate{Owner: a, Scope: sa, Values: core.Values{"up": false}},      // 100: no-op (R6)
		core.BatchUpdate{Owner: a, Scope: sb, Values: core.Values{"up": false}},      // 101: b's key (R10)
		core.BatchUpdate{Owner: a, Scope: ca, Values: core.Values{"mtu": 1500}},      // 102: config, one record
		core.BatchUpdate{Owner: gone, Scope: sa, Values: core.Values{"x": 1}},        // 103: closed session
		core.BatchUpdate{Owner: foreign, Scope: sa, Values: core.Values{"x": 1}},     // 104: another registry's
		core.BatchUpdate{Owner: a, Scope: core.Scope{}, Values: core.Values{"x": 1}}, // 105: invalid scope
		core.BatchUpdate{Owner: b, Scope: sb, Values: core.Values{"up": false}},      // 106: state after config
	)
	errs := r.UpdateBatch(ctx, us)
	for i, err := range errs {
		var rk *core.ReservedKeysError
		switch {
		case i == 101:
			if !errors.As(err, &rk) || rk.Scope != sb {
				t.Errorf("update %d on another owner's key: %v, want a ReservedKeysError", i, err)
			}
		case i == 103:
			if !errors.Is(err, core.ErrClosed) {
				t.Errorf("update %d of a closed session: %v, want ErrClosed", i, err)
			}
		case i == 104:
			if !errors.Is(err, core.ErrInvalidOwner) {
				t.Errorf("update %d of another registry's session: %v, want ErrInvalidOwner", i, err)
			}
		case i == 105:
			if !errors.Is(err, core.ErrInvalidScope) {
				t.Errorf("update %d of an invalid scope: %v, want ErrInvalidScope", i, err)
			}
		case err != nil:
			t.Errorf("update %d: %v", i, err)
		}
	}
	snap := r.Snapshot()
	if got, want := snap.Seq(), seq0+102; got != want { // 100 flaps, config, b's state
		t.Errorf("R7: seq %d after the batch, want %d", got, want)
	}
	if v, _ := snap.Get(sa, "up"); v != false {
		t.Errorf("net/a up = %v, want false (the last flap)", v)
	}
	if m, _ := snap.Meta(sa, "up"); m.ModSeq != seq0+100 || m.Version != 100 {
		t.Errorf("R42: meta %+v, want ModSeq %d, Version 100", m, seq0+100)
	}
	if m, _ := snap.Meta(sb, "up"); m.ModSeq != seq0+102 {
		t.Errorf("R42: b's meta %+v, want ModSeq %d", m, seq0+102)
	}
	recs := log.Records()
	if len(recs) != 1 || recs[0].Seq != seq0+101 {
		t.Errorf("R24: records %v, want one at seq %d", recs, seq0+101)
	}
	st := r.Stats()
	if got := st.Mutations - st0.Mutations; got != 102 {
		t.Errorf("Stats: %d mutations, want 102", got)
	}
	if got, want := st.Batches-st0.Batches, uint64(2); got != want { // the flaps; b's update after the config one
		t.Errorf("Stats: %d batches, want %d", got, want)
	}
}

// BenchmarkUpdateBatch: one owner flapping one key, applied in batches of
// size updates (UpdateBatch) — the same work as BenchmarkFlap for size 1.
// A batch changes its own nodes in place: its path copies and publication
// are per batch, not per update (issue #14).
func BenchmarkUpdateBatch(b *testing.B) {
	for _, size := range []int{1, 16, 256} {
		b.Run("size="+strconv.Itoa(size), func(b *testing.B) {
			ctx := context.Background()
			r := core.New(core.Options{})
			defer r.Close()
			o, _ := r.Owner(ctx, "flapper", core.OwnerOptions{})
			sc := core.StateScope("net", "eth0")
			on, off := core.Values{"up": true}, core.Values{"up": false}
			// Two batches, each flapping the key and leaving it other
			// than it found it, taken in turn: every update is effective.
			var us [2][]core.BatchUpdate
			for j := range us {
				for i := range size {
					v := on
					if (i+j)%2 == 1 {
						v = off
					}
					us[j] = append(us[j], core.BatchUpdate{Owner: o, Scope: sc, Values: v})
				}
				if size%2 == 0 {
					us[j] = append(us[j], core.BatchUpdate{Owner: o, Scope: sc, Values: us[j][0].Values})
				}
			}
			b.ReportAllocs()
			n, cpu0 := 0, cpuTime()
			for b.Loop() {
				batch := us[n%2]
				for _, err := range r.UpdateBatch(ctx, batch) {
					if err != nil {
						b.Fatal(err)
					}
				}
				n += len(batch)
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(n), "cpu-ns/update")
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "updates/s")
		})
	}
}
