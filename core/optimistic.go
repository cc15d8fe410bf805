package core

// The optimistic state update (issue #14). Owner.Update of a state scope
// does most of its work before it takes the write lock: it merges the
// values into the scope as the *published* state holds it and builds the
// scope's new node(s) — the same entries mergeLookups would make, with the
// metadata that depends on the sequence number and the clock left for
// later. Under the lock it then only checks that the working state still
// holds that very scope node (a pointer compare) and installs its own:
// the sequence number (R7) and the modification time go into the new
// entries, the bucket's path is copied down to the scope, and the state
// is published (or queued) as mutateLocked does.
//
// What the work outside the lock reads is covered by the pointer compare
// or checked again under the lock:
//   - the keys' owners (R9, R10) and values (R4's merge, R6's no-op test)
//     are in the scope node: a node is never changed once published, and
//     the one built on stays referenced, so an equal pointer is an equal
//     scope (no reuse of a freed address);
//   - only an update of keys that all exist, are the owner's and are not
//     stale is built so: one that inserts a key changes the owner index,
//     may bind the name (R35) and counts against MaxKeys, and takes the
//     locked path; so does one that would fail (reserved keys), which then
//     fails there with the error the locked path gives;
//   - the session's liveness (Close, Abandon) and the registry's are
//     checked under the lock.
//
// If the scope changed in between (another update of it was installed
// first) or the update is not of that kind, it is done again under the
// same acquisition of the lock by the ordinary path (mutateLocked), which
// gives the same result as if the optimistic attempt had not been made.
// Config updates always take the ordinary path: their record and their
// publication order after durability (R24) are decided under the lock.

// prepared is a state update built outside the write lock. It holds no
// pointer into itself, so that it stays on its caller's stack.
type prepared struct {
	base   keysMap // the scope as built on, from a published state
	km     keysMap // the scope with the update merged
	st     *state  // the new state's allocation, filled in under the lock
	n      int     // changed keys: their leaves in km are leaves[:n]
	leaves [maxPrepared]*hleaf[entry]
}

// maxPrepared is the most keys an update built outside the lock has; a
// larger one takes the locked path.
const maxPrepared = 8

// prepare builds the update of owner's keys ps in state scope k (hash h)
// against the published state pub. It reports false if the update must
// take the locked path (see above).
func (p *prepared) prepare(pub *state, owner string, k string, h uint64, ps []pair) bool {
	p.base = scopeIn(pub.buckets[State-1], k, h)
	if p.base.len() == 0 || len(ps) > maxPrepared {
		return false
	}
	var lbuf [maxPrepared]lookup
	ls := lookupAll(p.base, ps, lbuf[:0])
	km := p.base
	var changed [maxPrepared]int // indexes into ps and ls
	n := 0
	for i := range ls {
		old := ls[i].old
		if old == nil || old.owner() != owner || old.meta.stale() {
			return false
		}
		nv := mergeValue(old.val, ps[i].val)
		if equalValue(nv, old.val) {
			continue // R6 for this key
		}
		// As mergeLookups: the owner, the layer and the origin stay; the
		// metadata becomes old.meta.next(seq, now) at install.
		km = km.setE(ps[i].key, ls[i].hash, entry{val: nv, org: old.org, meta: old.meta}, nil)
		changed[n] = i
		n++
	}
	p.km, p.n = km, n
	// The leaves of the changed keys are in nodes this update made (each
	// set copies the path to its key), which nobody else can see yet.
	for j, i := range changed[:n] {
		p.leaves[j] = km.leafH(ps[i].key, ls[i].hash)
	}
	if n > 0 {
		p.st = new(state)
	}
	return true
}

// installLocked installs p, o's update of sc (scope key k, hash h), if the working state still
// holds the scope node it was built on, and reports whether it did; if so,
// it returns the update's wait and notice as mutateLocked does. Called
// with r.mu held.
func (r *Registry) installLocked(o *Owner, sc Scope, k string, h uint64, p *prepared) (func() error, notice, bool) {
	if r.closed || o.ended {
		return nil, notice{}, false // the locked path returns the error
	}
	lf := r.work.buckets[State-1].leafH(k, h)
	if lf == nil || lf.val.root != p.base.root {
		r.stats.optimisticMisses.Add(1)
		return nil, notice{}, false
	}
	if p.n == 0 { // R6: no sequence number, no notification
		return doneWait, notice{}, true
	}
	seq, now := r.seq+1, r.coarseNow()
	for _, l := range p.leaves[:p.n] {
		l.val.meta = l.val.meta.next(seq, now)
	}
	st := p.st
	*st = *r.work
	st.seq = seq
	st.buckets[State-1] = st.buckets[State-1].setE(lf.key, h, p.km, nil)
	w, n := r.sequencedLocked(st, nil, 1<<State, notice{set: true, one: sc})
	return w, n, true
}

// updateState is Owner.Update of a state scope: optimistic (see above),
// else the locked path.
func (o *Owner) updateState(sc Scope, ps []pair) error {
	r := o.r
	k := scopeKey(sc.Type, sc.Subtype)
	h := hashKey(k)
	var p prepared
	built := p.prepare(r.pub.Load(), o.name, k, h, ps)
	if f := r.beforeInstall; f != nil {
		f()
	}
	r.mu.Lock()
	var w func() error
	var n notice
	installed := false
	if built {
		w, n, installed = r.installLocked(o, sc, k, h, &p)
	}
	if !installed {
		w, n = r.mutateLocked(func(t *txn) error { return o.put(t, sc, ps) })
	}
	r.mu.Unlock()
	n.send(r.hub)
	return w()
}
