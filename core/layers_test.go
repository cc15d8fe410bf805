package core_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/sysreg/sysreg/core"
)

// Rule tests for the config layers (R37–R42) and the revised R13.

func TestR37_LayerNames(t *testing.T) {
	for _, l := range core.Layers {
		got, err := core.ParseLayer(l.String())
		if err != nil || got != l {
			t.Fatalf("ParseLayer(%q) = %v, %v", l.String(), got, err)
		}
	}
	want := []string{"default", "fleet", "saved", "runtime", "override"}
	for i, l := range core.Layers {
		if l.String() != want[i] {
			t.Fatalf("layer %d is %q, want %q (lowest first)", i, l, want[i])
		}
	}
	for _, bad := range []string{"", "Saved", "persist", "state", " saved", "overrides"} {
		if l, err := core.ParseLayer(bad); !errors.Is(err, core.ErrInvalidLayer) || l != 0 {
			t.Fatalf("ParseLayer(%q) = %v, %v; want ErrInvalidLayer", bad, l, err)
		}
	}
}

// R37: each layer holds its own keys and owners; R11 applies inside each
// layer; the state bucket has no layers.
func TestR37_LayersHoldTheirOwnKeys(t *testing.T) {
	ctx := t.Context()
	r := rtRegistry(t, core.Options{})
	saved := rtOwner(t, r, "ui", core.OwnerOptions{KeepConfig: true})
	rt := rtOwner(t, r, "netd", core.OwnerOptions{})
	rtUpdate(t, saved, rtC0, core.Values{"mtu": 1500})
	rtUpdate(t, rt, rtC0, core.Values{"mtu": 9000})
	snap := r.Snapshot()
	if v := snap.LayerValues(core.Saved, rtC0); !reflect.DeepEqual(v, core.Values{"mtu": int64(1500)}) {
		t.Fatalf("saved layer: %v", v)
	}
	if v := snap.LayerValues(core.Runtime, rtC0); !reflect.DeepEqual(v, core.Values{"mtu": int64(9000)}) {
		t.Fatalf("runtime layer: %v", v)
	}
	if o, _ := snap.LayerOwner(core.Saved, rtC0, "mtu"); o != "ui" {
		t.Fatalf("owner in saved: %q", o)
	}
	if o, _ := snap.LayerOwner(core.Runtime, rtC0, "mtu"); o != "netd" {
		t.Fatalf("owner in runtime: %q", o)
	}
	// netd may not delete ui's key, but netd's delete only looks at runtime.
	if err := rt.Delete(ctx, rtC0, "mtu"); err != nil {
		t.Fatal(err)
	}
	if v, _ := r.Snapshot().Get(rtC0, "mtu"); v != int64(1500) {
		t.Fatalf("after netd's delete: %v, want the saved 1500", v)
	}
	// A second saved writer may update but not delete ui's key (R11).
	other := rtOwner(t, r, "tool", core.OwnerOptions{Layer: core.Saved})
	rtUpdate(t, other, rtC0, core.Values{"mtu": 1400})
	rtWantReserved(t, other.Delete(ctx, rtC0, "mtu"), rtC0, "mtu")
	if o, _ := r.Snapshot().Owner(rtC0, "mtu"); o != "ui" {
		t.Fatalf("R11: ownership moved to %q", o)
	}
	if v := r.Snapshot().LayerValues(core.Saved, rtS0); v != nil {
		t.Fatalf("state scope has layer values %v", v)
	}
}

// R38: the effective view is the layers deep-merged in order; deleting in
// a layer reveals the one below; Origin names the top layer and owner.
func TestR38_Merge(t *testing.T) {
	ctx := t.Context()
	r := rtRegistry(t, core.Options{})
	if err := r.SetDefaults(ctx, map[core.Scope]core.Values{
		rtC0: {"ip": map[string]any{"mode": "dhcp", "mtu": 1500}, "name": "lan"},
	}); err != nil {
		t.Fatal(err)
	}
	user := rtOwner(t, r, "ui", core.OwnerOptions{KeepConfig: true})
	rtUpdate(t, user, rtC0, core.Values{"ip": map[string]any{"mode": "static", "addr": "10.0.0.2"}})
	proc := rtOwner(t, r, "netd", core.OwnerOptions{})
	rtUpdate(t, proc, rtC0, core.Values{"ip": map[string]any{"mtu": 9000}})
	op := rtOwner(t, r, "ops", core.OwnerOptions{Layer: core.Override})
	rtUpdate(t, op, rtC0, core.Values{"name": "debug"})

	want := core.Values{
		"ip":   map[string]any{"mode": "static", "addr": "10.0.0.2", "mtu": int64(9000)},
		"name": "debug",
	}
	snap := r.Snapshot()
	if got := snap.Values(rtC0); !reflect.DeepEqual(got, want) {
		t.Fatalf("effective %v, want %v", got, want)
	}
	for key, w := range map[string]struct {
		l     core.Layer
		owner string
	}{"ip": {core.Runtime, "netd"}, "name": {core.Override, "ops"}} {
		l, o, ok := snap.Origin(rtC0, key)
		if !ok || l != w.l || o != w.owner {
			t.Fatalf("Origin(%s) = %s %q %v, want %s %q", key, l, o, ok, w.l, w.owner)
		}
		if o2, _ := snap.Owner(rtC0, key); o2 != w.owner {
			t.Fatalf("R42: Owner(%s) = %q, want Origin's %q", key, o2, w.owner)
		}
	}
	// Deleting reveals the layer below ("reset to default").
	if err := op.Delete(ctx, rtC0, "name"); err != nil {
		t.Fatal(err)
	}
	if v, _ := r.Snapshot().Get(rtC0, "name"); v != "lan" {
		t.Fatalf("after deleting the override: %v, want the default", v)
	}
	if l, o, _ := r.Snapshot().Origin(rtC0, "name"); l != core.Default || o != "" {
		t.Fatalf("Origin of a default: %s %q", l, o)
	}
	if err := user.Delete(ctx, rtC0, "ip"); err != nil {
		t.Fatal(err)
	}
	if v, _ := r.Snapshot().Get(rtC0, "ip"); !reflect.DeepEqual(v, map[string]any{"mode": "dhcp", "mtu": int64(9000)}) {
		t.Fatalf("after deleting the saved value: %v", v)
	}
	// A non-map in a higher layer replaces the map below.
	rtUpdate(t, proc, rtC0, core.Values{"ip": "off"})
	if v, _ := r.Snapshot().Get(rtC0, "ip"); v != "off" {
		t.Fatalf("a string over a map: %v", v)
	}
	// Diff reports the layer that supplies the new value.
	before := r.Snapshot()
	rtUpdate(t, op, rtC0, core.Values{"ip": "x"})
	if d := core.Diff(before, r.Snapshot()); len(d) != 1 || d[0].Layer != core.Override || d[0].Old != "off" || d[0].New != "x" {
		t.Fatalf("Diff: %+v", d)
	}
}

// R39: which layer a write goes to, and what owners may not write.
func TestR39_WriteLayer(t *testing.T) {
	ctx := t.Context()
	r := rtRegistry(t, core.Options{})
	for _, tc := range []struct {
		opts core.OwnerOptions
		want core.Layer
	}{
		{core.OwnerOptions{}, core.Runtime},
		{core.OwnerOptions{KeepConfig: true}, core.Saved},
		{core.OwnerOptions{Layer: core.Override}, core.Override},
		{core.OwnerOptions{KeepConfig: true, Layer: core.Runtime}, core.Runtime}, // Layer wins
	} {
		o := rtOwner(t, r, "", tc.opts)
		if o.Layer() != tc.want {
			t.Fatalf("%+v: layer %s, want %s", tc.opts, o.Layer(), tc.want)
		}
		rtUpdate(t, o, rtC1, core.Values{o.Name(): 1})
		if l, _, _ := r.Snapshot().Origin(rtC1, o.Name()); l != tc.want {
			t.Fatalf("%+v wrote to %s, want %s", tc.opts, l, tc.want)
		}
		// State writes have no layer.
		rtUpdate(t, o, rtS0, core.Values{o.Name(): 1})
		if l, _, ok := r.Snapshot().Origin(rtS0, o.Name()); !ok || l != 0 {
			t.Fatalf("state key origin layer %s", l)
		}
	}
	for _, l := range []core.Layer{core.Default, core.Fleet} {
		if _, err := r.Owner(ctx, "x", core.OwnerOptions{Layer: l}); !errors.Is(err, core.ErrReadOnlyLayer) {
			t.Fatalf("owner on %s: %v, want ErrReadOnlyLayer", l, err)
		}
	}
	if _, err := r.Owner(ctx, "x", core.OwnerOptions{Layer: 42}); !errors.Is(err, core.ErrInvalidLayer) {
		t.Fatalf("owner on layer 42: %v, want ErrInvalidLayer", err)
	}
	// The refused names were never taken.
	rtOwner(t, r, "x", core.OwnerOptions{})
}

// R13 (revised) and issue #8 item 1: a plain session of an owner that
// kept config earlier never takes the kept config down with it.
func TestR13_KeptConfigSurvivesPlainSession(t *testing.T) {
	r := rtRegistry(t, core.Options{})
	netd := rtOwner(t, r, "netd", core.OwnerOptions{KeepConfig: true})
	rtUpdate(t, netd, rtC0, core.Values{"mtu": 1500})
	if err := netd.Close(); err != nil {
		t.Fatal(err)
	}
	netd = rtOwner(t, r, "netd", core.OwnerOptions{})
	rtUpdate(t, netd, rtC1, core.Values{"up": true})
	rtUpdate(t, netd, rtS0, core.Values{"link": "up"})
	seq := r.Snapshot().Seq()
	if err := netd.Close(); err != nil {
		t.Fatal(err)
	}
	snap := r.Snapshot()
	if v, ok := snap.Get(rtC0, "mtu"); !ok || v != int64(1500) {
		t.Fatalf("the kept config is gone: %v %v", v, ok)
	}
	if _, ok := snap.Get(rtC1, "up"); ok {
		t.Fatal("R13: the plain session's runtime config outlived it")
	}
	if _, ok := snap.Get(rtS0, "link"); ok {
		t.Fatal("R13: state outlived its owner")
	}
	if snap.Seq() != seq+1 {
		t.Fatalf("owner death took %d sequence numbers, want 1", snap.Seq()-seq)
	}
}

// R13: owner death removes runtime and override keys, even where others
// changed their values, never saved ones.
func TestR13_DeathByLayer(t *testing.T) {
	r := rtRegistry(t, core.Options{})
	mk := func(l core.Layer) *core.Owner { return rtOwner(t, r, "a", core.OwnerOptions{Layer: l}) }
	for _, l := range []core.Layer{core.Saved, core.Runtime, core.Override} {
		o := mk(l)
		rtUpdate(t, o, rtC0, core.Values{l.String(): 1})
		if l != core.Override {
			if err := o.Close(); err != nil {
				t.Fatal(err)
			}
		} else {
			// Someone else changes the override's value: it still goes.
			b := rtOwner(t, r, "b", core.OwnerOptions{Layer: core.Override})
			rtUpdate(t, b, rtC0, core.Values{"override": 2})
			if err := o.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := r.Snapshot().Values(rtC0)
	if !reflect.DeepEqual(got, core.Values{"saved": int64(1)}) {
		t.Fatalf("after the deaths: %v, want only the saved key", got)
	}
}

// R14: Evict removes a name's keys from every writable layer, not the
// fleet's or the defaults.
func TestR14_EvictAllLayers(t *testing.T) {
	ctx := t.Context()
	r := rtRegistry(t, core.Options{})
	if err := r.SetDefaults(ctx, map[core.Scope]core.Values{rtC0: {"d": 1}}); err != nil {
		t.Fatal(err)
	}
	if err := r.SetFleet(ctx, map[core.Scope]core.Values{rtC0: {"f": 1}}); err != nil {
		t.Fatal(err)
	}
	for _, l := range []core.Layer{core.Saved, core.Runtime, core.Override} {
		o := rtOwner(t, r, "a", core.OwnerOptions{Layer: l})
		rtUpdate(t, o, rtC0, core.Values{"d": l.String(), l.String(): 1})
		if l == core.Override {
			if err := r.Evict(ctx, "a"); !errors.Is(err, core.ErrOwnerInUse) {
				t.Fatalf("Evict of a live owner: %v", err)
			}
			o.Close() // override and runtime go (R13)
		} else if err := o.Close(); err != nil {
			t.Fatal(err)
		}
	}
	seq := r.Snapshot().Seq()
	if err := r.Evict(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	snap := r.Snapshot()
	if got := snap.Values(rtC0); !reflect.DeepEqual(got, core.Values{"d": int64(1), "f": int64(1)}) {
		t.Fatalf("after Evict: %v", got)
	}
	if snap.Seq() != seq+1 || snap.Holds("a", 0) {
		t.Fatalf("Evict: seq %d→%d, holds %v", seq, snap.Seq(), snap.Holds("a", 0))
	}
}

// R40 (core part): defaults replace the default layer in one mutation with
// one notification; the same defaults again are no mutation (R6); new
// defaults apply at once under saved values (an OTA).
func TestR40_SetDefaults(t *testing.T) {
	ctx := t.Context()
	r := rtRegistry(t, core.Options{})
	user := rtOwner(t, r, "ui", core.OwnerOptions{KeepConfig: true})
	rtUpdate(t, user, rtC0, core.Values{"ssid": "home"})
	sub, err := r.Subscribe(ctx, core.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	<-sub.C()
	v1 := map[core.Scope]core.Values{rtC0: {"ssid": "factory", "channel": 6}, rtC1: {"mtu": 1500}}
	if err := r.SetDefaults(ctx, v1); err != nil {
		t.Fatal(err)
	}
	s1 := <-sub.C()
	if got := s1.Values(rtC0); !reflect.DeepEqual(got, core.Values{"ssid": "home", "channel": int64(6)}) {
		t.Fatalf("defaults under saved: %v", got)
	}
	if err := r.SetDefaults(ctx, v1); err != nil {
		t.Fatal(err)
	}
	if r.Snapshot().Seq() != s1.Seq() {
		t.Fatal("R6: the same defaults again took a sequence number")
	}
	// The OTA: a new default key appears, a changed default shows where
	// nothing is saved over it.
	v2 := map[core.Scope]core.Values{rtC0: {"ssid": "factory2", "channel": 11, "band": "5GHz"}, rtC1: {"mtu": 1500}}
	if err := r.SetDefaults(ctx, v2); err != nil {
		t.Fatal(err)
	}
	s2 := <-sub.C()
	if s2.Seq() != s1.Seq()+1 {
		t.Fatalf("one reload, seq %d → %d", s1.Seq(), s2.Seq())
	}
	if got := s2.Values(rtC0); !reflect.DeepEqual(got, core.Values{"ssid": "home", "channel": int64(11), "band": "5GHz"}) {
		t.Fatalf("after the OTA: %v", got)
	}
	select {
	case s := <-sub.C():
		t.Fatalf("a second notification for one reload: seq %d", s.Seq())
	default:
	}
	// Bad input changes nothing.
	for _, bad := range []map[core.Scope]core.Values{
		{rtS0: {"x": 1}},
		{rtC0: {"x": func() {}}},
		{{Bucket: core.Config, Type: "a/b", Subtype: "c"}: {"x": 1}},
	} {
		if err := r.SetDefaults(ctx, bad); err == nil {
			t.Fatalf("SetDefaults(%v) succeeded", bad)
		}
	}
	rtUnchanged(t, r, s2)
}

// R41: override and default are never journaled; fleet, saved and
// runtime are.
func TestR41_JournaledLayers(t *testing.T) {
	ctx := t.Context()
	log := newRecLog()

	r := rtRegistry(t, core.Options{Log: log})
	n := func() int { return len(log.Records()) }
	if err := r.SetDefaults(ctx, map[core.Scope]core.Values{rtC0: {"d": 1}}); err != nil {
		t.Fatal(err)
	}
	op := rtOwner(t, r, "ops", core.OwnerOptions{Layer: core.Override})
	rtUpdate(t, op, rtC0, core.Values{"o": 1})
	if n() != 0 {
		t.Fatalf("%d records for default and override writes", n())
	}
	if err := op.Close(); err != nil {
		t.Fatal(err)
	}
	if n() != 0 {
		t.Fatalf("the death of an override owner wrote %d records", n())
	}
	for i, l := range []core.Layer{core.Saved, core.Runtime} {
		o := rtOwner(t, r, "w", core.OwnerOptions{Layer: l})
		rtUpdate(t, o, rtC0, core.Values{l.String(): 1})
		if n() != i+1 { // closing the saved owner wrote nothing
			t.Fatalf("%s write: %d records", l, n())
		}
		if err := o.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.SetFleet(ctx, map[core.Scope]core.Values{rtC1: {"f": 1}}); err != nil {
		t.Fatal(err)
	}
	recs := log.Records()
	last := recs[len(recs)-1]
	if len(last.Ops) != 1 || last.Ops[0].Layer != core.Fleet || last.Ops[0].Kind != core.MutSet || last.Ops[0].Owner != "" {
		t.Fatalf("fleet record: %+v", last)
	}
	for _, rec := range recs {
		for _, op := range rec.Ops {
			if !op.Layer.Journaled() {
				t.Fatalf("record %d has an op of layer %s", rec.Seq, op.Layer)
			}
		}
	}
}

// R37/R53: SetFleet replaces a scope's fleet values; empty values remove it.
func TestR37_SetFleet(t *testing.T) {
	ctx := t.Context()
	r := rtRegistry(t, core.Options{})
	set := func(m map[core.Scope]core.Values) {
		t.Helper()
		if err := r.SetFleet(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	set(map[core.Scope]core.Values{rtC0: {"a": 1, "b": 2}, rtC1: {"c": 3}})
	set(map[core.Scope]core.Values{rtC0: {"b": 3}})
	snap := r.Snapshot()
	if got := snap.LayerValues(core.Fleet, rtC0); !reflect.DeepEqual(got, core.Values{"b": int64(3)}) {
		t.Fatalf("fleet after replace: %v", got)
	}
	if got := snap.LayerValues(core.Fleet, rtC1); !reflect.DeepEqual(got, core.Values{"c": int64(3)}) {
		t.Fatalf("a scope not named was touched: %v", got)
	}
	seq := snap.Seq()
	set(map[core.Scope]core.Values{rtC0: {"b": 3}})
	if r.Snapshot().Seq() != seq {
		t.Fatal("R6: the same fleet values took a sequence number")
	}
	set(map[core.Scope]core.Values{rtC0: nil})
	if v := r.Snapshot().Values(rtC0); v != nil {
		t.Fatalf("fleet scope not removed: %v", v)
	}
	user := rtOwner(t, r, "ui", core.OwnerOptions{KeepConfig: true})
	rtUpdate(t, user, rtC1, core.Values{"c": 4})
	if v, _ := r.Snapshot().Get(rtC1, "c"); v != int64(4) {
		t.Fatalf("saved over fleet: %v", v)
	}
	if err := r.SetFleet(ctx, map[core.Scope]core.Values{rtS0: {"x": 1}}); !errors.Is(err, core.ErrInvalidScope) {
		t.Fatalf("fleet on a state scope: %v", err)
	}
}

// R42: metadata of the effective value.
func TestR42_Meta(t *testing.T) {
	ctx := t.Context()
	r := rtRegistry(t, core.Options{})
	if err := r.SetDefaults(ctx, map[core.Scope]core.Values{rtC0: {"mtu": 1500}}); err != nil {
		t.Fatal(err)
	}
	s0 := r.Snapshot()
	m, ok := s0.Meta(rtC0, "mtu")
	if !ok || m.Layer != core.Default || m.Owner != "" || m.CreateSeq != s0.Seq() || m.ModSeq != s0.Seq() || m.Version != 1 || time.Since(m.Modified) > time.Minute {
		t.Fatalf("default key meta %+v (seq %d)", m, s0.Seq())
	}
	user := rtOwner(t, r, "ui", core.OwnerOptions{KeepConfig: true})
	rtUpdate(t, user, rtC0, core.Values{"mtu": 9000})
	s1 := r.Snapshot()
	m, _ = s1.Meta(rtC0, "mtu")
	if m.Layer != core.Saved || m.Owner != "ui" || m.CreateSeq != s0.Seq() || m.ModSeq != s1.Seq() || m.Version != 2 {
		t.Fatalf("after a saved write: %+v", m)
	}
	// A write hidden by a higher layer does not change the effective
	// value; an override does; removing it changes it back (a new ModSeq).
	op := rtOwner(t, r, "ops", core.OwnerOptions{Layer: core.Override})
	rtUpdate(t, op, rtC0, core.Values{"mtu": 1400})
	rtUpdate(t, user, rtC0, core.Values{"mtu": 9001})
	s2 := r.Snapshot()
	m, _ = s2.Meta(rtC0, "mtu")
	if m.Layer != core.Override || m.ModSeq != s2.Seq()-1 || m.Version != 3 {
		t.Fatalf("under an override: %+v (seq %d)", m, s2.Seq())
	}
	if err := op.Close(); err != nil {
		t.Fatal(err)
	}
	s3 := r.Snapshot()
	m, _ = s3.Meta(rtC0, "mtu")
	if m.Layer != core.Saved || m.ModSeq != s3.Seq() || m.Version != 4 {
		t.Fatalf("after the override's owner died: %+v (seq %d)", m, s3.Seq())
	}
	// State keys have layer 0 and their own metadata.
	rtUpdate(t, user, rtS0, core.Values{"up": true})
	rtUpdate(t, user, rtS0, core.Values{"up": false})
	rtUpdate(t, user, rtS0, core.Values{"up": false}) // R6: no change
	s4 := r.Snapshot()
	m, _ = s4.Meta(rtS0, "up")
	if m.Layer != 0 || m.Owner != "ui" || m.CreateSeq != s4.Seq()-1 || m.ModSeq != s4.Seq() || m.Version != 2 {
		t.Fatalf("state meta %+v (seq %d)", m, s4.Seq())
	}
	// A transaction that changes a key and puts it back leaves its
	// metadata alone; one that changes it twice counts once.
	if err := user.Commit(ctx, core.Put(rtS0, core.Values{"up": 1}), core.Put(rtS0, core.Values{"up": false}), core.Put(rtS1, core.Values{"x": 1})); err != nil {
		t.Fatal(err)
	}
	if m2, _ := r.Snapshot().Meta(rtS0, "up"); m2 != m {
		t.Fatalf("a key put back: %+v, was %+v", m2, m)
	}
	if err := user.Commit(ctx, core.Put(rtS0, core.Values{"up": 1}), core.Put(rtS0, core.Values{"up": 2})); err != nil {
		t.Fatal(err)
	}
	if m2, _ := r.Snapshot().Meta(rtS0, "up"); m2.Version != m.Version+1 {
		t.Fatalf("two changes in one transaction: version %d, want %d", m2.Version, m.Version+1)
	}
	if _, ok := r.Snapshot().Meta(rtC1, "none"); ok {
		t.Fatal("Meta of a missing key")
	}
}

// R42: metadata replays from the log exactly (seq and time per record).
func TestR42_MetaReplays(t *testing.T) {
	ctx := context.Background()
	log := newRecLog()

	r := rtRegistry(t, core.Options{Log: log})
	a := rtOwner(t, r, "a", core.OwnerOptions{KeepConfig: true})
	b := rtOwner(t, r, "b", core.OwnerOptions{})
	rtUpdate(t, a, rtC0, core.Values{"x": map[string]any{"p": 1}})
	rtUpdate(t, b, rtC0, core.Values{"x": map[string]any{"q": 2}, "y": 1})
	rtUpdate(t, a, rtC1, core.Values{"z": 1})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.SetFleet(ctx, map[core.Scope]core.Values{rtC1: {"z": 0, "w": 1}}); err != nil {
		t.Fatal(err)
	}
	var replay core.Snapshot
	for _, rec := range log.Records() {
		var err error
		if replay, err = replay.Apply(rec); err != nil {
			t.Fatal(err)
		}
	}
	live := r.Snapshot()
	for _, sc := range []core.Scope{rtC0, rtC1} {
		for _, k := range []string{"x", "y", "z", "w"} {
			m1, ok1 := live.Meta(sc, k)
			m2, ok2 := replay.Meta(sc, k)
			if ok1 != ok2 || m1.ModSeq != m2.ModSeq || m1.CreateSeq != m2.CreateSeq || m1.Version != m2.Version ||
				m1.Layer != m2.Layer || m1.Owner != m2.Owner || !m1.Modified.Equal(m2.Modified) {
				t.Fatalf("Meta(%s, %s): live %+v %v, replayed %+v %v", sc, k, m1, ok1, m2, ok2)
			}
		}
	}
}

// SetDefaultsOwned (R40) is SetDefaults for values handed over: normal-form
// values are kept, others normalised, bad ones refused with nothing
// changed.
func TestR40_SetDefaultsOwned(t *testing.T) {
	ctx := context.Background()
	r := core.New(core.Options{})
	defer r.Close()
	sc := core.ConfigScope("net", "eth0")
	if err := r.SetDefaultsOwned(ctx, map[core.Scope]core.Values{sc: {"mtu": int64(1500), "n": 7, "m": map[string]any{"a": []any{"x"}}}}); err != nil {
		t.Fatal(err)
	}
	want := core.Values{"mtu": int64(1500), "n": int64(7), "m": map[string]any{"a": []any{"x"}}}
	if got := r.Snapshot().Values(sc); !core.Equal(map[string]any(got), map[string]any(want)) {
		t.Fatalf("defaults %v, want %v", got, want)
	}
	seq := r.Snapshot().Seq()
	err := r.SetDefaultsOwned(ctx, map[core.Scope]core.Values{sc: {"bad": "\xff"}})
	if !errors.Is(err, core.ErrInvalidValue) || r.Snapshot().Seq() != seq {
		t.Fatalf("bad value: %v, seq %d → %d", err, seq, r.Snapshot().Seq())
	}
}
