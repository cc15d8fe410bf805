package core

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Snapshot is one immutable version of the whole global view (R3, R16) with
// the sequence number it reflects (R7). Taking one is O(1) and copies nothing;
// handing it to any number of subscribers costs nothing (R19). Accessors
// return copies, so no caller can alter shared state. The zero Snapshot is the
// empty view with Seq 0.
type Snapshot struct{ s *state }

func (s Snapshot) st() *state {
	if s.s == nil {
		return emptyState
	}
	return s.s
}

// Seq returns the sequence number of the last mutation the snapshot reflects.
func (s Snapshot) Seq() uint64 { return s.st().seq }

// Get returns a copy of the value of key in scope.
func (s Snapshot) Get(scope Scope, key string) (any, bool) {
	if !scope.Bucket.valid() {
		return nil, false
	}
	e, ok := s.st().scope(scope).get(key)
	if !ok {
		return nil, false
	}
	return copyValue(e.val), true
}

// Owner returns the owner name of key in scope (R9).
func (s Snapshot) Owner(scope Scope, key string) (string, bool) {
	if !scope.Bucket.valid() {
		return "", false
	}
	e, ok := s.st().scope(scope).get(key)
	return e.owner(), ok
}

// Values returns a copy of the values map of scope, nil when it is empty.
func (s Snapshot) Values(scope Scope) Values {
	if !scope.Bucket.valid() {
		return nil
	}
	return valuesOf(s.st().scope(scope))
}

func valuesOf(km keysMap) Values {
	if km.len() == 0 {
		return nil
	}
	out := make(Values, km.len())
	km.each(func(l *hleaf[entry]) bool { out[l.key] = copyValue(l.val.val); return true })
	return out
}

// Len returns the number of keys in bucket b (0: both buckets).
func (s Snapshot) Len(b Bucket) int {
	n := 0
	for _, bk := range bucketsOf(b) {
		s.st().bucket(bk).each(func(l *hleaf[keysMap]) bool { n += l.val.len(); return true })
	}
	return n
}

// Scopes returns the non-empty scopes of bucket b (0: both) in text order.
func (s Snapshot) Scopes(b Bucket) []Scope {
	var out []Scope
	for _, bk := range bucketsOf(b) {
		out = append(out, s.st().scopesOf(bk)...)
	}
	return out
}

// Owners returns the sorted names of the owners that hold keys.
func (s Snapshot) Owners() []string {
	var out []string
	s.st().owners.each(func(l *hleaf[ownerInfo]) bool { out = append(out, l.key); return true })
	slices.Sort(out)
	return out
}

// Holds reports whether owner holds any key in bucket b (0: either bucket),
// in any layer.
func (s Snapshot) Holds(owner string, b Bucket) bool { return s.st().holds(owner, b) }

// HoldsIn reports whether owner holds any key in config layer l (0: in the
// state bucket).
func (s Snapshot) HoldsIn(owner string, l Layer) bool {
	oi, ok := s.st().owners.get(owner)
	if !ok {
		return false
	}
	return !oi.keys.each(func(lf *hleaf[struct{}]) bool {
		held := ownedLayer(lf.key) == l && (l != 0 || ownedBucket(lf.key) == State)
		return !held
	})
}

// Map returns a copy of the global view as nested maps (R3):
// {"state": {type: {subtype: {key: value}}}, "config": {…}}. Empty buckets
// are left out (R5).
func (s Snapshot) Map() map[string]any {
	out := map[string]any{}
	for _, bk := range bucketsOf(0) {
		scopes := s.st().bucket(bk)
		if scopes.len() == 0 {
			continue
		}
		tm := map[string]any{}
		scopes.each(func(l *hleaf[keysMap]) bool {
			sc := splitScopeKey(bk, l.key)
			sm, _ := tm[sc.Type].(map[string]any)
			if sm == nil {
				sm = map[string]any{}
				tm[sc.Type] = sm
			}
			vm := make(map[string]any, l.val.len())
			l.val.each(func(e *hleaf[entry]) bool { vm[e.key] = copyValue(e.val.val); return true })
			sm[sc.Subtype] = vm
			return true
		})
		out[bk.String()] = tm
	}
	return out
}

// Walk calls fn for every key of bucket b (0: both buckets) of the
// effective view, scopes in text order and keys sorted within a scope.
// value is shared with the snapshot and must not be modified (copy it to
// keep it). fn's error stops the walk and is returned.
func (s Snapshot) Walk(b Bucket, fn func(scope Scope, key, owner string, value any) error) error {
	st := s.st()
	for _, bk := range bucketsOf(b) {
		if err := walkScopes(st.bucket(bk), bk, func(sc Scope, l *hleaf[entry]) error {
			return fn(sc, l.key, l.val.owner(), l.val.val)
		}); err != nil {
			return err
		}
	}
	return nil
}

// WalkLayer is Walk over config layer l's own keys (R37), or the state
// bucket for l = 0.
func (s Snapshot) WalkLayer(l Layer, fn func(scope Scope, key, owner string, value any) error) error {
	if l != 0 && !l.Valid() {
		return fmt.Errorf("%w: %d", ErrInvalidLayer, uint8(l))
	}
	b := Config
	if l == 0 {
		b = State
	}
	return walkScopes(s.st().tree(b, l), b, func(sc Scope, lf *hleaf[entry]) error {
		return fn(sc, lf.key, lf.val.owner(), lf.val.val)
	})
}

// WalkMeta calls fn with the metadata (R42) of every key of bucket b (0:
// both) of the effective view, in Walk's order. volatile reports that the
// value depends on a layer that is never journaled (default or override),
// so that after a restart it may differ: a checkpoint records it.
func (s Snapshot) WalkMeta(b Bucket, fn func(scope Scope, key string, m KeyMeta, volatile bool) error) error {
	st := s.st()
	for _, bk := range bucketsOf(b) {
		if err := walkScopes(st.bucket(bk), bk, func(sc Scope, l *hleaf[entry]) error {
			return fn(sc, l.key, l.val.keyMeta(), l.val.meta.vol() || l.val.meta.stale())
		}); err != nil {
			return err
		}
	}
	return nil
}

func walkScopes(m scopesMap, b Bucket, fn func(Scope, *hleaf[entry]) error) error {
	type scopeKeys struct {
		sc Scope
		km keysMap
	}
	scopes := make([]scopeKeys, 0, m.len())
	m.each(func(l *hleaf[keysMap]) bool {
		scopes = append(scopes, scopeKeys{splitScopeKey(b, l.key), l.val})
		return true
	})
	slices.SortFunc(scopes, func(x, y scopeKeys) int { return compareScopes(x.sc, y.sc) })
	for _, sl := range scopes {
		sc := sl.sc
		for _, l := range sl.km.sorted() {
			if err := fn(sc, l); err != nil {
				return err
			}
		}
	}
	return nil
}

// Meta returns the metadata of key in scope (R42).
func (s Snapshot) Meta(scope Scope, key string) (KeyMeta, bool) {
	if !scope.Bucket.valid() {
		return KeyMeta{}, false
	}
	e, ok := s.st().scope(scope).get(key)
	if !ok {
		return KeyMeta{}, false
	}
	return e.keyMeta(), true
}

// Origin returns the layer and owner that supply the effective value of
// key in scope (R38): the highest layer holding it. State keys have layer
// 0; keys of default and fleet the owner "".
func (s Snapshot) Origin(scope Scope, key string) (Layer, string, bool) {
	if !scope.Bucket.valid() {
		return 0, "", false
	}
	e, ok := s.st().scope(scope).get(key)
	return e.meta.layer(), e.owner(), ok
}

// LayerValues returns a copy of layer l's own values of config scope scope
// (R38), nil when the layer holds none there (or scope is not config).
func (s Snapshot) LayerValues(l Layer, scope Scope) Values {
	if scope.Bucket != Config || !l.Valid() {
		return nil
	}
	return valuesOf(s.st().layerScope(l, scope))
}

// LayerOwner returns the owner of key in layer l of config scope scope.
func (s Snapshot) LayerOwner(l Layer, scope Scope, key string) (string, bool) {
	if scope.Bucket != Config || !l.Valid() {
		return "", false
	}
	e, ok := s.st().layerScope(l, scope).get(key)
	return e.owner(), ok
}

// LayerScopes returns the config scopes that layer l holds keys in, in
// text order.
func (s Snapshot) LayerScopes(l Layer) []Scope {
	if !l.Valid() {
		return nil
	}
	var out []Scope
	s.st().lay().layers[l-1].each(func(lf *hleaf[keysMap]) bool {
		out = append(out, splitScopeKey(Config, lf.key))
		return true
	})
	slices.SortFunc(out, compareScopes)
	return out
}

// Apply returns the snapshot with m applied, without permission checks, and
// sequence number m.Seq: how recovery replays the journal and how a client
// rebuilds a snapshot from the wire. Metadata of the keys it changes takes
// m.Seq and m.Time (R42), so replaying a journal restores it. Ops are
// checked for shape (valid scope, layer and kind, an owner where one is
// needed and none in Default and Fleet, normalised values) and an error
// matching ErrInvalidScope, ErrInvalidLayer, ErrInvalidOwner or
// ErrInvalidValue names the first bad op; s is never modified.
//
// Names that get their first key from m are unbound until m.Binds binds
// them (R35); a Bind must name an owner that holds journaled keys once
// the ops are applied and an Unbind one that holds none (ErrInvalidOwner
// otherwise), so that a journal can never bind a name to keys it does not
// hold. A name left unbound (restored from records written before
// bindings were journaled) may be acted for by any uid until BindUnbound
// binds it.
func (s Snapshot) Apply(m *Mutation) (Snapshot, error) { return s.apply(m, false) }

// apply is Apply; with layers, ApplyLayers.
func (s Snapshot) apply(m *Mutation, layers bool) (Snapshot, error) {
	return s.applyIdx(m, layers, nil)
}

// applyIdx is apply with the owner index's nodes in idx changed in place
// (a Replay's; nil: only the nodes this record creates).
func (s Snapshot) applyIdx(m *Mutation, layers bool, idx edits) (Snapshot, error) {
	t := newTxn(s.st(), false, m.Seq, 0)
	t.idx = idx
	t.fixed = true
	t.replay = true
	t.layers = layers
	// Nobody sees t's maps until it returns, and s is never changed: the
	// nodes the replay creates are changed in place, not copied per key.
	t.edits = newEdits()
	if !m.Time.IsZero() {
		t.now = m.Time.UnixNano()
	}
	for i, op := range m.Ops {
		if err := applyOp(t, op); err != nil {
			return s, fmt.Errorf("op %d (%s): %w", i, op.Kind, err)
		}
	}
	for i, b := range m.Binds {
		if err := applyBind(t, b); err != nil {
			return s, fmt.Errorf("bind %d: %w", i, err)
		}
	}
	if err := applyPending(t, m); err != nil {
		return s, err
	}
	return Snapshot{t.finish(m.Seq)}, nil
}

// applyBind applies one binding change of a record (R35).
func applyBind(t *txn, b Bind) error {
	if err := validOwner(b.Name); err != nil {
		return err
	}
	oi, ok := t.st.owners.get(b.Name)
	if b.Unbind {
		if oi.journaled > 0 {
			return fmt.Errorf("%w: unbind of %q, which holds %d journaled keys", ErrInvalidOwner, b.Name, oi.journaled)
		}
		return nil
	}
	if !ok || oi.journaled == 0 {
		return fmt.Errorf("%w: binding of %q, which holds no journaled key", ErrInvalidOwner, b.Name)
	}
	oi.uid, oi.bound = b.UID, true
	t.st.owners = t.st.owners.set(b.Name, oi)
	t.changed = true
	return nil
}

// Binding returns the uid that owner name is bound to (R35): the uid of
// the session that gave it its first key, for as long as it holds any
// key. ok is false for a name that holds no key, or that was restored
// unbound (see Apply).
func (s Snapshot) Binding(name string) (uid uint32, ok bool) {
	oi, held := s.st().owners.get(name)
	if !held || !oi.bound {
		return 0, false
	}
	return oi.uid, true
}

// Bindings returns the bindings (R35) of the names that hold keys in
// journaled layers (fleet, saved, runtime): those that a checkpoint keeps,
// sorted by name; and, in unbound, the sorted names among them that hold
// no binding (restored from records written before bindings).
func (s Snapshot) Bindings() (binds []Bind, unbound []string) {
	s.st().owners.each(func(l *hleaf[ownerInfo]) bool {
		switch {
		case l.val.journaled == 0:
		case l.val.bound:
			binds = append(binds, Bind{Name: l.key, UID: l.val.uid})
		default:
			unbound = append(unbound, l.key)
		}
		return true
	})
	slices.SortFunc(binds, func(a, b Bind) int { return strings.Compare(a.Name, b.Name) })
	slices.Sort(unbound)
	return binds, unbound
}

func applyOp(t *txn, op MutationOp) error {
	if err := checkOp(op); err != nil {
		return err
	}
	switch op.Kind {
	case MutMerge, MutSet:
		vals, _, err := NormalizeValues(op.Values)
		if err != nil {
			return err
		}
		if op.Kind == MutMerge {
			t.merge(op.Owner, op.Scope, op.Layer, vals)
		} else {
			t.set(op.Owner, op.Scope, op.Layer, vals)
		}
	case MutDelete:
		t.remove(op.Scope, op.Layer, op.Keys)
	case MutDrop:
		t.drop(op.Owner, op.Scope.Bucket, op.Layer)
	case MutMeta:
		return t.setMeta(op.Scope, op.Meta, op.Keys)
	default:
		return fmt.Errorf("%w: unknown op kind %d", ErrInvalidValue, op.Kind)
	}
	return nil
}

// checkOp checks the shape of op (not its values): a valid scope, a layer
// that fits bucket and kind, an owner where one is needed and none in
// Default and Fleet.
func checkOp(op MutationOp) error {
	if op.Kind == MutDrop {
		if !op.Scope.Bucket.valid() {
			return fmt.Errorf("%w: drop in bucket %s", ErrInvalidScope, op.Scope.Bucket)
		}
	} else if err := op.Scope.Validate(); err != nil {
		return err
	}
	switch {
	case op.Kind == MutMeta || op.Scope.Bucket == State:
		if op.Layer != 0 {
			return fmt.Errorf("%w: %s op in %s names layer %d", ErrInvalidLayer, op.Kind, op.Scope.Bucket, uint8(op.Layer))
		}
	case !op.Layer.Valid():
		return fmt.Errorf("%w: %d", ErrInvalidLayer, uint8(op.Layer))
	case (op.Kind == MutMerge || op.Kind == MutDrop) && !op.Layer.Writable():
		return fmt.Errorf("%w: %s op in layer %s", ErrReadOnlyLayer, op.Kind, op.Layer)
	}
	ownerless := op.Scope.Bucket == Config && (op.Layer == Default || op.Layer == Fleet)
	switch op.Kind {
	case MutMerge, MutSet:
		if ownerless {
			if op.Owner != "" {
				return fmt.Errorf("%w: %s keys have no owner, got %q", ErrInvalidOwner, op.Layer, op.Owner)
			}
		} else if err := validOwner(op.Owner); err != nil {
			return err
		}
	case MutDrop:
		return validOwner(op.Owner)
	}
	return nil
}

// validOwner checks R8's name rule: 1–128 bytes of UTF-8 without NUL.
func validOwner(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty name", ErrInvalidOwner)
	case len(name) > 128:
		return fmt.Errorf("%w: name is %d bytes, the limit is 128", ErrInvalidOwner, len(name))
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: name is not valid UTF-8", ErrInvalidOwner)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("%w: name contains NUL", ErrInvalidOwner)
	}
	return nil
}

// Change is one difference between two snapshots (R22).
type Change struct {
	Scope              Scope
	Key                string
	Old, New           any  // nil when absent
	Existed, Exists    bool // Old/New present
	OldOwner, NewOwner string
	// Layer: in Diff, the layer that supplies New (Old's when the key is
	// gone; 0 in the state bucket). In a change feed, the layer written.
	Layer Layer
}

// Diff lists what changed from old to new, sorted by scope text, then key.
// Sub-trees that both snapshots share are skipped without being walked, so
// the cost follows the size of the change, not of the view.
func Diff(old, new Snapshot) []Change {
	var out []Change
	a, b := old.st(), new.st()
	for _, bk := range bucketsOf(0) {
		diffMaps(a.bucket(bk), b.bucket(bk), func(x, y *hleaf[keysMap]) bool {
			k, ka, kb := leafKV(x, y)
			if ka.root == kb.root {
				return true
			}
			sc := splitScopeKey(bk, k)
			diffMaps(ka, kb, func(x, y *hleaf[entry]) bool {
				if x != nil && y != nil && x.val.owner() == y.val.owner() && x.val.meta.layer() == y.val.meta.layer() && equalValue(x.val.val, y.val.val) {
					return true // same leaf, copied along with a changed node
				}
				c := Change{Scope: sc}
				if x != nil {
					c.Key, c.Old, c.Existed, c.OldOwner, c.Layer = x.key, copyValue(x.val.val), true, x.val.owner(), x.val.meta.layer()
				}
				if y != nil {
					c.Key, c.New, c.Exists, c.NewOwner, c.Layer = y.key, copyValue(y.val.val), true, y.val.owner(), y.val.meta.layer()
				}
				out = append(out, c)
				return true
			})
			return true
		})
	}
	slices.SortFunc(out, func(x, y Change) int {
		if c := compareScopes(x.Scope, y.Scope); c != 0 {
			return c
		}
		return strings.Compare(x.Key, y.Key)
	})
	return out
}

func leafKV[V any](x, y *hleaf[V]) (key string, a, b V) {
	if x != nil {
		key, a = x.key, x.val
	}
	if y != nil {
		key, b = y.key, y.val
	}
	return key, a, b
}

// MarshalJSON renders the global view (R3) as JSON with keys sorted. JSON has
// no byte strings, NaN or infinities: []byte becomes a base64 string, NaN
// and ±Inf become the strings "NaN", "+Inf", "-Inf". Integers are exact.
func (s Snapshot) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	writeJSON(&buf, s.Map(), false, nil) // never fails when not exact
	return buf.Bytes(), nil
}

// ValueJSON renders one value as MarshalJSON does.
func ValueJSON(v any) []byte {
	var buf bytes.Buffer
	writeJSON(&buf, v, false, nil) // never fails when not exact
	return buf.Bytes()
}

// ErrNotJSON: a value that JSON cannot hold exactly (ExactJSON).
var ErrNotJSON = errors.New("core: value has no exact JSON form")

// ExactJSON renders v (in normal form) as JSON that FromJSON reads back as
// exactly v, types included: keys sorted, a float always with a '.' or an
// exponent, an integer never. A value JSON cannot hold so — bytes, NaN,
// ±Inf, a uint64 that fits an int64 (it would read back as int64) — is an
// error matching ErrNotJSON naming its key path.
func ExactJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := writeJSON(&buf, v, true, nil); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeJSON writes v; exact is ExactJSON's mode (path: the keys leading to
// v, for its errors), else MarshalJSON's, which never fails.
func writeJSON(buf *bytes.Buffer, v any, exact bool, path valuePath) error {
	notJSON := func(what string) error {
		return fmt.Errorf("%w: %s is %s", ErrNotJSON, path, what)
	}
	switch x := v.(type) {
	case nil:
		buf.WriteString("null")
	case bool:
		buf.WriteString(strconv.FormatBool(x))
	case int64:
		buf.WriteString(strconv.FormatInt(x, 10))
	case uint64:
		if exact && x <= math.MaxInt64 {
			return notJSON(fmt.Sprintf("the uint64 %d, which JSON gives back as an int64", x))
		}
		buf.WriteString(strconv.FormatUint(x, 10))
	case float64:
		switch {
		case exact && (math.IsNaN(x) || math.IsInf(x, 0)):
			return notJSON(fmt.Sprintf("the float %v", x))
		case math.IsNaN(x):
			buf.WriteString(`"NaN"`)
		case math.IsInf(x, 1):
			buf.WriteString(`"+Inf"`)
		case math.IsInf(x, -1):
			buf.WriteString(`"-Inf"`)
		default:
			b, _ := json.Marshal(x)
			if exact && !bytes.ContainsAny(b, ".eE") {
				b = append(b, ".0"...)
			}
			buf.Write(b)
		}
	case string:
		b, _ := json.Marshal(x)
		buf.Write(b)
	case []byte:
		if exact {
			return notJSON(fmt.Sprintf("%d bytes", len(x)))
		}
		buf.WriteByte('"')
		buf.WriteString(base64.StdEncoding.EncodeToString(x))
		buf.WriteByte('"')
	case []any:
		buf.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeJSON(buf, e, exact, append(path, "["+strconv.Itoa(i)+"]")); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			b, _ := json.Marshal(k)
			buf.Write(b)
			buf.WriteByte(':')
			if err := writeJSON(buf, x[k], exact, append(path, k)); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	default:
		if exact {
			return notJSON(fmt.Sprintf("a %T", v))
		}
		b, err := json.Marshal(x)
		if err != nil {
			b = []byte("null")
		}
		buf.Write(b)
	}
	return nil
}
