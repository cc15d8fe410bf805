package store_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

// TestR44_ApplyEmbeddedAndClient: Apply, Pending, Confirm and Rollback
// behave the same embedded and over the daemon's socket (R44, R32),
// bad input included.
func TestR44_ApplyEmbeddedAndClient(t *testing.T) {
	d := startDaemon(t, t.TempDir(), store.ServerOptions{})
	regs := map[string]store.Registry{"embedded": open(t, t.TempDir(), store.Options{NoSync: true}), "client": dial(t, d)}
	lefts := map[string][]core.Change{}
	for name, reg := range regs {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			sc := core.ConfigScope("net", "eth0")
			ui, err := reg.Owner(ctx, "ui", core.OwnerOptions{KeepConfig: true})
			must(t, err)
			must(t, ui.Update(ctx, sc, core.Values{"address": "10.0.0.1"}))
			for _, within := range []time.Duration{0, -time.Second, 24*time.Hour + 1} {
				if _, err := ui.Apply(ctx, within, core.Put(sc, core.Values{"address": "x"})); !errors.Is(err, core.ErrInvalidWithin) {
					t.Fatalf("Apply within %v: %v", within, err)
				}
			}
			if _, err := ui.Apply(ctx, time.Minute, core.Put(core.StateScope("net", "eth0"), core.Values{"up": true})); !errors.Is(err, core.ErrInvalidScope) {
				t.Fatalf("Apply of state: %v", err)
			}
			id, err := ui.Apply(ctx, time.Hour, core.Put(sc, core.Values{"address": "10.0.0.2", "gw": "10.0.0.254"}))
			must(t, err)
			ps, err := reg.Pending(ctx)
			if err != nil || len(ps) != 1 || ps[0].ID != id || ps[0].Owner != "ui" || len(ps[0].Undo) != 2 {
				t.Fatalf("Pending = %+v, %v", ps, err)
			}
			must(t, reg.Confirm(ctx, id))
			for _, bad := range []uint64{id, id + 100, 0} {
				if err := reg.Confirm(ctx, bad); !errors.Is(err, core.ErrNotPending) {
					t.Fatalf("Confirm(%d) = %v", bad, err)
				}
				if _, err := reg.Rollback(ctx, bad); !errors.Is(err, core.ErrNotPending) {
					t.Fatalf("Rollback(%d) = %v", bad, err)
				}
			}
			id, err = ui.Apply(ctx, time.Hour, core.Put(sc, core.Values{"address": "10.0.0.3", "gw": "10.0.0.1"}))
			must(t, err)
			must(t, ui.Update(ctx, sc, core.Values{"gw": "192.168.0.1"})) // a later change: left alone
			left, err := reg.Rollback(ctx, id)
			must(t, err)
			snap, _ := reg.Snapshot(ctx)
			if got := snap.Values(sc); !reflect.DeepEqual(got, core.Values{"address": "10.0.0.2", "gw": "192.168.0.1"}) {
				t.Fatalf("after rollback: %v", got)
			}
			if len(left) != 1 || left[0].Key != "gw" || left[0].Old != "10.0.0.254" || left[0].New != "192.168.0.1" {
				t.Fatalf("left = %+v", left)
			}
			if ps, _ := reg.Pending(ctx); len(ps) != 0 {
				t.Fatalf("pending after rollback: %+v", ps)
			}
			lefts[name] = left
		})
	}
	if !reflect.DeepEqual(lefts["embedded"], lefts["client"]) {
		t.Fatalf("left differs: embedded %+v, client %+v", lefts["embedded"], lefts["client"])
	}
}

// TestR44_UndoneAtOpen: a reboot is never a confirmation. Pending applies
// survive a checkpoint and are undone by the next Open, newest first, in
// one record, before it returns; a confirmed apply is never undone; the
// sequence keeps rising.
func TestR44_UndoneAtOpen(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	sc := core.ConfigScope("net", "eth0")
	s, err := store.Open(dir, store.Options{NoSync: true})
	must(t, err)
	o, err := s.Owner(ctx, "netd", core.OwnerOptions{Layer: core.Runtime})
	must(t, err)
	ui, err := s.Owner(ctx, "ui", core.OwnerOptions{KeepConfig: true})
	must(t, err)
	must(t, ui.Update(ctx, sc, core.Values{"address": "10.0.0.1", "mtu": int64(1500)}))
	kept, err := ui.Apply(ctx, time.Hour, core.Put(sc, core.Values{"mtu": int64(9000)}))
	must(t, err)
	must(t, s.Confirm(ctx, kept))
	var ids []uint64
	for _, a := range []string{"10.0.0.2", "10.0.0.3"} {
		id, err := ui.Apply(ctx, time.Hour, core.Put(sc, core.Values{"address": a, a: true}))
		must(t, err)
		ids = append(ids, id)
	}
	must(t, s.Checkpoint())
	// One more after the checkpoint: its record is replayed.
	id, err := ui.Apply(ctx, time.Hour, core.Del(sc, "mtu"))
	must(t, err)
	ids = append(ids, id)
	must(t, o.Update(ctx, core.ConfigScope("net", "rt"), core.Values{"k": 1}))
	snap, _ := s.Snapshot(ctx)
	last := snap.Seq()
	must(t, s.Close())

	s = open(t, dir, store.Options{NoSync: true})
	if got := s.UndoneAtOpen(); !reflect.DeepEqual(got, ids) {
		t.Fatalf("UndoneAtOpen = %v, want %v", got, ids)
	}
	snap, _ = s.Snapshot(ctx)
	if got := snap.Values(sc); !reflect.DeepEqual(got, core.Values{"address": "10.0.0.1", "mtu": int64(9000)}) {
		t.Fatalf("after reopen: %v", got)
	}
	if len(snap.Pending()) != 0 || snap.Seq() <= last {
		t.Fatalf("pending %v, seq %d (was %d)", snap.Pending(), snap.Seq(), last)
	}
	// The undo is durable: a second reopen has nothing to undo.
	must(t, s.Close())
	s = open(t, dir, store.Options{NoSync: true})
	if got := s.UndoneAtOpen(); len(got) != 0 {
		t.Fatalf("second reopen undid %v", got)
	}
	snap2, _ := s.Snapshot(ctx)
	if got := snap2.Values(sc); !reflect.DeepEqual(got, snap.Values(sc)) {
		t.Fatalf("second reopen: %v", got)
	}
}
