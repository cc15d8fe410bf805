package codec_test

import (
	"math"
	"reflect"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/sysreg/sysreg/core"
)

// fxamacker/cbor is the reference this package's hand-written encoder and
// decoder are checked against: the encoding must be byte for byte what
// fxamacker writes in core deterministic mode with 9-byte floats, and
// whatever this package decodes fxamacker must decode to the same value.

// fxUint64 stands for a uint64 in the reference encoding: registered with
// tag 21330.
type fxUint64 uint64

var (
	fxEnc cbor.EncMode
	fxDec cbor.DecMode
)

func init() {
	tags := cbor.NewTagSet()
	if err := tags.Add(cbor.TagOptions{EncTag: cbor.EncTagRequired, DecTag: cbor.DecTagRequired},
		reflect.TypeOf(fxUint64(0)), core.Uint64Tag); err != nil {
		panic(err)
	}
	opts := cbor.CoreDetEncOptions()
	opts.ShortestFloat = cbor.ShortestFloatNone
	opts.NaNConvert = cbor.NaNConvertNone
	opts.InfConvert = cbor.InfConvertNone
	var err error
	if fxEnc, err = opts.EncModeWithTags(tags); err != nil {
		panic(err)
	}
	fxDec, err = cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:  65535,
		MaxArrayElements: 2147483647,
		MaxMapPairs:      2147483647,
		IndefLength:      cbor.IndefLengthForbidden,
		DefaultMapType:   reflect.TypeOf(map[string]any(nil)),
		UTF8:             cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// toFx converts a normalised value for the reference encoder.
func toFx(v any) any {
	switch x := v.(type) {
	case uint64:
		return fxUint64(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = toFx(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = toFx(e)
		}
		return out
	}
	return v
}

// fromFx converts what the reference decoder returns for sysreg's value
// model: plain unsigned integers are int64, tag 21330 is a uint64.
func fromFx(t *testing.T, v any) any {
	switch x := v.(type) {
	case uint64:
		if x > math.MaxInt64 {
			t.Fatalf("reference decoded plain integer %d > MaxInt64 that codec accepted", x)
		}
		return int64(x)
	case cbor.Tag:
		u, ok := x.Content.(uint64)
		if x.Number != core.Uint64Tag || !ok {
			t.Fatalf("reference decoded tag %d with %T that codec accepted", x.Number, x.Content)
		}
		return u
	case []any:
		for i, e := range x {
			x[i] = fromFx(t, e)
		}
		return x
	case map[string]any:
		for k, e := range x {
			x[k] = fromFx(t, e)
		}
		return x
	}
	return v
}

// sameAsReference checks a value that codec decoded from b against
// fxamacker's decoding of b. NaNs compare as NaN, without payload: the
// reference widens half and single NaNs through float32.
func sameAsReference(t *testing.T, b []byte, got any) {
	t.Helper()
	var ref any
	if err := fxDec.Unmarshal(b, &ref); err != nil {
		t.Fatalf("codec decoded %x but the reference refuses it: %v", b, err)
	}
	if want := fromFx(t, ref); !equalModNaN(got, want) {
		t.Fatalf("codec decoded %x to %#v, the reference to %#v", b, got, want)
	}
}

func equalModNaN(a, b any) bool {
	switch x := a.(type) {
	case float64:
		y, ok := b.(float64)
		return ok && (math.IsNaN(x) && math.IsNaN(y) || math.Float64bits(x) == math.Float64bits(y))
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalModNaN(x[i], y[i]) {
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
			if f, ok := y[k]; !ok || !equalModNaN(e, f) {
				return false
			}
		}
		return true
	}
	return codecEqual(a, b)
}
