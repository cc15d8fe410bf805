package core_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sysreg/sysreg/core"
)

// replayed rebuilds a snapshot from a recorded log: what recovery does.
func replayed(t *testing.T, log *recLog) core.Snapshot {
	t.Helper()
	var s core.Snapshot
	for _, m := range log.Records() {
		n, err := s.Apply(m)
		if err != nil {
			t.Fatalf("replay of record %d: %v", m.Seq, err)
		}
		s = n
	}
	return s
}

func layerMap(s core.Snapshot, l core.Layer) map[string]core.Values {
	out := map[string]core.Values{}
	for _, sc := range s.LayerScopes(l) {
		out[sc.String()] = s.LayerValues(l, sc)
	}
	return out
}

// TestR44_ApplyBadInput: a deadline of 0, negative or over 24 h, a state
// op, an owner of the unjournaled override layer, Confirm and Rollback of
// an unknown or finished id: a clear error, nothing changed.
func TestR44_ApplyBadInput(t *testing.T) {
	ctx := t.Context()
	sc := core.ConfigScope("net", "eth0")
	log := newRecLog()
	r := rtRegistry(t, core.Options{Log: log})
	o := rtOwner(t, r, "ui", core.OwnerOptions{KeepConfig: true})
	ov := rtOwner(t, r, "ov", core.OwnerOptions{Layer: core.Override})
	for _, tc := range []struct {
		name   string
		o      *core.Owner
		within time.Duration
		ops    []core.Op
		want   error
	}{
		{"within=0", o, 0, []core.Op{core.Put(sc, core.Values{"ip": "10.0.0.2"})}, core.ErrInvalidWithin},
		{"within=negative", o, -time.Second, []core.Op{core.Put(sc, core.Values{"ip": "10.0.0.2"})}, core.ErrInvalidWithin},
		{"within=over-24h", o, core.MaxApplyWithin + time.Nanosecond, []core.Op{core.Put(sc, core.Values{"ip": "10.0.0.2"})}, core.ErrInvalidWithin},
		{"state-op", o, time.Minute, []core.Op{core.Put(core.StateScope("net", "eth0"), core.Values{"up": true})}, core.ErrInvalidScope},
		{"override-layer", ov, time.Minute, []core.Op{core.Put(sc, core.Values{"ip": "10.0.0.2"})}, core.ErrReadOnlyLayer},
		{"bad-value", o, time.Minute, []core.Op{core.Put(sc, core.Values{"": 1})}, core.ErrInvalidValue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, n := r.Snapshot(), len(log.Records())
			id, err := tc.o.Apply(ctx, tc.within, tc.ops...)
			if !errors.Is(err, tc.want) || id != 0 {
				t.Fatalf("Apply = %d, %v; want %v", id, err, tc.want)
			}
			if r.Snapshot().Seq() != before.Seq() || len(log.Records()) != n || len(r.Snapshot().Pending()) != 0 {
				t.Fatal("a refused apply changed something")
			}
		})
	}
	id, err := o.Apply(ctx, time.Minute, core.Put(sc, core.Values{"ip": "10.0.0.2"}))
	must(t, err)
	must(t, r.Confirm(ctx, id))
	for _, tc := range []struct {
		name string
		id   uint64
	}{{"unknown", id + 1000}, {"zero", 0}, {"confirmed", id}} {
		t.Run("confirm/"+tc.name, func(t *testing.T) {
			seq := r.Snapshot().Seq()
			if err := r.Confirm(ctx, tc.id); !errors.Is(err, core.ErrNotPending) {
				t.Fatalf("Confirm(%d) = %v, want ErrNotPending", tc.id, err)
			}
			if _, err := r.Rollback(ctx, tc.id); !errors.Is(err, core.ErrNotPending) {
				t.Fatalf("Rollback(%d) = %v, want ErrNotPending", tc.id, err)
			}
			if r.Snapshot().Seq() != seq {
				t.Fatal("a refused confirm changed something")
			}
		})
	}
	// A no-op apply (R6) leaves nothing pending.
	id, err = o.Apply(ctx, time.Minute, core.Put(sc, core.Values{"ip": "10.0.0.2"}))
	if err != nil || id != 0 || len(r.Snapshot().Pending()) != 0 {
		t.Fatalf("no-op Apply = %d, %v, pending %v", id, err, r.Snapshot().Pending())
	}
}

// TestR44_RollbackRestores: an apply that changes, adds and deletes keys,
// including another owner's, is undone exactly (value, layer, owner), as
// one journaled mutation that ends the apply; replaying the journal gives
// the same layers and no pending apply. An undone id is then not pending.
func TestR44_RollbackRestores(t *testing.T) {
	ctx := t.Context()
	sc := core.ConfigScope("net", "eth0")
	log := newRecLog()
	r := rtRegistry(t, core.Options{Log: log})
	a := rtOwner(t, r, "a", core.OwnerOptions{KeepConfig: true})
	b := rtOwner(t, r, "b", core.OwnerOptions{KeepConfig: true})
	rtUpdate(t, a, sc, core.Values{"ip": "10.0.0.1", "dns": map[string]any{"a": int64(1), "b": int64(2)}, "gone": "x"})
	rtUpdate(t, b, sc, core.Values{"mtu": int64(1500)})
	before := layerMap(r.Snapshot(), core.Saved)
	id, err := a.Apply(ctx, time.Minute,
		core.Put(sc, core.Values{"ip": "10.0.0.2", "dns": map[string]any{"a": int64(9)}, "mtu": int64(9000), "new": true}),
		core.Del(sc, "gone"))
	if err != nil || id != r.Snapshot().Seq() {
		t.Fatalf("Apply = %d, %v (seq %d)", id, err, r.Snapshot().Seq())
	}
	ps := r.Snapshot().Pending()
	if len(ps) != 1 || ps[0].ID != id || ps[0].Owner != "a" || ps[0].Layer != core.Saved || len(ps[0].Undo) != 5 {
		t.Fatalf("pending: %+v", ps)
	}
	if got, _ := r.Snapshot().Get(sc, "dns"); !reflect.DeepEqual(got, map[string]any{"a": int64(9), "b": int64(2)}) {
		t.Fatalf("applied dns = %v", got)
	}
	left, err := r.Rollback(ctx, id)
	if err != nil || len(left) != 0 {
		t.Fatalf("Rollback = %v, %v", left, err)
	}
	s := r.Snapshot()
	if got := layerMap(s, core.Saved); !reflect.DeepEqual(got, before) {
		t.Fatalf("after rollback: %v\nwant %v", got, before)
	}
	for key, owner := range map[string]string{"ip": "a", "dns": "a", "mtu": "b", "gone": "a"} {
		if got, _ := s.Owner(sc, key); got != owner {
			t.Errorf("owner of %s = %q, want %q", key, got, owner)
		}
	}
	if len(s.Pending()) != 0 {
		t.Fatalf("still pending: %v", s.Pending())
	}
	recs := log.Records()
	last := recs[len(recs)-1]
	if !reflect.DeepEqual(last.Finish, []uint64{id}) || last.Seq != s.Seq() {
		t.Fatalf("undo record: %+v", last)
	}
	rs := replayed(t, log)
	if !reflect.DeepEqual(layerMap(rs, core.Saved), before) || len(rs.Pending()) != 0 {
		t.Fatalf("replayed: %v pending %v", layerMap(rs, core.Saved), rs.Pending())
	}
	if _, err := r.Rollback(ctx, id); !errors.Is(err, core.ErrNotPending) {
		t.Fatalf("second Rollback = %v", err)
	}
}

// TestR44_LaterChangeLeftAlone: a key that a later mutation changed (its
// value, or its deletion) is left as it is and reported with the value the
// undo would have restored; the other keys are undone.
func TestR44_LaterChangeLeftAlone(t *testing.T) {
	ctx := t.Context()
	sc := core.ConfigScope("net", "eth0")
	r := rtRegistry(t, core.Options{Log: newRecLog()})
	a := rtOwner(t, r, "a", core.OwnerOptions{KeepConfig: true})
	b := rtOwner(t, r, "b", core.OwnerOptions{KeepConfig: true})
	rtUpdate(t, a, sc, core.Values{"ip": "10.0.0.1", "mtu": int64(1500), "gw": "10.0.0.254"})
	id, err := a.Apply(ctx, time.Minute, core.Put(sc, core.Values{"ip": "10.0.0.2", "mtu": int64(9000), "gw": "10.0.0.1"}))
	must(t, err)
	rtUpdate(t, b, sc, core.Values{"ip": "192.168.1.2"}) // b changes the value
	must(t, a.Delete(ctx, sc, "gw"))                     // a deletes one
	left, err := r.Rollback(ctx, id)
	must(t, err)
	want := []core.Change{
		{Scope: sc, Key: "gw", Old: "10.0.0.254", Existed: true, OldOwner: "a", Layer: core.Saved},
		{Scope: sc, Key: "ip", Old: "10.0.0.1", Existed: true, OldOwner: "a", New: "192.168.1.2", Exists: true, NewOwner: "a", Layer: core.Saved},
	}
	if !reflect.DeepEqual(left, want) {
		t.Fatalf("left = %+v\nwant %+v", left, want)
	}
	got := r.Snapshot().LayerValues(core.Saved, sc)
	if !reflect.DeepEqual(got, core.Values{"ip": "192.168.1.2", "mtu": int64(1500)}) {
		t.Fatalf("after rollback: %v", got)
	}
}

// TestR44_NewestFirst: several pending applies of the same key undo newest
// first and come back to the value before the oldest; undoing an older
// one alone leaves a key a newer pending apply changed alone.
func TestR44_NewestFirst(t *testing.T) {
	ctx := t.Context()
	sc := core.ConfigScope("net", "eth0")
	t.Run("all", func(t *testing.T) {
		log := newRecLog()
		r := rtRegistry(t, core.Options{Log: log})
		a := rtOwner(t, r, "a", core.OwnerOptions{KeepConfig: true})
		rtUpdate(t, a, sc, core.Values{"ip": "v0"})
		var ids []uint64
		for _, v := range []string{"v1", "v2", "v3"} {
			id, err := a.Apply(ctx, time.Minute, core.Put(sc, core.Values{"ip": v, v: true}))
			must(t, err)
			ids = append(ids, id)
		}
		seq := r.Snapshot().Seq()
		got, left, err := r.RollbackAll(ctx)
		if err != nil || !reflect.DeepEqual(got, ids) || len(left) != 0 {
			t.Fatalf("RollbackAll = %v, %v, %v; want ids %v", got, left, err, ids)
		}
		s := r.Snapshot()
		if s.Seq() != seq+1 || !reflect.DeepEqual(s.LayerValues(core.Saved, sc), core.Values{"ip": "v0"}) || len(s.Pending()) != 0 {
			t.Fatalf("after RollbackAll: seq %d (was %d) %v %v", s.Seq(), seq, s.LayerValues(core.Saved, sc), s.Pending())
		}
		if rs := replayed(t, log); !reflect.DeepEqual(rs.LayerValues(core.Saved, sc), core.Values{"ip": "v0"}) {
			t.Fatalf("replayed: %v", rs.LayerValues(core.Saved, sc))
		}
	})
	t.Run("older-alone", func(t *testing.T) {
		r := rtRegistry(t, core.Options{Log: newRecLog()})
		a := rtOwner(t, r, "a", core.OwnerOptions{KeepConfig: true})
		rtUpdate(t, a, sc, core.Values{"ip": "v0"})
		old, err := a.Apply(ctx, time.Minute, core.Put(sc, core.Values{"ip": "v1", "x": true}))
		must(t, err)
		_, err = a.Apply(ctx, time.Minute, core.Put(sc, core.Values{"ip": "v2"}))
		must(t, err)
		left, err := r.Rollback(ctx, old)
		must(t, err)
		if len(left) != 1 || left[0].Key != "ip" || left[0].Old != "v0" || left[0].New != "v2" {
			t.Fatalf("left = %+v", left)
		}
		if got := r.Snapshot().LayerValues(core.Saved, sc); !reflect.DeepEqual(got, core.Values{"ip": "v2"}) {
			t.Fatalf("after: %v", got)
		}
	})
}

// TestR44_ConfirmRacesDeadline: Confirm at the very deadline races the
// registry's own deadline timer; exactly one wins, and both sides see the
// same outcome — Confirm returns nil and the applied value stays, or the
// timer undid it (one mutation, one notification to a subscriber) and
// Confirm returns ErrNotPending.
func TestR44_ConfirmRacesDeadline(t *testing.T) {
	sc := core.ConfigScope("net", "eth0")
	outcomes := map[string]int{}
	for i := range 40 {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.Background()
			log := newRecLog()
			defer log.Close()
			r := core.New(core.Options{Log: log})
			defer r.Close()
			a, err := r.Owner(ctx, "a", core.OwnerOptions{KeepConfig: true})
			must(t, err)
			must(t, a.Update(ctx, sc, core.Values{"ip": "old"}))
			id, err := a.Apply(ctx, time.Minute, core.Put(sc, core.Values{"ip": "new"}))
			must(t, err)
			dl, ok := r.NextDeadline()
			if !ok {
				t.Fatal("no deadline")
			}
			// Just before the deadline nothing has happened.
			time.Sleep(time.Until(dl) - time.Nanosecond)
			synctest.Wait()
			if v, _ := r.Snapshot().Get(sc, "ip"); v != "new" || len(r.Snapshot().Pending()) != 1 {
				t.Fatalf("before the deadline: %v, pending %v", v, r.Snapshot().Pending())
			}
			seq := r.Snapshot().Seq()
			time.Sleep(time.Nanosecond)
			if i%2 == 0 {
				synctest.Wait() // let the timer run first
			}
			cerr := r.Confirm(ctx, id)
			synctest.Wait()
			s := r.Snapshot()
			v, _ := s.Get(sc, "ip")
			switch {
			case cerr == nil && v == "new":
				outcomes["confirmed"]++
			case errors.Is(cerr, core.ErrNotPending) && v == "old":
				outcomes["undone"]++
			default:
				t.Fatalf("confirm %v, value %v", cerr, v)
			}
			if len(s.Pending()) != 0 || s.Seq() != seq+1 {
				t.Fatalf("pending %v, seq %d (was %d): want exactly one mutation", s.Pending(), s.Seq(), seq)
			}
		})
	}
	if outcomes["undone"] == 0 {
		t.Errorf("outcomes %v: the deadline never won", outcomes)
	}
}

// TestR44_DeadlineUndoes: each apply is undone by itself at its own
// deadline (R44), only the ones due; RollbackDue undoes what is due at the
// time it is given.
func TestR44_DeadlineUndoes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		sc := core.ConfigScope("net", "eth0")
		log := newRecLog()
		defer log.Close()
		r := core.New(core.Options{Log: log})
		defer r.Close()
		a, err := r.Owner(ctx, "a", core.OwnerOptions{KeepConfig: true})
		must(t, err)
		_, err = a.Apply(ctx, time.Second, core.Put(sc, core.Values{"a": 1}))
		must(t, err)
		long, err := a.Apply(ctx, time.Hour, core.Put(sc, core.Values{"b": 1}))
		must(t, err)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if ps := r.Snapshot().Pending(); len(ps) != 1 || ps[0].ID != long {
			t.Fatalf("pending %+v", ps)
		}
		if got := r.Snapshot().Values(sc); !reflect.DeepEqual(got, core.Values{"b": int64(1)}) {
			t.Fatalf("values %v", got)
		}
		ids, _, err := r.RollbackDue(ctx, time.Now().Add(2*time.Hour))
		if err != nil || !reflect.DeepEqual(ids, []uint64{long}) {
			t.Fatalf("RollbackDue = %v, %v", ids, err)
		}
		if got := r.Snapshot().Values(sc); len(got) != 0 {
			t.Fatalf("values %v", got)
		}
		if _, ok := r.NextDeadline(); ok {
			t.Fatal("a deadline with nothing pending")
		}
	})
}
