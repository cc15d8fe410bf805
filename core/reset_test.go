package core_test

import (
	"errors"
	"testing"

	"github.com/sysreg/sysreg/core"
)

// TestR46_Reset: Reset deletes every key of the named layers in the
// matching config scopes, whoever owns them, as one mutation with one
// record; defaults, fleet and state stay, and show again where a reset
// layer covered them. Bad layers and patterns change nothing.
func TestR46_Reset(t *testing.T) {
	wifi, eth := core.ConfigScope("wifi", "wlan0"), core.ConfigScope("net", "eth0")
	setup := func(t *testing.T) (*core.Registry, *recLog) {
		log := newRecLog()
		r := rtRegistry(t, core.Options{Log: log})
		ctx := t.Context()
		must(t, r.SetDefaults(ctx, map[core.Scope]core.Values{wifi: {"ssid": "factory"}}))
		must(t, r.SetFleet(ctx, map[core.Scope]core.Values{eth: {"mtu": 1400}}))
		for _, l := range []core.Layer{core.Saved, core.Runtime, core.Override} {
			o := rtOwner(t, r, "o-"+l.String(), core.OwnerOptions{Layer: l})
			rtUpdate(t, o, wifi, core.Values{"ssid": l.String(), l.String(): true})
			rtUpdate(t, o, eth, core.Values{"mtu": 1500, l.String(): true})
			rtUpdate(t, o, core.StateScope("net", "eth0"), core.Values{l.String(): true})
		}
		return r, log
	}
	for _, tc := range []struct {
		name   string
		p      core.Pattern
		layers []core.Layer
		gone   map[core.Layer][]core.Scope
	}{
		{"all", core.Pattern{}, nil, map[core.Layer][]core.Scope{core.Saved: {wifi, eth}, core.Runtime: {wifi, eth}}},
		{"config-bucket", core.Pattern{Bucket: core.Config, Type: "wifi"}, nil, map[core.Layer][]core.Scope{core.Saved: {wifi}, core.Runtime: {wifi}}},
		{"override", core.Pattern{Subtype: "eth0"}, []core.Layer{core.Override}, map[core.Layer][]core.Scope{core.Override: {eth}}},
		{"all-three", core.Pattern{}, []core.Layer{core.Override, core.Saved, core.Runtime, core.Saved}, map[core.Layer][]core.Scope{core.Saved: {wifi, eth}, core.Runtime: {wifi, eth}, core.Override: {wifi, eth}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, log := setup(t)
			before, records := r.Snapshot(), log.count()
			must(t, r.Reset(t.Context(), tc.p, tc.layers...))
			after := r.Snapshot()
			wantRecords := records + 1
			if tc.name == "override" {
				wantRecords = records // override is never journaled (R41)
			}
			if after.Seq() != before.Seq()+1 || log.count() != wantRecords {
				t.Fatalf("reset took seq %d → %d, records %d → %d; want one mutation, %d records", before.Seq(), after.Seq(), records, log.count(), wantRecords)
			}
			for _, l := range []core.Layer{core.Default, core.Fleet, core.Saved, core.Runtime, core.Override} {
				for _, sc := range []core.Scope{wifi, eth} {
					gone := false
					for _, g := range tc.gone[l] {
						gone = gone || g == sc
					}
					had, has := len(before.LayerValues(l, sc)) > 0, len(after.LayerValues(l, sc)) > 0
					if has != (had && !gone) {
						t.Errorf("layer %s scope %s: had %v, has %v, reset %v", l, sc, had, has, gone)
					}
				}
			}
			if len(after.Values(core.StateScope("net", "eth0"))) != 3 {
				t.Error("reset touched the state bucket")
			}
			if tc.name == "all" {
				// Override still wins; below it the defaults and fleet show.
				if v, _ := after.Get(wifi, "ssid"); v != "override" {
					t.Errorf("ssid = %v", v)
				}
				must(t, r.Reset(t.Context(), core.Pattern{}, core.Override))
				if v, _ := r.Snapshot().Get(wifi, "ssid"); v != "factory" {
					t.Errorf("ssid after a factory reset = %v, want the default", v)
				}
				if v, _ := r.Snapshot().Get(eth, "mtu"); v != int64(1400) {
					t.Errorf("mtu after a factory reset = %v, want the fleet's", v)
				}
				// Nothing left to reset: a no-op (R6).
				seq := r.Snapshot().Seq()
				must(t, r.Reset(t.Context(), core.Pattern{}, core.Saved, core.Runtime, core.Override))
				if r.Snapshot().Seq() != seq {
					t.Error("an empty reset took a sequence number")
				}
			}
		})
	}
	t.Run("bad-input", func(t *testing.T) {
		r, log := setup(t)
		before, records := r.Snapshot(), log.count()
		for _, bad := range []struct {
			p      core.Pattern
			layers []core.Layer
			want   error
		}{
			{core.Pattern{Bucket: core.State}, nil, core.ErrInvalidScope},
			{core.Pattern{Type: "a/b"}, nil, core.ErrInvalidScope},
			{core.Pattern{}, []core.Layer{core.Default}, core.ErrReadOnlyLayer},
			{core.Pattern{}, []core.Layer{core.Saved, core.Fleet}, core.ErrReadOnlyLayer},
			{core.Pattern{}, []core.Layer{9}, core.ErrInvalidLayer},
		} {
			if err := r.Reset(t.Context(), bad.p, bad.layers...); !errors.Is(err, bad.want) {
				t.Errorf("Reset(%v, %v) = %v, want %v", bad.p, bad.layers, err, bad.want)
			}
		}
		if r.Snapshot().Seq() != before.Seq() || log.count() != records {
			t.Fatal("a refused reset changed something")
		}
	})
}

// TestR46_ResetKeys: ResetKeys removes only the named keys of one scope
// from the layers named, as one mutation; the value below shows again
// (R38). Keys no layer holds are skipped; bad scopes and keys change
// nothing.
func TestR46_ResetKeys(t *testing.T) {
	wifi := core.ConfigScope("wifi", "wlan0")
	r := rtRegistry(t, core.Options{})
	ctx := t.Context()
	must(t, r.SetDefaults(ctx, map[core.Scope]core.Values{wifi: {"ssid": "factory", "channel": int64(6)}}))
	saved := rtOwner(t, r, "settings", core.OwnerOptions{Layer: core.Saved})
	rtUpdate(t, saved, wifi, core.Values{"ssid": "home", "channel": int64(11), "hidden": true})
	rt := rtOwner(t, r, "wpa", core.OwnerOptions{Layer: core.Runtime})
	rtUpdate(t, rt, wifi, core.Values{"ssid": "runtime"})

	before := r.Snapshot()
	must(t, r.ResetKeys(ctx, wifi, []string{"ssid", "absent"}, core.Saved))
	after := r.Snapshot()
	if after.Seq() != before.Seq()+1 {
		t.Fatalf("seq %d → %d, want one mutation", before.Seq(), after.Seq())
	}
	if got := after.LayerValues(core.Saved, wifi); len(got) != 2 || got["ssid"] != nil {
		t.Errorf("saved after ResetKeys(ssid) = %v, want channel and hidden", got)
	}
	if v, _ := after.Get(wifi, "ssid"); v != "runtime" {
		t.Errorf("ssid = %v, want the runtime value still on top", v)
	}
	must(t, r.ResetKeys(ctx, wifi, []string{"ssid", "channel"})) // saved and runtime
	if v, _ := r.Snapshot().Get(wifi, "ssid"); v != "factory" {
		t.Errorf("ssid = %v after resetting saved and runtime, want the default", v)
	}
	if v, _ := r.Snapshot().Get(wifi, "channel"); v != int64(6) {
		t.Errorf("channel = %v, want the default 6", v)
	}
	seq := r.Snapshot().Seq()
	must(t, r.ResetKeys(ctx, wifi, []string{"ssid"})) // nothing left to reset: no mutation (R6)
	for _, tc := range []struct {
		name  string
		scope core.Scope
		keys  []string
		layer core.Layer
		want  error
	}{
		{"state", core.StateScope("wifi", "wlan0"), []string{"x"}, core.Saved, core.ErrInvalidScope},
		{"empty key", wifi, []string{""}, core.Saved, core.ErrInvalidValue},
		{"default layer", wifi, []string{"hidden"}, core.Default, core.ErrReadOnlyLayer},
		{"bad scope", core.ConfigScope("", "x"), []string{"x"}, core.Saved, core.ErrInvalidScope},
	} {
		if err := r.ResetKeys(ctx, tc.scope, tc.keys, tc.layer); !errors.Is(err, tc.want) {
			t.Errorf("%s: ResetKeys = %v, want %v", tc.name, err, tc.want)
		}
	}
	if got := r.Snapshot().Seq(); got != seq {
		t.Errorf("seq %d → %d: a no-op or refused reset made a mutation", seq, got)
	}
}
