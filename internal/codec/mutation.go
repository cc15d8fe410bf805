package codec

import (
	"fmt"
	"unicode/utf8"

	"github.com/sysreg/sysreg/core"
)

// RecordVersion is the format version of the mutation records that
// EncodeMutation writes. DecodeMutation reads every version from 1 up to it.
const RecordVersion = 1

// Numbers of op kinds and buckets in records and snapshots. They are fixed
// by the format, whatever core's Go constants become.
const (
	kindMerge  = 1
	kindDelete = 2
	kindDrop   = 3
	kindSet    = 4

	bucketState  = 1
	bucketConfig = 2
)

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
	b := make([]byte, 0, 16+64*len(m.Ops))
	b = appendHead(b, majorArray, 3)
	b = appendHead(b, majorUint, RecordVersion)
	b = appendHead(b, majorUint, m.Seq)
	b = appendHead(b, majorArray, uint64(len(m.Ops)))
	for i := range m.Ops {
		var err error
		if b, err = appendOp(b, &m.Ops[i]); err != nil {
			return nil, fmt.Errorf("encode mutation %d: op %d (%s): %w", m.Seq, i, m.Ops[i].Kind, err)
		}
	}
	return b, nil
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
	if op.Kind != core.MutDelete {
		if err := checkName("owner", op.Owner); err != nil {
			return nil, err
		}
	}
	switch op.Kind {
	case core.MutMerge, core.MutSet:
		b = appendHead(b, majorArray, 6)
	case core.MutDelete:
		b = appendHead(b, majorArray, 5)
	case core.MutDrop:
		b = appendHead(b, majorArray, 3)
	}
	b = appendHead(b, majorUint, kind)
	b = appendHead(b, majorUint, bucket)
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
// body], up to the body, and returns seq.
func (d *decoder) envelope(format string, current uint64) (uint64, error) {
	n, err := d.arrayHead(1)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, d.errorf("empty %s envelope", format)
	}
	v, err := d.uint()
	if err != nil {
		return 0, fmt.Errorf("version: %w", err)
	}
	if v == 0 || v > current {
		return 0, &VersionError{Format: format, Found: v, Supported: current}
	}
	// Version 1 is the only one so far: [1, seq, body].
	if n != 3 {
		return 0, d.errorf("%s version %d has %d fields, want 3", format, v, n)
	}
	seq, err := d.uint()
	if err != nil {
		return 0, fmt.Errorf("seq: %w", err)
	}
	return seq, nil
}

func (d *decoder) mutation() (*core.Mutation, error) {
	seq, err := d.envelope("record", RecordVersion)
	if err != nil {
		return nil, err
	}
	n, err := d.arrayHead(4) // the smallest op, a drop, takes 5 bytes
	if err != nil {
		return nil, fmt.Errorf("record %d: ops: %w", seq, err)
	}
	m := &core.Mutation{Seq: seq, Ops: make([]core.MutationOp, n)}
	for i := range m.Ops {
		if err := d.op(&m.Ops[i]); err != nil {
			return nil, fmt.Errorf("record %d: op %d: %w", seq, i, err)
		}
	}
	return m, nil
}

func (d *decoder) op(op *core.MutationOp) error {
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
	if n != want {
		return d.errorf("%s op has %d fields, want %d", op.Kind, n, want)
	}
	if op.Kind == core.MutDrop {
		if op.Scope.Bucket, err = d.bucket(); err != nil {
			return err
		}
	} else if op.Scope, err = d.scope(); err != nil {
		return err
	}
	switch op.Kind {
	case core.MutMerge, core.MutSet:
		if op.Owner, err = d.nonEmptyText("owner"); err != nil {
			return err
		}
		if op.Values, err = d.values(); err != nil {
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

// scope reads bucket, type and subtype and checks them against R1.
func (d *decoder) scope() (core.Scope, error) {
	var s core.Scope
	var err error
	if s.Bucket, err = d.bucket(); err != nil {
		return s, err
	}
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
