package codec

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sysreg/sysreg/core"
)

// SnapshotVersion is the format version of the checkpoints that
// EncodeSnapshot writes. DecodeSnapshot reads every version from 1 up to
// it: version 1 (before config layers), version 2 (keys per layer, and
// metadata) and version 3 (version 2 and the owner-uid bindings, R35).
const SnapshotVersion = 4

// WireSnapshotVersion is the format version of the whole views that
// EncodeSnapshot writes for the wire (protocol version 2 carries format 2):
// bindings are the daemon's access control, not part of the view, and
// stay out of it.
const WireSnapshotVersion = 2

// EncodeSnapshot returns the encoding of s (see "Snapshots" in the package
// documentation) with s.Seq(), selected by b:
//   - core.Config: a checkpoint — the journaled config layers (fleet,
//     saved, runtime; R41) and the metadata of the keys they hold;
//   - core.State: the state bucket with its metadata;
//   - 0: a whole view on the wire — the state bucket, all five config
//     layers and the metadata of every key.
//
// Scopes and keys are written in a canonical order, so equal snapshots
// encode to equal bytes. A checkpoint (format version 3) also holds the
// bindings of the names that hold journaled keys (core.Snapshot.Bindings);
// a name among them that is unbound (restored from records written before
// bindings, not yet migrated: the change feed's base may hold such) is
// left out and decodes unbound again. The other forms are format version 2.
func EncodeSnapshot(s core.Snapshot, b core.Bucket) ([]byte, error) {
	var layers []core.Layer
	switch b {
	case core.Config:
		layers = []core.Layer{core.Fleet, core.Saved, core.Runtime}
	case core.State:
		layers = []core.Layer{0}
	case 0:
		layers = []core.Layer{0, core.Default, core.Fleet, core.Saved, core.Runtime, core.Override}
	default:
		return nil, fmt.Errorf("encode snapshot: %w: %s", core.ErrInvalidScope, b)
	}
	walk := func(fn layerWalkFunc) error {
		for _, l := range layers {
			if err := s.WalkLayer(l, func(scope core.Scope, key, owner string, value any) error {
				return fn(l, scope, key, owner, value)
			}); err != nil {
				return err
			}
		}
		return nil
	}
	meta := func(fn metaFunc) error { return s.WalkMeta(b, fn) }
	if b != core.Config {
		return encodeSnapshot(WireSnapshotVersion, s.Seq(), walk, meta, nil, nil)
	}
	binds, _ := s.Bindings()
	pending := s.Pending()
	if len(pending) == 0 {
		return encodeSnapshot(3, s.Seq(), walk, meta, binds, nil)
	}
	return encodeSnapshot(SnapshotVersion, s.Seq(), walk, meta, binds, pending)
}

// layerWalkFunc receives one key of one layer (0: the state bucket).
type layerWalkFunc = func(l core.Layer, scope core.Scope, key, owner string, value any) error

// metaFunc is the callback of core.Snapshot.WalkMeta.
type metaFunc = func(scope core.Scope, key string, m core.KeyMeta, volatile bool) error

type snapEntry struct {
	key, owner string
	value      any
}

type snapMeta struct {
	key      string
	m        core.KeyMeta
	volatile bool
}

type snapScope struct {
	scope  core.Scope
	layers [core.NumLayers + 1][]snapEntry // by layer; [0]: state
	keys   map[string]bool                 // keys held in any layer written
	meta   []snapMeta
}

// encodeSnapshot encodes what walk and meta report, whatever order they
// report it in; a key reported twice in a layer of a scope is an error.
// Metadata of keys that no layer written holds is left out.
// Version 3 (checkpoints) appends binds; version 2 has none.
func encodeSnapshot(version, seq uint64, walk func(layerWalkFunc) error, meta func(metaFunc) error, binds []core.Bind, applies []core.PendingApply) ([]byte, error) {
	var (
		scopes []*snapScope
		index  = map[core.Scope]*snapScope{}
		size   int // a rough guess of the encoded size
	)
	err := walk(func(l core.Layer, scope core.Scope, key, owner string, value any) error {
		if int(l) > core.NumLayers {
			return fmt.Errorf("%w: layer %d", ErrInvalidMutation, uint8(l))
		}
		sc := index[scope]
		if sc == nil {
			sc = &snapScope{scope: scope, keys: map[string]bool{}}
			index[scope] = sc
			scopes = append(scopes, sc)
			size += 8 + len(scope.Type) + len(scope.Subtype)
		}
		sc.layers[l] = append(sc.layers[l], snapEntry{key, owner, value})
		sc.keys[key] = true
		size += 8 + len(key) + len(owner)
		return nil
	})
	if err == nil {
		err = meta(func(scope core.Scope, key string, m core.KeyMeta, volatile bool) error {
			if sc := index[scope]; sc != nil && sc.keys[key] {
				sc.meta = append(sc.meta, snapMeta{key, m, volatile})
				size += 32 + len(key)
			}
			return nil
		})
	}
	if err != nil {
		return nil, fmt.Errorf("encode snapshot %d: %w", seq, err)
	}
	slices.SortFunc(scopes, func(a, b *snapScope) int { return compareScopes(a.scope, b.scope) })

	buf := make([]byte, 0, 16+size+16*len(binds))
	switch {
	case version >= 4:
		buf = appendHead(buf, majorArray, 5)
	case version == 3:
		buf = appendHead(buf, majorArray, 4)
	default:
		buf = appendHead(buf, majorArray, 3)
	}
	buf = appendHead(buf, majorUint, version)
	buf = appendHead(buf, majorUint, seq)
	buf = appendHead(buf, majorArray, uint64(len(scopes)))
	for _, sc := range scopes {
		if buf, err = appendSnapScope(buf, sc); err != nil {
			return nil, fmt.Errorf("encode snapshot %d: %s: %w", seq, sc.scope, err)
		}
	}
	if version >= 3 {
		if buf, err = appendBinds(buf, binds, false); err != nil {
			return nil, fmt.Errorf("encode snapshot %d: %w", seq, err)
		}
	}
	if version >= 4 {
		for _, p := range applies {
			if p.ID > seq {
				return nil, fmt.Errorf("encode snapshot %d: %w: apply %d is newer than the snapshot", seq, ErrInvalidMutation, p.ID)
			}
		}
		if buf, err = appendApplies(buf, applies); err != nil {
			return nil, fmt.Errorf("encode snapshot %d: %w", seq, err)
		}
	}
	return buf, nil
}

func appendSnapScope(b []byte, sc *snapScope) ([]byte, error) {
	if err := sc.scope.Validate(); err != nil {
		return nil, err
	}
	bucket, _ := bucketNumber(sc.scope.Bucket) // valid: Validate checked it
	b = appendHead(b, majorArray, 5)
	b = appendHead(b, majorUint, bucket)
	b = appendText(b, sc.scope.Type)
	b = appendText(b, sc.scope.Subtype)
	n := 0
	for _, es := range sc.layers {
		if len(es) > 0 {
			n++
		}
	}
	b = appendHead(b, majorArray, uint64(n))
	for l, es := range sc.layers {
		if len(es) == 0 {
			continue
		}
		layer := core.Layer(l)
		if err := layerOK(sc.scope.Bucket, layer, core.MutSet); err != nil {
			return nil, err
		}
		b = appendHead(b, majorArray, 2)
		b = appendHead(b, majorUint, uint64(l))
		b = appendHead(b, majorArray, uint64(len(es)))
		// Walk reports keys sorted already; sorting a sorted slice is cheap.
		slices.SortFunc(es, func(a, b snapEntry) int { return strings.Compare(a.key, b.key) })
		for i, e := range es {
			if i > 0 && e.key == es[i-1].key {
				return nil, fmt.Errorf("%w: key %q reported twice in layer %s", ErrInvalidMutation, e.key, layer)
			}
			if err := checkName("key", e.key); err != nil {
				return nil, err
			}
			if ownerless(sc.scope.Bucket, layer) {
				if e.owner != "" {
					return nil, fmt.Errorf("%w: key %q: %s keys have no owner, got %q", ErrInvalidMutation, e.key, layer, e.owner)
				}
			} else if err := checkName("owner", e.owner); err != nil {
				return nil, fmt.Errorf("key %q: %w", e.key, err)
			}
			b = appendHead(b, majorArray, 3)
			b = appendText(b, e.key)
			b = appendText(b, e.owner)
			var err error
			if b, err = appendValue(b, e.value); err != nil {
				return nil, fmt.Errorf("key %q: %w", e.key, err)
			}
		}
	}
	slices.SortFunc(sc.meta, func(a, b snapMeta) int { return strings.Compare(a.key, b.key) })
	b = appendHead(b, majorArray, uint64(len(sc.meta)))
	for i, m := range sc.meta {
		if i > 0 && m.key == sc.meta[i-1].key {
			return nil, fmt.Errorf("%w: metadata of key %q reported twice", ErrInvalidMutation, m.key)
		}
		var ns int64
		if !m.m.Modified.IsZero() {
			ns = m.m.Modified.UnixNano()
		}
		b = appendHead(b, majorArray, 6)
		b = appendText(b, m.key)
		b = appendHead(b, majorUint, m.m.CreateSeq)
		b = appendHead(b, majorUint, m.m.ModSeq)
		b = appendHead(b, majorUint, m.m.Version)
		b = appendInt(b, ns)
		if m.volatile {
			b = append(b, cborTrue)
		} else {
			b = append(b, cborFalse)
		}
	}
	return b, nil
}

// compareScopes orders scopes by their text form "bucket/type/subtype"
// without building it. A type cannot contain '/', so two different types
// are decided within type+"/" and the subtype only matters on equal types.
func compareScopes(a, b core.Scope) int {
	if a.Bucket != b.Bucket {
		return strings.Compare(a.Bucket.String(), b.Bucket.String())
	}
	if a.Type == b.Type {
		return strings.Compare(a.Subtype, b.Subtype)
	}
	n := min(len(a.Type), len(b.Type))
	if c := strings.Compare(a.Type[:n], b.Type[:n]); c != 0 {
		return c
	}
	if len(a.Type) < len(b.Type) {
		return cmp.Compare('/', b.Type[n]) // a continues with '/'
	}
	return cmp.Compare(a.Type[n], '/')
}

// DecodeSnapshot decodes a snapshot written by EncodeSnapshot of any version
// up to SnapshotVersion and rebuilds it with core.RestoreSnapshot (in
// bulk; the decoder's values are in normal form, so they are not
// normalised again — see core's trust boundary): one
// core.MutSet op per run of keys of a scope and layer with the same owner,
// then one core.MutMeta op per scope with metadata. Config keys of a
// version-1 snapshot are read into the saved layer (R41's migration).
// Errors are as for DecodeMutation: a *VersionError (ErrVersion) or
// ErrMalformed. Scopes must come in text order, layers in ascending order
// and keys in byte order, each once.
func DecodeSnapshot(data []byte) (core.Snapshot, error) {
	m, err := snapshotMutation(data)
	if err != nil {
		return core.Snapshot{}, err
	}
	s, err := core.RestoreSnapshot(m)
	if err != nil {
		return core.Snapshot{}, fmt.Errorf("%w: snapshot %d: %v", ErrMalformed, m.Seq, err)
	}
	return s, nil
}

// snapshotMutation decodes a snapshot into the mutation that rebuilds it
// from an empty one.
func snapshotMutation(data []byte) (*core.Mutation, error) {
	d := decoder{data: data}
	m, err := d.snapshot()
	if err == nil {
		err = d.end()
	}
	if err != nil {
		return nil, malformed("snapshot", err)
	}
	return m, nil
}

func (d *decoder) snapshot() (*core.Mutation, error) {
	v, seq, err := d.envelope("snapshot", SnapshotVersion)
	if err != nil {
		return nil, err
	}
	n, err := d.arrayHead(9) // the smallest scope takes 9 bytes
	if err != nil {
		return nil, fmt.Errorf("snapshot %d: scopes: %w", seq, err)
	}
	m := &core.Mutation{Seq: seq}
	var prev core.Scope
	for i := range n {
		off := d.off
		k, err := d.arrayHead(1)
		if err != nil {
			return nil, fmt.Errorf("snapshot %d: scope %d: %w", seq, i, err)
		}
		want := 4
		if v >= 2 {
			want = 5
		}
		// Version 3 scopes are version 2's.
		if k != want {
			d.off = off
			return nil, d.errorf("snapshot %d: scope %d has %d fields, want %d", seq, i, k, want)
		}
		sc, err := d.scope()
		if err != nil {
			return nil, fmt.Errorf("snapshot %d: scope %d: %w", seq, i, err)
		}
		if i > 0 && compareScopes(prev, sc) >= 0 {
			d.off = off
			return nil, d.errorf("snapshot %d: scope %s after %s: out of order or repeated", seq, sc, prev)
		}
		prev = sc
		if v == 1 {
			l := core.Layer(0)
			if sc.Bucket == core.Config {
				l = core.Saved
			}
			m.Ops, err = d.snapEntries(sc, l, m.Ops)
		} else {
			m.Ops, err = d.snapScopeV2(sc, m.Ops)
		}
		if err != nil {
			return nil, fmt.Errorf("snapshot %d: %s: %w", seq, sc, err)
		}
	}
	if v >= 3 {
		if m.Binds, err = d.binds(false); err != nil {
			return nil, fmt.Errorf("snapshot %d: %w", seq, err)
		}
	}
	if v >= 4 {
		off := d.off
		if m.Applies, err = d.applies(); err != nil {
			return nil, fmt.Errorf("snapshot %d: %w", seq, err)
		}
		if len(m.Applies) > 0 && m.Applies[len(m.Applies)-1].ID > seq {
			d.off = off
			return nil, d.errorf("snapshot %d: apply %d is newer than the snapshot", seq, m.Applies[len(m.Applies)-1].ID)
		}
	}
	return m, nil
}

// snapScopeV2 reads the layers and metadata of scope sc.
func (d *decoder) snapScopeV2(sc core.Scope, ops []core.MutationOp) ([]core.MutationOp, error) {
	n, err := d.arrayHead(3) // the smallest layer takes 3 bytes
	if err != nil {
		return nil, fmt.Errorf("layers: %w", err)
	}
	if n == 0 {
		return nil, d.errorf("scope without layers")
	}
	keys := map[string]bool{}
	prev := -1
	for i := range n {
		off := d.off
		k, err := d.arrayHead(1)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		if k != 2 {
			d.off = off
			return nil, d.errorf("layer %d has %d fields, want 2", i, k)
		}
		l, err := d.layer(sc.Bucket, core.MutSet)
		if err != nil {
			return nil, err
		}
		if int(l) <= prev {
			d.off = off
			return nil, d.errorf("layer %s after layer %d: out of order or repeated", l, prev)
		}
		prev = int(l)
		first := len(ops)
		if ops, err = d.snapEntries(sc, l, ops); err != nil {
			return nil, fmt.Errorf("layer %s: %w", l, err)
		}
		for _, op := range ops[first:] {
			for k := range op.Values {
				keys[k] = true
			}
		}
	}
	mn, err := d.arrayHead(8) // the smallest meta entry takes 8 bytes
	if err != nil {
		return nil, fmt.Errorf("meta: %w", err)
	}
	if mn == 0 {
		return ops, nil
	}
	op := core.MutationOp{Kind: core.MutMeta, Scope: sc, Meta: make(map[string]core.KeyMeta, mn)}
	var prevKey string
	for i := range mn {
		off := d.off
		k, err := d.arrayHead(1)
		if err != nil {
			return nil, fmt.Errorf("meta %d: %w", i, err)
		}
		if k != 6 {
			d.off = off
			return nil, d.errorf("meta %d has %d fields, want 6", i, k)
		}
		key, err := d.nonEmptyText("key")
		if err != nil {
			return nil, fmt.Errorf("meta %d: %w", i, err)
		}
		if i > 0 && key <= prevKey {
			d.off = off
			return nil, d.errorf("meta of key %q after %q: out of order or repeated", key, prevKey)
		}
		prevKey = key
		if !keys[key] {
			d.off = off
			return nil, d.errorf("meta of key %q that no layer holds", key)
		}
		var km core.KeyMeta
		if km.CreateSeq, err = d.uint(); err != nil {
			return nil, fmt.Errorf("meta of %q: create seq: %w", key, err)
		}
		if km.ModSeq, err = d.uint(); err != nil {
			return nil, fmt.Errorf("meta of %q: mod seq: %w", key, err)
		}
		if km.Version, err = d.uint(); err != nil {
			return nil, fmt.Errorf("meta of %q: version: %w", key, err)
		}
		ns, err := d.int()
		if err != nil {
			return nil, fmt.Errorf("meta of %q: modified: %w", key, err)
		}
		if ns != 0 {
			km.Modified = time.Unix(0, ns)
		}
		if d.off >= len(d.data) || (d.data[d.off] != cborTrue && d.data[d.off] != cborFalse) {
			return nil, d.errorf("meta of %q: volatile is not a bool", key)
		}
		if d.data[d.off] == cborTrue {
			op.Keys = append(op.Keys, key)
		}
		d.off++
		op.Meta[key] = km
	}
	return append(ops, op), nil
}

// snapEntries reads the entries of scope sc in layer l (0: state) and
// appends their MutSet ops.
func (d *decoder) snapEntries(sc core.Scope, l core.Layer, ops []core.MutationOp) ([]core.MutationOp, error) {
	n, err := d.arrayHead(5) // the smallest entry takes 5 bytes
	if err != nil {
		return nil, fmt.Errorf("entries: %w", err)
	}
	if n == 0 {
		return nil, d.errorf("scope without keys")
	}
	noOwner := ownerless(sc.Bucket, l)
	var prevKey string
	for i := range n {
		off := d.off
		k, err := d.arrayHead(1)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		if k != 3 {
			d.off = off
			return nil, d.errorf("entry %d has %d fields, want 3", i, k)
		}
		key, err := d.nonEmptyText("key")
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		if i > 0 && key <= prevKey {
			d.off = off
			return nil, d.errorf("key %q after %q: out of order or repeated", key, prevKey)
		}
		prevKey = key
		var owner string
		if noOwner {
			if owner, err = d.text(); err == nil && owner != "" {
				err = d.errorf("%s keys have no owner, got %q", l, owner)
			}
		} else {
			owner, err = d.nonEmptyText("owner")
		}
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", key, err)
		}
		v, err := d.value(1)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", key, d.withPath(err))
		}
		if last := len(ops) - 1; i > 0 && ops[last].Owner == owner {
			ops[last].Values[key] = v
			continue
		}
		ops = append(ops, core.MutationOp{Kind: core.MutSet, Layer: l, Scope: sc, Owner: owner, Values: core.Values{key: v}})
	}
	return ops, nil
}
