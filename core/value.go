package core

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// Values is the map of top-level keys to values stored at one scope (R2).
type Values = map[string]any

// MaxDepth is the deepest nesting of lists and maps a value may have. Every
// decoder in sysreg (journal, checkpoint, wire) accepts at least this depth,
// so anything accepted on the way in can be read back.
const MaxDepth = 10000

// DefaultMaxUpdateBytes is the default limit on the encoded size of one update
// or transaction (R2).
const DefaultMaxUpdateBytes = 1 << 20

// valuePath renders a key path for error messages: top.inner[3].leaf
type valuePath []string

func (p valuePath) String() string {
	if len(p) == 0 {
		return "(values)"
	}
	// A strings.Builder, not +=: the path of a value rejected for depth has
	// MaxDepth elements, and repeated concatenation is quadratic in that.
	var b strings.Builder
	for i, e := range p {
		if len(p) > 24 && i == 12 {
			// A path rejected for depth has MaxDepth elements: keep the
			// message readable.
			fmt.Fprintf(&b, "…(%d levels)…", len(p)-20)
		}
		if len(p) > 24 && i >= 12 && i < len(p)-8 {
			continue
		}
		if i > 0 && e[0] != '[' {
			b.WriteByte('.')
		}
		b.WriteString(e)
	}
	return b.String()
}

func invalid(path valuePath, format string, args ...any) error {
	return fmt.Errorf("%w at %s: %s", ErrInvalidValue, path, fmt.Sprintf(format, args...))
}

// NormalizeValues validates vals against R2 and returns them in normal form
// (int64, uint64, float64, string, []byte, bool, nil, []any,
// map[string]any) together with the size of their CBOR encoding as the
// journal and the wire write it. Nested maps, slices and byte strings are
// always deep copies, so nothing the caller keeps is shared with the
// registry. The top-level map itself is returned as is when every value was
// already in normal form; callers that keep it beyond the call copy it.
func NormalizeValues(vals Values) (Values, int, error) {
	out := vals
	copied := false
	size := headSize(uint64(len(vals)))
	for k, v := range vals {
		if k == "" {
			return nil, 0, invalid(nil, "empty top-level key")
		}
		if !utf8.ValidString(k) {
			return nil, 0, invalid(nil, "top-level key %q is not valid UTF-8", k)
		}
		nv, n, ok := normalScalar(v)
		if !ok { // anything else gets a key path for its errors
			var err error
			if nv, n, err = normalize(v, valuePath{k}, 1); err != nil {
				return nil, 0, err
			}
		}
		if !copied && !sameIface(nv, v) && v != nil {
			out = make(Values, len(vals))
			for k2, v2 := range vals {
				out[k2] = v2
			}
			copied = true
		}
		if copied {
			out[k] = nv
		}
		size += headSize(uint64(len(k))) + len(k) + n
	}
	return out, size, nil
}

// normalScalar returns a scalar already in normal form as it is, with its
// encoded size; ok is false for anything else (including invalid strings).
func normalScalar(v any) (nv any, size int, ok bool) {
	switch x := v.(type) {
	case nil:
		return nil, 1, true
	case bool:
		return v, 1, true
	case int64:
		return v, intSize(x), true
	case uint64:
		return v, headSize(Uint64Tag) + headSize(x), true
	case float64:
		return v, 9, true
	case string:
		if utf8.ValidString(x) {
			return v, headSize(uint64(len(x))) + len(x), true
		}
	}
	return nil, 0, false
}

// NormalizeOwnedValues is NormalizeValues for values that the caller hands
// over and never modifies again (a document it has just decoded): values
// already in normal form are checked in place and returned as they are,
// without the deep copy; anything else is normalised as NormalizeValues
// does, with its errors.
func NormalizeOwnedValues(vals Values) (Values, int, error) {
	if size, ok := normalValuesSize(vals); ok {
		return vals, size, nil
	}
	return NormalizeValues(vals)
}

// normalValuesSize returns the encoded size of vals (as NormalizeValues
// does) if every key is valid and every value already in normal form
// nested at most MaxDepth deep; ok is false otherwise (NormalizeValues
// then says what is wrong, or converts). It copies nothing.
func normalValuesSize(vals Values) (size int, ok bool) {
	size = headSize(uint64(len(vals)))
	for k, v := range vals {
		if k == "" || !utf8.ValidString(k) {
			return 0, false
		}
		n, ok := normalSize(v, 1)
		if !ok {
			return 0, false
		}
		size += headSize(uint64(len(k))) + len(k) + n
	}
	return size, true
}

func normalSize(v any, depth int) (int, bool) {
	if depth > MaxDepth {
		return 0, false
	}
	if _, n, ok := normalScalar(v); ok {
		return n, true
	}
	switch x := v.(type) {
	case []byte:
		return headSize(uint64(len(x))) + len(x), x != nil
	case []any:
		size := headSize(uint64(len(x)))
		for _, e := range x {
			n, ok := normalSize(e, depth+1)
			if !ok {
				return 0, false
			}
			size += n
		}
		return size, x != nil
	case map[string]any:
		size := headSize(uint64(len(x)))
		for k, e := range x {
			n, ok := normalSize(e, depth+1)
			if !ok || !utf8.ValidString(k) {
				return 0, false
			}
			size += headSize(uint64(len(k))) + len(k) + n
		}
		return size, x != nil
	}
	return 0, false
}

// normalizePairs is NormalizeValues into a list of pairs (in buf's
// storage) instead of a map: the form the write path uses.
func normalizePairs(vals Values, buf []pair) ([]pair, int, error) {
	size := headSize(uint64(len(vals)))
	for k, v := range vals {
		if k == "" {
			return nil, 0, invalid(nil, "empty top-level key")
		}
		if !utf8.ValidString(k) {
			return nil, 0, invalid(nil, "top-level key %q is not valid UTF-8", k)
		}
		nv, n, ok := normalScalar(v)
		if !ok {
			var err error
			if nv, n, err = normalize(v, valuePath{k}, 1); err != nil {
				return nil, 0, err
			}
		}
		buf = append(buf, pair{k, nv})
		size += headSize(uint64(len(k))) + len(k) + n
	}
	return buf, size, nil
}

// NormalizeValue is NormalizeValues for one value (any key path is "value").
func NormalizeValue(v any) (any, int, error) { return normalize(v, valuePath{"value"}, 1) }

// headSize is the size of a CBOR head carrying argument n.
func headSize(n uint64) int {
	switch {
	case n < 24:
		return 1
	case n <= math.MaxUint8:
		return 2
	case n <= math.MaxUint16:
		return 3
	case n <= math.MaxUint32:
		return 5
	}
	return 9
}

// Uint64Tag is the CBOR tag that marks a uint64 value so that it round-trips
// as uint64 and not int64 (R2). Plain CBOR integers decode as int64.
const Uint64Tag = 21330

func normalize(v any, path valuePath, depth int) (any, int, error) {
	if depth > MaxDepth {
		return nil, 0, invalid(path, "nested deeper than %d", MaxDepth)
	}
	switch x := v.(type) {
	// Values already in normal form are returned as the very same
	// interface value: no re-boxing, no allocation.
	case nil:
		return nil, 1, nil
	case bool:
		return v, 1, nil
	case string:
		if !utf8.ValidString(x) {
			return nil, 0, invalid(path, "string is not valid UTF-8")
		}
		return v, headSize(uint64(len(x))) + len(x), nil
	case int:
		return int64(x), intSize(int64(x)), nil
	case int64:
		return v, intSize(x), nil
	case int32:
		return int64(x), intSize(int64(x)), nil
	case uint64:
		return v, headSize(Uint64Tag) + headSize(x), nil
	case float64:
		return v, 9, nil
	// A nil slice or map is the nil value, whatever its static type, as in
	// normalizeReflect.
	case []byte:
		if x == nil {
			return nil, 1, nil
		}
		return append([]byte{}, x...), headSize(uint64(len(x))) + len(x), nil
	case []any:
		if x == nil {
			return nil, 1, nil
		}
		out := make([]any, len(x))
		size := headSize(uint64(len(x)))
		for i, e := range x {
			ne, n, err := normalize(e, append(path, "["+strconv.Itoa(i)+"]"), depth+1)
			if err != nil {
				return nil, 0, err
			}
			out[i] = ne
			size += n
		}
		return out, size, nil
	case map[string]any:
		if x == nil {
			return nil, 1, nil
		}
		out := make(map[string]any, len(x))
		size := headSize(uint64(len(x)))
		for k, e := range x {
			if !utf8.ValidString(k) {
				return nil, 0, invalid(path, "key %q is not valid UTF-8", k)
			}
			ne, n, err := normalize(e, append(path, k), depth+1)
			if err != nil {
				return nil, 0, err
			}
			out[k] = ne
			size += headSize(uint64(len(k))) + len(k) + n
		}
		return out, size, nil
	}
	return normalizeReflect(reflect.ValueOf(v), path, depth)
}

func intSize(i int64) int {
	if i < 0 {
		return headSize(uint64(-(i + 1)))
	}
	return headSize(uint64(i))
}

// normalizeReflect handles named and typed forms: int8…uint32, float32,
// named strings, typed slices and string-keyed maps.
func normalizeReflect(rv reflect.Value, path valuePath, depth int) (any, int, error) {
	switch rv.Kind() {
	case reflect.Bool:
		return rv.Bool(), 1, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i := rv.Int()
		return i, intSize(i), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uintptr:
		// Unsigned values that fit are int64 like every other integer;
		// a uint or uintptr beyond int64 keeps its value as uint64.
		u := rv.Uint()
		if u > math.MaxInt64 {
			return u, headSize(Uint64Tag) + headSize(u), nil
		}
		return int64(u), intSize(int64(u)), nil
	case reflect.Uint64:
		u := rv.Uint()
		return u, headSize(Uint64Tag) + headSize(u), nil
	case reflect.Float32, reflect.Float64:
		return rv.Float(), 9, nil
	case reflect.String:
		return normalize(rv.String(), path, depth)
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return nil, 1, nil
		}
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			b := make([]byte, rv.Len())
			reflect.Copy(reflect.ValueOf(b), rv)
			return b, headSize(uint64(len(b))) + len(b), nil
		}
		out := make([]any, rv.Len())
		size := headSize(uint64(rv.Len()))
		for i := range out {
			ne, n, err := normalize(rv.Index(i).Interface(), append(path, "["+strconv.Itoa(i)+"]"), depth+1)
			if err != nil {
				return nil, 0, err
			}
			out[i] = ne
			size += n
		}
		return out, size, nil
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return nil, 0, invalid(path, "map key type %s is not a string", rv.Type().Key())
		}
		if rv.IsNil() {
			return nil, 1, nil
		}
		out := make(map[string]any, rv.Len())
		size := headSize(uint64(rv.Len()))
		it := rv.MapRange()
		for it.Next() {
			k := it.Key().String()
			if !utf8.ValidString(k) {
				return nil, 0, invalid(path, "key %q is not valid UTF-8", k)
			}
			ne, n, err := normalize(it.Value().Interface(), append(path, k), depth+1)
			if err != nil {
				return nil, 0, err
			}
			out[k] = ne
			size += headSize(uint64(len(k))) + len(k) + n
		}
		return out, size, nil
	case reflect.Interface:
		if rv.IsNil() {
			return nil, 1, nil
		}
	}
	if !rv.IsValid() {
		return nil, 1, nil
	}
	return nil, 0, invalid(path, "unsupported type %s", rv.Type())
}

// copyValue returns a deep copy of a normalised value, so that callers can
// never alter shared state.
func copyValue(v any) any {
	switch x := v.(type) {
	case []byte:
		return append([]byte{}, x...)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = copyValue(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = copyValue(e)
		}
		return out
	}
	return v
}

// Equal reports whether two values in normal form are the same, types
// included (int64(1) differs from uint64(1) and from float64(1)); floats
// compare by bits, so a NaN equals the same NaN and 0 differs from -0. It is
// the equality behind no-op suppression (R6) and Diff (R22).
func Equal(a, b any) bool { return equalValue(a, b) }

// equalValue is Equal.
func equalValue(a, b any) bool {
	if sameIface(a, b) {
		return true
	}
	switch x := a.(type) {
	case nil:
		return b == nil
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case int64:
		y, ok := b.(int64)
		return ok && x == y
	case uint64:
		y, ok := b.(uint64)
		return ok && x == y
	case float64:
		y, ok := b.(float64)
		return ok && math.Float64bits(x) == math.Float64bits(y)
	case string:
		y, ok := b.(string)
		return ok && x == y
	case []byte:
		y, ok := b.([]byte)
		return ok && string(x) == string(y)
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalValue(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, e := range x {
			f, ok := y[k]
			if !ok || !equalValue(e, f) {
				return false
			}
		}
		return true
	}
	return false
}

// MergeValues deep-merges over into base as an update merges into a scope
// (R4) and returns the result; neither input is modified and the result may
// share unchanged parts with both. The values must be in normal form.
func MergeValues(base, over Values) Values {
	return mergeValue(map[string]any(base), map[string]any(over)).(map[string]any)
}

// mergeValue deep-merges nv into old (R4): where both are maps they merge
// recursively, otherwise nv replaces old. Neither input is modified; the
// result shares unchanged parts with both.
func mergeValue(old, nv any) any {
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
			out[k] = mergeValue(ov, v)
		} else {
			out[k] = v
		}
	}
	return out
}

// mergeAll deep-merges vs, lowest first, as folding mergeValue over them
// does, but in one pass: each merged map is allocated once however many
// values it merges, and a sub-tree that only one of them holds is shared,
// not copied. At most NumLayers values.
func mergeAll(vs []any) any {
	top := len(vs) - 1
	if _, ok := vs[top].(map[string]any); !ok {
		return vs[top]
	}
	// Only the run of maps at the top merges: a non-map below it is replaced.
	first := top
	for first > 0 {
		if _, ok := vs[first-1].(map[string]any); !ok {
			break
		}
		first--
	}
	vs = vs[first:]
	if len(vs) == 1 {
		return vs[0]
	}
	n := 0
	for _, v := range vs {
		n = max(n, len(v.(map[string]any)))
	}
	out := make(map[string]any, n)
	var kbuf [8]string
	nested := kbuf[:0] // keys where two maps meet: merged again below
	for i, v := range vs {
		for k, e := range v.(map[string]any) {
			if i > 0 {
				if old, ok := out[k]; ok {
					_, m1 := old.(map[string]any)
					_, m2 := e.(map[string]any)
					if m1 && m2 {
						nested = append(nested, k)
					}
				}
			}
			out[k] = e
		}
	}
	if len(nested) > 0 {
		slices.Sort(nested)
		for _, k := range slices.Compact(nested) {
			var buf [NumLayers]any
			sub := buf[:0]
			for _, v := range vs {
				if e, ok := v.(map[string]any)[k]; ok {
					sub = append(sub, e)
				}
			}
			out[k] = mergeAll(sub)
		}
	}
	return out
}

// sameIface reports whether two interface values are the very same: same
// dynamic type and same data word. For the immutable values stored here
// that implies equal content, and it is how unchanged leaves are recognised
// without walking them. Float NaNs fall through to the bitwise compare.
func sameIface(a, b any) bool {
	pa := (*[2]unsafe.Pointer)(unsafe.Pointer(&a))
	pb := (*[2]unsafe.Pointer)(unsafe.Pointer(&b))
	return pa[0] == pb[0] && pa[1] == pb[1] && pa[0] != nil
}
