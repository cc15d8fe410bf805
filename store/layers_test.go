package store_test

import (
	"errors"
	"net"
	"reflect"
	"strings"
	"testing"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/wire"
	"github.com/sysreg/sysreg/store"
)

// TestR13_KeptConfigSurvivesReopen is issue #8 item 1 end to end: netd
// keeps config, a later plain session of netd writes other config and
// closes; the kept config is still there, also after the store is
// reopened, and the plain session's runtime config is not.
func TestR13_KeptConfigSurvivesReopen(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	kept := core.ConfigScope("net", "eth0")
	other := core.ConfigScope("net", "eth1")
	s, err := store.Open(dir, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	netd, err := s.Owner(ctx, "netd", core.OwnerOptions{KeepConfig: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := netd.Update(ctx, kept, core.Values{"mtu": 1500}); err != nil {
		t.Fatal(err)
	}
	if err := netd.Close(); err != nil {
		t.Fatal(err)
	}
	netd, err = s.Owner(ctx, "netd", core.OwnerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := netd.Update(ctx, other, core.Values{"up": true}); err != nil {
		t.Fatal(err)
	}
	if err := netd.Close(); err != nil {
		t.Fatal(err)
	}
	check := func(when string, snap core.Snapshot) {
		t.Helper()
		if v, ok := snap.Get(kept, "mtu"); !ok || v != int64(1500) {
			t.Fatalf("%s: kept config %v %v, want 1500", when, v, ok)
		}
		if l, o, _ := snap.Origin(kept, "mtu"); l != core.Saved || o != "netd" {
			t.Fatalf("%s: origin %s %q", when, l, o)
		}
		if _, ok := snap.Get(other, "up"); ok {
			t.Fatalf("%s: the plain session's runtime config outlived it", when)
		}
	}
	snap, _ := s.Snapshot(ctx)
	check("before reopen", snap)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = store.Open(dir, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	snap, _ = s.Snapshot(ctx)
	check("after reopen", snap)
}

// TestR41_LayersAcrossReopen: saved, runtime and fleet come back with their
// metadata (R42); override does not; runtime config of a session that was
// live at a clean close stays until its owner dies (R27).
func TestR41_LayersAcrossReopen(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	sc := core.ConfigScope("wifi", "wlan0")
	s, err := store.Open(dir, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []core.Layer{core.Saved, core.Runtime, core.Override} {
		o, err := s.Owner(ctx, l.String()+"-writer", core.OwnerOptions{Layer: l})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if err := o.Update(ctx, sc, core.Values{l.String(): i, "top": l.String()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.SetFleet(ctx, map[core.Scope]core.Values{sc: {"fleet": true}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Snapshot(ctx)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = store.Open(dir, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	after, _ := s.Snapshot(ctx)
	for _, l := range []core.Layer{core.Fleet, core.Saved, core.Runtime} {
		if got, want := after.LayerValues(l, sc), before.LayerValues(l, sc); !reflect.DeepEqual(got, want) {
			t.Fatalf("layer %s after reopen: %v, want %v", l, got, want)
		}
	}
	if v := after.LayerValues(core.Override, sc); v != nil {
		t.Fatalf("R41: override after reopen: %v", v)
	}
	if v, _ := after.Get(sc, "top"); v != "runtime" {
		t.Fatalf("effective top after reopen: %v, want runtime's", v)
	}
	for _, k := range []string{"saved", "runtime", "fleet"} {
		m1, _ := before.Meta(sc, k)
		m2, ok := after.Meta(sc, k)
		if !ok || m1.ModSeq != m2.ModSeq || m1.CreateSeq != m2.CreateSeq || m1.Version != m2.Version || !m1.Modified.Equal(m2.Modified) {
			t.Fatalf("R42: Meta(%s) %+v after reopen, was %+v", k, m2, m1)
		}
	}
	// "top" was the override's value at the checkpoint: its metadata is
	// renewed by the first mutation after the restart (the defaults load),
	// so a condition on the ModSeq read before cannot pass on the value
	// that shows now.
	m, _ := after.Meta(sc, "top")
	if m.ModSeq <= before.Seq() || m.Layer != core.Runtime {
		t.Fatalf("R42: Meta(top) %+v after reopen, want a ModSeq above %d", m, before.Seq())
	}
}

// TestR39_LayersOverSocket: a client of the daemon attaches with a layer,
// sees layers, origins and metadata as the embedded store does, and gets
// the layer errors (R32).
func TestR39_LayersOverSocket(t *testing.T) {
	ctx := t.Context()
	d := startDaemon(t, t.TempDir(), store.ServerOptions{})
	c := dial(t, d)
	sc := core.ConfigScope("ntp", "main")
	for _, l := range []core.Layer{core.Saved, core.Override} {
		o, err := c.Owner(ctx, "w-"+l.String(), core.OwnerOptions{Layer: l})
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Update(ctx, sc, core.Values{"server": l.String()}); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := c.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	local, _ := d.st.Snapshot(ctx)
	if l, o, _ := snap.Origin(sc, "server"); l != core.Override || o != "w-override" {
		t.Fatalf("client Origin %s %q", l, o)
	}
	if got := snap.LayerValues(core.Saved, sc); !reflect.DeepEqual(got, core.Values{"server": "saved"}) {
		t.Fatalf("client LayerValues(saved) %v", got)
	}
	m1, _ := snap.Meta(sc, "server")
	m2, _ := local.Meta(sc, "server")
	if m1.ModSeq != m2.ModSeq || m1.Version != m2.Version || !m1.Modified.Equal(m2.Modified) || m1.Layer != m2.Layer {
		t.Fatalf("client Meta %+v, daemon %+v", m1, m2)
	}
	for _, tc := range []struct {
		l    core.Layer
		want error
	}{{core.Default, core.ErrReadOnlyLayer}, {core.Fleet, core.ErrReadOnlyLayer}, {9, core.ErrInvalidLayer}} {
		if _, err := c.Owner(ctx, "bad", core.OwnerOptions{Layer: tc.l}); !errors.Is(err, tc.want) {
			t.Fatalf("attach with layer %d: %v, want %v", tc.l, err, tc.want)
		}
	}
}

// TestR34_OldClientVersion: a client of protocol version 1 gets a clear
// error naming both versions, not frames it would misread.
func TestR34_OldClientVersion(t *testing.T) {
	d := startDaemon(t, t.TempDir(), store.ServerOptions{})
	conn, err := net.Dial("unix", d.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req, _ := wire.AppendFrame(nil, wire.THello, 1, wire.Hello{Version: 1, Client: "old"})
	if _, err := conn.Write(req); err != nil {
		t.Fatal(err)
	}
	f, _, err := wire.ReadFrame(conn, wire.DefaultMaxFrame, nil)
	if err != nil {
		t.Fatal(err)
	}
	var e wire.Error
	if f.Type != wire.TError || wire.DecodeBody(f, &e) != nil {
		t.Fatalf("reply %s, want an error", f.Type)
	}
	if e.Code != wire.CodeBadRequest || !strings.Contains(e.Message, "version 1") || !strings.Contains(e.Message, "version 2") {
		t.Fatalf("error %+v, want bad_request naming versions 1 and 2", e)
	}
}
