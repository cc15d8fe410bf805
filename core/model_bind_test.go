package core_test

// The model test's part for R35, owner-uid bindings, written from the spec:
// a name is bound to the uid of the session whose mutation gives it its
// first key, in any layer or bucket, for as long as it holds any key; a
// mutation is atomic, so a name that holds keys before and after it keeps
// its binding whatever the mutation did in between. Another uid (root
// excepted) may not attach as the name (OwnerFor) or evict it (EvictFor);
// Owner and Evict act for the registry's process and are not checked. A
// binding of a name that holds journaled keys (saved, runtime) is carried
// by the records that make or drop it (Mutation.Binds). Names restored
// from records without bindings hold no binding until BindUnbound gives
// them one, or until they hold no key.

import (
	"fmt"
	"maps"
	"slices"

	"github.com/sysreg/sysreg/core"
)

// modelUIDs are the uids sessions act for: root and two users.
var modelUIDs = []uint32{0, 1000, 1001}

// mtBinding is a holder's binding; bound is false for a name restored
// unbound.
type mtBinding struct {
	uid   uint32
	bound bool
}

// journaled counts each name's keys in journaled layers (R41).
func (m *mtModel) journaled() map[string]int {
	n := map[string]int{}
	for p, keys := range m.data {
		if p.scope.Bucket != core.Config || !p.layer.Journaled() {
			continue
		}
		for _, e := range keys {
			if e.owner != "" {
				n[e.owner]++
			}
		}
	}
	return n
}

// settleBinds brings the bindings of m, a model after a mutation made by
// a session acting for uid, up to date: a name that held keys before keeps
// its binding (m's, cloned from the model before), one that holds its
// first keys is bound to uid, and one that holds none has none.
func (m *mtModel) settleBinds(uid uint32) {
	binds := map[string]mtBinding{}
	for _, name := range m.holders() {
		if b, ok := m.binds[name]; ok {
			binds[name] = b
		} else {
			binds[name] = mtBinding{uid, true}
		}
	}
	m.binds = binds
}

// restoreUnbound leaves every holder of m unbound: a registry restored
// from records written before bindings were journaled.
func (m *mtModel) restoreUnbound() {
	m.binds = map[string]mtBinding{}
	for _, name := range m.holders() {
		m.binds[name] = mtBinding{}
	}
}

// mayAct is R35's check for uid acting for name.
func (m *mtModel) mayAct(uid uint32, name string) bool {
	b, ok := m.binds[name]
	return uid == 0 || !ok || !b.bound || b.uid == uid
}

// recordBinds is what the record of the mutation from prev to m carries:
// a Bind for a name that holds journaled keys and is bound, when it held
// none before or was bound otherwise; an Unbind for a name that held
// journaled keys and holds none now; sorted by name.
func mtRecordBinds(prev, m *mtModel) []core.Bind {
	names := map[string]bool{}
	for n := range prev.binds {
		names[n] = true
	}
	for n := range m.binds {
		names[n] = true
	}
	var out []core.Bind
	pj, mj := prev.journaled(), m.journaled()
	for _, n := range slices.Sorted(maps.Keys(names)) {
		before, after := prev.binds[n], m.binds[n]
		jb, ja := pj[n], mj[n]
		switch {
		case ja > 0 && after.bound && (jb == 0 || !before.bound || before.uid != after.uid):
			out = append(out, core.Bind{Name: n, UID: after.uid})
		case ja == 0 && jb > 0:
			out = append(out, core.Bind{Name: n, Unbind: true})
		}
	}
	return out
}

// bindings is Snapshot.Bindings as the model has it.
func (m *mtModel) bindings() (binds []core.Bind, unbound []string) {
	j := m.journaled()
	for _, n := range slices.Sorted(maps.Keys(m.binds)) {
		switch b := m.binds[n]; {
		case j[n] == 0:
		case b.bound:
			binds = append(binds, core.Bind{Name: n, UID: b.uid})
		default:
			unbound = append(unbound, n)
		}
	}
	return binds, unbound
}

// bindUnbound is Registry.BindUnbound(uids, fallback) on m: every unbound
// holder is bound, in one mutation when there is one.
func (m *mtModel) bindUnbound(o mtOp) *mtModel {
	work := m.clone()
	changed := false
	for n, b := range work.binds {
		if b.bound {
			continue
		}
		uid, ok := o.uids[n]
		if !ok {
			uid = o.uid
		}
		work.binds[n] = mtBinding{uid, true}
		changed = true
	}
	if !changed {
		return m
	}
	work.seq++ // no key changes: the metadata stays (R42)
	return work
}

// withUID makes some of the attaches and evictions g generates act for a
// uid (OwnerFor, EvictFor), and sometimes replaces o by a BindUnbound.
func (g mtGen) withUID(o mtOp, names []string) mtOp {
	switch {
	case (o.kind == mtOpen || o.kind == mtEvict) && g.chance(0.6):
		o.checked, o.uid = true, modelUIDs[g.pick(len(modelUIDs))]
	case g.chance(0.01):
		o = mtOp{kind: mtBindUnbound, uid: modelUIDs[g.pick(len(modelUIDs))], uids: map[string]uint32{}}
		for _, n := range names {
			if g.chance(0.3) {
				o.uids[n] = modelUIDs[g.pick(len(modelUIDs))]
			}
		}
	}
	return o
}

// actor is the uid that o's mutation acts for: the session's, or for
// mutations of the registry itself (which give no name a key) none.
func mtActor(o mtOp, hs []*mtHandle) uint32 {
	switch o.kind {
	case mtUpdate, mtDelete, mtCommit:
		return hs[o.handle].uid
	}
	return 0
}

// mtCheckBinds compares every name's binding, Snapshot.Bindings and
// Registry.MayAct for each uid but root's with the model. Only a mutation
// changes them: call it after each one.
func mtCheckBinds(r *core.Registry, snap core.Snapshot, m *mtModel, names []string, fail func(string, ...any) bool) bool {
	for _, n := range names {
		b, ok := m.binds[n]
		ok = ok && b.bound
		uid, got := snap.Binding(n)
		if got != ok || ok && uid != b.uid {
			return fail("R35 Binding(%q) = %d, %v; want %d, %v", n, uid, got, b.uid, ok)
		}
		for _, u := range modelUIDs[1:] { // root may always act
			if err := r.MayAct(u, n); (err == nil) != m.mayAct(u, n) {
				return fail("R35 MayAct(%d, %q) = %v; want allowed %v", u, n, err, m.mayAct(u, n))
			}
		}
	}
	gb, gu := snap.Bindings()
	wb, wu := m.bindings()
	if !slices.Equal(gb, wb) || !slices.Equal(gu, wu) {
		return fail("R35 Bindings() = %+v unbound %q; want %+v unbound %q", gb, gu, wb, wu)
	}
	return true
}

// mtCheckRecordBinds checks the records that one step wrote (fresh)
// against the binding changes of the model from prev to m: a change of a
// journaled binding is in the step's record; nothing else is.
func mtCheckRecordBinds(fresh []*core.Mutation, prev, m *mtModel, fail func(string, ...any) bool) bool {
	want := mtRecordBinds(prev, m)
	if len(fresh) == 0 {
		if len(want) > 0 {
			return fail("R35 binding changes %+v without a log record", want)
		}
		return true
	}
	if got := fresh[0].Binds; !slices.Equal(got, want) {
		return fail("R35 record %d Binds = %+v, want %+v", fresh[0].Seq, got, want)
	}
	return true
}

// mtCheckReplayBinds compares the journaled bindings of a snapshot rebuilt
// from log records with the live one's.
func mtCheckReplayBinds(replay, live core.Snapshot, fail func(string, ...any) bool) bool {
	gb, gu := replay.Bindings()
	wb, wu := live.Bindings()
	if !slices.Equal(gb, wb) || !slices.Equal(gu, wu) {
		return fail("R35 bindings replayed from the log: %+v unbound %q; live %+v unbound %q", gb, gu, wb, wu)
	}
	return true
}

// mtUIDString is the uid part of o for the trace: " for uid N" for
// OwnerFor and EvictFor.
func mtUIDString(o mtOp) string {
	if !o.checked {
		return ""
	}
	return fmt.Sprintf(" for uid %d", o.uid)
}
