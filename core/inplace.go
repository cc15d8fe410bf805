package core

import "sync/atomic"

// In-place state updates (issue #14). Owner.Update of state keys its owner
// already holds is applied under the write lock to the working state
// without publishing it: the nodes on the path to the keys are copied once
// after each publication and then changed in place (transient nodes, see
// edits), so that a key flapped a million times between two readers costs
// no allocation in the registry. The working state is published when
// something reads it:
//
//   - Snapshot (and so every read of a Registry or a Store), Subscribe
//     (its first delivery is the current state, R16) and the notifier
//     publish the pending in-place updates first (published), under
//     the write lock, once per run of updates: readers always see every
//     acknowledged update (read-your-writes), and a reader that finds
//     nothing pending takes no lock;
//   - every other write (mutateLocked, a batch, a Log failure) publishes
//     them before it starts, so that the nodes it shares with the working
//     state are immutable from then on and the order of publication stays
//     the order of sequence numbers (R7, R24).
//
// An update is applied in place only if it could be published at once
// (nothing queued for durability, its sequence number durably reserved),
// changes only keys that exist, are its owner's and are not stale, and has
// at most maxInPlace keys; anything else (an insert, which changes the owner
// index and may bind the name, R35; an error; a config update) takes the
// ordinary path, which gives the same result.
//
// Invariants, all under r.mu:
//   - r.dirty is set iff r.work holds in-place updates not yet published;
//     r.work is then a state only the registry can reach, and nothing is
//     queued;
//   - the nodes in r.lazy are reachable only from r.work (no published or
//     queued state holds them): they are the only nodes ever changed in
//     place; publishing empties r.lazy.

// maxInPlace is the most keys an update applied in place has.
const maxInPlace = 8

// updateInPlaceLocked applies o's update of state scope sc (scope key k,
// hash h) with the pairs ps in place, if it may (see above), and reports
// whether it did; if so, it returns the update's wait and notice as
// mutateLocked does. Called with r.mu held.
func (r *Registry) updateInPlaceLocked(o *Owner, sc Scope, k string, h uint64, ps []pair) (func() error, notice, bool) {
	if r.closed || o.ended || len(ps) > maxInPlace || len(r.queue) > 0 ||
		(r.log != nil && r.failed == nil && r.seq+1 > r.durable) {
		return nil, notice{}, false
	}
	top := r.work.buckets[State-1]
	lf := top.leafH(k, h)
	if lf == nil {
		return nil, notice{}, false
	}
	km := lf.val
	// Each key's leaf, by the node that holds it: written in place if that
	// node was copied since the last publication (in r.lazy), else set on
	// a copy of the path.
	type at struct {
		n *hnode[entry]
		i int
		h uint64
	}
	var ats [maxInPlace]at
	var nv [maxInPlace]any
	var changed uint32
	for i, p := range ps {
		hk := hashKey(p.key)
		n, j := km.leafAt(p.key, hk)
		if n == nil {
			return nil, notice{}, false
		}
		old := &n.leaves[j].val
		if old.owner() != o.name || old.meta.stale() {
			return nil, notice{}, false
		}
		v := mergeValue(old.val, p.val)
		if equalValue(v, old.val) {
			continue // R6 for this key
		}
		ats[i], nv[i] = at{n, j, hk}, v
		changed |= 1 << i
	}
	if changed == 0 { // R6: no sequence number, no notification
		return doneWait, notice{}, true
	}
	seq, now := r.seq+1, r.coarseNow()
	st := r.work
	chained := r.dirty.Load()
	if chained {
		r.inPlace.chained++
	} else { // r.work is published: change a copy of it
		st = new(state)
		*st = *r.work
		r.work = st
	}
	root := km.root
	for i, p := range ps {
		if changed&(1<<i) == 0 {
			continue
		}
		a := ats[i]
		old := a.n.leaves[a.i].val
		// As mergeLookups: the owner, the layer and the origin stay.
		e := entry{val: nv[i], org: old.org, meta: old.meta.next(seq, now)}
		if mine(&r.lazy, a.n) {
			a.n.leaves[a.i].val = e
			continue
		}
		// A copy of the path, claimed: nodes of keys after this one that
		// it copies are written through setE too (theirs are not in
		// r.lazy, or this path would have been).
		km = km.setE(p.key, a.h, e, &r.lazy)
	}
	if km.root != root {
		// lf.key, not k: the stored key, so that k (built on the
		// caller's stack) does not escape.
		st.buckets[State-1] = top.setE(lf.key, h, km, &r.lazy)
	}
	r.seq = seq // st.seq is set when it is published: one write less per update
	if !chained {
		r.dirty.Store(true)
	}
	r.inPlace.n++ // counted in Stats as published: any reader publishes it first
	return doneWait, notice{set: true, one: sc}, true
}

// publishInPlaceLocked publishes the in-place updates not yet published,
// if any. Called with r.mu held.
func (r *Registry) publishInPlaceLocked() {
	if !r.dirty.Load() {
		return
	}
	r.lazy.reset()
	r.work.seq = r.seq // not written by each in-place update
	// The state before the flag: a subscription arming reads the flag
	// first, and if it finds it clear, the state it reads next holds the
	// update (deliverLocked).
	r.pub.Store(r.work)
	r.dirty.Store(false)
}

// published returns the published state, after publishing the in-place
// updates not yet published (taking the write lock only then).
func (r *Registry) published() *state {
	if r.dirty.Load() {
		r.mu.Lock()
		r.publishInPlaceLocked()
		r.mu.Unlock()
	}
	return r.pub.Load()
}

// scopeMemo is a validated state scope with its key and hash (Owner.memo).
// Immutable but for its miss count.
type scopeMemo struct {
	sc     Scope
	k      string
	h      uint64
	misses atomic.Uint32 // updates in place of other scopes since its last use
}

// maxMemoPatience bounds Owner.patience.
const maxMemoPatience = 1 << 10

// updateState is Owner.Update of a state scope: in place if it may be,
// else the ordinary path. m is o's memo if it is of sc.
func (o *Owner) updateState(sc Scope, m *scopeMemo, ps []pair) error {
	r := o.r
	var k string
	var h uint64
	if m != nil {
		k, h = m.k, m.h
		if m.misses.Load() != 0 {
			m.misses.Store(0)
		}
	} else {
		k = scopeKey(sc.Type, sc.Subtype)
		h = hashKey(k)
	}
	r.mu.Lock()
	w, n, ok := r.updateInPlaceLocked(o, sc, k, h, ps)
	if !ok {
		w, n = r.mutateLocked(func(t *txn) error { return o.put(t, sc, ps) })
	}
	r.mu.Unlock()
	if ok && m == nil {
		o.remember(sc, h)
	}
	n.send(r.hub)
	return w()
}

// remember makes sc (hash h), just updated in place, o's memo once the
// memo it would replace has missed patience updates in a row; each
// replacement doubles the patience (up to maxMemoPatience). An owner that
// moves to another scope gets a memo of it after two updates; one that
// rotates among k scopes replaces its memo about log2(k) times and then
// keeps one, instead of allocating a memo every few updates.
func (o *Owner) remember(sc Scope, h uint64) {
	if old := o.memo.Load(); old != nil {
		p := max(o.patience.Load(), 2)
		if old.misses.Add(1) < p {
			return
		}
		o.patience.Store(min(2*p, maxMemoPatience))
	}
	o.memo.Store(&scopeMemo{sc: sc, k: scopeKey(sc.Type, sc.Subtype), h: h})
}
