package codec

import (
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/sysreg/sysreg/core"
)

// RecordVersion is the format version of the mutation records that
// EncodeMutation writes. DecodeMutation reads every version from 1 up to it:
// version 1 (before config layers), version 2 (ops carry their layer,
// records their time), version 3 (records carry owner-uid bindings,
// R35) and version 4 (records start and end confirmed applies, R44).
// EncodeMutation writes version 4 only for a record that starts or ends
// an apply, version 3 otherwise: see "Versions" in the package docs.
const RecordVersion = 4

// Numbers of op kinds and buckets in records and snapshots. They are fixed
// by the format, whatever core's Go constants become.
const (
	kindMerge  = 1
	kindDelete = 2
	kindDrop   = 3
	kindSet    = 4

	bucketState  = 1
	bucketConfig = 2

	// Layer numbers are core's (R37), fixed here by the format: 0 for
	// state, then default, fleet, saved, runtime, override.
	maxLayer = 5
)

// layerOK checks an op's layer against its bucket and kind: state ops have
// layer 0; config ops one of the five; merges and drops only writable
// layers (saved, runtime, override); meta ops (snapshots only) layer 0.
func layerOK(b core.Bucket, l core.Layer, k core.MutationKind) error {
	switch {
	case b == core.State || k == core.MutMeta:
		if l != 0 {
			return fmt.Errorf("%w: %s op in %s with layer %d", ErrInvalidMutation, k, b, uint8(l))
		}
	case !l.Valid():
		return fmt.Errorf("%w: layer %d", ErrInvalidMutation, uint8(l))
	case (k == core.MutMerge || k == core.MutDrop) && !l.Writable():
		return fmt.Errorf("%w: %s op in layer %s", ErrInvalidMutation, k, l)
	}
	return nil
}

// ownerless reports whether keys of bucket b, layer l have no owner (R42:
// default and fleet).
func ownerless(b core.Bucket, l core.Layer) bool {
	return b == core.Config && (l == core.Default || l == core.Fleet)
}

func kindNumber(k core.MutationKind) (uint64, bool) {
	switch k {
	case core.MutMerge:
		return kindMerge, true
	case core.MutDelete:
		return kindDelete, true
	case core.MutDrop:
		return kindDrop, true
	case core.MutSet:
		return kindSet, true
	}
	return 0, false
}

func bucketNumber(b core.Bucket) (uint64, bool) {
	switch b {
	case core.State:
		return bucketState, true
	case core.Config:
		return bucketConfig, true
	}
	return 0, false
}

// EncodeMutation returns the record for m (see "Records" in the package
// documentation). Ops are checked for shape as DecodeMutation checks them, so
// that every record written can be read back: an unknown kind, an invalid
// scope, an empty owner or key is an error matching ErrInvalidMutation or
// core.ErrInvalidScope, an invalid value one matching core.ErrInvalidValue.
// Values not in normal form are normalised on the way.
func EncodeMutation(m *core.Mutation) ([]byte, error) {
	if m == nil {
		return nil, fmt.Errorf("%w: nil mutation", ErrInvalidMutation)
	}
	b := make([]byte, 0, 24+64*len(m.Ops)+16*len(m.Binds))
	version := uint64(3)
	if len(m.Applies) > 0 || len(m.Finish) > 0 {
		version = 4
		b = appendHead(b, majorArray, 7)
	} else {
		b = appendHead(b, majorArray, 5)
	}
	b = appendHead(b, majorUint, version)
	b = appendHead(b, majorUint, m.Seq)
	var ns int64
	if !m.Time.IsZero() {
		ns = m.Time.UnixNano()
	}
	b = appendInt(b, ns)
	b = appendHead(b, majorArray, uint64(len(m.Ops)))
	for i := range m.Ops {
		var err error
		if b, err = appendOp(b, &m.Ops[i]); err != nil {
			return nil, fmt.Errorf("encode mutation %d: op %d (%s): %w", m.Seq, i, m.Ops[i].Kind, err)
		}
	}
	b, err := appendBinds(b, m.Binds, true)
	if err == nil && version >= 4 {
		for _, p := range m.Applies {
			if p.ID != m.Seq {
				return nil, fmt.Errorf("encode mutation %d: %w: it starts apply %d (a record starts only its own)", m.Seq, ErrInvalidMutation, p.ID)
			}
		}
		if b, err = appendApplies(b, m.Applies); err == nil {
			b, err = appendFinish(b, m.Finish)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("encode mutation %d: %w", m.Seq, err)
	}
	return b, nil
}

// appendBinds writes binds = [bind...], bind = [owner, uid] | [owner]
// (unbind; only where unbinds are allowed: records, not checkpoints).
// Names must be valid owner names in strictly ascending byte order.
func appendBinds(b []byte, binds []core.Bind, unbinds bool) ([]byte, error) {
	b = appendHead(b, majorArray, uint64(len(binds)))
	for i, bd := range binds {
		if err := checkName("bound owner", bd.Name); err != nil {
			return nil, err
		}
		if i > 0 && bd.Name <= binds[i-1].Name {
			return nil, fmt.Errorf("%w: binding of %q after %q: out of order or repeated", ErrInvalidMutation, bd.Name, binds[i-1].Name)
		}
		if bd.Unbind {
			if !unbinds {
				return nil, fmt.Errorf("%w: unbind of %q in a snapshot", ErrInvalidMutation, bd.Name)
			}
			b = appendHead(b, majorArray, 1)
			b = appendText(b, bd.Name)
			continue
		}
		b = appendHead(b, majorArray, 2)
		b = appendText(b, bd.Name)
		b = appendHead(b, majorUint, uint64(bd.UID))
	}
	return b, nil
}

// binds reads what appendBinds writes.
func (d *decoder) binds(unbinds bool) ([]core.Bind, error) {
	n, err := d.arrayHead(3) // the smallest bind, [name], takes 3 bytes
	if err != nil {
		return nil, fmt.Errorf("binds: %w", err)
	}
	if n == 0 {
		return nil, nil
	}
	out := make([]core.Bind, n)
	for i := range out {
		off := d.off
		k, err := d.arrayHead(1)
		if err != nil {
			return nil, fmt.Errorf("bind %d: %w", i, err)
		}
		if k != 2 && (k != 1 || !unbinds) {
			d.off = off
			return nil, d.errorf("bind %d has %d fields", i, k)
		}
		name, err := d.nonEmptyText("bound owner")
		if err != nil {
			return nil, fmt.Errorf("bind %d: %w", i, err)
		}
		if i > 0 && name <= out[i-1].Name {
			d.off = off
			return nil, d.errorf("binding of %q after %q: out of order or repeated", name, out[i-1].Name)
		}
		out[i].Name = name
		if k == 1 {
			out[i].Unbind = true
			continue
		}
		uoff := d.off
		uid, err := d.uint()
		if err != nil {
			return nil, fmt.Errorf("bind of %q: uid: %w", name, err)
		}
		if uid > 1<<32-1 {
			d.off = uoff
			return nil, d.errorf("bind of %q: uid %d out of range", name, uid)
		}
		out[i].UID = uint32(uid)
	}
	return out, nil
}

func appendOp(b []byte, op *core.MutationOp) ([]byte, error) {
	kind, ok := kindNumber(op.Kind)
	if !ok {
		return nil, fmt.Errorf("%w: unknown op kind %d", ErrInvalidMutation, op.Kind)
	}
	bucket, ok := bucketNumber(op.Scope.Bucket)
	if !ok {
		return nil, fmt.Errorf("%w: %s", core.ErrInvalidScope, op.Scope.Bucket)
	}
	if op.Kind == core.MutDrop {
		if op.Scope.Type != "" || op.Scope.Subtype != "" {
			return nil, fmt.Errorf("%w: drop op with type or subtype %q/%q", ErrInvalidMutation, op.Scope.Type, op.Scope.Subtype)
		}
	} else if err := op.Scope.Validate(); err != nil {
		return nil, err
	}
	if err := layerOK(op.Scope.Bucket, op.Layer, op.Kind); err != nil {
		return nil, err
	}
	if op.Kind != core.MutDelete {
		if ownerless(op.Scope.Bucket, op.Layer) {
			if op.Owner != "" {
				return nil, fmt.Errorf("%w: %s keys have no owner, got %q", ErrInvalidMutation, op.Layer, op.Owner)
			}
		} else if err := checkName("owner", op.Owner); err != nil {
			return nil, err
		}
	}
	switch op.Kind {
	case core.MutMerge, core.MutSet:
		b = appendHead(b, majorArray, 7)
	case core.MutDelete:
		b = appendHead(b, majorArray, 6)
	case core.MutDrop:
		b = appendHead(b, majorArray, 4)
	}
	b = appendHead(b, majorUint, kind)
	b = appendHead(b, majorUint, bucket)
	b = appendHead(b, majorUint, uint64(op.Layer))
	if op.Kind != core.MutDrop {
		b = appendText(b, op.Scope.Type)
		b = appendText(b, op.Scope.Subtype)
	}
	switch op.Kind {
	case core.MutMerge, core.MutSet:
		b = appendText(b, op.Owner)
		return appendValues(b, op.Values)
	case core.MutDelete:
		b = appendHead(b, majorArray, uint64(len(op.Keys)))
		for _, k := range op.Keys {
			if err := checkName("key", k); err != nil {
				return nil, err
			}
			b = appendText(b, k)
		}
	case core.MutDrop:
		b = appendText(b, op.Owner)
	}
	return b, nil
}

// checkName checks an owner or key for encoding: non-empty UTF-8.
func checkName(what, s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty %s", ErrInvalidMutation, what)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s %q is not valid UTF-8", ErrInvalidMutation, what, s)
	}
	return nil
}

// DecodeMutation decodes a record written by EncodeMutation of any version up
// to RecordVersion. A newer or zero version is a *VersionError (ErrVersion);
// anything else wrong — truncation, trailing bytes, wrong types, an unknown op
// kind, an invalid scope, empty owner or key, a value outside R2 — matches
// ErrMalformed. The result never aliases b; its values are in normal form.
func DecodeMutation(b []byte) (*core.Mutation, error) {
	d := decoder{data: b}
	m, err := d.mutation()
	if err == nil {
		err = d.end()
	}
	if err != nil {
		return nil, malformed("record", err)
	}
	return m, nil
}

// envelope reads the head shared by records and snapshots, [version, seq,
// ...], up to the fields after seq, and returns the version and seq.
// Version 1 has 3 fields; version 2 has 4 in records (time before the
// ops) and 3 in snapshots; version 3 has 5 in records (binds after the
// ops) and 4 in snapshots (binds after the scopes).
func (d *decoder) envelope(format string, current uint64) (version, seq uint64, err error) {
	n, err := d.arrayHead(1)
	if err != nil {
		return 0, 0, err
	}
	if n == 0 {
		return 0, 0, d.errorf("empty %s envelope", format)
	}
	v, err := d.uint()
	if err != nil {
		return 0, 0, fmt.Errorf("version: %w", err)
	}
	if v == 0 || v > current {
		return 0, 0, &VersionError{Format: format, Found: v, Supported: current}
	}
	want := 3
	switch {
	case format == "record" && v >= 4:
		want = 7 // applies and finish after the binds
	case format == "snapshot" && v >= 4:
		want = 5 // applies after the binds
	case format == "record" && v == 3:
		want = 5 // binds after the ops
	case format == "record" && v == 2:
		want = 4
	case format == "snapshot" && v == 3:
		want = 4 // binds after the scopes
	}
	if n != want {
		return 0, 0, d.errorf("%s version %d has %d fields, want %d", format, v, n, want)
	}
	seq, err = d.uint()
	if err != nil {
		return 0, 0, fmt.Errorf("seq: %w", err)
	}
	return v, seq, nil
}

func (d *decoder) mutation() (*core.Mutation, error) {
	v, seq, err := d.envelope("record", RecordVersion)
	if err != nil {
		return nil, err
	}
	m := &core.Mutation{Seq: seq}
	if v >= 2 {
		ns, err := d.int()
		if err != nil {
			return nil, fmt.Errorf("record %d: time: %w", seq, err)
		}
		if ns != 0 {
			m.Time = time.Unix(0, ns)
		}
	}
	n, err := d.arrayHead(4) // the smallest op, a drop, takes 5 bytes
	if err != nil {
		return nil, fmt.Errorf("record %d: ops: %w", seq, err)
	}
	m.Ops = make([]core.MutationOp, n)
	for i := range m.Ops {
		if err := d.op(&m.Ops[i], v); err != nil {
			return nil, fmt.Errorf("record %d: op %d: %w", seq, i, err)
		}
	}
	if v >= 3 {
		if m.Binds, err = d.binds(true); err != nil {
			return nil, fmt.Errorf("record %d: %w", seq, err)
		}
	}
	if v >= 4 {
		off := d.off
		if m.Applies, err = d.applies(); err != nil {
			return nil, fmt.Errorf("record %d: %w", seq, err)
		}
		if len(m.Applies) > 1 || (len(m.Applies) == 1 && m.Applies[0].ID != seq) {
			d.off = off
			return nil, d.errorf("record %d starts applies other than its own", seq)
		}
		if m.Finish, err = d.finish(); err != nil {
			return nil, fmt.Errorf("record %d: %w", seq, err)
		}
	}
	return m, nil
}

// op reads one op of a record of format version v. Version 1 ops have no
// layer: they were written before config layers, and their config ops are
// read as ops of the saved layer (the migration of R41: nothing that
// version 1 kept may be lost when its owner's next session ends).
func (d *decoder) op(op *core.MutationOp, v uint64) error {
	n, err := d.arrayHead(1)
	if err != nil {
		return err
	}
	if n == 0 {
		return d.errorf("empty op")
	}
	kindOff := d.off
	kind, err := d.uint()
	if err != nil {
		return fmt.Errorf("kind: %w", err)
	}
	var want int
	switch kind {
	case kindMerge:
		op.Kind, want = core.MutMerge, 6
	case kindSet:
		op.Kind, want = core.MutSet, 6
	case kindDelete:
		op.Kind, want = core.MutDelete, 5
	case kindDrop:
		op.Kind, want = core.MutDrop, 3
	default:
		d.off = kindOff
		return d.errorf("unknown op kind %d", kind)
	}
	if v >= 2 {
		want++ // the layer
	}
	if n != want {
		return d.errorf("%s op has %d fields, want %d", op.Kind, n, want)
	}
	if op.Scope.Bucket, err = d.bucket(); err != nil {
		return err
	}
	if v >= 2 {
		if op.Layer, err = d.layer(op.Scope.Bucket, op.Kind); err != nil {
			return err
		}
	} else if op.Scope.Bucket == core.Config {
		op.Layer = core.Saved
	}
	if op.Kind != core.MutDrop {
		if op.Scope, err = d.scopeRest(op.Scope.Bucket); err != nil {
			return err
		}
	}
	switch op.Kind {
	case core.MutMerge, core.MutSet:
		if ownerless(op.Scope.Bucket, op.Layer) {
			if op.Owner, err = d.text(); err != nil {
				return fmt.Errorf("owner: %w", err)
			}
			if op.Owner != "" {
				return d.errorf("%s keys have an owner %q", op.Layer, op.Owner)
			}
		} else if op.Owner, err = d.nonEmptyText("owner"); err != nil {
			return err
		}
		if op.Values, err = d.values(nil); err != nil {
			return fmt.Errorf("%s: values: %w", op.Scope, err)
		}
	case core.MutDelete:
		k, err := d.arrayHead(2) // a non-empty key takes 2 bytes or more
		if err != nil {
			return fmt.Errorf("%s: keys: %w", op.Scope, err)
		}
		op.Keys = make([]string, k)
		for i := range op.Keys {
			if op.Keys[i], err = d.nonEmptyText("key"); err != nil {
				return fmt.Errorf("%s: key %d: %w", op.Scope, i, err)
			}
		}
	case core.MutDrop:
		if op.Owner, err = d.nonEmptyText("owner"); err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) bucket() (core.Bucket, error) {
	off := d.off
	b, err := d.uint()
	if err != nil {
		return 0, fmt.Errorf("bucket: %w", err)
	}
	switch b {
	case bucketState:
		return core.State, nil
	case bucketConfig:
		return core.Config, nil
	}
	d.off = off
	return 0, d.errorf("unknown bucket %d", b)
}

// layer reads an op's layer and checks it against its bucket and kind.
func (d *decoder) layer(b core.Bucket, k core.MutationKind) (core.Layer, error) {
	off := d.off
	n, err := d.uint()
	if err != nil {
		return 0, fmt.Errorf("layer: %w", err)
	}
	if n > maxLayer {
		d.off = off
		return 0, d.errorf("unknown layer %d", n)
	}
	if err := layerOK(b, core.Layer(n), k); err != nil {
		d.off = off
		return 0, d.errorf("%v", err)
	}
	return core.Layer(n), nil
}

// scope reads bucket, type and subtype and checks them against R1.
func (d *decoder) scope() (core.Scope, error) {
	b, err := d.bucket()
	if err != nil {
		return core.Scope{}, err
	}
	return d.scopeRest(b)
}

// scopeRest reads type and subtype of a scope of bucket b.
func (d *decoder) scopeRest(b core.Bucket) (core.Scope, error) {
	s := core.Scope{Bucket: b}
	var err error
	off := d.off
	if s.Type, err = d.text(); err != nil {
		return s, fmt.Errorf("type: %w", err)
	}
	if s.Subtype, err = d.text(); err != nil {
		return s, fmt.Errorf("subtype: %w", err)
	}
	if err := s.Validate(); err != nil {
		d.off = off
		return s, d.errorf("%v", err)
	}
	return s, nil
}
