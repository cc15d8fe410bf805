package core

// White-box tests of value normalisation (R2), comparison, copying and
// merging (R4). The black-box rule tables are in rules_test.go.

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// R2: a pointer is not a value, nil or not. Accepting a typed nil pointer as
// nil would make code that passes *T work in tests and fail in production.
func TestNormalizeRejectsPointers(t *testing.T) {
	x := 1
	var nilMap map[int]int
	for _, v := range []any{&x, (*int)(nil), (*string)(nil), (*struct{})(nil), []*int{nil}, map[string]*int{"p": nil}, nilMap, (func())(nil), (chan int)(nil)} {
		if got, _, err := NormalizeValue(v); !errors.Is(err, ErrInvalidValue) {
			t.Errorf("NormalizeValue(%#v) = %#v, %v; want ErrInvalidValue", v, got, err)
		}
	}
}

// Rejecting a value one level too deep must not cost more than accepting one
// at the limit: the key path in the message was built by repeated string
// concatenation, quadratic in the depth (hundreds of MB and ~0.2 s of CPU
// per rejected update, which a remote client can repeat at will).
func TestNormalizeDeepErrorIsCheap(t *testing.T) {
	deepList := any(1)
	for range MaxDepth {
		deepList = []any{deepList}
	}
	deepMap := any(1)
	for range MaxDepth {
		deepMap = map[string]any{"key": deepMap}
	}
	for name, v := range map[string]any{"list": deepList, "map": deepMap} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _, err := NormalizeValues(Values{"deep": v})
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrInvalidValue) {
			t.Fatalf("%s: %v, want ErrInvalidValue", name, err)
		}
		if !strings.Contains(err.Error(), "deep[0][0]") && !strings.Contains(err.Error(), "deep.key.key") {
			t.Fatalf("%s: message does not name the path: %.200s", name, err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
			t.Errorf("%s: rejecting a too-deep value allocated %d MiB", name, alloc>>20)
		}
	}
}

// The size NormalizeValues reports is the size of the values' CBOR
// encoding (R2's limit): uint64 under tag Uint64Tag, floats at full width.
func TestNormalizeSizeIsCBORSize(t *testing.T) {
	em, err := cbor.EncOptions{
		ShortestFloat: cbor.ShortestFloatNone,
		NaNConvert:    cbor.NaNConvertNone,
		InfConvert:    cbor.InfConvertNone,
	}.EncMode()
	if err != nil {
		t.Fatal(err)
	}
	var tagged func(v any) any
	tagged = func(v any) any {
		switch x := v.(type) {
		case uint64:
			return cbor.Tag{Number: Uint64Tag, Content: x}
		case []any:
			out := make([]any, len(x))
			for i, e := range x {
				out[i] = tagged(e)
			}
			return out
		case map[string]any:
			out := make(map[string]any, len(x))
			for k, e := range x {
				out[k] = tagged(e)
			}
			return out
		}
		return v
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 500 {
		vals := Values{}
		for range r.IntN(5) {
			vals[randString(r)] = randValue(r, 0)
		}
		norm, size, err := NormalizeValues(vals)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		enc, err := em.Marshal(tagged(map[string]any(norm)))
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if size != len(enc) {
			t.Fatalf("case %d: size %d, CBOR encoding is %d bytes: %#v", i, size, len(enc), norm)
		}
	}
}

func randString(r *rand.Rand) string {
	n := []int{0, 1, 5, 23, 24, 255, 256, 65536}[r.IntN(8)]
	if n == 65536 && r.IntN(8) != 0 { // the 5-byte head, now and then
		n = 2
	}
	if n == 0 {
		n = 1
	}
	return strings.Repeat("é", n/2) + strings.Repeat("x", n%2)
}

func randValue(r *rand.Rand, depth int) any {
	k := 10
	if depth > 3 {
		k = 7
	}
	switch r.IntN(k) {
	case 0:
		return nil
	case 1:
		return r.IntN(2) == 0
	case 2:
		return []int64{0, 23, 24, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64, -1, -24, -25, -256, -257, math.MinInt64}[r.IntN(16)]
	case 3:
		return []uint64{0, 23, 24, 1 << 40, math.MaxUint64}[r.IntN(5)]
	case 4:
		return []float64{0, 1.5, math.NaN(), math.Inf(1), math.SmallestNonzeroFloat64}[r.IntN(5)]
	case 5:
		return randString(r)
	case 6:
		return []byte(randString(r))
	case 7:
		out := make([]any, r.IntN(10))
		for i := range out {
			out[i] = randValue(r, depth+1)
		}
		return out
	default:
		out := map[string]any{}
		for range r.IntN(4) {
			out[randString(r)] = randValue(r, depth+1)
		}
		return out
	}
}

func TestEqualValue(t *testing.T) {
	shared := map[string]any{"a": []any{int64(1)}}
	nan := math.NaN()
	tests := []struct {
		a, b any
		eq   bool
	}{
		{nil, nil, true},
		{int64(1), int64(1), true},
		{int64(1), uint64(1), false},
		{int64(1), 1.0, false},
		{1.0, 1.0, true},
		{nan, math.NaN(), true},
		{nan, nan, true},
		{0.0, math.Copysign(0, -1), false},
		{"a", []byte("a"), false},
		{[]byte{}, []byte{}, true},
		{[]byte{1}, []byte{2}, false},
		{[]any{}, []any{nil}, false},
		{[]any{int64(1)}, []any{int64(1)}, true},
		{map[string]any{}, map[string]any{}, true},
		{map[string]any{"a": nil}, map[string]any{"b": nil}, false},
		{map[string]any{"a": nil}, map[string]any{}, false},
		{shared, shared, true},
		{shared, map[string]any{"a": []any{int64(1)}}, true},
		{shared, map[string]any{"a": []any{uint64(1)}}, false},
		{nil, map[string]any{}, false},
		{nil, []any{}, false},
	}
	for i, tc := range tests {
		if got := equalValue(tc.a, tc.b); got != tc.eq {
			t.Errorf("%d: equalValue(%#v, %#v) = %v", i, tc.a, tc.b, got)
		}
		if got := equalValue(tc.b, tc.a); got != tc.eq {
			t.Errorf("%d: equalValue(%#v, %#v) = %v (reversed)", i, tc.b, tc.a, got)
		}
	}
}

// mergeValue must not modify either input: both may be shared by published
// snapshots.
func TestMergeValueLeavesInputsAlone(t *testing.T) {
	old := map[string]any{"a": map[string]any{"x": int64(1)}, "b": int64(1)}
	nv := map[string]any{"a": map[string]any{"y": int64(2)}, "c": int64(3)}
	oldCopy, nvCopy := copyValue(old), copyValue(nv)
	got := mergeValue(old, nv)
	want := map[string]any{"a": map[string]any{"x": int64(1), "y": int64(2)}, "b": int64(1), "c": int64(3)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("mergeValue = %#v, want %#v", got, want)
	}
	if !reflect.DeepEqual(old, oldCopy) || !reflect.DeepEqual(nv, nvCopy) {
		t.Fatalf("mergeValue modified its inputs: %#v %#v", old, nv)
	}
}

func TestCopyValueIsDeep(t *testing.T) {
	v := map[string]any{"b": []byte{1}, "l": []any{map[string]any{"x": []byte{2}}}}
	c := copyValue(v).(map[string]any)
	c["b"].([]byte)[0] = 9
	c["l"].([]any)[0].(map[string]any)["x"].([]byte)[0] = 9
	c["l"].([]any)[0].(map[string]any)["new"] = 1
	want := map[string]any{"b": []byte{1}, "l": []any{map[string]any{"x": []byte{2}}}}
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("changing a copy changed the original: %#v", v)
	}
}

// mergeAll is the fold of mergeValue over the layers (R4, R38), whatever
// mix of maps and non-maps they hold.
func TestMergeAllIsFold(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var gen func(depth int) any
	gen = func(depth int) any {
		if depth > 2 || r.IntN(3) == 0 {
			return int64(r.IntN(3))
		}
		m := map[string]any{}
		for range r.IntN(4) {
			m[string(rune('a'+r.IntN(4)))] = gen(depth + 1)
		}
		return m
	}
	for range 3000 {
		vs := make([]any, 1+r.IntN(NumLayers))
		for i := range vs {
			vs[i] = gen(0)
		}
		want := vs[0]
		for _, v := range vs[1:] {
			want = mergeValue(want, v)
		}
		if got := mergeAll(vs); !equalValue(got, want) {
			t.Fatalf("mergeAll(%v) = %v, want %v", vs, got, want)
		}
	}
}

// normalValuesSize accepts exactly what NormalizeValues returns unchanged,
// with the same size, and refuses anything NormalizeValues would convert
// or reject (R2): SetDefaultsOwned relies on it to skip the copy (R40).
func TestNormalValuesSize(t *testing.T) {
	deep := any(int64(1))
	for range MaxDepth {
		deep = []any{deep}
	}
	for i, vals := range []Values{
		{},
		{"a": int64(1), "b": uint64(2), "c": 1.5, "d": "x", "e": []byte("y"), "f": nil, "g": true},
		{"m": map[string]any{"n": []any{int64(1), map[string]any{"o": "p"}}}},
		{"int": 1},
		{"typed": map[string]int64{"a": 1}},
		{"nilmap": map[string]any(nil)},
		{"nilslice": []any(nil)},
		{"bad": "\xff"},
		{"": int64(1)},
		{"badkey": map[string]any{"\xff": int64(1)}},
		{"deep": deep},
	} {
		size, ok := normalValuesSize(vals)
		nv, nsize, err := NormalizeValues(vals)
		unchanged := err == nil && equalValue(map[string]any(nv), map[string]any(vals)) && fmt.Sprintf("%#v", nv) == fmt.Sprintf("%#v", vals)
		if ok != unchanged {
			t.Errorf("case %d: normalValuesSize ok=%v; NormalizeValues err=%v unchanged=%v", i, ok, err, unchanged)
		}
		if ok && size != nsize {
			t.Errorf("case %d: size %d, NormalizeValues says %d", i, size, nsize)
		}
	}
}

// NormalizeOwnedValues (R2) keeps handed-over values in normal form as
// they are and normalises anything else exactly as NormalizeValues does.
func TestNormalizeOwnedValues(t *testing.T) {
	in := Values{"m": map[string]any{"a": []any{int64(1), "x"}}}
	out, size, err := NormalizeOwnedValues(in)
	_, wantSize, _ := NormalizeValues(in)
	if err != nil || size != wantSize || reflect.ValueOf(out["m"]).UnsafePointer() != reflect.ValueOf(in["m"]).UnsafePointer() {
		t.Fatalf("normal input: %v, size %d (want %d), copied: %v", err, size, wantSize, reflect.ValueOf(out["m"]).UnsafePointer() != reflect.ValueOf(in["m"]).UnsafePointer())
	}
	out, _, err = NormalizeOwnedValues(Values{"n": 7, "m": map[string]int{"a": 1}})
	if err != nil || !equalValue(map[string]any(out), map[string]any{"n": int64(7), "m": map[string]any{"a": int64(1)}}) {
		t.Fatalf("converted: %v, %v", out, err)
	}
	if _, _, err := NormalizeOwnedValues(Values{"s": "\xff"}); !errors.Is(err, ErrInvalidValue) {
		t.Fatalf("invalid: %v", err)
	}
}
