package core_test

import (
	"context"
	"sync"
	"testing"

	"github.com/sysreg/sysreg/core"
)

// R7, R24: state updates applied in place (inplace.go) racing UpdateBatch
// runs and config commits through a Log that acknowledges asynchronously
// (so that mutations are often queued and an update must not be applied in
// place), while a reader checks that no snapshot it took ever changes.
func TestR7_InPlaceVsBatchAndAsyncLog(t *testing.T) {
	ctx := context.Background()
	l := newRecLog()
	defer l.Close()
	r := core.New(core.Options{Log: l})
	defer r.Close()
	sc := core.StateScope("rev", "s")
	cfg := core.ConfigScope("rev", "c")
	a, _ := r.Owner(ctx, "a", core.OwnerOptions{})
	b, _ := r.Owner(ctx, "b", core.OwnerOptions{})
	mustOK(t, a.Update(ctx, sc, core.Values{"a": 0}))
	mustOK(t, b.Update(ctx, sc, core.Values{"b": 0}))
	start := r.Snapshot().Seq()
	n := 1500
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	wg.Go(func() {
		for i := 1; i <= n; i++ {
			if err := a.Update(ctx, sc, core.Values{"a": i}); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Go(func() {
		for i := 1; i <= n; i++ {
			es := r.UpdateBatch(ctx, []core.BatchUpdate{
				{Owner: b, Scope: sc, Values: core.Values{"b": 2*i - 1}},
				{Owner: b, Scope: cfg, Values: core.Values{"c": i}},
				{Owner: b, Scope: sc, Values: core.Values{"b": 2 * i}},
			})
			for _, err := range es {
				if err != nil {
					errs <- err
					return
				}
			}
		}
	})
	done := make(chan struct{})
	var rg sync.WaitGroup
	rg.Go(func() { readersSeeFrozenSnapshots(r, sc, []string{"a", "b"}, done, errs) })
	wg.Wait()
	close(done)
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s := r.Snapshot()
	for k, want := range map[string]int64{"a": int64(n), "b": int64(2 * n)} {
		v, _ := s.Get(sc, k)
		m, _ := s.Meta(sc, k)
		if v != want || m.Version != uint64(want)+1 {
			t.Errorf("%s = %v Version %d, want %d Version %d", k, v, m.Version, want, want+1)
		}
	}
	if got, want := s.Seq()-start, uint64(4*n); got != want {
		t.Errorf("seq: %d, want %d", got, want)
	}
	if n, _ := core.InPlaceUpdates(r); n == 0 {
		t.Error("no state update was applied in place")
	}
}
