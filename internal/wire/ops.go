package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// This file decodes and encodes the bodies of mutate and apply — every
// write a client makes goes through them — by hand, without reflection.
//
// The decoder is strict: each field is the CBOR type PROTOCOL.md names,
// with any head length, or null for its zero value (section 2). A tag, an
// undefined or other simple value, a float or a byte string in place of a
// field, an op that is not an array of four, a scope that is not an array
// of three, text that is not UTF-8 and trailing bytes make the body
// malformed. An op's values are opaque here (internal/codec decodes them):
// any one well-formed item within the limits of section 2, taken as
// fxamacker/cbor takes a cbor.RawMessage field (leading self-described
// tags 55799 dropped, the content of tags 0–3 checked). fxamacker's
// reflection decoder is the oracle (FuzzMutateBody): whatever this decoder
// accepts, it decodes to the same message; it is laxer in the fields (it
// strips tags there, reads undefined as null and simple values and bignums
// as integers), which no sysreg client ever sends.

// maxItems is fxamacker's limit on the length of one array or map
// (cbor.DecOptions MaxArrayElements and MaxMapPairs in wire.go).
const maxItems = 1 << 20

// Tags whose content fxamacker checks where a field begins.
const (
	tagSelfDescribed = 55799
	tagRFC3339       = 0
	tagEpoch         = 1
	tagBignum        = 2
	tagNegBignum     = 3
)

// reader reads one body. It never modifies data; strings are copied out,
// Op.Values alias data.
type reader struct {
	data []byte
	off  int
}

var errTruncated = errors.New("truncated")

// head reads an item head: its major type, additional information and
// argument. Indefinite lengths, the break code and the reserved additional
// information values are errors, as is a two-byte simple value below 32.
func (r *reader) head() (major, ai byte, arg uint64, err error) {
	if r.off >= len(r.data) {
		return 0, 0, 0, errTruncated
	}
	ib := r.data[r.off]
	major, ai = ib>>5, ib&0x1f
	if ai < 24 {
		r.off++
		return major, ai, uint64(ai), nil
	}
	if ai > 27 {
		switch {
		case ai == 31 && major == 7:
			return 0, 0, 0, errors.New("unexpected break stop code")
		case ai == 31:
			return 0, 0, 0, fmt.Errorf("indefinite length (major type %d)", major)
		}
		return 0, 0, 0, fmt.Errorf("reserved additional information %d", ai)
	}
	size := 1 << (ai - 24)
	if len(r.data)-r.off-1 < size {
		return 0, 0, 0, errTruncated
	}
	p := r.data[r.off+1 : r.off+1+size]
	switch size {
	case 1:
		arg = uint64(p[0])
		if major == 7 && arg < 32 {
			return 0, 0, 0, fmt.Errorf("invalid simple value %d", arg)
		}
	case 2:
		arg = uint64(binary.BigEndian.Uint16(p))
	case 4:
		arg = uint64(binary.BigEndian.Uint32(p))
	default:
		arg = binary.BigEndian.Uint64(p)
	}
	r.off += 1 + size
	return major, ai, arg, nil
}

// null reports whether the next item is null, and consumes it if so.
func (r *reader) null() bool {
	if r.off < len(r.data) && r.data[r.off] == 0xf6 {
		r.off++
		return true
	}
	return false
}

// kind names a CBOR item by its major type (and simple value) for errors.
func kind(major, ai byte) string {
	switch major {
	case 0:
		return "an unsigned integer"
	case 1:
		return "a negative integer"
	case 2:
		return "a byte string"
	case 3:
		return "a text string"
	case 4:
		return "an array"
	case 5:
		return "a map"
	case 6:
		return "a tag"
	}
	switch ai {
	case 20, 21:
		return "a bool"
	case 22:
		return "null"
	case 23:
		return "undefined"
	case 25, 26, 27:
		return "a float"
	}
	return "a simple value"
}

// uint reads an unsigned integer field of at most max; null reads as 0.
func (r *reader) uint(max uint64) (uint64, error) {
	if r.null() {
		return 0, nil
	}
	major, ai, arg, err := r.head()
	switch {
	case err != nil:
		return 0, err
	case major != 0:
		return 0, fmt.Errorf("%s, not an unsigned integer", kind(major, ai))
	case arg > max:
		return 0, fmt.Errorf("%d overflows %d", arg, max)
	}
	return arg, nil
}

// int reads a signed 64-bit integer field; null reads as 0.
func (r *reader) int() (int64, error) {
	if r.null() {
		return 0, nil
	}
	major, ai, arg, err := r.head()
	switch {
	case err != nil:
		return 0, err
	case major != 0 && major != 1:
		return 0, fmt.Errorf("%s, not an integer", kind(major, ai))
	case arg > math.MaxInt64:
		return 0, fmt.Errorf("integer overflows int64")
	case major == 1:
		return ^int64(arg), nil // -1-arg
	}
	return int64(arg), nil
}

// text reads a text field; null reads as "".
func (r *reader) text() (string, error) {
	if r.null() {
		return "", nil
	}
	major, ai, arg, err := r.head()
	switch {
	case err != nil:
		return "", err
	case major != 3:
		return "", fmt.Errorf("%s, not a text string", kind(major, ai))
	case arg > uint64(len(r.data)-r.off):
		return "", errTruncated
	}
	b := r.data[r.off : r.off+int(arg)]
	if !utf8.Valid(b) {
		return "", errors.New("text is not valid UTF-8")
	}
	r.off += int(arg)
	return string(b), nil
}

// array reads the head of an array field of any length (want < 0) or of
// exactly want elements, and returns its length. null reports -1.
func (r *reader) array(want int) (int, error) {
	if r.null() {
		return -1, nil
	}
	major, ai, arg, err := r.head()
	switch {
	case err != nil:
		return 0, err
	case major != 4:
		return 0, fmt.Errorf("%s, not an array", kind(major, ai))
	case want >= 0 && arg != uint64(want):
		return 0, fmt.Errorf("an array of %d elements, not %d", arg, want)
	case arg > uint64(len(r.data)-r.off) || arg > maxItems:
		// Every element takes a byte at least: a longer array is
		// truncated, and nothing is allocated for it.
		return 0, fmt.Errorf("an array of %d elements in %d bytes", arg, len(r.data)-r.off)
	}
	return int(arg), nil
}

// texts reads an array of texts; null reads as nil.
func (r *reader) texts() ([]string, error) {
	n, err := r.array(-1)
	if n < 0 || err != nil {
		return nil, err
	}
	out := make([]string, n)
	for i := range out {
		if r.off < len(r.data) && r.data[r.off] == 0xf6 {
			return nil, fmt.Errorf("[%d]: null, not a text string", i)
		}
		if out[i], err = r.text(); err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
	}
	return out, nil
}

// scope reads a Scope field; null reads as the zero Scope.
func (r *reader) scope() (Scope, error) {
	var s Scope
	n, err := r.array(3)
	if n < 0 || err != nil {
		return s, err
	}
	b, err := r.uint(math.MaxUint8)
	if err != nil {
		return s, fmt.Errorf("bucket: %w", err)
	}
	s.Bucket = uint8(b)
	if s.Type, err = r.text(); err != nil {
		return s, fmt.Errorf("type: %w", err)
	}
	if s.Subtype, err = r.text(); err != nil {
		return s, fmt.Errorf("subtype: %w", err)
	}
	return s, nil
}

// raw reads an item taken whole (an op's values), as fxamacker takes a
// cbor.RawMessage field at the given nesting depth: leading tags 55799 are
// dropped, the content of tags 0–3 where the item begins is checked, and
// the item must be well-formed within section 2's limits. The result
// aliases data.
func (r *reader) raw(depth int) ([]byte, error) {
	for {
		start := r.off
		major, _, arg, err := r.head()
		if err != nil {
			return nil, err
		}
		if major != 6 || arg != tagSelfDescribed {
			r.off = start
			break
		}
	}
	start := r.off
	for r.off < len(r.data) && r.data[r.off]>>5 == 6 {
		_, _, tag, err := r.head()
		if err != nil {
			return nil, err
		}
		if r.off >= len(r.data) {
			return nil, errTruncated
		}
		if err := checkBuiltinTag(tag, r.data[r.off]); err != nil {
			return nil, err
		}
	}
	r.off = start
	if err := r.skip(depth); err != nil {
		return nil, err
	}
	return r.data[start:r.off:r.off], nil
}

// checkBuiltinTag is fxamacker's check of the content of tags 0–3.
func checkBuiltinTag(tag uint64, content byte) error {
	major := content >> 5
	switch tag {
	case tagRFC3339:
		if major != 3 {
			return fmt.Errorf("tag 0 holds %s, not a text string", kind(major, content&0x1f))
		}
	case tagEpoch:
		if major != 0 && major != 1 && (content < 0xf9 || content > 0xfb) {
			return fmt.Errorf("tag 1 holds %s, not a number", kind(major, content&0x1f))
		}
	case tagBignum, tagNegBignum:
		if major != 2 {
			return fmt.Errorf("tag %d holds %s, not a byte string", tag, kind(major, content&0x1f))
		}
	}
	return nil
}

// skip skips one well-formed item. depth is the nesting of the enclosing
// array or map (0 for a body), as fxamacker counts it: arrays and maps
// may nest MaxNesting deep, and none may hold more than maxItems.
func (r *reader) skip(depth int) error {
	major, _, arg, err := r.head()
	if err != nil {
		return err
	}
	switch major {
	case 2, 3:
		if arg > uint64(len(r.data)-r.off) {
			return errTruncated
		}
		r.off += int(arg)
	case 4, 5:
		if depth++; depth > MaxNesting {
			return fmt.Errorf("nested deeper than %d levels", MaxNesting)
		}
		if arg > maxItems {
			return fmt.Errorf("%d items, more than %d", arg, maxItems)
		}
		n := arg
		if major == 5 {
			n *= 2
		}
		if n > uint64(len(r.data)-r.off) {
			return errTruncated
		}
		for range n {
			if err := r.skip(depth); err != nil {
				return err
			}
		}
	case 6:
		return r.skip(depth)
	}
	return nil
}

// ops reads the ops of a mutate or apply at nesting depth 1 (in the body)
// into reuse's storage if it has room.
func (r *reader) ops(reuse []Op) ([]Op, error) {
	n, err := r.array(-1)
	if err != nil {
		return nil, fmt.Errorf("ops: %w", err)
	}
	if n < 0 {
		return nil, nil
	}
	ops := reuse[:0]
	if ops == nil || cap(ops) < n { // an empty array is an empty slice, not nil
		ops = make([]Op, n)
	}
	ops = ops[:n]
	for i := range ops {
		if err := r.op(&ops[i]); err != nil {
			return nil, fmt.Errorf("op %d: %w", i, err)
		}
	}
	return ops, nil
}

// op reads one op, an array at depth 3: [kind, scope, values, keys].
func (r *reader) op(op *Op) error {
	if r.off < len(r.data) && r.data[r.off] == 0xf6 {
		return errors.New("null, not an array")
	}
	if _, err := r.array(4); err != nil {
		return err
	}
	k, err := r.uint(math.MaxUint8)
	if err != nil {
		return fmt.Errorf("kind: %w", err)
	}
	op.Kind = uint8(k)
	if op.Scope, err = r.scope(); err != nil {
		return fmt.Errorf("scope: %w", err)
	}
	if op.Values, err = r.raw(3); err != nil {
		return fmt.Errorf("values: %w", err)
	}
	if op.Keys, err = r.texts(); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	return nil
}

// body checks that data is an array of n fields.
func (r *reader) body(t Type, n int) error {
	if len(r.data) == 0 || r.data[0]>>5 != 4 {
		return fmt.Errorf("%w: %s body is not an array", ErrMalformed, t)
	}
	if _, err := r.array(n); err != nil {
		return fmt.Errorf("%w: %s body: %v", ErrMalformed, t, err)
	}
	return nil
}

func (r *reader) end(t Type) error {
	if r.off != len(r.data) {
		return fmt.Errorf("%w: %s body: %d bytes after the body", ErrMalformed, t, len(r.data)-r.off)
	}
	return nil
}

// DecodeMutate decodes a mutate body without reflection (see the top of
// this file). The ops' Values alias body. Errors match ErrMalformed.
func DecodeMutate(body []byte) (Mutate, error) {
	var m Mutate
	err := DecodeMutateTo(body, &m)
	return m, err
}

// DecodeMutateTo is DecodeMutate into m, reusing the storage of m.Ops: a
// daemon decodes every mutate of a connection into one Mutate. On error m
// is the zero Mutate but for that storage.
func DecodeMutateTo(body []byte, m *Mutate) error {
	reuse := m.Ops
	*m = Mutate{Ops: reuse[:0]}
	h, ops, err := decodeOpsBody(TMutate, body, reuse, nil)
	if err == nil {
		m.Handle, m.Ops = h, ops
	}
	return err
}

// DecodeApply decodes an apply body as DecodeMutate does a mutate's.
func DecodeApply(body []byte) (Apply, error) {
	var a Apply
	err := DecodeApplyTo(body, &a)
	return a, err
}

// DecodeApplyTo is DecodeMutateTo for apply.
func DecodeApplyTo(body []byte, a *Apply) error {
	reuse := a.Ops
	*a = Apply{Ops: reuse[:0]}
	var within int64
	h, ops, err := decodeOpsBody(TApply, body, reuse, &within)
	if err == nil {
		a.Handle, a.Within, a.Ops = h, within, ops
	}
	return err
}

// decodeOpsBody reads the body of a mutate, [handle, ops], or with within
// set of an apply, [handle, within, ops]; the ops into reuse's storage.
func decodeOpsBody(t Type, body []byte, reuse []Op, within *int64) (uint64, []Op, error) {
	r := reader{data: body}
	n := 2
	if within != nil {
		n = 3
	}
	if err := r.body(t, n); err != nil {
		return 0, nil, err
	}
	h, err := r.uint(math.MaxUint64)
	err = annotate("handle", err)
	if err == nil && within != nil {
		*within, err = r.int()
		err = annotate("within", err)
	}
	var ops []Op
	if err == nil {
		ops, err = r.ops(reuse)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %s body: %v", ErrMalformed, t, err)
	}
	return h, ops, r.end(t)
}

// annotate names the field an error is about.
func annotate(field string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	return nil
}

// appendMutate appends a mutate body as the deterministic encoder writes
// it: nil slices as null, raw values as they are (null when empty). A
// value that is not one well-formed item is an error, as for fxamacker.
func appendMutate(dst []byte, m Mutate) ([]byte, error) {
	dst = append(dst, 0x82)
	dst = appendUint(dst, m.Handle)
	return appendOps(dst, m.Ops)
}

func appendApply(dst []byte, a Apply) ([]byte, error) {
	dst = append(dst, 0x83)
	dst = appendUint(dst, a.Handle)
	dst = appendInt(dst, a.Within)
	return appendOps(dst, a.Ops)
}

func appendOps(dst []byte, ops []Op) ([]byte, error) {
	if ops == nil {
		return append(dst, 0xf6), nil
	}
	dst = appendHead(dst, 4, uint64(len(ops)))
	for i, op := range ops {
		dst = append(dst, 0x84)
		dst = appendUint(dst, uint64(op.Kind))
		dst = append(dst, 0x83)
		dst = appendUint(dst, uint64(op.Scope.Bucket))
		dst = appendText(dst, op.Scope.Type)
		dst = appendText(dst, op.Scope.Subtype)
		if len(op.Values) == 0 {
			dst = append(dst, 0xf6)
		} else {
			r := reader{data: op.Values}
			if err := r.skip(0); err == nil && r.off != len(op.Values) {
				return dst, fmt.Errorf("op %d: values: %d bytes after the item", i, len(op.Values)-r.off)
			} else if err != nil {
				return dst, fmt.Errorf("op %d: values: %v", i, err)
			}
			dst = append(dst, op.Values...)
		}
		if op.Keys == nil {
			dst = append(dst, 0xf6)
			continue
		}
		dst = appendHead(dst, 4, uint64(len(op.Keys)))
		for _, k := range op.Keys {
			dst = appendText(dst, k)
		}
	}
	return dst, nil
}

func appendHead(dst []byte, major byte, n uint64) []byte {
	start := len(dst)
	dst = appendUint(dst, n)
	dst[start] |= major << 5
	return dst
}

func appendInt(dst []byte, n int64) []byte {
	if n < 0 {
		return appendHead(dst, 1, uint64(^n))
	}
	return appendUint(dst, uint64(n))
}

func appendText(dst []byte, s string) []byte {
	return append(appendHead(dst, 3, uint64(len(s))), s...)
}
