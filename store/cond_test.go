package store_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

// TestR43_ConditionsEmbeddedAndClient: guarded commits behave the same
// embedded and over the daemon's socket (R43, R32): a condition that holds
// lets the transaction apply, one that fails is a *core.ConflictError with
// the same fields, and nothing is applied or journaled.
func TestR43_ConditionsEmbeddedAndClient(t *testing.T) {
	d := startDaemon(t, t.TempDir(), store.ServerOptions{})
	regs := map[string]store.Registry{"embedded": open(t, t.TempDir(), store.Options{NoSync: true}), "client": dial(t, d)}
	conflicts := map[string]*core.ConflictError{}
	for name, reg := range regs {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			sc := core.ConfigScope("ntp", "main")
			ui, err := reg.Owner(ctx, "ui", core.OwnerOptions{KeepConfig: true})
			must(t, err)
			cloud, err := reg.Owner(ctx, "cloud", core.OwnerOptions{KeepConfig: true})
			must(t, err)
			must(t, ui.Commit(ctx, core.IfModSeq(sc, "server", 0), core.Put(sc, core.Values{"server": "a", "n": uint64(1) << 63})))
			snap, _ := reg.Snapshot(ctx)
			m, _ := snap.Meta(sc, "server")
			// The cloud agent edits first; the UI's edit, read before, conflicts.
			must(t, cloud.Commit(ctx, core.IfModSeq(sc, "server", m.ModSeq), core.IfEqual(sc, "n", uint64(1)<<63), core.Put(sc, core.Values{"server": "b"})))
			before, _ := reg.Snapshot(ctx)
			err = ui.Commit(ctx, core.IfModSeq(sc, "server", m.ModSeq), core.Put(sc, core.Values{"server": "c"}))
			var ce *core.ConflictError
			if !errors.Is(err, core.ErrConflict) || !errors.As(err, &ce) {
				t.Fatalf("stale edit: %v, want a *ConflictError", err)
			}
			after, _ := reg.Snapshot(ctx)
			if after.Seq() != before.Seq() {
				t.Fatalf("a conflict took a sequence number: %d → %d", before.Seq(), after.Seq())
			}
			if v, _ := after.Get(sc, "server"); v != "b" {
				t.Fatalf("server = %v after the conflict, want b", v)
			}
			if err := ui.Commit(ctx, core.IfEqual(sc, "n", int64(1)), core.Put(sc, core.Values{"x": 1})); !errors.Is(err, core.ErrConflict) {
				t.Fatalf("IfEqual of another type: %v", err)
			}
			conflicts[name] = ce
		})
	}
	if e, c := conflicts["embedded"], conflicts["client"]; e == nil || c == nil || !reflect.DeepEqual(*e, *c) {
		t.Fatalf("conflicts differ: embedded %+v, client %+v", e, c)
	}
}
