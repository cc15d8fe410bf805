package core

import (
	"fmt"
	"unicode/utf8"
)

// RestoreSnapshot builds the snapshot that Snapshot{}.Apply(m) builds, in
// bulk: how a checkpoint or a whole view from the wire is rebuilt. m may
// hold only MutSet ops (each scope, layer and key at most once; runs of one
// owner may be split over several ops) and MutMeta ops (applied after every
// key is in place, in op order). Every map of the view, of each layer and
// of the owner index is built once from its complete key set, each
// effective value is merged once, and no map is copied key by key.
//
// Trust boundary: the values of m must already be in normal form
// (NormalizeValues) — what the codec's decoder produces — and are stored
// as they are, not normalised or copied again. Everything else is checked
// as Apply checks it (scope, layer, owner, non-empty UTF-8 keys, a key set
// twice, metadata of a key that no layer holds, version range), and an
// error matching ErrInvalidScope, ErrInvalidLayer, ErrInvalidOwner or
// ErrInvalidValue names the first bad op. m.Binds are applied as Apply
// applies them (R35).
func RestoreSnapshot(m *Mutation) (Snapshot, error) {
	b := restorer{seq: m.Seq, scopes: map[Scope]*restoreScope{}, owned: map[string][]hleaf[struct{}]{}, binds: m.Binds, pending: m, orgs: map[string]*origin{}}
	if !m.Time.IsZero() {
		b.now = m.Time.UnixNano()
	}
	for i, op := range m.Ops {
		if err := b.op(op); err != nil {
			return Snapshot{}, fmt.Errorf("op %d (%s): %w", i, op.Kind, err)
		}
	}
	st, err := b.build()
	if err != nil {
		return Snapshot{}, err
	}
	return Snapshot{st}, nil
}

type restorer struct {
	seq    uint64
	now    int64
	scopes map[Scope]*restoreScope
	order  []*restoreScope
	owned  map[string][]hleaf[struct{}]
	metas  []MutationOp
	binds  []Bind
	// pending carries the applies pending at the snapshot (R44), restored
	// as Apply restores them (m.Applies; m.Finish must be empty).
	pending *Mutation
	// orgs are the owners' origins, by name.
	orgs map[string]*origin
}

// restoreScope collects the keys of one scope: layers[0] the state
// bucket's, layers[l] config layer l's.
type restoreScope struct {
	sc     Scope
	k      string
	layers [NumLayers + 1][]hleaf[entry]
}

func (b *restorer) op(op MutationOp) error {
	if err := checkOp(op); err != nil {
		return err
	}
	switch op.Kind {
	case MutSet:
	case MutMeta:
		b.metas = append(b.metas, op)
		return nil
	default:
		return fmt.Errorf("%w: a snapshot is rebuilt from set and meta ops only", ErrInvalidValue)
	}
	if len(op.Values) == 0 {
		return nil
	}
	rs := b.scopes[op.Scope]
	if rs == nil {
		k := scopeKey(op.Scope.Type, op.Scope.Subtype)
		rs = &restoreScope{sc: op.Scope, k: k}
		b.scopes[op.Scope] = rs
		b.order = append(b.order, rs)
	}
	li := op.Layer // 0 in the state bucket
	org := b.origin(op.Owner)
	for key, v := range op.Values {
		if key == "" {
			return invalid(nil, "empty top-level key")
		}
		if !utf8.ValidString(key) {
			return invalid(nil, "top-level key %q is not valid UTF-8", key)
		}
		rs.layers[li] = append(rs.layers[li], hleaf[entry]{key: key, val: entry{val: v, org: org}})
		if op.Owner != "" {
			ik := ownedIndexKey(op.Scope, op.Layer, key)
			b.owned[op.Owner] = append(b.owned[op.Owner], hleaf[struct{}]{key: ik})
		}
	}
	return nil
}

func (b *restorer) build() (*state, error) {
	metas := map[Scope][]MutationOp{}
	for _, op := range b.metas {
		if len(op.Meta) > 0 || len(op.Keys) > 0 {
			if b.scopes[op.Scope] == nil {
				return nil, fmt.Errorf("%w: metadata for %s, which holds no keys", ErrInvalidValue, op.Scope)
			}
			metas[op.Scope] = append(metas[op.Scope], op)
		}
	}
	st := &state{seq: b.seq}
	var cfg cfgState
	var trees [2 + NumLayers][]hleaf[keysMap] // [0] state, [1] effective config, [1+l] layer l
	for _, rs := range b.order {
		var eff []hleaf[entry]
		if rs.sc.Bucket == State {
			// The state bucket is its own effective view: its entries carry
			// the metadata.
			eff = rs.layers[0]
			for i := range eff {
				b.created(&eff[i].val, 0)
			}
		} else {
			var lms [NumLayers]keysMap
			for i := range lms {
				km, dup, ok := buildHmap(rs.layers[i+1])
				if !ok {
					return nil, fmt.Errorf("%w: %s key %q set twice in layer %s", ErrInvalidValue, rs.sc, dup, Layer(i+1))
				}
				lms[i] = km
				if km.len() > 0 {
					trees[2+i] = append(trees[2+i], hleaf[keysMap]{key: rs.k, val: km})
				}
			}
			for i := NumLayers - 1; i >= 0; i-- {
				for _, l := range rs.layers[i+1] {
					if heldAbove(&lms, i, l.key) {
						continue
					}
					e, _ := effective(&lms, l.key)
					b.created(&e, e.meta.bits)
					eff = append(eff, hleaf[entry]{key: l.key, val: e})
				}
			}
		}
		if err := restoreMeta(rs.sc, eff, metas[rs.sc], &cfg.stale); err != nil {
			return nil, err
		}
		em, dup, ok := buildHmap(eff)
		if !ok {
			return nil, fmt.Errorf("%w: %s key %q set twice", ErrInvalidValue, rs.sc, dup)
		}
		if em.len() > 0 {
			i := 1
			if rs.sc.Bucket == State {
				i = 0
			}
			trees[i] = append(trees[i], hleaf[keysMap]{key: rs.k, val: em})
		}
	}
	st.buckets[State-1], _, _ = buildHmap(trees[0])
	st.buckets[Config-1], _, _ = buildHmap(trees[1])
	empty := cfg.stale == 0
	for i := range cfg.layers {
		cfg.layers[i], _, _ = buildHmap(trees[2+i])
		empty = empty && cfg.layers[i].len() == 0
	}
	owners := make([]hleaf[ownerInfo], 0, len(b.owned))
	for name, ks := range b.owned {
		// Unbound, as Apply leaves a name until a Bind (R35).
		oi := ownerInfo{org: b.origin(name)}
		for _, k := range ks {
			if sc, l, _ := parseOwned(k.key); journaledKey(sc, l) {
				oi.journaled++
			}
		}
		oi.keys, _, _ = buildHmap(ks) // unique once every scope's keys are
		owners = append(owners, hleaf[ownerInfo]{key: name, val: oi})
	}
	st.owners, _, _ = buildHmap(owners)
	if !empty {
		st.cfg = &cfg
	}
	if len(b.binds) > 0 || len(b.pending.Applies) > 0 || len(b.pending.Finish) > 0 {
		t := newTxn(st, false, b.seq, b.now)
		t.fixed, t.replay = true, true
		for i, bd := range b.binds {
			if err := applyBind(t, bd); err != nil {
				return nil, fmt.Errorf("bind %d: %w", i, err)
			}
		}
		if err := applyPending(t, b.pending); err != nil {
			return nil, err
		}
		st = t.finish(b.seq)
	}
	return st, nil
}

// restoreMeta applies the metadata ops of scope sc to its effective
// entries eff, as Apply's MutMeta does, counting new stale marks in stale.
func restoreMeta(sc Scope, eff []hleaf[entry], ops []MutationOp, stale *int) error {
	if len(ops) == 0 {
		return nil
	}
	at := make(map[string]int, len(eff))
	for i := range eff {
		at[eff[i].key] = i
	}
	for _, op := range ops {
		for key, m := range op.Meta {
			i, ok := at[key]
			if !ok {
				return errMetaKey(sc, key)
			}
			if err := eff[i].val.restoreMeta(sc, key, m); err != nil {
				return err
			}
		}
		for _, key := range op.Keys {
			i, ok := at[key]
			if !ok {
				return errStaleKey(sc, key)
			}
			if !eff[i].val.meta.stale() {
				eff[i].val.meta.setFlag(metaStale, true)
				*stale++
			}
		}
	}
	return nil
}

// created gives e the metadata of a key created by the restored mutation:
// what stamp gives a key that did not exist, with bits' layer and vol flag.
func (b *restorer) created(e *entry, bits uint64) {
	e.meta = meta{create: b.seq, mod: b.seq, modified: b.now, bits: bits &^ metaStale}
	e.meta.setVersion(1)
}

// origin returns the origin of owner that the restored keys and owner
// index share.
func (b *restorer) origin(owner string) *origin {
	o, ok := b.orgs[owner]
	if !ok {
		o = newOrigin(owner)
		b.orgs[owner] = o
	}
	return o
}

// heldAbove reports whether a layer above i holds key.
func heldAbove(lms *[NumLayers]keysMap, i int, key string) bool {
	for j := i + 1; j < NumLayers; j++ {
		if _, ok := lms[j].get(key); ok {
			return true
		}
	}
	return false
}
