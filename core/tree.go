package core

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// The global view is, per bucket, a persistent map from scope (type and
// subtype, see scopeKey) to the scope's persistent map of keys. A scope that
// loses its last key is removed (R5); types exist only through their scopes,
// so no empty type is ever left either.
//
// The config bucket is kept twice: each layer (R37) has its own map of
// scopes, written by owners and by SetDefaults/SetFleet, and the effective
// view (R38) is a materialised map of the merged values with their
// metadata (R42), recomputed for exactly the keys a mutation touched. Readers,
// Diff and subscriptions look at the effective view only.
type (
	entry struct {
		val  any     // normalised, immutable
		org  *origin // owner name (R9; "" in Default and Fleet), shared by the owner's keys
		meta meta    // effective view and state only; zero in layers
	}
	keysMap   = hmap[entry]
	scopesMap = hmap[keysMap]
	// ownedMap indexes what one owner holds: the set of its
	// ownedIndexKey(scope, layer, key). The index key says all there is to
	// know (see parseOwned); the leaves hold nothing else, 24 bytes instead
	// of 80 with a copy of scope, layer and key (issue #14's footprint).
	ownedMap  = hmap[struct{}]
	ownersMap = hmap[ownerInfo]
)

// ownerInfo is what the registry knows of one owner name that holds keys:
// the keys (ownedMap) and its uid binding (R35). A name is bound from the
// mutation that gives it its first key, in any layer or bucket, to the uid
// of the session that wrote it, until it holds no key at all; so the entry
// and the binding live and die together.
type ownerInfo struct {
	keys      ownedMap
	org       *origin // the name's origin, which its entries share
	uid       uint32  // the uid the name is bound to, if bound
	bound     bool    // false only for names restored from records without bindings (before R35's journaled bindings)
	journaled int     // keys in journaled config layers (R41): the binding is journaled while this is above 0
}

// scopeKey is a scope's key in its bucket's map: type, NUL, subtype. Types
// and subtypes contain no NUL (R1), so it is unique and splits back.
func scopeKey(typ, subtype string) string { return typ + "\x00" + subtype }

func splitScopeKey(b Bucket, k string) Scope {
	typ, sub, _ := strings.Cut(k, "\x00")
	return Scope{b, typ, sub}
}

// state is one immutable version of the registry: the state bucket, the
// config layers and effective view, the owner index and the sequence
// number it reflects. Published states are shared by every snapshot and
// subscriber that holds them and are never modified.
type state struct {
	seq     uint64
	buckets [2]scopesMap // [State-1]: state keys; [Config-1]: the effective config view
	owners  ownersMap
	// cfg holds the config layers and pending applies, behind a pointer
	// shared by every state until a mutation changes one of them: a
	// state-only mutation copies a state of 64 bytes, one size class, as
	// before layers (R42's budget for the flapping benchmark). nil: empty.
	cfg *cfgState
}

// cfgState is the part of a state that state-only mutations never change;
// immutable once published.
type cfgState struct {
	layers [NumLayers]scopesMap // config layer l at [l-1]
	stale  int                  // effective keys whose meta.stale is set
	// applies are the pending applies (R44), oldest first; copied on
	// write, never modified in place.
	applies []*PendingApply
}

var emptyState = &state{}

var emptyLayers = &cfgState{}

// lay returns the config layers and pending applies (never nil).
func (s *state) lay() *cfgState {
	if s.cfg == nil {
		return emptyLayers
	}
	return s.cfg
}

// layW returns the config layers and pending applies for writing: copied
// once per mutation from the base state's.
func (t *txn) layW() *cfgState {
	if t.st.cfg == nil || t.st.cfg == t.base.cfg {
		c := *t.st.lay()
		t.st.cfg = &c
	}
	return t.st.cfg
}

func (s *state) bucket(b Bucket) scopesMap { return s.buckets[b-1] }

// tree returns the map that writes of bucket b and layer l go to.
func (s *state) tree(b Bucket, l Layer) scopesMap {
	if b == State {
		return s.buckets[State-1]
	}
	return s.lay().layers[l-1]
}

func (s *state) scope(sc Scope) keysMap {
	k := scopeKey(sc.Type, sc.Subtype)
	return s.scopeAt(sc.Bucket, k, hashKey(k))
}

// scopeAt is scope by scope key and its hash, for callers that look the
// same scope up and then set it.
func (s *state) scopeAt(b Bucket, k string, h uint64) keysMap { return scopeIn(s.bucket(b), k, h) }

func scopeIn(m scopesMap, k string, h uint64) keysMap {
	if l := m.leafH(k, h); l != nil {
		return l.val
	}
	return keysMap{}
}

// layerScope returns layer l's keys of config scope sc.
func (s *state) layerScope(l Layer, sc Scope) keysMap {
	k := scopeKey(sc.Type, sc.Subtype)
	return scopeIn(s.lay().layers[l-1], k, hashKey(k))
}

// ownedIndexKey is unique per (scope, layer, key): bucket and layer digits,
// type, NUL, subtype, NUL, key. Type and subtype contain no NUL (R1), so it
// splits back (parseOwned); the key may contain anything.
func ownedIndexKey(sc Scope, l Layer, key string) string {
	return string([]byte{'0' + byte(sc.Bucket), '0' + byte(l)}) + sc.Type + "\x00" + sc.Subtype + "\x00" + key
}

// ownedBucket and ownedLayer read an owner index key's bucket and layer (0
// for state).
func ownedBucket(ik string) Bucket { return Bucket(ik[0] - '0') }
func ownedLayer(ik string) Layer   { return Layer(ik[1] - '0') }

// parseOwned splits an owner index key back into scope, layer and key;
// the strings share ik's memory.
func parseOwned(ik string) (sc Scope, l Layer, key string) {
	typ, rest, _ := strings.Cut(ik[2:], "\x00")
	sub, key, _ := strings.Cut(rest, "\x00")
	return Scope{ownedBucket(ik), typ, sub}, ownedLayer(ik), key
}

// txn is a working copy of a state being mutated. It collects the config ops
// that describe it for the log. Nothing it builds is visible until the caller
// publishes the state that finish returns.
type txn struct {
	st      state
	base    *state // the state before this mutation
	changed bool
	// record says whether config ops are collected (only when a log is attached).
	record bool
	// seq is the sequence number the mutation gets if it is effective;
	// now its wall-clock time in Unix nanoseconds, read on first use (R42).
	seq uint64
	now int64
	// edits: nodes this transaction created and changes in place (see
	// hmap.setE); nil, the default, copies every node on a path. Only a
	// transaction whose intermediate maps nobody else can see sets it
	// (Snapshot.Apply, a batch of state updates).
	edits edits
	reg   *Registry // the live registry's coarse clock; nil: time.Now
	// The scopes changed, for the notifier: one (if !many) or several.
	one           Scope
	touched, many bool
	buckets       uint8 // 1<<Bucket for each bucket touched (Stats)
	// uid binds owner names that get their first key (R35): the session's.
	uid uint32
	txnCold
}

// txnCold is the part of a txn that a state-only update never sets: what
// goes in a record, and the replay's switches. The registry's reused txn
// (Registry.scratch) clears it only after a mutation that collected
// something (txn.collected), so that a state update resets only the fields
// above (R42's budget for the flapping benchmark).
type txnCold struct {
	ops   []MutationOp
	fixed bool // replay: now is the record's time, never the clock
	// layers: ApplyLayers; the effective view is not maintained.
	layers bool
	// replay: names that get their first key stay unbound until the
	// record's Binds bind them (Snapshot.Apply).
	replay bool
	// bindNames lists the names whose journaled keys went from none to some
	// or back, or whose binding changed: candidates for the record's Binds.
	bindNames []string
	// started is the apply this mutation starts (R44); finished the
	// applies it ends (confirmed or undone), sorted. Both go in its record.
	started  *PendingApply
	finished []uint64
	// idx: as edits, for the owner index only, shared by the records of
	// one Replay (see replay.go); nil: edits.
	idx edits
}

// collected reports whether the mutation collected anything for a record:
// config ops, binding candidates, an apply started or finished. Only the
// Registry's reused txn relies on it (fixed, layers, replay and idx are
// never set there).
func (t *txn) collected() bool {
	return t.ops != nil || t.bindNames != nil || t.started != nil || t.finished != nil
}

// journaledKey reports whether a key of sc in layer l is journaled (R41).
func journaledKey(sc Scope, l Layer) bool { return sc.Bucket == Config && l.Journaled() }

// bindTouched notes that name's journaled binding may change.
func (t *txn) bindTouched(name string) {
	if !slices.Contains(t.bindNames, name) {
		t.bindNames = append(t.bindNames, name)
	}
}

// binds returns the binding changes of the mutation for its record (R35),
// sorted by name: a Bind for each name that now holds journaled keys and
// held none before, or was bound otherwise before; an Unbind for each name
// that held journaled keys and holds none now.
func (t *txn) binds() []Bind {
	if len(t.bindNames) == 0 {
		return nil
	}
	var out []Bind
	for _, name := range t.bindNames {
		before, _ := t.base.owners.get(name)
		after, _ := t.st.owners.get(name)
		switch {
		case after.journaled > 0 && after.bound && (before.journaled == 0 || !before.bound || before.uid != after.uid):
			out = append(out, Bind{Name: name, UID: after.uid})
		case after.journaled == 0 && before.journaled > 0:
			out = append(out, Bind{Name: name, Unbind: true})
		}
	}
	slices.SortFunc(out, func(a, b Bind) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// touch notes that sc changed.
func (t *txn) touch(sc Scope) {
	t.buckets |= 1 << sc.Bucket
	switch {
	case !t.touched:
		t.one, t.touched = sc, true
	case t.one != sc:
		t.many = true
	}
}

func newTxn(base *state, record bool, seq uint64, now int64) *txn {
	return &txn{st: *base, base: base, record: record, seq: seq, now: now}
}

func (t *txn) finish(seq uint64) *state {
	st := t.st
	st.seq = seq
	return &st
}

// clock returns the mutation's time, reading the wall clock once.
func (t *txn) clock() int64 {
	if t.now == 0 && !t.fixed {
		if t.reg != nil {
			t.now = t.reg.coarseNow()
		} else {
			t.now = time.Now().UnixNano()
		}
	}
	return t.now
}

// stamp sets the metadata (R42) and origin of ne, the new entry of key
// of scope k (hash h) in bucket b (the state bucket or the effective config
// view), owned by owner; ne.meta holds its layer and vol flag. cur is what
// the working copy holds for the key, if hadCur. Only the net effect of
// the mutation counts: if the key is as it was before the mutation (same
// value, layer and owner), its metadata stays; otherwise ModSeq becomes
// this mutation's and Version grows by one, however often a transaction
// touched the key.
func (t *txn) stamp(b Bucket, k string, h uint64, key string, ne, cur *entry, hadCur bool) {
	orig, had := cur, hadCur
	if !hadCur || cur.meta.mod == t.seq { // changed earlier in this mutation: look at the base
		orig, had = nil, false
		if lf := scopeIn(t.base.bucket(b), k, h).leaf(key); lf != nil {
			orig, had = &lf.val, true
		}
	}
	if had && !orig.meta.stale() && orig.owner() == ne.owner() && orig.meta.layer() == ne.meta.layer() && equalValue(orig.val, ne.val) {
		m := orig.meta
		m.setFlag(metaVol, ne.meta.vol())
		ne.meta = m
		return
	}
	create, version := t.seq, uint64(1)
	if had {
		create, version = orig.meta.create, orig.meta.version()+1
	}
	ne.meta = meta{create: create, mod: t.seq, modified: t.clock(), bits: ne.meta.bits &^ metaStale}
	ne.meta.setVersion(version)
}

// setTree stores km as scope k (hash h) of the map of bucket b, layer l
// (the state bucket, a config layer, or with l = 0 in Config the effective
// view). k may live on the caller's stack: the map keeps the key it already
// stores, or a copy.
func (t *txn) setTree(b Bucket, l Layer, k string, h uint64, km keysMap) {
	p := &t.st.buckets[b-1]
	if b == Config && l != 0 {
		p = &t.layW().layers[l-1]
	}
	scopes := *p
	switch lf := scopes.leafH(k, h); {
	case km.len() == 0:
		scopes = scopes.delH(k, h)
	case lf != nil:
		scopes = scopes.setE(lf.key, h, km, t.edits)
	default:
		scopes = scopes.setE(strings.Clone(k), h, km, t.edits)
	}
	*p = scopes
}

// ownerAdd notes in the owner index that owner holds key of sc in layer
// l. A name's first key binds it to t.uid (R35). A mutation is atomic: a
// name that held keys before it and lost them all on the way keeps the
// binding it had (a replay too, which sees only the journaled keys).
func (t *txn) ownerAdd(owner string, sc Scope, l Layer, key string) *origin {
	if owner == "" { // Default and Fleet keys have no owner
		return nil
	}
	oi, ok := t.st.owners.get(owner)
	if !ok {
		oi = ownerInfo{uid: t.uid, bound: !t.replay}
		if was, held := t.base.owners.get(owner); held {
			oi.uid, oi.bound, oi.org = was.uid, was.bound, was.org
		}
	}
	if oi.org == nil {
		oi.org = newOrigin(owner)
	}
	n := oi.keys.len()
	ik := ownedIndexKey(sc, l, key)
	ed := t.idxEdits()
	oi.keys = oi.keys.setE(ik, hashKey(ik), struct{}{}, ed)
	if oi.keys.len() > n && journaledKey(sc, l) {
		if oi.journaled == 0 {
			t.bindTouched(owner)
		}
		oi.journaled++
	}
	t.st.owners = t.st.owners.setE(owner, hashKey(owner), oi, ed)
	return oi.org
}

func (t *txn) ownerDel(owner string, sc Scope, l Layer, key string) {
	if owner == "" {
		return
	}
	oi, _ := t.st.owners.get(owner)
	n := oi.keys.len()
	oi.keys = oi.keys.del(ownedIndexKey(sc, l, key))
	if oi.keys.len() < n && journaledKey(sc, l) {
		oi.journaled--
		if oi.journaled == 0 {
			t.bindTouched(owner)
		}
	}
	t.putOwner(owner, oi)
}

// putOwner stores oi as owner's entry, or drops the entry (and with it the
// binding, R35) when the name holds no key any more.
func (t *txn) putOwner(owner string, oi ownerInfo) {
	if oi.keys.len() == 0 {
		t.st.owners = t.st.owners.del(owner)
	} else {
		t.st.owners = t.st.owners.set(owner, oi)
	}
}

// log collects op for the Log: config ops of journaled layers only (R41).
func (t *txn) log(op MutationOp) {
	if t.record && op.Scope.Bucket == Config && op.Layer.Journaled() {
		if op.Values != nil {
			// The caller's top-level map may be passed through by
			// NormalizeValues; the record gets its own.
			op.Values = maps.Clone(op.Values)
		}
		t.ops = append(t.ops, op)
	}
}

// effective computes the effective entry of key from the layers' keys of
// its scope (R38): the highest layer holding it supplies layer and owner;
// where it and the layers below hold maps, they deep-merge (R4).
func effective(lms *[NumLayers]keysMap, key string) (entry, bool) {
	top := -1
	var e entry
	for i := NumLayers - 1; i >= 0; i-- {
		if x, ok := lms[i].get(key); ok {
			top, e = i, x
			break
		}
	}
	if top < 0 {
		return entry{}, false
	}
	out := entry{val: e.val, org: e.org}
	out.meta.setLayer(Layer(top + 1))
	out.meta.setFlag(metaVol, Layer(top+1).volatile())
	if _, isMap := e.val.(map[string]any); isMap {
		// Fold the layers below that hold maps, lowest first. A non-map
		// below a map is replaced by everything above it.
		first := top
		for i := top - 1; i >= 0; i-- {
			x, ok := lms[i].get(key)
			if !ok {
				continue
			}
			if _, m := x.val.(map[string]any); !m {
				break
			}
			first = i
		}
		if first < top {
			var buf [NumLayers]any
			vs := buf[:0]
			for i := first; i <= top; i++ {
				if x, ok := lms[i].get(key); ok {
					vs = append(vs, x.val)
					if Layer(i + 1).volatile() {
						out.meta.setFlag(metaVol, true)
					}
				}
			}
			out.val = mergeAll(vs)
		}
	}
	return out, true
}

// settle recomputes the effective entries of keys of config scope sc
// (scope key k, hash h) after their layers changed (R38, R42).
func (t *txn) settle(sc Scope, k string, h uint64, keys []string) {
	if t.layers {
		return
	}
	var lms [NumLayers]keysMap
	for i := range lms {
		lms[i] = scopeIn(t.st.lay().layers[i], k, h)
	}
	eff := scopeIn(t.st.buckets[Config-1], k, h)
	if len(keys) >= settleBulk && 2*len(keys) >= eff.len() {
		t.settleBulk(sc, k, h, &lms, eff, keys)
		return
	}
	changed := false
	for _, key := range keys {
		ne, ok := effective(&lms, key)
		cur, had := eff.get(key)
		if had && cur.meta.stale() {
			t.layW().stale--
		}
		if !ok {
			if had {
				eff = eff.del(key)
				changed = true
			}
			continue
		}
		t.stamp(Config, k, h, key, &ne, &cur, had)
		if had && cur.meta == ne.meta && cur.owner() == ne.owner() && equalValue(cur.val, ne.val) {
			continue
		}
		eff = eff.setE(key, hashKey(key), ne, t.edits)
		changed = true
	}
	if changed {
		t.touch(sc)
		t.setTree(Config, 0, k, h, eff)
	}
}

// settleBulk is settle for a change to many keys of a scope (SetDefaults,
// a large import): the scope's effective map is built once from its whole
// key set instead of being copied key by key.
func (t *txn) settleBulk(sc Scope, k string, h uint64, lms *[NumLayers]keysMap, eff keysMap, keys []string) {
	type change struct {
		e    entry
		gone bool
	}
	changes := make(map[string]change, len(keys))
	for _, key := range keys {
		if _, dup := changes[key]; dup {
			continue
		}
		ne, ok := effective(lms, key)
		cur, had := eff.get(key)
		if had && cur.meta.stale() {
			t.layW().stale--
		}
		if !ok {
			if had {
				changes[key] = change{gone: true}
			}
			continue
		}
		t.stamp(Config, k, h, key, &ne, &cur, had)
		if had && cur.meta == ne.meta && cur.owner() == ne.owner() && equalValue(cur.val, ne.val) {
			continue
		}
		changes[key] = change{e: ne}
	}
	if len(changes) == 0 {
		return
	}
	ls := make([]hleaf[entry], 0, eff.len()+len(changes))
	eff.each(func(l *hleaf[entry]) bool {
		c, ok := changes[l.key]
		switch {
		case !ok:
			ls = append(ls, *l)
		case !c.gone:
			ls = append(ls, hleaf[entry]{key: l.key, val: c.e})
		}
		if ok {
			delete(changes, l.key)
		}
		return true
	})
	for key, c := range changes { // keys new to the view
		if !c.gone {
			ls = append(ls, hleaf[entry]{key: key, val: c.e})
		}
	}
	em, _, _ := buildHmap(ls) // distinct: each key once
	t.touch(sc)
	t.setTree(Config, 0, k, h, em)
}

// settleBulk is used for at least this many keys, and at least half the
// scope's.
var settleBulk = 16 // a variable for tests

// foreign returns the sorted keys among keys that exist in km with an owner
// other than owner.
func foreign(km keysMap, owner string, keys []string) []string {
	var out []string
	for _, k := range keys {
		if e, ok := km.get(k); ok && e.owner() != owner {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// pair is one top-level key of an update and its normalised value.
type pair struct {
	key string
	val any
}

// pairsOf lists the entries of vals into buf's storage.
func pairsOf(vals Values, buf []pair) []pair {
	for k, v := range vals {
		buf = append(buf, pair{k, v})
	}
	return buf
}

// lookup is what a scope held for one key of an update (the pair at the
// same index): the key's hash and a pointer into the scope's leaf (nil: no
// such key), 16 bytes instead of the pair and a copy of the entry (R42's
// budget for the flapping benchmark: the buffer zeroed per update is
// small). A leaf of a published node never changes; one of a node the
// transaction changes in place (txn.edits) may move when a key is inserted
// beside it, which mergeLookups allows for.
type lookup struct {
	hash uint64
	old  *entry
}

// lookupAll looks every key of ps up in km, once, into buf's storage: the
// i-th lookup is ps[i]'s.
func lookupAll(km keysMap, ps []pair, buf []lookup) []lookup {
	for _, p := range ps {
		h := hashKey(p.key)
		var old *entry
		if lf := km.leafH(p.key, h); lf != nil {
			old = &lf.val
		}
		buf = append(buf, lookup{h, old})
	}
	return buf
}

// merge deep-merges vals into sc (R4) in layer l (0 for state); new keys
// belong to owner. It does no permission check.
func (t *txn) merge(owner string, sc Scope, l Layer, vals Values) {
	k := scopeKey(sc.Type, sc.Subtype)
	h := hashKey(k)
	km := scopeIn(t.st.tree(sc.Bucket, l), k, h)
	var pbuf [8]pair
	var lbuf [8]lookup
	ps, ls := pbuf[:0], lbuf[:0]
	if len(vals) > len(pbuf) { // one allocation each, not append's doublings
		ps, ls = make([]pair, 0, len(vals)), make([]lookup, 0, len(vals))
	}
	ps = pairsOf(vals, ps)
	t.mergeLookups(owner, sc, l, k, h, km, ps, lookupAll(km, ps, ls))
}

// mergeLookups is merge with the update's keys ps already looked up (ls) in
// km, the current keys of the scope sc (scope key k, hash h) in layer l.
func (t *txn) mergeLookups(owner string, sc Scope, l Layer, k string, h uint64, km keysMap, ps []pair, ls []lookup) {
	changed, inserted := false, false
	var kbuf [8]string
	keys := kbuf[:0]
	for i := range ls {
		lk, p := &ls[i], &ps[i]
		old := lk.old
		if old != nil && inserted && t.edits != nil {
			// An insertion into a node changed in place may have moved
			// the leaf: look it up again (the key itself is unchanged).
			old = &km.leafH(p.key, lk.hash).val
		}
		var e entry
		switch {
		case old == nil:
			e = entry{val: p.val, org: t.ownerAdd(owner, sc, l, p.key)}
			if sc.Bucket == State {
				t.stamp(State, k, h, p.key, &e, nil, false)
			}
			inserted = true
		default:
			nv := mergeValue(old.val, p.val)
			if equalValue(nv, old.val) {
				continue
			}
			e = entry{val: nv, org: old.org}
			if sc.Bucket == State {
				if old.meta.mod != t.seq && !old.meta.stale() {
					// The value changed, owner and layer stay: what
					// stamp gives, without comparing again.
					e.meta = old.meta.next(t.seq, t.clock())
				} else {
					t.stamp(State, k, h, p.key, &e, old, true)
				}
			}
		}
		km = km.setE(p.key, lk.hash, e, t.edits)
		if sc.Bucket == Config {
			keys = append(keys, p.key)
		}
		changed = true
	}
	if !changed {
		return
	}
	t.touch(sc)
	t.setTree(sc.Bucket, l, k, h, km)
	t.changed = true
	if sc.Bucket == Config {
		t.settle(sc, k, h, keys)
		if t.record && l.Journaled() {
			vals := make(Values, len(ls))
			for _, p := range ps {
				vals[p.key] = p.val
			}
			t.ops = append(t.ops, MutationOp{Kind: MutMerge, Layer: l, Scope: sc, Owner: owner, Values: vals})
		}
	}
}

// set stores vals in sc, layer l, as they are (no merge), owned by owner.
func (t *txn) set(owner string, sc Scope, l Layer, vals Values) {
	k := scopeKey(sc.Type, sc.Subtype)
	h := hashKey(k)
	km := scopeIn(t.st.tree(sc.Bucket, l), k, h)
	var keys []string
	for key, v := range vals {
		old, ok := km.get(key)
		if ok && old.owner() == owner && equalValue(old.val, v) {
			continue
		}
		if ok && old.owner() != owner {
			t.ownerDel(old.owner(), sc, l, key)
		}
		e := entry{val: v, org: old.org}
		if !ok || old.owner() != owner {
			e.org = t.ownerAdd(owner, sc, l, key)
		}
		if sc.Bucket == State {
			t.stamp(State, k, h, key, &e, &old, ok)
		}
		km = km.setE(key, hashKey(key), e, t.edits)
		keys = append(keys, key)
	}
	if len(keys) > 0 {
		t.touch(sc)
		t.setTree(sc.Bucket, l, k, h, km)
		t.changed = true
		if sc.Bucket == Config {
			t.settle(sc, k, h, keys)
		}
		t.log(MutationOp{Kind: MutSet, Layer: l, Scope: sc, Owner: owner, Values: vals})
	}
}

// remove deletes keys from sc in layer l; missing keys are ignored. No
// permission check.
func (t *txn) remove(sc Scope, l Layer, keys []string) {
	k := scopeKey(sc.Type, sc.Subtype)
	h := hashKey(k)
	km := scopeIn(t.st.tree(sc.Bucket, l), k, h)
	var removed []string
	for _, key := range keys {
		e, ok := km.get(key)
		if !ok {
			continue
		}
		km = km.del(key)
		t.ownerDel(e.owner(), sc, l, key)
		removed = append(removed, key)
	}
	if len(removed) > 0 {
		t.touch(sc)
		t.setTree(sc.Bucket, l, k, h, km)
		t.changed = true
		if sc.Bucket == Config {
			t.settle(sc, k, h, removed)
		}
		t.log(MutationOp{Kind: MutDelete, Layer: l, Scope: sc, Keys: removed})
	}
}

// drop deletes every key that owner holds in bucket b: in the state
// bucket, or in the named config layers (R13, R14).
func (t *txn) drop(owner string, b Bucket, layers ...Layer) {
	oi, ok := t.st.owners.get(owner)
	if !ok {
		return
	}
	om := oi.keys
	type where struct {
		sc Scope
		l  Layer
	}
	byScope := map[where][]string{}
	om.each(func(lf *hleaf[struct{}]) bool {
		if ownedBucket(lf.key) == b && (b == State || slices.Contains(layers, ownedLayer(lf.key))) {
			sc, l, key := parseOwned(lf.key)
			w := where{sc, l}
			byScope[w] = append(byScope[w], key)
		}
		return true
	})
	if len(byScope) == 0 {
		return
	}
	dropped := map[Layer]bool{}
	for w, keys := range byScope {
		k := scopeKey(w.sc.Type, w.sc.Subtype)
		h := hashKey(k)
		km := scopeIn(t.st.tree(b, w.l), k, h)
		for _, key := range keys {
			km = km.del(key)
			om = om.del(ownedIndexKey(w.sc, w.l, key))
			if journaledKey(w.sc, w.l) {
				oi.journaled--
			}
		}
		t.touch(w.sc)
		t.setTree(b, w.l, k, h, km)
		if b == Config {
			t.settle(w.sc, k, h, keys)
		}
		dropped[w.l] = true
	}
	if oi.journaled == 0 {
		t.bindTouched(owner)
	}
	oi.keys = om
	t.putOwner(owner, oi)
	t.changed = true
	for _, l := range layers {
		if dropped[l] {
			t.log(MutationOp{Kind: MutDrop, Layer: l, Scope: Scope{Bucket: b}, Owner: owner})
		}
	}
}

// setMeta restores the metadata of keys of scope sc as recorded
// (checkpoints, wire snapshots): sequence numbers, version and time; layer
// and owner follow from the layers. stale lists keys whose recorded value
// depended on a layer that is not journaled.
func (t *txn) setMeta(sc Scope, ms map[string]KeyMeta, stale []string) error {
	k := scopeKey(sc.Type, sc.Subtype)
	h := hashKey(k)
	eff := scopeIn(t.st.bucket(sc.Bucket), k, h)
	for key, m := range ms {
		e, ok := eff.get(key)
		if !ok {
			return errMetaKey(sc, key)
		}
		if err := e.restoreMeta(sc, key, m); err != nil {
			return err
		}
		eff = eff.setE(key, hashKey(key), e, t.edits)
	}
	for _, key := range stale {
		e, ok := eff.get(key)
		if !ok {
			return errStaleKey(sc, key)
		}
		if !e.meta.stale() {
			e.meta.setFlag(metaStale, true)
			t.layW().stale++
			eff = eff.setE(key, hashKey(key), e, t.edits)
		}
	}
	t.setTree(sc.Bucket, 0, k, h, eff)
	t.changed = true
	return nil
}

// restoreMeta sets the recorded sequence numbers, version and time m of
// key of scope sc; layer, owner and flags stay.
func (e *entry) restoreMeta(sc Scope, key string, m KeyMeta) error {
	if m.Version >= 1<<56 {
		return fmt.Errorf("%w: %s key %q: version %d out of range", ErrInvalidValue, sc, key, m.Version)
	}
	e.meta.create, e.meta.mod = m.CreateSeq, m.ModSeq
	e.meta.setVersion(m.Version)
	e.meta.modified = 0
	if !m.Modified.IsZero() {
		e.meta.modified = m.Modified.UnixNano()
	}
	return nil
}

func errMetaKey(sc Scope, key string) error {
	return fmt.Errorf("%w: metadata for key %q that %s does not hold", ErrInvalidValue, key, sc)
}

func errStaleKey(sc Scope, key string) error {
	return fmt.Errorf("%w: stale mark for key %q that %s does not hold", ErrInvalidValue, key, sc)
}

// settleStale recomputes every key whose metadata is stale (after a
// recovery whose checkpoint had values from unjournaled layers).
func (t *txn) settleStale() {
	if t.st.lay().stale == 0 {
		return
	}
	byScope := map[string][]string{}
	t.st.buckets[Config-1].each(func(l *hleaf[keysMap]) bool {
		l.val.each(func(e *hleaf[entry]) bool {
			if e.val.meta.stale() {
				byScope[l.key] = append(byScope[l.key], e.key)
			}
			return true
		})
		return true
	})
	for k, keys := range byScope {
		t.settle(splitScopeKey(Config, k), k, hashKey(k), keys)
	}
	t.changed = true
}

// sameView reports whether a and b hold the same keys with the same values
// and owners in the state bucket and every config layer (the effective view
// and the owner index follow from those). Shared sub-trees are skipped, so
// the cost follows the size of the difference.
func sameView(a, b *state) bool {
	same := func(x, y scopesMap) bool {
		return diffMaps(x, y, func(x, y *hleaf[keysMap]) bool {
			return x != nil && y != nil && diffMaps(x.val, y.val, func(x, y *hleaf[entry]) bool {
				return x != nil && y != nil && x.val.owner() == y.val.owner() && equalValue(x.val.val, y.val.val)
			})
		})
	}
	if !same(a.buckets[State-1], b.buckets[State-1]) {
		return false
	}
	if a.cfg == b.cfg {
		return true
	}
	for i := range a.lay().layers {
		if !same(a.lay().layers[i], b.lay().layers[i]) {
			return false
		}
	}
	return true
}

// ownedKeys returns the sorted keys of sc that owner holds.
func ownedKeys(km keysMap, owner string) []string {
	var out []string
	km.each(func(l *hleaf[entry]) bool {
		if l.val.owner() == owner {
			out = append(out, l.key)
		}
		return true
	})
	slices.Sort(out)
	return out
}

// holds reports whether owner holds any key in bucket b (0: either), in
// any layer.
func (s *state) holds(owner string, b Bucket) bool {
	oi, ok := s.owners.get(owner)
	if !ok {
		return false
	}
	if b == 0 {
		return true
	}
	return !oi.keys.each(func(l *hleaf[struct{}]) bool { return ownedBucket(l.key) != b })
}

// regionChanged reports whether anything inside pattern p may differ between
// a and b. It compares node pointers and skips shared sub-trees, so it costs
// nothing for untouched regions; it may report a change for a region that was
// rewritten to equal content, never the reverse.
func regionChanged(a, b *state, p Pattern) bool {
	if a == b {
		return false
	}
	for bi := range 2 {
		if p.Bucket != 0 && int(p.Bucket)-1 != bi {
			continue
		}
		sa, sb := a.buckets[bi], b.buckets[bi]
		if sa.root == sb.root {
			continue
		}
		if p.Type != "" && p.Subtype != "" {
			k := scopeKey(p.Type, p.Subtype)
			ka, _ := sa.get(k)
			kb, _ := sb.get(k)
			if ka.root != kb.root {
				return true
			}
			continue
		}
		changed := !diffMaps(sa, sb, func(x, y *hleaf[keysMap]) bool {
			var k string
			var ka, kb keysMap
			if x != nil {
				k, ka = x.key, x.val
			}
			if y != nil {
				k, kb = y.key, y.val
			}
			if ka.root == kb.root {
				return true
			}
			sc := splitScopeKey(Bucket(bi+1), k)
			return !p.Matches(sc) // a changed scope inside the pattern stops the walk
		})
		if changed {
			return true
		}
	}
	return false
}

// scopesOf lists the scopes of bucket b in text order.
func (s *state) scopesOf(b Bucket) []Scope {
	var out []Scope
	s.bucket(b).each(func(l *hleaf[keysMap]) bool {
		out = append(out, splitScopeKey(b, l.key))
		return true
	})
	slices.SortFunc(out, compareScopes)
	return out
}

// bucketsOf lists the buckets selected by b (0: both) in text order.
func bucketsOf(b Bucket) []Bucket {
	if b != 0 {
		return []Bucket{b}
	}
	return []Bucket{Config, State} // "config" < "state"
}
