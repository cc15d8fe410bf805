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
