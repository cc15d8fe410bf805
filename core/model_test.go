package core_test

// Model test (STYLE §6): random operation sequences run against core.Registry
// and against a plain-map model of SPEC rules R4–R15 written from the spec,
// not from core's code. After every step the test compares the whole view,
// every key's owner, the error (class, and Scope/Keys of a ReservedKeysError),
// the sequence number (R6, R7), core.Diff against the model's diff (R22), and
// the config view against a replay of everything the registry handed its Log
// (how recovery rebuilds config).
//
// Reproduce a failure with the seed it prints:
//
//	go test ./core -run 'TestModel$' -model.seed=N -model.seqs=1 -v
//
// or SYSREG_MODEL_SEED=N. -model.seqs and -model.steps size the run.

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sysreg/sysreg/core"
)

var (
	modelSeed  = flag.Uint64("model.seed", 0, "TestModel: base seed (0: from $SYSREG_MODEL_SEED, else random)")
	modelSeqs  = flag.Int("model.seqs", 0, "TestModel: number of random sequences (0: 10000, 500 with -short)")
	modelSteps = flag.Int("model.steps", 35, "TestModel: steps per sequence")
)

// ---------------------------------------------------------------------------
// A fake core.Log: records every mutation and acknowledges it from its own
// goroutine, in call order, as log.go's contract requires. (done may not be
// called synchronously from Append: Append runs under the registry's write
// lock and done takes it.)

type recLog struct {
	wake   chan struct{} // buffered 1: work is queued
	quit   chan struct{}
	exited chan struct{}

	mu        sync.Mutex // guards the fields below
	queue     []func()   // done calls not yet made, in order
	records   []*core.Mutation
	reserves  []uint64
	failFrom  int   // >0: the failFrom-th Append (1-based) and everything after fail
	failErr   error // the error they fail with
	encodeErr error // non-nil: the next Append returns it at once (an encoding error)
	appends   int
}

func newRecLog() *recLog {
	l := &recLog{wake: make(chan struct{}, 1), quit: make(chan struct{}), exited: make(chan struct{})}
	go l.run()
	return l
}

// Append records a deep copy of m: the registry's maps are only valid
// during the call (log.go).
func (l *recLog) Append(m *core.Mutation, done func(error)) error {
	l.mu.Lock()
	if l.encodeErr != nil {
		err := l.encodeErr
		l.encodeErr = nil
		l.mu.Unlock()
		return err // nothing queued, done never called
	}
	l.appends++
	var err error
	if l.failFrom > 0 && l.appends >= l.failFrom {
		err = l.failErr
	} else {
		l.records = append(l.records, mtCloneMutation(m))
	}
	l.queue = append(l.queue, func() { done(err) })
	l.mu.Unlock()
	l.kick()
	return nil
}

func (l *recLog) Reserve(seq uint64, done func(error)) {
	l.mu.Lock()
	var err error
	if l.failFrom > 0 && l.appends >= l.failFrom {
		err = l.failErr
	} else {
		l.reserves = append(l.reserves, seq)
	}
	l.queue = append(l.queue, func() { done(err) })
	l.mu.Unlock()
	l.kick()
}

func (l *recLog) kick() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *recLog) run() {
	defer close(l.exited)
	for {
		select {
		case <-l.wake:
			l.drain()
		case <-l.quit:
			l.drain()
			return
		}
	}
}

func (l *recLog) drain() {
	for {
		l.mu.Lock()
		batch := l.queue
		l.queue = nil
		l.mu.Unlock()
		if len(batch) == 0 {
			return
		}
		for _, f := range batch {
			f()
		}
	}
}

// Close stops the log's goroutine after acknowledging what is queued.
func (l *recLog) Close() {
	close(l.quit)
	<-l.exited
}

func (l *recLog) Records() []*core.Mutation {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.records)
}

// cloneMutation deep-copies m so that the test notices if the registry
// changes a mutation (or its values) after handing it over.
func mtCloneMutation(m *core.Mutation) *core.Mutation {
	c := &core.Mutation{Seq: m.Seq, Time: m.Time, Ops: make([]core.MutationOp, len(m.Ops)), Binds: slices.Clone(m.Binds), Finish: slices.Clone(m.Finish)}
	for _, a := range m.Applies { // values in Undo are immutable (normalised): a shallow copy of the slice is enough
		a.Undo = slices.Clone(a.Undo)
		c.Applies = append(c.Applies, a)
	}
	for i, op := range m.Ops {
		c.Ops[i] = core.MutationOp{Kind: op.Kind, Layer: op.Layer, Scope: op.Scope, Owner: op.Owner, Keys: slices.Clone(op.Keys)}
		if op.Values != nil {
			c.Ops[i].Values = mtDeepCopy(op.Values).(map[string]any)
		}
	}
	return c
}

func mtDeepCopy(v any) any {
	switch x := v.(type) {
	case []byte:
		return append([]byte{}, x...)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = mtDeepCopy(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = mtDeepCopy(e)
		}
		return out
	}
	return v
}

// ---------------------------------------------------------------------------
// The model: a plain map per place — a state scope, or a config scope in
// one layer (R37) — owners per key, live sessions and a sequence counter,
// with the rules written out from SPEC.md. The effective config view (R38)
// and the per-key metadata (R42) are computed here from the layers, without
// core's merge.

type mtEntry struct {
	val   any // normalised; never modified once stored
	owner string
}

// mtPlace is where a write lands: a state scope (layer 0) or a config
// scope in one layer.
type mtPlace struct {
	scope core.Scope
	layer core.Layer
}

func (p mtPlace) String() string {
	if p.layer == 0 {
		return p.scope.String()
	}
	return p.scope.String() + "@" + p.layer.String()
}

// mtEff is one key of the effective view: its value and origin.
type mtEff struct {
	val   any
	owner string
	layer core.Layer
}

// mtMeta is R42's metadata as the model tracks it (Modified is not modelled).
type mtMeta struct {
	create, mod, version uint64
}

type mtModel struct {
	data map[mtPlace]map[string]mtEntry
	live map[string]core.Layer // live session names → the layer they write
	seq  uint64
	meta map[core.Scope]map[string]mtMeta
	// effCache is eff's result; reset by every change of data.
	effCache map[core.Scope]map[string]mtEff
	binds    map[string]mtBinding // R35: every holder's binding (model_bind_test.go)
}

func newMtModel() *mtModel {
	return &mtModel{data: map[mtPlace]map[string]mtEntry{}, live: map[string]core.Layer{}, meta: map[core.Scope]map[string]mtMeta{}, binds: map[string]mtBinding{}}
}

func (m *mtModel) clone() *mtModel {
	c := &mtModel{data: make(map[mtPlace]map[string]mtEntry, len(m.data)), live: make(map[string]core.Layer, len(m.live)), seq: m.seq,
		meta: make(map[core.Scope]map[string]mtMeta, len(m.meta)), binds: maps.Clone(m.binds)}
	for p, keys := range m.data {
		c.data[p] = make(map[string]mtEntry, len(keys))
		for k, e := range keys {
			c.data[p][k] = e
		}
	}
	for n, k := range m.live {
		c.live[n] = k
	}
	for sc, keys := range m.meta {
		c.meta[sc] = make(map[string]mtMeta, len(keys))
		for k, e := range keys {
			c.meta[sc][k] = e
		}
	}
	return c
}

func (m *mtModel) get(p mtPlace, key string) (mtEntry, bool) {
	e, ok := m.data[p][key]
	return e, ok
}

func (m *mtModel) put(p mtPlace, key string, e mtEntry) {
	m.effCache = nil
	if m.data[p] == nil {
		m.data[p] = map[string]mtEntry{}
	}
	m.data[p][key] = e
}

func (m *mtModel) del(p mtPlace, key string) {
	m.effCache = nil
	delete(m.data[p], key)
	if len(m.data[p]) == 0 {
		delete(m.data, p) // R5
	}
}

// eff computes the view: state scopes as they are, config scopes as the
// layers deep-merged lowest first (R38): a key's value folds every layer
// that holds it with R4's merge; its owner and layer are the highest one's.
func (m *mtModel) eff() map[core.Scope]map[string]mtEff {
	if m.effCache != nil {
		return m.effCache
	}
	out := map[core.Scope]map[string]mtEff{}
	defer func() { m.effCache = out }()
	for _, l := range []core.Layer{0, core.Default, core.Fleet, core.Saved, core.Runtime, core.Override} {
		for p, keys := range m.data {
			if p.layer != l {
				continue
			}
			if out[p.scope] == nil {
				out[p.scope] = map[string]mtEff{}
			}
			for k, e := range keys {
				if old, ok := out[p.scope][k]; ok {
					out[p.scope][k] = mtEff{mtMerge(old.val, e.val), e.owner, l}
				} else {
					out[p.scope][k] = mtEff{e.val, e.owner, l}
				}
			}
		}
	}
	return out
}

// settleMeta is R42 for a mutation with sequence number m.seq from prev:
// every key whose value, layer or owner differs from prev's gets ModSeq
// m.seq and its Version grows by one (a new key: CreateSeq m.seq, Version 1).
func (m *mtModel) settleMeta(prev *mtModel) {
	pe, ne := prev.eff(), m.eff()
	meta := map[core.Scope]map[string]mtMeta{}
	for sc, keys := range ne {
		meta[sc] = map[string]mtMeta{}
		for k, e := range keys {
			old, had := pe[sc][k]
			om := prev.meta[sc][k]
			switch {
			case had && old.owner == e.owner && old.layer == e.layer && reflect.DeepEqual(old.val, e.val):
				meta[sc][k] = om
			case had:
				meta[sc][k] = mtMeta{om.create, m.seq, om.version + 1}
			default:
				meta[sc][k] = mtMeta{m.seq, m.seq, 1}
			}
		}
	}
	m.meta = meta
}

// sameData reports whether two models hold the same keys, values (types
// included) and owners in every place: R6's "changes nothing (same
// values, same owners)".
func mtSameData(a, b *mtModel) bool {
	return mtSameWhere(a, b, func(mtPlace) bool { return true })
}

func mtSameWhere(a, b *mtModel, in func(mtPlace) bool) bool {
	for _, pair := range [][2]*mtModel{{a, b}, {b, a}} {
		for p, ka := range pair[0].data {
			if !in(p) {
				continue
			}
			kb := pair[1].data[p]
			if len(ka) != len(kb) {
				return false
			}
			for k, ea := range ka {
				eb, ok := kb[k]
				if !ok || ea.owner != eb.owner || !reflect.DeepEqual(ea.val, eb.val) {
					return false
				}
			}
		}
	}
	return true
}

// view renders the model's effective view as R3's nested map, without
// empty levels (R5).
func (m *mtModel) view() map[string]any {
	out := map[string]any{}
	for sc, keys := range m.eff() {
		if len(keys) == 0 {
			panic("model keeps an empty scope")
		}
		b, _ := out[sc.Bucket.String()].(map[string]any)
		if b == nil {
			b = map[string]any{}
			out[sc.Bucket.String()] = b
		}
		t, _ := b[sc.Type].(map[string]any)
		if t == nil {
			t = map[string]any{}
			b[sc.Type] = t
		}
		vals := map[string]any{}
		for k, e := range keys {
			vals[k] = e.val
		}
		t[sc.Subtype] = vals
	}
	return out
}

func (m *mtModel) holders() []string {
	set := map[string]bool{}
	for _, keys := range m.data {
		for _, e := range keys {
			if e.owner != "" {
				set[e.owner] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func (m *mtModel) holds(name string) bool { return slices.Contains(m.holders(), name) }

// mergeModel is R4: maps merge recursively, anything else replaces.
func mtMerge(old, nv any) any {
	om, ok1 := old.(map[string]any)
	nm, ok2 := nv.(map[string]any)
	if !ok1 || !ok2 {
		return nv
	}
	out := make(map[string]any, len(om)+len(nm))
	for k, v := range om {
		out[k] = v
	}
	for k, v := range nm {
		if ov, ok := out[k]; ok {
			out[k] = mtMerge(ov, v)
		} else {
			out[k] = v
		}
	}
	return out
}

// update merges vals into p for owner; new keys are owner's (R9), existing
// keys keep their owner (R11). No permission check.
func (m *mtModel) update(owner string, p mtPlace, vals core.Values) {
	for k, v := range vals {
		if e, ok := m.get(p, k); ok {
			m.put(p, k, mtEntry{mtMerge(e.val, v), e.owner})
		} else {
			m.put(p, k, mtEntry{v, owner})
		}
	}
}

// replace makes p hold exactly vals, owned by owner (SetFleet, SetDefaults).
func (m *mtModel) replace(owner string, p mtPlace, vals core.Values) {
	m.effCache = nil
	delete(m.data, p)
	for k, v := range vals {
		m.put(p, k, mtEntry{v, owner})
	}
}

// foreignKeys lists the keys among keys that exist in p with another owner.
func (m *mtModel) foreignKeys(owner string, p mtPlace, keys []string) []string {
	var out []string
	for _, k := range keys {
		if e, ok := m.get(p, k); ok && e.owner != owner && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func (m *mtModel) ownKeys(owner string, p mtPlace) []string {
	var out []string
	for k, e := range m.data[p] {
		if e.owner == owner {
			out = append(out, k)
		}
	}
	return out
}

// drop deletes every key of owner in the state bucket and in the given
// config layers (R13: runtime and override; R14: every writable layer).
func (m *mtModel) drop(owner string, layers ...core.Layer) {
	for p, keys := range m.data {
		if p.layer != 0 && !slices.Contains(layers, p.layer) {
			continue
		}
		for k, e := range keys {
			if e.owner == owner {
				m.del(p, k)
			}
		}
	}
}

// ---------------------------------------------------------------------------
// Operations.

type mtKind int

const (
	mtUpdate mtKind = iota
	mtDelete
	mtCommit
	mtOpen
	mtClose
	mtEvict
	mtDefaults    // Registry.SetDefaults (R40)
	mtFleet       // Registry.SetFleet (R37)
	mtBatch       // updates applied as one batch of the combining write path (issue #14)
	mtBindUnbound // Registry.BindUnbound (R35)
)

type mtTxOp struct {
	put   bool
	scope core.Scope
	in    core.Values // what the caller passes
	norm  core.Values // what the model expects stored (R2 normal form)
	keys  []string
	// cond: a condition (R43) on keys[0]: IfModSeq(seq), or IfEqual(in
	// value as passed, norm value normalised) when equal.
	cond, equal  bool
	seq          uint64
	condIn, cVal any
}

// coreOp is the core.Op of t.
func (t mtTxOp) coreOp() core.Op {
	switch {
	case t.cond && t.equal:
		return core.IfEqual(t.scope, t.keys[0], t.condIn)
	case t.cond:
		return core.IfModSeq(t.scope, t.keys[0], t.seq)
	case t.put:
		return core.Put(t.scope, t.in)
	}
	return core.Del(t.scope, t.keys...)
}

// modSeq is the ModSeq (R42) that key of sc has in work, a transaction
// under way from m: a key whose effective value, layer or owner the
// transaction changed so far has the transaction's own, next number.
func (m *mtModel) modSeq(work *mtModel, sc core.Scope, key string) (uint64, bool) {
	ne, ok := work.eff()[sc][key]
	if !ok {
		return 0, false
	}
	old, had := m.eff()[sc][key]
	if had && old.owner == ne.owner && old.layer == ne.layer && reflect.DeepEqual(old.val, ne.val) {
		return m.meta[sc][key].mod, true
	}
	return m.seq + 1, true
}

type mtOp struct {
	kind   mtKind
	handle int // index into handles (Update, Delete, Commit, Close)
	name   string
	anon   bool // mtOpen: name was generated for an anonymous owner
	keep   bool
	layer  core.Layer // mtOpen: OwnerOptions.Layer
	scope  core.Scope
	in     core.Values
	norm   core.Values
	keys   []string
	txn    []mtTxOp
	// mtDefaults, mtFleet: the scopes written (in: as passed; norm: stored).
	layerIn, layerNorm map[core.Scope]core.Values
	batch              []mtOp // mtBatch: its updates, in queue order
	// race (mtUpdate of a state scope): another update of the same scope
	// made just before this one, with no snapshot taken between them: the
	// second then changes in place the nodes the first one copied
	// (inplace.go, issue #14). It comes first in the sequence.
	race *mtOp
	// R35: mtOpen, mtEvict: checked for uid (OwnerFor, EvictFor);
	// mtBindUnbound: uids, and uid the fallback.
	checked bool
	uid     uint32
	uids    map[string]uint32
}

func (o mtOp) String(hs []*mtHandle) string {
	who := func() string {
		if o.handle < len(hs) {
			return fmt.Sprintf("#%d(%s@%s)", o.handle, hs[o.handle].name, hs[o.handle].layer)
		}
		return fmt.Sprintf("#%d", o.handle)
	}
	switch o.kind {
	case mtBatch:
		parts := make([]string, len(o.batch))
		for i, b := range o.batch {
			parts[i] = b.String(hs)
		}
		return "batch{" + strings.Join(parts, "; ") + "}"
	case mtUpdate:
		if o.race != nil {
			return fmt.Sprintf("%s.Update(%s, %#v), raced by %s", who(), o.scope, o.in, o.race.String(hs))
		}
		return fmt.Sprintf("%s.Update(%s, %#v)", who(), o.scope, o.in)
	case mtDelete:
		return fmt.Sprintf("%s.Delete(%s, %q)", who(), o.scope, o.keys)
	case mtCommit:
		var parts []string
		for _, t := range o.txn {
			if t.cond && t.equal {
				parts = append(parts, fmt.Sprintf("IfEqual(%s, %q, %#v)", t.scope, t.keys[0], t.condIn))
				continue
			}
			if t.cond {
				parts = append(parts, fmt.Sprintf("IfModSeq(%s, %q, %d)", t.scope, t.keys[0], t.seq))
				continue
			}
			if t.put {
				parts = append(parts, fmt.Sprintf("Put(%s, %#v)", t.scope, t.in))
			} else {
				parts = append(parts, fmt.Sprintf("Del(%s, %q)", t.scope, t.keys))
			}
		}
		return fmt.Sprintf("%s.Commit(%s)", who(), strings.Join(parts, ", "))
	case mtOpen:
		if o.anon {
			return fmt.Sprintf("Owner(\"\", KeepConfig=%v, Layer=%d)%s → %q", o.keep, o.layer, mtUIDString(o), o.name)
		}
		return fmt.Sprintf("Owner(%q, KeepConfig=%v, Layer=%d)%s", o.name, o.keep, o.layer, mtUIDString(o))
	case mtClose:
		return fmt.Sprintf("%s.Close()", who())
	case mtEvict:
		return fmt.Sprintf("Evict(%q)%s", o.name, mtUIDString(o))
	case mtBindUnbound:
		return fmt.Sprintf("BindUnbound(%v, fallback %d)", o.uids, o.uid)
	case mtDefaults:
		return fmt.Sprintf("SetDefaults(%v)", o.layerIn)
	case mtFleet:
		return fmt.Sprintf("SetFleet(%v)", o.layerIn)
	}
	return "?"
}

// mtHandle is an owner session as the test holds it; closed handles stay so
// that calls through them are exercised too.
type mtHandle struct {
	o      *core.Owner
	name   string
	layer  core.Layer // where its config writes go (R39)
	uid    uint32     // the uid it acts for (R35)
	closed bool
}

// place is where h's writes to sc land (R39).
func (h *mtHandle) place(sc core.Scope) mtPlace {
	if sc.Bucket == core.Config {
		return mtPlace{sc, h.layer}
	}
	return mtPlace{sc, 0}
}

// mtWant is the expected outcome of one operation.
type mtWant struct {
	err   error // nil, or the sentinel the error must match
	scope core.Scope
	keys  []string // for ErrReservedKeys: exactly these, sorted
}

func (w mtWant) String() string {
	if w.err == nil {
		return "<nil>"
	}
	if w.err == core.ErrReservedKeys {
		return fmt.Sprintf("ReservedKeys{%s %q}", w.scope, w.keys)
	}
	return w.err.Error()
}

func mtReserved(sc core.Scope, keys []string) mtWant {
	return mtWant{err: core.ErrReservedKeys, scope: sc, keys: keys}
}

// mtLayerOf is R39's choice of layer, written from the spec.
func mtLayerOf(keep bool, l core.Layer) (core.Layer, error) {
	switch {
	case l == 0 && keep:
		return core.Saved, nil
	case l == 0:
		return core.Runtime, nil
	case l == core.Saved || l == core.Runtime || l == core.Override:
		return l, nil
	case l == core.Default || l == core.Fleet:
		return 0, core.ErrReadOnlyLayer
	}
	return 0, core.ErrInvalidLayer
}

// effective finishes a mutation of the model: R6 (no net effect, no
// sequence number) and R42 (metadata).
func (m *mtModel) effective(work *mtModel) *mtModel {
	if !mtSameData(m, work) {
		work.seq++
		work.settleMeta(m)
	}
	return work
}

// step applies o to a copy of m and returns the copy and the expected
// outcome; the returned model is m itself (unchanged) on failure.
func (m *mtModel) step(o mtOp, hs []*mtHandle) (*mtModel, mtWant) {
	switch o.kind {
	case mtUpdate, mtDelete, mtCommit:
		h := hs[o.handle]
		if h.closed {
			return m, mtWant{err: core.ErrClosed}
		}
		work := m.clone()
		var txn []mtTxOp
		switch o.kind {
		case mtUpdate:
			txn = []mtTxOp{{put: true, scope: o.scope, norm: o.norm}}
		case mtDelete:
			txn = []mtTxOp{{scope: o.scope, keys: o.keys}}
		default:
			txn = o.txn
		}
		// R10/R11/R15: each op is checked against the working copy as it
		// stands, in the writer's layer (R39); all foreign keys are
		// collected per scope, and the error names the first such scope
		// in text order.
		foreign := map[core.Scope][]string{}
		for _, t := range txn {
			var f []string
			p := h.place(t.scope)
			if t.cond { // R43: checked in order against the view as changed so far
				e, ok := work.eff()[t.scope][t.keys[0]]
				mod, _ := m.modSeq(work, t.scope, t.keys[0])
				if t.equal && (!ok || !reflect.DeepEqual(e.val, t.cVal)) || !t.equal && (mod != t.seq || t.seq == 0 && ok) {
					return m, mtWant{err: core.ErrConflict}
				}
				continue
			}
			if t.put {
				if t.scope.Bucket == core.State {
					f = work.foreignKeys(h.name, p, slices.Collect(mtKeys(t.norm)))
				}
				if len(f) == 0 {
					work.update(h.name, p, t.norm)
				}
			} else {
				keys := t.keys
				if len(keys) == 0 {
					keys = work.ownKeys(h.name, p) // R12
				} else {
					f = work.foreignKeys(h.name, p, keys)
				}
				if len(f) == 0 {
					for _, k := range keys {
						work.del(p, k)
					}
				}
			}
			if len(f) > 0 {
				foreign[t.scope] = append(foreign[t.scope], f...)
			}
		}
		if len(foreign) > 0 {
			scopes := slices.Collect(mtKeys(foreign))
			slices.SortFunc(scopes, func(a, b core.Scope) int { return strings.Compare(a.String(), b.String()) })
			keys := foreign[scopes[0]]
			slices.Sort(keys)
			return m, mtReserved(scopes[0], slices.Compact(keys))
		}
		return m.effective(work), mtWant{}
	case mtOpen:
		if _, err := mtLayerOf(o.keep, o.layer); err != nil {
			return m, mtWant{err: err}
		}
		if o.checked && !m.mayAct(o.uid, o.name) {
			return m, mtWant{err: core.ErrPermission}
		}
		if _, live := m.live[o.name]; live {
			return m, mtWant{err: core.ErrOwnerInUse}
		}
		work := m.clone()
		work.live[o.name], _ = mtLayerOf(o.keep, o.layer)
		return work, mtWant{}
	case mtClose:
		h := hs[o.handle]
		if h.closed {
			return m, mtWant{} // idempotent
		}
		work := m.clone()
		delete(work.live, h.name)
		// R13: state, runtime and override go; saved stays, whatever
		// layer this session wrote.
		work.drop(h.name, core.Runtime, core.Override)
		return m.effective(work), mtWant{}
	case mtEvict:
		if o.name == "" {
			return m, mtWant{err: core.ErrInvalidOwner}
		}
		if o.checked && !m.mayAct(o.uid, o.name) {
			return m, mtWant{err: core.ErrPermission}
		}
		if _, live := m.live[o.name]; live {
			return m, mtWant{err: core.ErrOwnerInUse}
		}
		work := m.clone()
		work.drop(o.name, core.Saved, core.Runtime, core.Override) // R14
		return m.effective(work), mtWant{}
	case mtDefaults:
		work := m.clone()
		for p := range work.data {
			if p.layer == core.Default {
				delete(work.data, p)
				work.effCache = nil
			}
		}
		for sc, vals := range o.layerNorm {
			work.replace("", mtPlace{sc, core.Default}, vals)
		}
		return m.effective(work), mtWant{}
	case mtFleet:
		work := m.clone()
		for sc, vals := range o.layerNorm {
			work.replace("", mtPlace{sc, core.Fleet}, vals)
		}
		return m.effective(work), mtWant{}
	case mtBindUnbound:
		return m.bindUnbound(o), mtWant{}
	}
	panic("unknown op")
}

func mtKeys[K comparable, V any](m map[K]V) func(yield func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// modelDiff is R22 computed from two models' views: every (scope, key)
// whose presence, value, owner or layer differs, sorted by scope text,
// then key. Layer is the new origin's (the old one's for a key gone).
func mtDiff(a, b *mtModel) []core.Change {
	var out []core.Change
	va, vb := a.eff(), b.eff()
	seen := map[core.Scope]map[string]bool{}
	visit := func(sc core.Scope, k string) {
		if seen[sc] == nil {
			seen[sc] = map[string]bool{}
		}
		if seen[sc][k] {
			return
		}
		seen[sc][k] = true
		ea, okA := va[sc][k]
		eb, okB := vb[sc][k]
		if okA == okB && (!okA || (ea.owner == eb.owner && ea.layer == eb.layer && reflect.DeepEqual(ea.val, eb.val))) {
			return
		}
		l := ea.layer
		if okB {
			l = eb.layer
		}
		out = append(out, core.Change{Scope: sc, Key: k, Old: ea.val, New: eb.val, Existed: okA, Exists: okB, OldOwner: ea.owner, NewOwner: eb.owner, Layer: l})
	}
	for _, v := range []map[core.Scope]map[string]mtEff{va, vb} {
		for sc, keys := range v {
			for k := range keys {
				visit(sc, k)
			}
		}
	}
	slices.SortFunc(out, func(x, y core.Change) int {
		return cmp.Or(strings.Compare(x.Scope.String(), y.Scope.String()), strings.Compare(x.Key, y.Key))
	})
	return out
}

// ---------------------------------------------------------------------------
// Random generation.

var (
	// Types and subtypes overlap across scopes and buckets; "net-x" sorts
	// before "net" in scope text order ('-' < '/'), although "net" < "net-x".
	modelScopes = []core.Scope{
		core.StateScope("net", "eth0"), core.StateScope("net", "eth1"), core.StateScope("net-x", "eth0"),
		core.ConfigScope("net", "eth0"), core.ConfigScope("net", "eth1"), core.ConfigScope("net-x", "eth0"),
	}
	// Scopes that are only ever deleted from: missing scopes (R12).
	modelMissingScopes = []core.Scope{core.StateScope("gone", "x"), core.ConfigScope("net", "gone")}
	modelKeys          = []string{"k1", "k2", "k3", "k10"}
	modelNames         = []string{"a", "b", "c"}
)

type (
	mtString string
	mtInt    int16
	mtUint64 uint64
	mtBool   bool
)

type mtGen struct {
	r *rand.Rand
}

func (g mtGen) pick(n int) int { return g.r.IntN(n) }

func (g mtGen) chance(p float64) bool { return g.r.Float64() < p }

// value returns a random input value and the normal form R2 says it has.
func (g mtGen) value(depth int) (in, norm any) {
	n := 12
	if depth >= 3 {
		n = 7 // scalars only
	}
	switch g.pick(n) {
	case 0:
		return nil, nil
	case 1:
		b := g.chance(0.5)
		if g.chance(0.3) {
			return mtBool(b), b
		}
		return b, b
	case 2:
		i := int64(g.pick(5) - 2)
		switch g.pick(6) {
		case 0:
			return int(i), i
		case 1:
			return int8(i), i
		case 2:
			return int32(i), i
		case 3:
			return mtInt(i), i
		case 4:
			return uint32(i + 2), i + 2
		}
		return i, i
	case 3:
		u := []uint64{0, 1, 1<<63 + 1}[g.pick(3)]
		if g.chance(0.3) {
			return mtUint64(u), u
		}
		return u, u
	case 4:
		f := []float64{0.5, 1, 2.25}[g.pick(3)]
		if g.chance(0.3) {
			return float32(f), f
		}
		return f, f
	case 5:
		s := []string{"", "x", "é"}[g.pick(3)]
		if g.chance(0.3) {
			return mtString(s), s
		}
		return s, s
	case 6:
		b := []byte{}
		if g.chance(0.5) {
			b = append(b, 1)
		}
		return b, slices.Clone(b)
	case 7:
		if g.chance(0.5) {
			return []string{"x", "y"}, []any{"x", "y"}
		}
		return []int{1}, []any{int64(1)}
	case 8:
		k := g.pick(3)
		li, ln := make([]any, k), make([]any, k)
		for i := range k {
			li[i], ln[i] = g.value(depth + 1)
		}
		return li, ln
	case 9:
		return map[string]int{"x": 1}, map[string]any{"x": int64(1)}
	}
	mi, mn := map[string]any{}, map[string]any{}
	for _, k := range []string{"x", "y", "z"} {
		if g.chance(0.4) {
			mi[k], mn[k] = g.value(depth + 1)
		}
	}
	return mi, mn
}

func (g mtGen) values() (in, norm core.Values) {
	in, norm = core.Values{}, core.Values{}
	for _, k := range modelKeys {
		if g.chance(0.3) {
			in[k], norm[k] = g.value(1)
		}
	}
	return in, norm
}

func (g mtGen) keys() []string {
	var out []string
	for _, k := range modelKeys {
		if g.chance(0.35) {
			out = append(out, k)
		}
	}
	if g.chance(0.1) {
		out = append(out, "missing")
	}
	if len(out) > 0 && g.chance(0.1) {
		out = append(out, out[0]) // duplicate
	}
	return out
}

func (g mtGen) scope() core.Scope { return modelScopes[g.pick(len(modelScopes))] }

func (g mtGen) delScope() core.Scope {
	if g.chance(0.1) {
		return modelMissingScopes[g.pick(len(modelMissingScopes))]
	}
	return g.scope()
}

// handleIdx picks a handle, preferring live ones.
func (g mtGen) handleIdx(hs []*mtHandle) int {
	var live []int
	for i, h := range hs {
		if !h.closed {
			live = append(live, i)
		}
	}
	if len(live) > 0 && g.chance(0.95) {
		return live[g.pick(len(live))]
	}
	return g.pick(len(hs))
}

func (g mtGen) op(m *mtModel, hs []*mtHandle, last *mtOp, names []string) mtOp {
	if len(hs) == 0 {
		return mtOp{kind: mtOpen, name: modelNames[g.pick(len(modelNames))], keep: g.chance(0.3), layer: g.layer()}
	}
	if g.chance(0.1) {
		// Several owners' updates, state and config, some failing (other
		// owners' state keys, closed sessions, limits), some no-ops (R6),
		// applied as one batch of the combining write path.
		b := mtOp{kind: mtBatch}
		for range 2 + g.pick(5) {
			if last != nil && last.kind == mtUpdate && g.chance(0.2) {
				u := *last
				u.race = nil // batches apply under the lock: nothing can race in
				b.batch = append(b.batch, u)
				continue
			}
			in, norm := g.values()
			b.batch = append(b.batch, mtOp{kind: mtUpdate, handle: g.handleIdx(hs), scope: g.scope(), in: in, norm: norm})
			last = &b.batch[len(b.batch)-1]
		}
		return b
	}
	switch p := g.pick(100); {
	case p < 6 && last != nil: // exact repeat: R6 no-op (or the same error)
		return *last
	case p < 38:
		in, norm := g.values()
		o := mtOp{kind: mtUpdate, handle: g.handleIdx(hs), scope: g.scope(), in: in, norm: norm}
		if o.scope.Bucket == core.State && g.chance(0.3) {
			// An update of the same scope just before, as often by the
			// same owner (keys it holds: what is applied in place) as by
			// any handle.
			r := mtOp{kind: mtUpdate, handle: o.handle, scope: o.scope}
			if g.chance(0.5) {
				r.handle = g.handleIdx(hs)
			}
			r.in, r.norm = g.values()
			o.race = &r
		}
		return o
	case p < 53:
		return mtOp{kind: mtDelete, handle: g.handleIdx(hs), scope: g.delScope(), keys: g.keys()}
	case p < 73:
		return mtOp{kind: mtCommit, handle: g.handleIdx(hs), txn: g.txn(m)}
	case p < 84:
		name := ""
		switch q := g.pick(10); {
		case q < 6:
			name = modelNames[g.pick(len(modelNames))]
		case q < 7 && len(names) > len(modelNames):
			name = names[g.pick(len(names))] // re-open a generated name
		}
		return mtOp{kind: mtOpen, name: name, keep: g.chance(0.35), layer: g.layer()}
	case p < 93:
		return mtOp{kind: mtClose, handle: g.handleIdx(hs)}
	case p < 95:
		o := mtOp{kind: mtDefaults}
		if g.chance(0.2) && last != nil && last.kind == mtDefaults {
			return *last // the same defaults again: R6
		}
		o.layerIn, o.layerNorm = g.layerValues()
		return o
	case p < 97:
		o := mtOp{kind: mtFleet}
		o.layerIn, o.layerNorm = g.layerValues()
		return o
	default:
		name := ""
		if g.chance(0.95) {
			name = names[g.pick(len(names))]
		}
		return mtOp{kind: mtEvict, name: name}
	}
}

// layer picks OwnerOptions.Layer: mostly 0 (from KeepConfig), sometimes a
// writable layer, rarely a read-only or invalid one (R39).
func (g mtGen) layer() core.Layer {
	switch p := g.pick(20); {
	case p < 10:
		return 0
	case p < 13:
		return core.Saved
	case p < 15:
		return core.Runtime
	case p < 18:
		return core.Override
	case p < 19:
		return []core.Layer{core.Default, core.Fleet}[g.pick(2)]
	}
	return 9
}

// layerValues picks config scopes and values for SetDefaults/SetFleet;
// an empty values map removes the scope from the layer.
func (g mtGen) layerValues() (in, norm map[core.Scope]core.Values) {
	in, norm = map[core.Scope]core.Values{}, map[core.Scope]core.Values{}
	for _, sc := range modelScopes {
		if sc.Bucket == core.Config && g.chance(0.5) {
			in[sc], norm[sc] = g.values()
		}
	}
	return in, norm
}

func (g mtGen) txn(m *mtModel) []mtTxOp {
	var out []mtTxOp
	for range 1 + g.pick(4) {
		switch p := g.pick(10); {
		case p < 2: // put then delete a (possibly new) key: fine if it is ours
			sc, k := g.scope(), modelKeys[g.pick(len(modelKeys))]
			in, norm := g.value(1)
			out = append(out, mtTxOp{put: true, scope: sc, in: core.Values{k: in}, norm: core.Values{k: norm}},
				mtTxOp{scope: sc, keys: []string{k}})
		case p < 3 && len(m.data) > 0: // change a key and put its value back: no net effect
			places := slices.SortedFunc(mtKeys(m.data), func(a, b mtPlace) int { return strings.Compare(a.String(), b.String()) })
			pl := places[g.pick(len(places))]
			sc := pl.scope
			keys := slices.Sorted(mtKeys(m.data[pl]))
			k := keys[g.pick(len(keys))]
			old := m.data[pl][k].val
			out = append(out,
				mtTxOp{put: true, scope: sc, in: core.Values{k: "tmp"}, norm: core.Values{k: "tmp"}},
				mtTxOp{put: true, scope: sc, in: core.Values{k: mtDeepCopy(old)}, norm: core.Values{k: old}})
		case p < 4: // a condition (R43) on a key of the view, or on any key
			sc, k := g.scope(), modelKeys[g.pick(len(modelKeys))]
			eff := m.eff()
			if len(eff) > 0 && g.chance(0.7) {
				scs := slices.SortedFunc(mtKeys(eff), func(a, b core.Scope) int { return strings.Compare(a.String(), b.String()) })
				sc = scs[g.pick(len(scs))]
				keys := slices.Sorted(mtKeys(eff[sc]))
				k = keys[g.pick(len(keys))]
			}
			e, ok := eff[sc][k]
			if g.chance(0.5) {
				c := mtTxOp{cond: true, scope: sc, keys: []string{k}, seq: m.meta[sc][k].mod}
				if g.chance(0.3) {
					c.seq = uint64(g.pick(int(m.seq) + 2))
				}
				out = append(out, c)
			} else {
				in, norm := g.value(1)
				if ok && g.chance(0.7) {
					in, norm = mtDeepCopy(e.val), e.val
				}
				out = append(out, mtTxOp{cond: true, equal: true, scope: sc, keys: []string{k}, condIn: in, cVal: norm})
			}
		case p < 7:
			in, norm := g.values()
			out = append(out, mtTxOp{put: true, scope: g.scope(), in: in, norm: norm})
		default:
			var keys []string
			if g.chance(0.7) {
				keys = g.keys()
			}
			out = append(out, mtTxOp{scope: g.delScope(), keys: keys})
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// The test.

func TestModel(t *testing.T) {
	base := *modelSeed
	if base == 0 {
		if s := os.Getenv("SYSREG_MODEL_SEED"); s != "" {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				t.Fatalf("SYSREG_MODEL_SEED: %v", err)
			}
			base = v
		}
	}
	if base == 0 {
		base = rand.Uint64() >> 1
	}
	seqs := *modelSeqs
	if seqs == 0 {
		seqs = 10000
		if testing.Short() {
			seqs = 500
		}
	}
	steps := *modelSteps
	t.Logf("base seed %d: %d sequences × %d steps (reproduce: -model.seed=%d -model.seqs=%d)", base, seqs, steps, base, seqs)

	workers := min(runtime.GOMAXPROCS(0), seqs)
	start := time.Now()
	for w := range workers {
		t.Run("worker="+strconv.Itoa(w), func(t *testing.T) {
			t.Parallel()
			for i := w; i < seqs; i += workers {
				if !runModel(t, base+uint64(i), steps) {
					return
				}
			}
		})
	}
	t.Cleanup(func() {
		n, chained := modelInPlace[0].Load(), modelInPlace[1].Load()
		t.Logf("%d sequences in %v; %d state updates applied in place, %d of them on nodes not yet published", seqs, time.Since(start), n, chained)
		// The runs of updates (mtOp.race) must reach the in-place path on
		// unpublished nodes, or the model does not check it.
		if seqs >= 100 && chained == 0 && !t.Failed() {
			t.Error("no state update was applied in place on unpublished nodes: the runs of updates do not exercise it")
		}
	})
}

// modelInPlace sums core.InPlaceUpdates over TestModel's registries.
var modelInPlace [2]atomic.Uint64

// mtPoint is a snapshot with the model state it must show.
type mtPoint struct {
	snap  core.Snapshot
	model *mtModel
}

// runModel runs one random sequence; it reports false after a failure.
func runModel(t *testing.T, seed uint64, steps int) bool {
	t.Helper()
	g := mtGen{rand.New(rand.NewPCG(seed, seed^0x5eed))}
	ctx := context.Background()

	m := newMtModel()
	opts := core.Options{UID: modelUIDs[(seed>>2)%uint64(len(modelUIDs))]} // R35: what Owner acts for
	var log *recLog
	if seed%4 != 3 { // most sequences journal through a Log; some run memory-only
		log = newRecLog()
		opts.Log = log
	}
	if seed%3 == 0 {
		// A restored registry (R27): config left by "b" and by a name that
		// looks generated (R8: anonymous names must not clash with it).
		init, err := core.Snapshot{}.Apply(&core.Mutation{Seq: 5, Time: time.Unix(1700000000, 0), Ops: []core.MutationOp{
			{Kind: core.MutSet, Layer: core.Runtime, Scope: core.ConfigScope("net", "eth0"), Owner: "anonymous-1", Values: core.Values{"k1": int64(1), "k2": map[string]any{"x": "y"}}},
			{Kind: core.MutSet, Layer: core.Saved, Scope: core.ConfigScope("net-x", "eth0"), Owner: "b", Values: core.Values{"k2": "x"}},
			{Kind: core.MutSet, Layer: core.Saved, Scope: core.ConfigScope("net-x", "eth0"), Owner: "anonymous-2", Values: core.Values{"k3": nil}},
			{Kind: core.MutSet, Layer: core.Fleet, Scope: core.ConfigScope("net", "eth0"), Values: core.Values{"k2": map[string]any{"z": "f"}, "k3": true}},
		}})
		if err != nil {
			t.Fatalf("seed %d: building the initial snapshot: %v", seed, err)
		}
		opts.Initial = init
		m.update("anonymous-1", mtPlace{core.ConfigScope("net", "eth0"), core.Runtime}, core.Values{"k1": int64(1), "k2": map[string]any{"x": "y"}})
		m.update("b", mtPlace{core.ConfigScope("net-x", "eth0"), core.Saved}, core.Values{"k2": "x"})
		m.update("anonymous-2", mtPlace{core.ConfigScope("net-x", "eth0"), core.Saved}, core.Values{"k3": nil})
		m.update("", mtPlace{core.ConfigScope("net", "eth0"), core.Fleet}, core.Values{"k2": map[string]any{"z": "f"}, "k3": true})
		m.seq = 5
		m.settleMeta(newMtModel())
		m.restoreUnbound() // records without Binds (R35)
		if seed%2 == 0 {
			opts.SeqFloor = 9 // R7: numbers continue above the durable mark
			m.seq = 9
		}
	}
	r := core.New(opts)
	defer func() {
		n, chained := core.InPlaceUpdates(r)
		modelInPlace[0].Add(n)
		modelInPlace[1].Add(chained)
		r.Close()
		if log != nil {
			log.Close()
		}
	}()

	var (
		hs      []*mtHandle
		trace   []mtOp // formatted only on failure
		history = []mtPoint{{r.Snapshot(), m}}
		last    *mtOp
		names   = slices.Clone(modelNames)
		replay  = opts.Initial // config rebuilt from the Log's records
		nrec    int
		lastRec uint64
	)
	names = append(names, "anonymous-1", "anonymous-2")
	fail := func(format string, args ...any) bool {
		t.Helper()
		lines := make([]string, len(trace))
		for i, o := range trace {
			lines[i] = o.String(hs)
		}
		t.Errorf("seed %d (reproduce: -model.seed=%d -model.seqs=1), step %d: %s\nsequence:\n  %s",
			seed, seed, len(trace), fmt.Sprintf(format, args...), strings.Join(lines, "\n  "))
		return false
	}
	if !mtCheckView(r.Snapshot(), m, fail) {
		return false
	}
	for range steps {
		o := g.withUID(g.op(m, hs, last, names), names)
		prevSnap, prevModel := r.Snapshot(), m
		trace = append(trace, o)

		var err error
		var w mtWant
		var batchSeqs []uint64 // mtBatch: the sequence numbers that need a record, in order
		switch o.kind {
		case mtBatch:
			us := make([]core.BatchUpdate, len(o.batch))
			ws := make([]mtWant, len(o.batch))
			for i, b := range o.batch {
				pm := m
				m, ws[i] = m.step(b, hs)
				if m != pm {
					m.settleBinds(hs[b.handle].uid)
				}
				if m.seq != pm.seq && !mtSameWhere(pm, m, func(p mtPlace) bool { return p.layer.Journaled() }) {
					batchSeqs = append(batchSeqs, m.seq)
				}
				us[i] = core.BatchUpdate{Owner: hs[b.handle].o, Scope: b.scope, Values: b.in}
			}
			for i, e := range r.UpdateBatch(ctx, us) {
				if !mtCheckErr(e, ws[i], fail) {
					return fail("in the batch, update %d: see above", i)
				}
			}
		case mtUpdate:
			// A run of updates (o.race first) with no snapshot between
			// them: the second is applied in place on nodes the first
			// copied, if both may be (inplace.go).
			if o.race != nil {
				rc := *o.race
				pm := m
				var rw mtWant
				m, rw = m.step(rc, hs)
				if m != pm {
					m.settleBinds(hs[rc.handle].uid)
				}
				if !mtCheckErr(hs[rc.handle].o.Update(ctx, rc.scope, rc.in), rw, fail) {
					return fail("the update before it: see above")
				}
			}
			m, w = m.step(o, hs)
			err = hs[o.handle].o.Update(ctx, o.scope, o.in)
			last = &o
		case mtDelete:
			m, w = m.step(o, hs)
			err = hs[o.handle].o.Delete(ctx, o.scope, o.keys...)
		case mtCommit:
			m, w = m.step(o, hs)
			ops := make([]core.Op, len(o.txn))
			for i, x := range o.txn {
				ops[i] = x.coreOp()
			}
			err = hs[o.handle].o.Commit(ctx, ops...)
		case mtOpen:
			var ow *core.Owner
			uid := opts.UID
			if o.checked {
				uid = o.uid
				ow, err = r.OwnerFor(ctx, o.name, o.uid, core.OwnerOptions{KeepConfig: o.keep, Layer: o.layer})
			} else {
				ow, err = r.Owner(ctx, o.name, core.OwnerOptions{KeepConfig: o.keep, Layer: o.layer})
			}
			name := o.name
			if name == "" && err == nil {
				// R8: a generated name clashes with no live session and
				// no name that holds keys, restored ones included.
				name = ow.Name()
				o.anon = true
				trace[len(trace)-1] = mtOp{kind: mtOpen, name: name, keep: o.keep, layer: o.layer, anon: true, checked: o.checked, uid: o.uid}
				if name == "" || len(name) > 128 || !utf8.ValidString(name) || strings.IndexByte(name, 0) >= 0 {
					return fail("anonymous owner got invalid name %q", name)
				}
				if _, live := m.live[name]; live || m.holds(name) {
					return fail("anonymous owner got name %q, which is live or holds keys", name)
				}
				if !slices.Contains(names, name) {
					names = append(names, name)
				}
			}
			o.name = name
			m, w = m.step(o, hs)
			if err == nil {
				hs = append(hs, &mtHandle{o: ow, name: name, layer: m.live[name], uid: uid})
			}
		case mtClose:
			m, w = m.step(o, hs)
			err = hs[o.handle].o.Close()
			hs[o.handle].closed = true
		case mtEvict:
			m, w = m.step(o, hs)
			if o.checked {
				err = r.EvictFor(ctx, o.name, o.uid)
			} else {
				err = r.Evict(ctx, o.name)
			}
		case mtDefaults:
			m, w = m.step(o, hs)
			err = r.SetDefaults(ctx, o.layerIn)
			last = &o
		case mtFleet:
			m, w = m.step(o, hs)
			err = r.SetFleet(ctx, o.layerIn)
		case mtBindUnbound:
			m, w = m.step(o, hs)
			_, err = r.BindUnbound(ctx, o.uids, o.uid)
		}
		if m != prevModel {
			m.settleBinds(mtActor(o, hs))
		}

		if !mtCheckErr(err, w, fail) {
			return false
		}
		snap := r.Snapshot()
		if m.seq != prevModel.seq && !mtCheckBinds(r, snap, m, names, fail) {
			return false
		}
		effective := m.seq != prevModel.seq
		if !effective {
			// R6: nothing changed, so nothing may be published (which is
			// also what would notify subscribers). The view was checked
			// at the previous step and a snapshot is immutable.
			if snap != prevSnap {
				if !mtCheckView(snap, m, fail) {
					return false
				}
				return fail("R6: a no-op published a new snapshot (Seq %d → %d)", prevSnap.Seq(), snap.Seq())
			}
		} else {
			if !mtCheckView(snap, m, fail) {
				return false
			}
			if got, want := core.Diff(prevSnap, snap), mtDiff(prevModel, m); !reflect.DeepEqual(got, want) {
				return fail("R22 Diff:\n got  %v\n want %v", got, want)
			}
			// And across several steps, both ways: only there can a key
			// change owner and keep its value.
			if len(history) > 0 && g.chance(0.3) {
				h := history[g.pick(len(history))]
				for _, pair := range [][2]core.Snapshot{{h.snap, snap}, {snap, h.snap}} {
					a, b := h.model, m
					if pair[0] == snap {
						a, b = m, h.model
					}
					if got, want := core.Diff(pair[0], pair[1]), mtDiff(a, b); !reflect.DeepEqual(got, want) {
						return fail("R22 Diff between Seq %d and %d:\n got  %v\n want %v", pair[0].Seq(), pair[1].Seq(), got, want)
					}
				}
			}
			// A published snapshot never changes: updates applied in place
			// later change only nodes copied after it (inplace.go).
			if len(history) > 0 && g.chance(0.2) {
				h := history[g.pick(len(history))]
				if !mtCheckView(h.snap, h.model, fail) {
					return fail("the snapshot of Seq %d changed since it was taken: see above", h.snap.Seq())
				}
			}
			history = append(history, mtPoint{snap, m})
		}

		// The Log: at most one record per effective mutation, with its
		// sequence number; one whenever config changed (R24); replaying
		// every record onto the initial snapshot rebuilds the config.
		if log == nil {
			continue
		}
		recs := log.Records()
		fresh := recs[nrec:]
		nrec = len(recs)
		if o.kind == mtBatch {
			// One record per update that changed a journaled layer, with
			// that update's sequence number, in order (R7, R24).
			got := make([]uint64, len(fresh))
			for i, rec := range fresh {
				got[i] = rec.Seq
			}
			if !slices.Equal(got, batchSeqs) {
				return fail("batch: log records with seqs %v, want %v", got, batchSeqs)
			}
			for _, rec := range fresh {
				if replay, err = replay.Apply(rec); err != nil {
					return fail("Apply(record %d): %v", rec.Seq, err)
				}
				lastRec = rec.Seq
			}
			if len(fresh) > 0 && (!mtCheckConfigReplay(replay, snap, fail) || !mtCheckReplayBinds(replay, snap, fail)) {
				return false
			}
			continue
		}
		switch {
		case len(fresh) > 1:
			return fail("%d log records for one step", len(fresh))
		case len(fresh) == 1 && !effective:
			return fail("R6: a no-op wrote log record %+v", fresh[0])
		case len(fresh) == 0 && !mtSameWhere(prevModel, m, func(p mtPlace) bool { return p.layer.Journaled() }):
			return fail("R41: a journaled layer changed without a log record")
		}
		if !mtCheckRecordBinds(fresh, prevModel, m, fail) {
			return false
		}
		for _, rec := range fresh {
			if rec.Seq != m.seq || rec.Seq <= lastRec {
				return fail("log record has seq %d, want %d (previous record %d)", rec.Seq, m.seq, lastRec)
			}
			lastRec = rec.Seq
			if rec.Time.IsZero() {
				return fail("R42: log record %d without a time", rec.Seq)
			}
			for _, op := range rec.Ops {
				if op.Scope.Bucket != core.Config || !op.Layer.Journaled() {
					return fail("R41: log record carries a %s op on %s layer %s", op.Kind, op.Scope, op.Layer)
				}
			}
			if replay, err = replay.Apply(rec); err != nil {
				return fail("Apply(record %d): %v", rec.Seq, err)
			}
		}
		if len(fresh) > 0 && (!mtCheckConfigReplay(replay, snap, fail) || !mtCheckReplayBinds(replay, snap, fail)) {
			return false
		}
	}
	if log != nil {
		// And from scratch, in one go, as recovery does.
		full := opts.Initial
		for _, rec := range log.Records() {
			var err error
			if full, err = full.Apply(rec); err != nil {
				return fail("Apply(record %d): %v", rec.Seq, err)
			}
		}
		if !mtCheckConfigReplay(full, r.Snapshot(), fail) || !mtCheckReplayBinds(full, r.Snapshot(), fail) {
			return false
		}
	}
	return true
}

func mtCheckErr(err error, w mtWant, fail func(string, ...any) bool) bool {
	switch {
	case w.err == nil:
		if err != nil {
			return fail("error %v, want nil", err)
		}
	case !errors.Is(err, w.err):
		return fail("error %v, want %v", err, w)
	case w.err == core.ErrReservedKeys:
		var rk *core.ReservedKeysError
		if !errors.As(err, &rk) {
			return fail("error %v is not a *ReservedKeysError", err)
		}
		if rk.Scope != w.scope || !slices.Equal(rk.Keys, w.keys) {
			return fail("ReservedKeysError{%s %q}, want %v", rk.Scope, rk.Keys, w)
		}
	}
	return true
}

// checkView compares the whole view, every key's owner, origin and
// metadata, every layer's own values, the holders and the sequence number.
func mtCheckView(snap core.Snapshot, m *mtModel, fail func(string, ...any) bool) bool {
	if got := snap.Seq(); got != m.seq {
		return fail("R7 Seq = %d, want %d", got, m.seq)
	}
	if got, want := snap.Map(), m.view(); !reflect.DeepEqual(got, want) {
		return fail("view:\n got  %v\n want %v", got, want)
	}
	eff := m.eff()
	for _, sc := range append(slices.Clone(modelScopes), modelMissingScopes...) {
		for _, k := range append(slices.Clone(modelKeys), "missing") {
			e, ok := eff[sc][k]
			owner, got := snap.Owner(sc, k)
			if got != ok || owner != e.owner {
				return fail("Owner(%s, %s) = %q, %v; want %q, %v", sc, k, owner, got, e.owner, ok)
			}
			l, owner, got := snap.Origin(sc, k)
			if got != ok || owner != e.owner || l != e.layer {
				return fail("R38 Origin(%s, %s) = %s %q %v; want %s %q %v", sc, k, l, owner, got, e.layer, e.owner, ok)
			}
			km, got := snap.Meta(sc, k)
			mm := m.meta[sc][k]
			if got != ok || (ok && (km.Layer != e.layer || km.Owner != e.owner || km.CreateSeq != mm.create || km.ModSeq != mm.mod || km.Version != mm.version)) {
				return fail("R42 Meta(%s, %s) = %+v %v; want layer %s owner %q %+v", sc, k, km, got, e.layer, e.owner, mm)
			}
			if ok && km.ModSeq == mm.mod && km.Modified.IsZero() {
				return fail("R42 Meta(%s, %s): no Modified time", sc, k)
			}
		}
		if sc.Bucket != core.Config {
			continue
		}
		for _, l := range core.Layers {
			want := core.Values{}
			for k, e := range m.data[mtPlace{sc, l}] {
				want[k] = e.val
				if o, _ := snap.LayerOwner(l, sc, k); o != e.owner {
					return fail("R37 LayerOwner(%s, %s, %s) = %q, want %q", l, sc, k, o, e.owner)
				}
			}
			got := snap.LayerValues(l, sc)
			if len(want) == 0 {
				want = nil
			}
			if !reflect.DeepEqual(got, want) {
				return fail("R38 LayerValues(%s, %s) = %v, want %v", l, sc, got, want)
			}
		}
	}
	if got, want := snap.Owners(), m.holders(); !slices.Equal(got, want) {
		return fail("Owners() = %q, want %q", got, want)
	}
	return true
}

// checkConfigReplay compares the journaled layers (R41), with owners, of a
// snapshot rebuilt from log records against the live one.
func mtCheckConfigReplay(replay, live core.Snapshot, fail func(string, ...any) bool) bool {
	type row struct {
		scope      core.Scope
		key, owner string
		value      any
	}
	walk := func(s core.Snapshot, l core.Layer) []row {
		var out []row
		s.WalkLayer(l, func(sc core.Scope, key, owner string, v any) error {
			out = append(out, row{sc, key, owner, v})
			return nil
		})
		return out
	}
	for _, l := range []core.Layer{core.Fleet, core.Saved, core.Runtime} {
		if got, want := walk(replay, l), walk(live, l); !reflect.DeepEqual(got, want) {
			return fail("R41 layer %s replayed from the log:\n got  %v\n want %v", l, got, want)
		}
	}
	return true
}
