package codec_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/codec"
)

var codecEqual = codec.EqualValue

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// seed returns a random seed for a randomised test and logs it; set it
// back to reproduce a failure.
func seed(t testing.TB) uint64 {
	s := uint64(time.Now().UnixNano())
	t.Logf("seed %d", s)
	return s
}

func TestEncodeValueBytes(t *testing.T) {
	tests := []struct {
		name string
		v    any
		hex  string
	}{
		{"nil", nil, "f6"},
		{"false", false, "f4"},
		{"true", true, "f5"},
		{"int=0", int64(0), "00"},
		{"int=23", int64(23), "17"},
		{"int=24", int64(24), "1818"},
		{"int=256", int64(256), "190100"},
		{"int=500", int64(500), "1901f4"},
		{"int=-500", int64(-500), "3901f3"},
		{"int=65536", int64(65536), "1a00010000"},
		{"int=2^32", int64(1 << 32), "1b0000000100000000"},
		{"int=max", int64(math.MaxInt64), "1b7fffffffffffffff"},
		{"int=-1", int64(-1), "20"},
		{"int=-25", int64(-25), "3818"},
		{"int=min", int64(math.MinInt64), "3b7fffffffffffffff"},
		{"uint=0", uint64(0), "d9535200"},
		{"uint=max", uint64(math.MaxUint64), "d953521bffffffffffffffff"},
		{"float=1.5", 1.5, "fb3ff8000000000000"},
		{"float=-0", math.Copysign(0, -1), "fb8000000000000000"},
		{"float=+inf", math.Inf(1), "fb7ff0000000000000"},
		{"float=nan", math.Float64frombits(0x7ff8000000000001), "fb7ff8000000000001"},
		{"float=snan", math.Float64frombits(0xfff0000000000001), "fbfff0000000000001"},
		{"string=empty", "", "60"},
		{"string=é", "é", "62c3a9"},
		{"bytes", []byte{1, 2}, "420102"},
		{"bytes=nil", []byte(nil), "40"},
		{"list=empty", []any{}, "80"},
		{"list", []any{int64(1), "a", nil}, "83016161f6"},
		{"map=empty", map[string]any{}, "a0"},
		{"map=doc", map[string]any{"b": int64(1), "aa": int64(2)}, "a2 6162 01 626161 02"},
		// Keys shorter first, then bytewise (RFC 8949 §4.2.1).
		{"map=order", map[string]any{"b": int64(1), "aa": int64(2), "a": int64(3), "": true},
			"a4 60f5 616103 616201 62616102"},
		{"map=nested", map[string]any{"x": map[string]any{"y": []any{uint64(7)}}},
			"a1 6178 a1 6179 81 d9535207"},
		// Not in normal form: normalised first.
		{"int", 5, "05"},
		{"uint8", uint8(200), "18c8"},
		{"float32", float32(0.5), "fb3fe0000000000000"},
		{"strings", []string{"a"}, "816161"},
		{"map[string]int", map[string]int{"a": -1}, "a1616120"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := codec.EncodeValue(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(t, tt.hex); !bytes.Equal(got, want) {
				t.Fatalf("EncodeValue(%#v) = %x, want %x", tt.v, got, want)
			}
		})
	}
}

func TestValueRoundTrip(t *testing.T) {
	deep := any(int64(1))
	for range 50 {
		deep = map[string]any{"k": []any{deep}}
	}
	tests := []struct {
		name string
		v    any
	}{
		{"nil", nil},
		{"bool", true},
		{"int=min", int64(math.MinInt64)},
		{"int=max", int64(math.MaxInt64)},
		{"int=-24", int64(-24)},
		{"uint=max", uint64(math.MaxUint64)},
		{"uint=small", uint64(3)},
		{"float=nan", math.NaN()},
		{"float=snan", math.Float64frombits(0x7ff0000000000001)},
		{"float=-0", math.Copysign(0, -1)},
		{"float=-inf", math.Inf(-1)},
		{"float=subnormal", math.SmallestNonzeroFloat64},
		{"string", "héllo wörld"},
		{"string=long", strings.Repeat("x", 70000)},
		{"bytes", []byte{0, 255}},
		{"list", []any{nil, true, int64(-1), uint64(1), 2.5, "s", []byte("b"), []any{}, map[string]any{}}},
		{"map", map[string]any{"": nil, "a": map[string]any{"b": []any{uint64(1), int64(1)}}}},
		{"deep", deep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := codec.EncodeValue(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			got, err := codec.DecodeValue(b)
			if err != nil {
				t.Fatal(err)
			}
			if !codecEqual(got, tt.v) {
				t.Fatalf("round trip of %#v gave %#v", tt.v, got)
			}
		})
	}
}

// TestEncodeValueSize checks that the encoding is exactly as long as core's
// size accounting says, for random values in and out of normal form, and
// that it does not depend on the form.
func TestEncodeValueSize(t *testing.T) {
	r := rand.New(rand.NewPCG(seed(t), 0))
	n := 5000
	if testing.Short() { // under emulation (.ci/run's qemu-arm suite) 5000 take ~14 s
		n = 1000
	}
	for i := range n {
		v := codec.RandomValue(r, 5, i%2 == 0)
		nv, size, err := core.NormalizeValue(v)
		if err != nil {
			t.Fatalf("value %d: %v", i, err)
		}
		b, err := codec.EncodeValue(v)
		if err != nil {
			t.Fatalf("value %d: %v", i, err)
		}
		if len(b) != size {
			t.Fatalf("value %d (%#v): encoding has %d bytes, core says %d", i, v, len(b), size)
		}
		nb, err := codec.EncodeValue(nv)
		if err != nil {
			t.Fatalf("value %d: %v", i, err)
		}
		if !bytes.Equal(b, nb) {
			t.Fatalf("value %d: %x before normalisation, %x after", i, b, nb)
		}
		got, err := codec.DecodeValue(b)
		if err != nil {
			t.Fatalf("value %d: %v", i, err)
		}
		if !codecEqual(got, nv) {
			t.Fatalf("value %d: round trip of %#v gave %#v", i, nv, got)
		}

		vals := codec.RandomValues(r, i%2 == 0)
		_, size, err = core.NormalizeValues(vals)
		if err != nil {
			t.Fatalf("values %d: %v", i, err)
		}
		if b, err = codec.EncodeValues(vals); err != nil {
			t.Fatalf("values %d: %v", i, err)
		}
		if len(b) != size {
			t.Fatalf("values %d (%#v): encoding has %d bytes, core says %d", i, vals, len(b), size)
		}
	}
}

// TestEncodeMatchesReference checks the encoding byte for byte against
// fxamacker/cbor in core deterministic mode with 9-byte floats.
func TestEncodeMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(seed(t), 1))
	for i := range 3000 {
		v := codec.RandomValue(r, 5, true)
		got, err := codec.EncodeValue(v)
		if err != nil {
			t.Fatal(err)
		}
		want, err := fxEnc.Marshal(toFx(v))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("value %d (%#v):\n codec     %x\n reference %x", i, v, got, want)
		}
		dv, err := codec.DecodeValue(got)
		if err != nil {
			t.Fatal(err)
		}
		sameAsReference(t, got, dv)
	}
}

func TestEncodeValueInvalid(t *testing.T) {
	tooDeep := any(nil)
	for range core.MaxDepth {
		tooDeep = []any{tooDeep}
	}
	tests := []struct {
		name string
		v    any
	}{
		{"func", func() {}},
		{"chan", make(chan int)},
		{"struct", struct{}{}},
		{"string=bad-utf8", "\xff"},
		{"key=bad-utf8", map[string]any{"\xff": 1}},
		{"nested=bad-utf8", []any{map[string]any{"a": "\xc3"}}},
		{"chan", make(chan int)},
		{"too-deep", tooDeep},
		{"map[int]", map[int]string{1: "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := codec.EncodeValue(tt.v); !errors.Is(err, core.ErrInvalidValue) {
				t.Fatalf("EncodeValue(%T) error %v, want core.ErrInvalidValue", tt.v, err)
			}
		})
	}
	for name, vals := range map[string]core.Values{
		"key=empty": {"": 1},
		"key=utf8":  {"\xff": 1},
		"value":     {"a": make(chan int)},
	} {
		t.Run("values/"+name, func(t *testing.T) {
			if _, err := codec.EncodeValues(vals); !errors.Is(err, core.ErrInvalidValue) {
				t.Fatalf("EncodeValues error %v, want core.ErrInvalidValue", err)
			}
		})
	}
}

func nest(open, leaf, close string, n int) string {
	return strings.Repeat(open, n) + leaf + strings.Repeat(close, n)
}

func TestDecodeValueMalformed(t *testing.T) {
	tests := []struct {
		name string
		hex  string
	}{
		{"empty", ""},
		{"trailing", "0000"},
		{"truncated=head", "19 01"},
		{"truncated=string", "63 6161"},
		{"truncated=list", "82 01"},
		{"int>max", "1b 8000000000000000"},
		{"int<min", "3b 8000000000000000"},
		{"uint-tag=negative", "d95352 20"},
		{"uint-tag=string", "d95352 6161"},
		{"uint-tag=nested", "d95352 d95352 01"},
		{"uint-tag=empty", "d95352"},
		{"tag=other", "c1 00"},
		{"tag=self-describe", "d9d9f7 00"},
		{"tag=bignum", "c2 41 01"},
		{"key=int", "a1 01 01"},
		{"key=bytes", "a1 4161 01"},
		{"key=dup", "a2 6161 01 6161 02"},
		{"key=bad-utf8", "a1 61ff 01"},
		{"string=bad-utf8", "62 c328"},
		{"indefinite=list", "9f 01 ff"},
		{"indefinite=map", "bf ff"},
		{"indefinite=string", "7f 6161 ff"},
		{"indefinite=bytes", "5f ff"},
		{"break", "ff"},
		{"undefined", "f7"},
		{"simple=0", "e0"},
		{"simple=32", "f8 20"},
		{"reserved", "1c"},
		{"reserved=simple", "fc"},
		{"huge=list", "9b ffffffffffffffff 00"},
		{"huge=map", "bb 7fffffffffffffff 00"},
		{"huge=bytes", "5b ffffffffffffffff 00"},
		{"huge=string", "7b 0000000100000000 00"},
		{"huge=nested-lists", strings.Repeat("9a 7fffffff", 100)},
		{"too-deep=list", nest("81", "00", "", core.MaxDepth)},
		{"too-deep=map", nest("a1 6161", "00", "", core.MaxDepth)},
		{"too-deep=empty", nest("81", "80", "", core.MaxDepth)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := codec.DecodeValue(unhex(t, tt.hex))
			if !errors.Is(err, codec.ErrMalformed) {
				t.Fatalf("DecodeValue = %#v, %v; want ErrMalformed", v, err)
			}
		})
	}
}

// TestDecodeValueLenient: forms that sysreg never writes but that other
// CBOR encoders produce are read (doc.go, "Values").
func TestDecodeValueLenient(t *testing.T) {
	tests := []struct {
		name string
		hex  string
		want any
	}{
		{"head=long", "1b 0000000000000001", int64(1)},
		{"uint-tag=long-head", "d95352 1a00000001", uint64(1)},
		{"half", "f9 3c00", 1.0},
		{"half=subnormal", "f9 0001", math.Ldexp(1, -24)},
		{"half=-inf", "f9 fc00", math.Inf(-1)},
		{"half=nan-payload", "f9 7e01", math.Float64frombits(0x7ff8040000000000)},
		{"single", "fa 3fc00000", 1.5},
		{"single=snan", "fa 7f800001", math.Float64frombits(0x7ff0000020000000)},
		{"map=unsorted", "a2 6162 01 6161 02", map[string]any{"a": int64(2), "b": int64(1)}},
		{"depth=max", nest("81", "00", "", core.MaxDepth-1), nil},
		{"depth=max-empty", nest("81", "80", "", core.MaxDepth-1), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := unhex(t, tt.hex)
			got, err := codec.DecodeValue(b)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != nil && !codecEqual(got, tt.want) {
				t.Fatalf("DecodeValue(%x) = %#v, want %#v", b, got, tt.want)
			}
		})
	}
}

// TestDepth: a value nested core.MaxDepth deep is accepted both ways, one
// level more is refused both ways.
func TestDepth(t *testing.T) {
	mk := func(n int, wrap func(any) any) any {
		v := any("leaf")
		for range n - 1 {
			v = wrap(v)
		}
		return v
	}
	for name, wrap := range map[string]func(any) any{
		"list": func(v any) any { return []any{v} },
		"map":  func(v any) any { return map[string]any{"k": v} },
	} {
		t.Run(name, func(t *testing.T) {
			ok := mk(core.MaxDepth, wrap)
			b, err := codec.EncodeValue(ok)
			if err != nil {
				t.Fatalf("depth %d: %v", core.MaxDepth, err)
			}
			got, err := codec.DecodeValue(b)
			if err != nil {
				t.Fatalf("depth %d: %v", core.MaxDepth, err)
			}
			if !codecEqual(got, ok) {
				t.Fatal("round trip differs")
			}
			if _, err := codec.EncodeValue(wrap(ok)); !errors.Is(err, core.ErrInvalidValue) {
				t.Fatalf("depth %d: EncodeValue error %v", core.MaxDepth+1, err)
			}
			var deeper []byte
			if name == "list" {
				deeper = append([]byte{0x81}, b...)
			} else {
				deeper = append([]byte{0xa1, 0x61, 'k'}, b...)
			}
			if _, err := codec.DecodeValue(deeper); !errors.Is(err, codec.ErrMalformed) {
				t.Fatalf("depth %d: DecodeValue error %v", core.MaxDepth+1, err)
			}
		})
	}
}

// TestDecodeValueNoAlias: the decoded value does not share memory with the
// input, which the journal may reuse (bbolt pages) once Decode returns.
func TestDecodeValueNoAlias(t *testing.T) {
	b, err := codec.EncodeValue(map[string]any{"key": []any{"text", []byte("bytes")}})
	if err != nil {
		t.Fatal(err)
	}
	v, err := codec.DecodeValue(b)
	if err != nil {
		t.Fatal(err)
	}
	want, _, _ := core.NormalizeValue(v)
	for i := range b {
		b[i] = 'X'
	}
	if !codecEqual(v, want) {
		t.Fatalf("decoded value changed with its input: %#v", v)
	}
}

func TestDecodeValuesErrors(t *testing.T) {
	for name, h := range map[string]string{
		"not-a-map": "80",
		"null":      "f6",
		"key=empty": "a1 60 01",
		"trailing":  "a0 00",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := codec.DecodeValues(unhex(t, h)); !errors.Is(err, codec.ErrMalformed) {
				t.Fatalf("DecodeValues error %v, want ErrMalformed", err)
			}
		})
	}
	// A nested empty key is a valid value.
	v, err := codec.DecodeValues(unhex(t, "a1 6161 a1 60 01"))
	if err != nil || !codecEqual(v["a"], map[string]any{"": int64(1)}) {
		t.Fatalf("DecodeValues = %#v, %v", v, err)
	}
	if v, err := codec.DecodeValues(unhex(t, "a0")); err != nil || v == nil || len(v) != 0 {
		t.Fatalf("DecodeValues(empty) = %#v, %v; want empty non-nil", v, err)
	}
}

// TestErrorNamesPath: a bad value deep inside says where it is.
func TestErrorNamesPath(t *testing.T) {
	_, err := codec.DecodeValues(unhex(t, "a1 6161 a1 6162 82 01 62c328"))
	if !errors.Is(err, codec.ErrMalformed) || !strings.Contains(err.Error(), "a.b[1]") {
		t.Fatalf("error %q does not name a.b[1]", err)
	}
}

// TestDecodeAllocationBound: inputs whose headers claim large or deeply
// nested containers make the decoder allocate at most a few hundred bytes
// per input byte.
func TestDecodeAllocationBound(t *testing.T) {
	inputs := map[string]string{
		"nested=lists-16":  strings.Repeat("90", core.MaxDepth-1),
		"nested=lists-big": strings.Repeat("9a 7fffffff", 5000),
		"nested=maps":      strings.Repeat("b9 ffff 60", core.MaxDepth-1),
		"list=huge":        "9a 7fffffff" + strings.Repeat("00", 1000),
		"map=huge":         "ba 7fffffff" + strings.Repeat("6100", 1000),
	}
	for name, h := range inputs {
		t.Run(name, func(t *testing.T) {
			b := unhex(t, h)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			if _, err := codec.DecodeValue(b); !errors.Is(err, codec.ErrMalformed) {
				t.Fatalf("error %v, want ErrMalformed", err)
			}
			runtime.ReadMemStats(&after)
			if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(400*len(b)+1<<20); got > limit {
				t.Fatalf("decoding %d bytes allocated %d bytes, more than %d", len(b), got, limit)
			}
		})
	}
}

// TestEncodeValueBigUint: a uint beyond int64 is normalised to uint64 and
// comes back as one; a uint that fits int64 is an int64 like every other
// integer (R2). On 32-bit targets the largest uint fits int64.
func TestEncodeValueBigUint(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   any
		want any
	}{
		{"uint=MaxUint32", uint(math.MaxUint32), int64(math.MaxUint32)},
		{"uint=MaxUint", uint(math.MaxUint), bigUint(math.MaxUint)},
		{"uintptr=MaxUint", uintptr(math.MaxUint), bigUint(math.MaxUint)},
		{"uint64=MaxUint64", uint64(math.MaxUint64), uint64(math.MaxUint64)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := codec.EncodeValue(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			v, err := codec.DecodeValue(b)
			if err != nil || v != tc.want {
				t.Fatalf("round trip of %T %v = %T %v, %v; want %T %v", tc.in, tc.in, v, v, err, tc.want, tc.want)
			}
		})
	}
}

// bigUint is what a uint or uintptr u is normalised to: uint64 beyond
// int64, int64 otherwise (R2).
func bigUint(u uint64) any {
	if u > math.MaxInt64 {
		return u
	}
	return int64(u)
}
