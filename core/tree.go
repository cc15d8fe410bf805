package core

import (
	"maps"
	"slices"
	"strings"
)

// The global view is, per bucket, a persistent map from scope (type and
// subtype, see scopeKey) to the scope's persistent map of keys. A scope that
// loses its last key is removed (R5); types exist only through their scopes,
// so no empty type is ever left either.
type (
	entry struct {
		val   any    // normalised, immutable
		owner string // owner name (R9)
	}
	keysMap   = hmap[entry]
	scopesMap = hmap[keysMap]
	// ownedMap indexes what one owner holds: ownedIndexKey(scope, key) → where.
	ownedMap  = hmap[ownedKey]
	ownersMap = hmap[ownedMap]
)

// scopeKey is a scope's key in its bucket's map: type, NUL, subtype. Types
// and subtypes contain no NUL (R1), so it is unique and splits back.
func scopeKey(typ, subtype string) string { return typ + "\x00" + subtype }

func splitScopeKey(b Bucket, k string) Scope {
	typ, sub, _ := strings.Cut(k, "\x00")
	return Scope{b, typ, sub}
}

type ownedKey struct {
	scope Scope
	key   string
}

// state is one immutable version of the registry: both buckets, the owner
// index and the sequence number it reflects. Published states are shared
// by every snapshot and subscriber that holds them and are never modified.
type state struct {
	seq     uint64
	buckets [2]scopesMap
	owners  ownersMap
}

var emptyState = &state{}

func (s *state) bucket(b Bucket) scopesMap { return s.buckets[b-1] }

func (s *state) scope(sc Scope) keysMap {
	k := scopeKey(sc.Type, sc.Subtype)
	return s.scopeAt(sc.Bucket, k, hashKey(k))
}

// scopeAt is scope by scope key and its hash, for callers that look the
// same scope up and then set it.
func (s *state) scopeAt(b Bucket, k string, h uint64) keysMap {
	if l := s.bucket(b).leafH(k, h); l != nil {
		return l.val
	}
	return keysMap{}
}

// ownedIndexKey is unique per (scope, key): type and subtype contain no NUL.
func ownedIndexKey(sc Scope, key string) string {
	return string(rune('0'+sc.Bucket)) + sc.Type + "\x00" + sc.Subtype + "\x00" + key
}

// txn is a working copy of a state being mutated. It collects the config ops
// that describe it for the log. Nothing it builds is visible until the caller
// publishes the state that finish returns.
type txn struct {
	st      state
	ops     []MutationOp
	changed bool
	// record says whether config ops are collected (only when a log is attached).
	record bool
	// The scopes changed, for the notifier: one (if !many) or several.
	one           Scope
	touched, many bool
}

// touch notes that sc changed.
func (t *txn) touch(sc Scope) {
	switch {
	case !t.touched:
		t.one, t.touched = sc, true
	case t.one != sc:
		t.many = true
	}
}

func newTxn(base *state, record bool) *txn { return &txn{st: *base, record: record} }

func (t *txn) finish(seq uint64) *state {
	st := t.st
	st.seq = seq
	return &st
}

func (t *txn) setScope(sc Scope, km keysMap) {
	t.touch(sc)
	k := scopeKey(sc.Type, sc.Subtype)
	t.setScopeAt(sc.Bucket, k, hashKey(k), km)
}

// setScopeAt is setScope by scope key and hash. k may live on the caller's
// stack: the map keeps the key it already stores, or a copy.
func (t *txn) setScopeAt(b Bucket, k string, h uint64, km keysMap) {
	scopes := t.st.buckets[b-1]
	switch l := scopes.leafH(k, h); {
	case km.len() == 0:
		scopes = scopes.delH(k, h)
	case l != nil:
		scopes = scopes.setH(l.key, h, km)
	default:
		scopes = scopes.setH(strings.Clone(k), h, km)
	}
	t.st.buckets[b-1] = scopes
}

func (t *txn) ownerAdd(owner string, sc Scope, key string) {
	om, _ := t.st.owners.get(owner)
	t.st.owners = t.st.owners.set(owner, om.set(ownedIndexKey(sc, key), ownedKey{sc, key}))
}

func (t *txn) ownerDel(owner string, sc Scope, key string) {
	om, _ := t.st.owners.get(owner)
	om = om.del(ownedIndexKey(sc, key))
	if om.len() == 0 {
		t.st.owners = t.st.owners.del(owner)
	} else {
		t.st.owners = t.st.owners.set(owner, om)
	}
}

func (t *txn) log(op MutationOp) {
	if t.record && op.Scope.Bucket == Config {
		if op.Values != nil {
			// The caller's top-level map may be passed through by
			// NormalizeValues; the record gets its own.
			op.Values = maps.Clone(op.Values)
		}
		t.ops = append(t.ops, op)
	}
}

// foreign returns the sorted keys among keys that exist in km with an owner
// other than owner.
func foreign(km keysMap, owner string, keys []string) []string {
	var out []string
	for _, k := range keys {
		if e, ok := km.get(k); ok && e.owner != owner {
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

// lookup is one key of an update with what the scope held for it.
type lookup struct {
	pair
	old    entry
	exists bool
}

// lookupAll looks every key of ps up in km, once, into buf's storage.
func lookupAll(km keysMap, ps []pair, buf []lookup) []lookup {
	for _, p := range ps {
		old, ok := km.get(p.key)
		buf = append(buf, lookup{p, old, ok})
	}
	return buf
}

// merge deep-merges vals into sc (R4); new keys belong to owner. It does no
// permission check.
func (t *txn) merge(owner string, sc Scope, vals Values) {
	k := scopeKey(sc.Type, sc.Subtype)
	h := hashKey(k)
	km := t.st.scopeAt(sc.Bucket, k, h)
	var pbuf [8]pair
	var lbuf [8]lookup
	t.mergeLookups(owner, sc, k, h, km, lookupAll(km, pairsOf(vals, pbuf[:0]), lbuf[:0]))
}

// mergeLookups is merge with the update's keys already looked up in km, the
// current keys of the scope sc (scope key k, hash h).
func (t *txn) mergeLookups(owner string, sc Scope, k string, h uint64, km keysMap, ls []lookup) {
	changed := false
	for _, l := range ls {
		if l.exists {
			nv := mergeValue(l.old.val, l.val)
			if equalValue(nv, l.old.val) {
				continue
			}
			km = km.set(l.key, entry{nv, l.old.owner})
		} else {
			km = km.set(l.key, entry{l.val, owner})
			t.ownerAdd(owner, sc, l.key)
		}
		changed = true
	}
	if !changed {
		return
	}
	t.touch(sc)
	t.setScopeAt(sc.Bucket, k, h, km)
	t.changed = true
	if t.record && sc.Bucket == Config {
		vals := make(Values, len(ls))
		for _, l := range ls {
			vals[l.key] = l.val
		}
		t.ops = append(t.ops, MutationOp{Kind: MutMerge, Scope: sc, Owner: owner, Values: vals})
	}
}

// set stores vals in sc as they are (no merge), owned by owner.
func (t *txn) set(owner string, sc Scope, vals Values) {
	km := t.st.scope(sc)
	changed := false
	for k, v := range vals {
		old, ok := km.get(k)
		if ok && old.owner == owner && equalValue(old.val, v) {
			continue
		}
		if ok && old.owner != owner {
			t.ownerDel(old.owner, sc, k)
		}
		if !ok || old.owner != owner {
			t.ownerAdd(owner, sc, k)
		}
		km = km.set(k, entry{v, owner})
		changed = true
	}
	if changed {
		t.setScope(sc, km)
		t.changed = true
		t.log(MutationOp{Kind: MutSet, Scope: sc, Owner: owner, Values: vals})
	}
}

// remove deletes keys from sc; missing keys are ignored. No permission check.
func (t *txn) remove(sc Scope, keys []string) {
	km := t.st.scope(sc)
	var removed []string
	for _, k := range keys {
		e, ok := km.get(k)
		if !ok {
			continue
		}
		km = km.del(k)
		t.ownerDel(e.owner, sc, k)
		removed = append(removed, k)
	}
	if len(removed) > 0 {
		t.setScope(sc, km)
		t.changed = true
		t.log(MutationOp{Kind: MutDelete, Scope: sc, Keys: removed})
	}
}

// drop deletes every key that owner holds in bucket b.
func (t *txn) drop(owner string, b Bucket) {
	om, ok := t.st.owners.get(owner)
	if !ok {
		return
	}
	byScope := map[Scope][]string{}
	om.each(func(l *hleaf[ownedKey]) bool {
		if l.val.scope.Bucket == b {
			byScope[l.val.scope] = append(byScope[l.val.scope], l.val.key)
		}
		return true
	})
	if len(byScope) == 0 {
		return
	}
	for sc, keys := range byScope {
		km := t.st.scope(sc)
		for _, k := range keys {
			km = km.del(k)
			om = om.del(ownedIndexKey(sc, k))
		}
		t.setScope(sc, km)
	}
	if om.len() == 0 {
		t.st.owners = t.st.owners.del(owner)
	} else {
		t.st.owners = t.st.owners.set(owner, om)
	}
	t.changed = true
	t.log(MutationOp{Kind: MutDrop, Scope: Scope{Bucket: b}, Owner: owner})
}

// sameView reports whether a and b hold the same keys with the same values
// and owners in both buckets (the owner index follows from those). Shared
// sub-trees are skipped, so the cost follows the size of the difference.
func sameView(a, b *state) bool {
	for i := range a.buckets {
		same := diffMaps(a.buckets[i], b.buckets[i], func(x, y *hleaf[keysMap]) bool {
			return x != nil && y != nil && diffMaps(x.val, y.val, func(x, y *hleaf[entry]) bool {
				return x != nil && y != nil && x.val.owner == y.val.owner && equalValue(x.val.val, y.val.val)
			})
		})
		if !same {
			return false
		}
	}
	return true
}

// ownedKeys returns the sorted keys of sc that owner holds.
func ownedKeys(km keysMap, owner string) []string {
	var out []string
	km.each(func(l *hleaf[entry]) bool {
		if l.val.owner == owner {
			out = append(out, l.key)
		}
		return true
	})
	slices.Sort(out)
	return out
}

// holds reports whether owner holds any key in bucket b (0: either).
func (s *state) holds(owner string, b Bucket) bool {
	om, ok := s.owners.get(owner)
	if !ok {
		return false
	}
	if b == 0 {
		return true
	}
	return !om.each(func(l *hleaf[ownedKey]) bool { return l.val.scope.Bucket != b })
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
