package codec

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sysreg/sysreg/core"
)

// EncodeValue returns the encoding of one value (see "Values" in the package
// documentation). v may be any value that core.NormalizeValue accepts; values
// already in normal form are encoded directly, anything else is normalised
// first. A value outside the model of R2 is an error from core matching
// core.ErrInvalidValue. The length of the result is exactly the size that
// core.NormalizeValue reports.
func EncodeValue(v any) ([]byte, error) { return appendValue(nil, v) }

// EncodeValues returns the encoding of a scope's values: a map of non-empty
// top-level keys to values. A nil map encodes like an empty one. The length
// of the result is exactly the size that core.NormalizeValues reports.
func EncodeValues(vals core.Values) ([]byte, error) { return appendValues(nil, vals) }

// AppendValues appends the encoding of vals (see EncodeValues) to b. On
// error b is returned as it was.
func AppendValues(b []byte, vals core.Values) ([]byte, error) {
	out, err := appendValues(b, vals)
	if err != nil {
		return b, err
	}
	return out, nil
}

// DecodeValue decodes one value. The result is in normal form (nil, bool,
// int64, uint64, float64, string, []byte, []any, map[string]any) and never
// aliases b. Anything else in b — trailing bytes included — is an error
// matching ErrMalformed.
func DecodeValue(b []byte) (any, error) {
	d := decoder{data: b}
	v, err := d.value(1)
	if err != nil {
		return nil, malformed("value", d.withPath(err))
	}
	if err := d.end(); err != nil {
		return nil, malformed("value", err)
	}
	return v, nil
}

// DecodeValues decodes a scope's values, the counterpart of EncodeValues. The
// result is never nil; an empty map decodes to an empty Values.
func DecodeValues(b []byte) (core.Values, error) { return DecodeValuesInto(b, nil) }

// DecodeValuesInto is DecodeValues into m, which it clears first (a new map
// if m is nil): a caller that no longer needs the map it decoded last time
// decodes the next values without allocating one. On error m's contents
// are undefined.
func DecodeValuesInto(b []byte, m core.Values) (core.Values, error) {
	d := decoder{data: b}
	v, err := d.values(m)
	if err == nil {
		err = d.end()
	}
	if err != nil {
		return nil, malformed("values", err)
	}
	return v, nil
}

// errInternal reports a disagreement between core's normalisation and this
// encoder: a value that core accepted but that the encoder refuses. It is a
// bug, but it is returned rather than panicked so that a write fails cleanly.
var errInternal = errors.New("codec: internal error: normalised value not encodable")

func appendValue(b []byte, v any) ([]byte, error) {
	start := len(b)
	if out, ok := appendAny(b, v, 1); ok {
		return out, nil
	}
	// Not in normal form (an int, a []string…) or invalid: let core
	// normalise it, with its error and key path if it is invalid.
	nv, _, err := core.NormalizeValue(v)
	if err != nil {
		return nil, err
	}
	out, ok := appendAny(b[:start], nv, 1)
	if !ok {
		return nil, errInternal
	}
	return out, nil
}

func appendValues(b []byte, vals core.Values) ([]byte, error) {
	start := len(b)
	if out, ok := appendMap(b, vals, 1, true); ok {
		return out, nil
	}
	nv, _, err := core.NormalizeValues(vals)
	if err != nil {
		return nil, err
	}
	out, ok := appendMap(b[:start], nv, 1, true)
	if !ok {
		return nil, errInternal
	}
	return out, nil
}

// appendAny appends the encoding of v, a value at the given depth (1 for a
// top-level value). It reports false, leaving garbage after the original
// length of b, if v is not a valid value in normal form: a type outside the
// normal set, a string or key that is not UTF-8, or nesting beyond
// core.MaxDepth. It accepts exactly what DecodeValue returns, so that
// whatever is encoded can be decoded.
func appendAny(b []byte, v any, depth int) ([]byte, bool) {
	if depth > core.MaxDepth {
		return b, false
	}
	switch x := v.(type) {
	case nil:
		return append(b, cborNull), true
	case bool:
		if x {
			return append(b, cborTrue), true
		}
		return append(b, cborFalse), true
	case int64:
		if x < 0 {
			return appendHead(b, majorNeg, uint64(^x)), true // ^x == -1-x
		}
		return appendHead(b, majorUint, uint64(x)), true
	case uint64:
		return appendHead(append(b, uint64Head[:]...), majorUint, x), true
	case float64:
		// Always the 9-byte form, with the bits verbatim: NaN payloads,
		// the sign of zero and infinities survive.
		bits := math.Float64bits(x)
		return append(b, cborFloat64, byte(bits>>56), byte(bits>>48), byte(bits>>40), byte(bits>>32),
			byte(bits>>24), byte(bits>>16), byte(bits>>8), byte(bits)), true
	case string:
		if !utf8.ValidString(x) {
			return b, false
		}
		return appendText(b, x), true
	case []byte:
		return append(appendHead(b, majorBytes, uint64(len(x))), x...), true
	case []any:
		b = appendHead(b, majorArray, uint64(len(x)))
		for _, e := range x {
			var ok bool
			if b, ok = appendAny(b, e, depth+1); !ok {
				return b, false
			}
		}
		return b, true
	case map[string]any:
		return appendMap(b, x, depth+1, false)
	}
	return b, false
}

// appendMap appends a map whose values are at childDepth, its keys in the
// order of core deterministic encoding (RFC 8949 §4.2.1: bytewise order of
// the encoded keys, which for text keys is shorter first, then bytewise).
// topLevel requires non-empty keys (R2).
func appendMap(b []byte, m map[string]any, childDepth int, topLevel bool) ([]byte, bool) {
	b = appendHead(b, majorMap, uint64(len(m)))
	if len(m) == 1 {
		for k, v := range m {
			return appendEntry(b, k, v, childDepth, topLevel)
		}
	}
	var buf [16]string
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys)
	for _, k := range keys {
		var ok bool
		if b, ok = appendEntry(b, k, m[k], childDepth, topLevel); !ok {
			return b, false
		}
	}
	return b, true
}

func appendEntry(b []byte, k string, v any, depth int, topLevel bool) ([]byte, bool) {
	if (topLevel && k == "") || !utf8.ValidString(k) {
		return b, false
	}
	return appendAny(appendText(b, k), v, depth)
}

// compareKeys orders text map keys as core deterministic encoding does.
func compareKeys(a, b string) int {
	if len(a) != len(b) {
		return cmp.Compare(len(a), len(b))
	}
	return strings.Compare(a, b)
}

// smallAlloc is the largest array the decoder allocates from its declared
// length before reading the elements; larger ones are collected on a
// scratch stack first. A map is created with room for at most 8 pairs and
// grows as pairs are read. So headers that merely claim large lengths, nested
// or not, cannot make the decoder allocate much more than it reads.
const smallAlloc = 16

// value decodes one value at the given depth (1 at the top).
func (d *decoder) value(depth int) (any, error) {
	if depth > core.MaxDepth {
		return nil, d.errorf("value nested deeper than %d levels", core.MaxDepth)
	}
	start := d.off
	major, ai, arg, err := d.head()
	if err != nil {
		return nil, err
	}
	switch major {
	case majorUint:
		if arg > math.MaxInt64 {
			d.off = start
			return nil, d.errorf("integer %d overflows int64 (a uint64 must carry tag %d)", arg, core.Uint64Tag)
		}
		return int64(arg), nil
	case majorNeg:
		if arg > math.MaxInt64 {
			d.off = start
			return nil, d.errorf("integer -1-%d overflows int64", arg)
		}
		return ^int64(arg), nil // -1-arg
	case majorBytes:
		if arg > d.remaining() {
			return nil, d.errorf("byte string of %d bytes is longer than the %d bytes left", arg, d.remaining())
		}
		b := make([]byte, arg)
		copy(b, d.data[d.off:])
		d.off += int(arg)
		return b, nil
	case majorText:
		b, err := d.textBody(arg)
		if err != nil {
			return nil, err
		}
		return string(b), nil
	case majorArray:
		return d.array(arg, depth)
	case majorMap:
		return d.mapValue(arg, depth)
	case majorTag:
		if arg != core.Uint64Tag {
			d.off = start
			return nil, d.errorf("unsupported tag %d", arg)
		}
		u, err := d.uint()
		if err != nil {
			return nil, fmt.Errorf("content of tag %d: %w", core.Uint64Tag, err)
		}
		return u, nil
	}
	// majorSimple
	switch ai {
	case 20:
		return false, nil
	case 21:
		return true, nil
	case 22:
		return nil, nil
	case 25:
		return halfToFloat64(uint16(arg)), nil
	case 26:
		return singleToFloat64(uint32(arg)), nil
	case 27:
		return math.Float64frombits(arg), nil
	case 23:
		d.off = start
		return nil, d.errorf("unsupported simple value undefined")
	}
	d.off = start
	return nil, d.errorf("unsupported simple value %d", arg)
}

func (d *decoder) array(n uint64, depth int) (any, error) {
	if n > d.remaining() {
		return nil, d.errorf("array of %d elements is longer than the %d bytes left", n, d.remaining())
	}
	if n <= smallAlloc {
		out := make([]any, n)
		for i := range out {
			v, err := d.value(depth + 1)
			if err != nil {
				d.pathIndex(i)
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	}
	base := len(d.vals)
	for i := range int(n) {
		v, err := d.value(depth + 1)
		if err != nil {
			d.pathIndex(i)
			return nil, err
		}
		d.vals = append(d.vals, v)
	}
	out := slices.Clone(d.vals[base:])
	clear(d.vals[base:])
	d.vals = d.vals[:base]
	return out, nil
}

func (d *decoder) mapValue(n uint64, depth int) (any, error) {
	return d.mapBody(n, depth+1, false)
}

// mapBody decodes the n pairs of a map whose values are at childDepth.
// topLevel requires non-empty keys.
func (d *decoder) mapBody(n uint64, childDepth int, topLevel bool) (map[string]any, error) {
	return d.mapInto(nil, n, childDepth, topLevel)
}

// mapInto is mapBody into m (cleared first), or a new map if m is nil.
func (d *decoder) mapInto(m map[string]any, n uint64, childDepth int, topLevel bool) (map[string]any, error) {
	if n > d.remaining()/2 {
		return nil, d.errorf("map of %d pairs is longer than the %d bytes left", n, d.remaining())
	}
	if m == nil {
		m = make(map[string]any, min(n, 8))
	} else {
		clear(m)
	}
	for range n {
		keyOff := d.off
		major, _, arg, err := d.head()
		if err != nil {
			return nil, err
		}
		if major != majorText {
			d.off = keyOff
			return nil, d.errorf("map key is a %s, not a text string", typeName(major))
		}
		kb, err := d.textBody(arg)
		if err != nil {
			return nil, err
		}
		if topLevel && len(kb) == 0 {
			d.off = keyOff
			return nil, d.errorf("empty top-level key")
		}
		if _, dup := m[string(kb)]; dup {
			d.off = keyOff
			return nil, d.errorf("duplicate map key %q", kb)
		}
		k := string(kb)
		v, err := d.value(childDepth)
		if err != nil {
			d.pathKey(k)
			return nil, err
		}
		m[k] = v
	}
	return m, nil
}

// values decodes a scope's values: a map with non-empty keys, into into
// if it is not nil.
func (d *decoder) values(into core.Values) (core.Values, error) {
	n, err := d.expect(majorMap)
	if err != nil {
		return nil, err
	}
	m, err := d.mapInto(into, n, 1, true)
	if err != nil {
		return nil, d.withPath(err)
	}
	return m, nil
}

// The decoder records the key path of a failing value while unwinding
// (innermost first) and renders it once, so that errors cost nothing until
// they happen and deep nesting does not build long error chains.
func (d *decoder) pathIndex(i int)  { d.path = append(d.path, "["+strconv.Itoa(i)+"]") }
func (d *decoder) pathKey(k string) { d.path = append(d.path, k) }

// maxPathShown bounds the rendered key path of an error.
const maxPathShown = 16

func (d *decoder) withPath(err error) error {
	if len(d.path) == 0 {
		return err
	}
	var sb strings.Builder
	for i := range min(len(d.path), maxPathShown) {
		e := d.path[len(d.path)-1-i]
		if i > 0 && !strings.HasPrefix(e, "[") {
			sb.WriteByte('.')
		}
		q := strconv.Quote(e) // keys may hold anything printable or not
		sb.WriteString(q[1 : len(q)-1])
	}
	if len(d.path) > maxPathShown {
		fmt.Fprintf(&sb, "…(%d levels)", len(d.path))
	}
	d.path = d.path[:0]
	return fmt.Errorf("at %s: %w", sb.String(), err)
}

// halfToFloat64 widens an IEEE 754 half-precision value exactly (NaN
// payloads shifted into the high mantissa bits).
func halfToFloat64(h uint16) float64 {
	sign := uint64(h>>15) << 63
	exp := uint64(h>>10) & 0x1f
	frac := uint64(h & 0x3ff)
	switch exp {
	case 0: // zero or subnormal: frac × 2^-24
		f := math.Ldexp(float64(frac), -24)
		return math.Float64frombits(sign | math.Float64bits(f))
	case 0x1f: // infinity or NaN
		return math.Float64frombits(sign | 0x7ff<<52 | frac<<42)
	}
	return math.Float64frombits(sign | (exp-15+1023)<<52 | frac<<42)
}

// singleToFloat64 widens an IEEE 754 single-precision value exactly; unlike
// a Go conversion it keeps a NaN's payload (and its signalling bit) as is.
func singleToFloat64(u uint32) float64 {
	if u&0x7f800000 == 0x7f800000 && u&0x7fffff != 0 {
		return math.Float64frombits(uint64(u>>31)<<63 | 0x7ff<<52 | uint64(u&0x7fffff)<<29)
	}
	return float64(math.Float32frombits(u))
}
