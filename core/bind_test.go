package core_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/sysreg/sysreg/core"
)

var wifiCfg, ethState = core.ConfigScope("wifi", "wlan0"), core.StateScope("net", "eth0")

// replayBinds replays log's records onto an empty snapshot, as recovery does.
func replayBinds(t *testing.T, log *recLog) core.Snapshot {
	t.Helper()
	var s core.Snapshot
	for _, m := range log.Records() {
		var err error
		if s, err = s.Apply(m); err != nil {
			t.Fatalf("Apply(record %d): %v", m.Seq, err)
		}
	}
	return s
}

func bindsOf(s core.Snapshot) []core.Bind {
	b, _ := s.Bindings()
	return b
}

// TestR35_BindingFromFirstAttach is issue #8 item 2 in core: uid 1234
// attaches wifi-setup (KeepConfig) and netd, writes config as wifi-setup;
// the name stays bound to 1234 while it holds a key, so uid 4321 can
// neither attach as it nor evict it; root can; the binding is in the
// record that gave the name its first journaled key and survives a replay.
func TestR35_BindingFromFirstAttach(t *testing.T) {
	log := newRecLog()
	defer log.Close()
	r := core.New(core.Options{Log: log, UID: 1000})
	defer r.Close()
	ctx := t.Context()
	w, err := r.OwnerFor(ctx, "wifi-setup", 1234, core.OwnerOptions{KeepConfig: true})
	must(t, err)
	n, err := r.OwnerFor(ctx, "netd", 1234, core.OwnerOptions{})
	must(t, err)
	must(t, n.Update(ctx, ethState, core.Values{"up": true}))
	must(t, w.Update(ctx, wifiCfg, core.Values{"ssid": "home"}))
	must(t, w.Close())
	must(t, n.Close())

	if uid, ok := r.Snapshot().Binding("wifi-setup"); !ok || uid != 1234 {
		t.Fatalf("wifi-setup bound to %d, %v; want 1234", uid, ok)
	}
	if _, ok := r.Snapshot().Binding("netd"); ok {
		t.Fatal("netd holds no key but is still bound")
	}
	if _, err := r.OwnerFor(ctx, "wifi-setup", 4321, core.OwnerOptions{KeepConfig: true}); !errors.Is(err, core.ErrPermission) {
		t.Fatalf("uid 4321 attaching wifi-setup: %v, want ErrPermission", err)
	}
	if err := r.EvictFor(ctx, "wifi-setup", 4321); !errors.Is(err, core.ErrPermission) {
		t.Fatalf("uid 4321 evicting wifi-setup: %v, want ErrPermission", err)
	}
	if err := r.MayAct(4321, "wifi-setup"); !errors.Is(err, core.ErrPermission) {
		t.Fatalf("MayAct(4321, wifi-setup) = %v, want ErrPermission", err)
	}
	for _, uid := range []uint32{0, 1234} {
		if err := r.MayAct(uid, "wifi-setup"); err != nil {
			t.Fatalf("MayAct(%d, wifi-setup) = %v", uid, err)
		}
	}
	if err := r.MayAct(4321, "netd"); err != nil {
		t.Fatalf("MayAct(4321, netd), a name holding nothing: %v", err)
	}
	if got, want := bindsOf(replayBinds(t, log)), []core.Bind{{Name: "wifi-setup", UID: 1234}}; !slices.Equal(got, want) {
		t.Fatalf("replayed bindings %+v, want %+v", got, want)
	}

	// Root acts for the name without taking the binding over.
	root, err := r.OwnerFor(ctx, "wifi-setup", 0, core.OwnerOptions{KeepConfig: true})
	must(t, err)
	must(t, root.Update(ctx, wifiCfg, core.Values{"ssid": "root"}))
	must(t, root.Close())
	if uid, _ := r.Snapshot().Binding("wifi-setup"); uid != 1234 {
		t.Fatalf("after root's write wifi-setup is bound to %d, want 1234", uid)
	}
	// Root evicts it: its last key goes, and with it the binding, in the
	// same record; then the name is free for anyone.
	must(t, r.EvictFor(ctx, "wifi-setup", 0))
	recs := log.Records()
	if last := recs[len(recs)-1]; !slices.Equal(last.Binds, []core.Bind{{Name: "wifi-setup", Unbind: true}}) || len(last.Ops) == 0 {
		t.Fatalf("eviction record %+v, want its drop ops and an unbind", last)
	}
	if got := bindsOf(replayBinds(t, log)); len(got) != 0 {
		t.Fatalf("replayed bindings after the eviction: %+v", got)
	}
	o, err := r.OwnerFor(ctx, "wifi-setup", 4321, core.OwnerOptions{KeepConfig: true})
	must(t, err)
	must(t, o.Update(ctx, wifiCfg, core.Values{"ssid": "b"}))
	if uid, _ := r.Snapshot().Binding("wifi-setup"); uid != 4321 {
		t.Fatalf("wifi-setup rebound to %d, want 4321", uid)
	}
}

// TestR35_BindingRecords: only a change of what a name holds in journaled
// layers writes a binding into the record; state and override keys bind in
// memory only; embedded sessions (Owner) bind to Options.UID and may act
// for any name.
func TestR35_BindingRecords(t *testing.T) {
	log := newRecLog()
	defer log.Close()
	r := core.New(core.Options{Log: log, UID: 1000})
	defer r.Close()
	ctx := t.Context()
	ov, err := r.OwnerFor(ctx, "ops", 2000, core.OwnerOptions{Layer: core.Override})
	must(t, err)
	must(t, ov.Update(ctx, ethState, core.Values{"x": 1}))
	must(t, ov.Update(ctx, wifiCfg, core.Values{"x": 1}))
	if uid, ok := r.Snapshot().Binding("ops"); !ok || uid != 2000 {
		t.Fatalf("ops (state and override keys) bound to %d, %v; want 2000", uid, ok)
	}
	if _, err := r.OwnerFor(ctx, "x", 3000, core.OwnerOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, m := range log.Records() {
		if len(m.Binds) > 0 {
			t.Fatalf("record %d binds %+v for unjournaled keys", m.Seq, m.Binds)
		}
	}
	// Embedded: bound to Options.UID, and free of any check.
	e, err := r.Owner(ctx, "embedded", core.OwnerOptions{KeepConfig: true})
	must(t, err)
	must(t, e.Update(ctx, wifiCfg, core.Values{"e": 1}))
	recs := log.Records()
	if last := recs[len(recs)-1]; !slices.Equal(last.Binds, []core.Bind{{Name: "embedded", UID: 1000}}) {
		t.Fatalf("first journaled key's record binds %+v, want embedded→1000", last.Binds)
	}
	must(t, e.Update(ctx, wifiCfg, core.Values{"f": 1}))
	recs = log.Records()
	if last := recs[len(recs)-1]; len(last.Binds) != 0 {
		t.Fatalf("a second key rebinds: %+v", last.Binds)
	}
	must(t, ov.Close())
	if _, ok := r.Snapshot().Binding("ops"); ok {
		t.Fatal("ops still bound after its death took its keys")
	}
	must(t, e.Close())
	must(t, r.Evict(ctx, "embedded")) // the process itself: no check
}

// TestR35_ApplyChecksBindings: a record may bind only a name that holds
// journaled keys once its ops are applied, and unbind only one that holds
// none; BindUnbound binds what records before bindings left unbound.
func TestR35_ApplyChecksBindings(t *testing.T) {
	put := core.MutationOp{Kind: core.MutMerge, Layer: core.Saved, Scope: wifiCfg, Owner: "a", Values: core.Values{"k": int64(1)}}
	s, err := core.Snapshot{}.Apply(&core.Mutation{Seq: 1, Ops: []core.MutationOp{put}})
	must(t, err)
	if _, unbound := s.Bindings(); !slices.Equal(unbound, []string{"a"}) {
		t.Fatalf("unbound %q, want [a]", unbound)
	}
	for name, m := range map[string]*core.Mutation{
		"bind-without-keys": {Seq: 2, Binds: []core.Bind{{Name: "b", UID: 1}}},
		"unbind-with-keys":  {Seq: 2, Binds: []core.Bind{{Name: "a", Unbind: true}}},
		"bad-name":          {Seq: 2, Binds: []core.Bind{{Name: "", UID: 1}}},
	} {
		if _, err := s.Apply(m); !errors.Is(err, core.ErrInvalidOwner) {
			t.Errorf("%s: Apply error %v, want ErrInvalidOwner", name, err)
		}
	}
	log := newRecLog()
	defer log.Close()
	r := core.New(core.Options{Log: log, Initial: s})
	defer r.Close()
	if err := r.MayAct(7, "a"); err != nil {
		t.Fatalf("an unbound name refused: %v", err)
	}
	bound, err := r.BindUnbound(t.Context(), map[string]uint32{"a": 42}, 9)
	if err != nil || !slices.Equal(bound, []string{"a"}) {
		t.Fatalf("BindUnbound = %q, %v", bound, err)
	}
	if err := r.MayAct(7, "a"); !errors.Is(err, core.ErrPermission) {
		t.Fatalf("after BindUnbound, uid 7 acting for a: %v", err)
	}
	recs := log.Records()
	if len(recs) != 1 || !slices.Equal(recs[0].Binds, []core.Bind{{Name: "a", UID: 42}}) || len(recs[0].Ops) != 0 {
		t.Fatalf("BindUnbound records %+v, want one record binding a→42", recs)
	}
	if bound, err := r.BindUnbound(t.Context(), nil, 9); err != nil || len(bound) != 0 || len(log.Records()) != 1 {
		t.Fatalf("second BindUnbound = %q, %v, %d records", bound, err, len(log.Records()))
	}
}

// TestR35_BindingThroughEmptyingCommit: a transaction that deletes all of
// a name's keys and writes new ones is atomic for its binding too (found by
// the model test). The name stays bound to the uid it had — in the live
// registry when root (or the embedding process) writes it, and in a replay
// of the records when the name kept only unjournaled keys on the way.
func TestR35_BindingThroughEmptyingCommit(t *testing.T) {
	ntpCfg := core.ConfigScope("ntp", "main")
	for _, tc := range []struct {
		name   string
		writer uint32 // the uid of the session of the commit
		state  bool   // the name also holds a state key
	}{
		{"writer=root", 0, false},
		{"writer=owner/state-key", 1234, true},
		{"writer=root/state-key", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := newRecLog()
			defer log.Close()
			r := core.New(core.Options{Log: log, UID: 1000})
			defer r.Close()
			ctx := t.Context()
			o, err := r.OwnerFor(ctx, "wifid", 1234, core.OwnerOptions{KeepConfig: true})
			must(t, err)
			must(t, o.Update(ctx, wifiCfg, core.Values{"ssid": "home"}))
			if tc.state {
				must(t, o.Update(ctx, ethState, core.Values{"up": true}))
			}
			if tc.writer != 1234 {
				must(t, o.Close()) // saved config and the binding stay; state goes
				if o, err = r.OwnerFor(ctx, "wifid", tc.writer, core.OwnerOptions{KeepConfig: true}); err != nil {
					t.Fatal(err)
				}
				if tc.state {
					must(t, o.Update(ctx, ethState, core.Values{"up": true}))
				}
			}
			must(t, o.Commit(ctx, core.Del(wifiCfg), core.Put(ntpCfg, core.Values{"server": "pool"})))
			if uid, ok := r.Snapshot().Binding("wifid"); !ok || uid != 1234 {
				t.Fatalf("after the commit wifid is bound to %d, %v; want 1234", uid, ok)
			}
			if got, want := bindsOf(replayBinds(t, log)), []core.Bind{{Name: "wifid", UID: 1234}}; !slices.Equal(got, want) {
				t.Fatalf("replayed bindings %+v, want %+v", got, want)
			}
			must(t, o.Close())
			if _, err := r.OwnerFor(ctx, "wifid", 4321, core.OwnerOptions{}); !errors.Is(err, core.ErrPermission) {
				t.Fatalf("uid 4321 attaching wifid: %v, want ErrPermission", err)
			}
		})
	}
}
