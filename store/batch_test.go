package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

// TestUpdateBatch: a store's batch is its updates one by one, each with
// its own outcome; config in it survives a reopen (R24); an owner the
// store did not open fails alone (ErrInvalidOwner); a closed store fails
// every update.
func TestUpdateBatch(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir, store.Options{})
	o, err := s.Owner(ctx, "app", core.OwnerOptions{KeepConfig: true})
	must(t, err)
	other := open(t, t.TempDir(), store.Options{})
	foreign, err := other.Owner(ctx, "app", core.OwnerOptions{})
	must(t, err)
	sc, cf := core.StateScope("net", "eth0"), core.ConfigScope("net", "eth0")
	errs := s.UpdateBatch(ctx, []store.BatchUpdate{
		{Owner: o, Scope: sc, Values: core.Values{"up": true}},
		{Owner: foreign, Scope: sc, Values: core.Values{"up": false}},
		{Owner: o, Scope: cf, Values: core.Values{"mtu": 1500}},
		{Owner: nil, Scope: sc, Values: core.Values{"x": 1}},
	})
	for i, want := range []error{nil, core.ErrInvalidOwner, nil, core.ErrInvalidOwner} {
		if !errors.Is(errs[i], want) || (want == nil) != (errs[i] == nil) {
			t.Errorf("update %d: %v, want %v", i, errs[i], want)
		}
	}
	snap, _ := s.Snapshot(ctx)
	if v, _ := snap.Get(sc, "up"); v != true {
		t.Errorf("state up = %v, want true", v)
	}
	must(t, s.Close())
	for i, err := range s.UpdateBatch(ctx, []store.BatchUpdate{{Owner: o, Scope: sc, Values: core.Values{"up": false}}}) {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("closed store, update %d: %v, want ErrClosed", i, err)
		}
	}
	s = open(t, dir, store.Options{})
	snap, _ = s.Snapshot(ctx)
	if v, _ := snap.Get(cf, "mtu"); v != int64(1500) {
		t.Errorf("R24: config mtu after reopen = %v, want 1500", v)
	}
}
