package wire_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/sysreg/sysreg/internal/codec"
	"github.com/sysreg/sysreg/internal/wire"
)

// The hand-written mutate and apply decoders (ops.go) are checked against
// fxamacker's reflection decoder (wire.DecodeBody), the oracle: whatever
// the hand decoder accepts the oracle decodes to the same message, and
// what the oracle accepts and the hand decoder refuses (a tag, undefined or
// a simple value in a field) is never what an encoder writes: its
// deterministic re-encoding is accepted by both alike. The hand encoder
// writes the bytes fxamacker's deterministic encoder writes.

// refEnc is fxamacker's deterministic encoder, as wire.go configures it.
var refEnc = func() cbor.EncMode {
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return em
}()

// checkAgainstOracle decodes body as t (TMutate or TApply) by hand and by
// reflection and compares (see above).
func checkAgainstOracle(t *testing.T, typ wire.Type, body []byte) (accepted bool) {
	t.Helper()
	var hand, ref any
	var herr, rerr error
	switch typ {
	case wire.TMutate:
		var m, r wire.Mutate
		m, herr = wire.DecodeMutate(body)
		rerr = wire.DecodeBody(wire.Frame{Type: typ, Body: body}, &r)
		hand, ref = m, r
		// Decoding into a used Mutate reads the same.
		used := wire.Mutate{Handle: 9, Ops: []wire.Op{{Kind: 9, Keys: []string{"x"}, Values: []byte{1}}, {Kind: 8}}}
		if err := wire.DecodeMutateTo(body, &used); (err == nil) != (herr == nil) || err == nil && !reflect.DeepEqual(used, m) {
			t.Fatalf("%s % x: DecodeMutateTo a used Mutate: %+v, %v; DecodeMutate: %+v, %v", typ, body, used, err, m, herr)
		}
	case wire.TApply:
		var a, r wire.Apply
		a, herr = wire.DecodeApply(body)
		rerr = wire.DecodeBody(wire.Frame{Type: typ, Body: body}, &r)
		hand, ref = a, r
		used := wire.Apply{Handle: 9, Within: 9, Ops: []wire.Op{{Kind: 9, Keys: []string{"x"}}}}
		if err := wire.DecodeApplyTo(body, &used); (err == nil) != (herr == nil) || err == nil && !reflect.DeepEqual(used, a) {
			t.Fatalf("%s % x: DecodeApplyTo a used Apply: %+v, %v; DecodeApply: %+v, %v", typ, body, used, err, a, herr)
		}
	}
	if herr != nil && !errors.Is(herr, wire.ErrMalformed) {
		t.Fatalf("%s % x: error %v does not match ErrMalformed", typ, body, herr)
	}
	switch {
	case herr == nil && rerr != nil:
		t.Fatalf("%s % x: decoded by hand to %+v, but the oracle refuses it: %v", typ, body, hand, rerr)
	case herr == nil:
		if !reflect.DeepEqual(hand, ref) {
			t.Fatalf("%s % x: decoded by hand to %+v, by the oracle to %+v", typ, body, hand, ref)
		}
		checkEncoding(t, typ, hand)
		return true
	case rerr == nil:
		// Laxness of the oracle: what it read must be what an encoder
		// writes for it, and that the hand decoder reads alike.
		raw, err := refEnc.Marshal(ref)
		if err != nil {
			return false // values the encoder refuses (tags 0–3 nested inside)
		}
		if !checkAgainstOracle(t, typ, raw) {
			t.Fatalf("%s % x: the oracle reads %+v, whose encoding % x the hand decoder refuses", typ, body, ref, raw)
		}
	}
	return false
}

// checkEncoding: the hand encoder writes msg as fxamacker does.
func checkEncoding(t *testing.T, typ wire.Type, msg any) {
	t.Helper()
	want, werr := refEnc.Marshal(msg)
	got, gerr := wire.EncodeBody(typ, msg)
	if werr != nil || gerr != nil {
		// The hand encoder refuses values the daemon would refuse;
		// fxamacker encodes some of them (indefinite lengths).
		if gerr == nil {
			t.Fatalf("%s %+v: the hand encoder writes % x, fxamacker refuses: %v", typ, msg, got, werr)
		}
		return
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s %+v: the hand encoder writes % x, fxamacker % x", typ, msg, got, want)
	}
}

// opBodies are mutate and apply bodies worth checking: well-formed ones
// and every way of breaking them the hand decoder distinguishes.
func opBodies(t testing.TB) map[string][]byte {
	put := func(kind uint8, vals []byte, keys []string) wire.Op {
		return wire.Op{Kind: kind, Scope: wire.Scope{Bucket: 1, Type: "net", Subtype: "eth0"}, Values: vals, Keys: keys}
	}
	up, err := codec.EncodeValues(map[string]any{"up": true, "n": int64(-3), "u": uint64(1 << 63), "s": []any{"a", 1.5, nil}})
	if err != nil {
		t.Fatal(err)
	}
	enc := func(m any) []byte {
		b, err := refEnc.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	deep := append(bytes.Repeat([]byte{0x81}, wire.MaxNesting-3), 0xf6)
	tooDeep := append(bytes.Repeat([]byte{0x81}, wire.MaxNesting-2), 0xf6)
	return map[string][]byte{
		"put":            enc(wire.Mutate{Handle: 1, Ops: []wire.Op{put(wire.OpPut, up, nil)}}),
		"del":            enc(wire.Mutate{Handle: 2, Ops: []wire.Op{put(wire.OpDel, []byte{0xf6}, []string{"up", "é"})}}),
		"del-all":        enc(wire.Mutate{Handle: 2, Ops: []wire.Op{put(wire.OpDel, []byte{0xf6}, []string{})}}),
		"txn":            enc(wire.Mutate{Handle: 1 << 40, Ops: []wire.Op{put(wire.OpIfModSeq, []byte{0xa1, 0x61, 'n', 0xd9, 0x53, 0x52, 0x07}, nil), put(wire.OpPut, up, nil), put(wire.OpDel, []byte{0xf6}, []string{"n"})}}),
		"no-ops":         enc(wire.Mutate{Handle: 1, Ops: []wire.Op{}}),
		"null-ops":       {0x82, 0x01, 0xf6},
		"null-fields":    {0x82, 0xf6, 0x81, 0x84, 0xf6, 0xf6, 0xf6, 0xf6},
		"null-scope":     {0x82, 0x01, 0x81, 0x84, 0x01, 0xf6, 0xa0, 0xf6},
		"null-text":      {0x82, 0x01, 0x81, 0x84, 0x01, 0x83, 0x01, 0xf6, 0xf6, 0xa0, 0xf6},
		"long-heads":     {0x82, 0x1b, 0, 0, 0, 0, 0, 0, 0, 1, 0x98, 0x01, 0x84, 0x18, 0x01, 0x83, 0x19, 0x00, 0x01, 0x78, 0x01, 'a', 0x79, 0x00, 0x01, 'b', 0xa0, 0xf6},
		"apply":          enc(wire.Apply{Handle: 3, Within: 60e9, Ops: []wire.Op{put(wire.OpPut, up, nil)}}),
		"apply-negative": enc(wire.Apply{Handle: 3, Within: -1, Ops: nil}),
		"deep-values":    append([]byte{0x82, 0x01, 0x81, 0x84, 0x01, 0x83, 0x01, 0x61, 'a', 0x61, 'b'}, append(deep, 0xf6)...),
		"too-deep":       append([]byte{0x82, 0x01, 0x81, 0x84, 0x01, 0x83, 0x01, 0x61, 'a', 0x61, 'b'}, append(tooDeep, 0xf6)...),
		"self-described": {0x82, 0x01, 0x81, 0x84, 0x01, 0x83, 0x01, 0x61, 'a', 0x61, 'b', 0xd9, 0xd9, 0xf7, 0xa0, 0xf6},
		"bignum-values":  {0x82, 0x01, 0x81, 0x84, 0x02, 0x83, 0x01, 0x61, 'a', 0x61, 'b', 0xc2, 0x61, 'x', 0xf6},
		"epoch-values":   {0x82, 0x01, 0x81, 0x84, 0x02, 0x83, 0x01, 0x61, 'a', 0x61, 'b', 0xc1, 0x01, 0xf6},
		"tagged-handle":  {0x82, 0xd9, 0x53, 0x52, 0x01, 0xf6},
		"bignum-handle":  {0x82, 0xc2, 0x41, 0x01, 0xf6},
		"undef-handle":   {0x82, 0xf7, 0xf6},
		"simple-kind":    {0x82, 0x01, 0x81, 0x84, 0xf0, 0xf6, 0xf6, 0xf6},
		"float-kind":     {0x82, 0x01, 0x81, 0x84, 0xf9, 0x3c, 0x00, 0xf6, 0xf6, 0xf6},
		"kind-overflow":  {0x82, 0x01, 0x81, 0x84, 0x19, 0x01, 0x00, 0xf6, 0xf6, 0xf6},
		"bucket-neg":     {0x82, 0x01, 0x81, 0x84, 0x01, 0x83, 0x20, 0xf6, 0xf6, 0xf6, 0xf6},
		"bytes-type":     {0x82, 0x01, 0x81, 0x84, 0x01, 0x83, 0x01, 0x41, 'a', 0xf6, 0xf6, 0xf6},
		"bad-utf8":       {0x82, 0x01, 0x81, 0x84, 0x01, 0x83, 0x01, 0x61, 0xff, 0xf6, 0xf6, 0xf6},
		"bad-utf8-key":   {0x82, 0x01, 0x81, 0x84, 0x02, 0xf6, 0xf6, 0x81, 0x61, 0xc3},
		"null-key":       {0x82, 0x01, 0x81, 0x84, 0x02, 0xf6, 0xf6, 0x81, 0xf6},
		"null-op":        {0x82, 0x01, 0x81, 0xf6},
		"short-op":       {0x82, 0x01, 0x81, 0x83, 0x01, 0xf6, 0xf6},
		"map-scope":      {0x82, 0x01, 0x81, 0x84, 0x01, 0xa0, 0xf6, 0xf6},
		"short-body":     {0x81, 0x01},
		"null-body":      {0xf6},
		"trailing":       {0x82, 0x01, 0xf6, 0x00},
		"truncated":      {0x82, 0x01, 0x81, 0x84, 0x01, 0x83, 0x01, 0x63, 'a'},
		"indefinite":     {0x82, 0x01, 0x9f, 0xff},
		"indef-values":   {0x82, 0x01, 0x81, 0x84, 0x01, 0xf6, 0xbf, 0xff, 0xf6},
		"huge-array":     {0x82, 0x01, 0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"huge-keys":      {0x82, 0x01, 0x81, 0x84, 0x02, 0xf6, 0xf6, 0x9a, 0x00, 0x20, 0x00, 0x00},
		"huge-text":      {0x82, 0x01, 0x81, 0x84, 0x02, 0x83, 0x01, 0x7b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"simple-24":      {0x82, 0x01, 0x81, 0x84, 0x01, 0xf6, 0xf8, 0x10, 0xf6},
		"reserved-ai":    {0x82, 0x1c},
		"break-values":   {0x82, 0x01, 0x81, 0x84, 0x01, 0xf6, 0xff, 0xf6},
	}
}

// TestMutateBodyOracle: every body of opBodies decodes by hand as the
// oracle decodes it, or is refused with a clear error (R34).
func TestMutateBodyOracle(t *testing.T) {
	accept := map[string]bool{"put": true, "del": true, "del-all": true, "txn": true, "no-ops": true,
		"null-ops": true, "null-fields": true, "null-scope": true, "null-text": true, "long-heads": true,
		"deep-values": true, "self-described": true, "epoch-values": true}
	for name, body := range opBodies(t) {
		t.Run(name, func(t *testing.T) {
			typ := wire.TMutate
			if strings.HasPrefix(name, "apply") {
				typ = wire.TApply
				accept[name] = true
			}
			got := checkAgainstOracle(t, typ, body)
			if got != accept[name] {
				_, err := wire.DecodeMutate(body)
				t.Fatalf("accepted = %v, want %v (%v)", got, accept[name], err)
			}
		})
	}
}

// TestMutateBodyErrors: a refused body says what is wrong, and where.
func TestMutateBodyErrors(t *testing.T) {
	bodies := opBodies(t)
	for name, want := range map[string]string{
		"tagged-handle": "handle: a tag, not an unsigned integer",
		"undef-handle":  "handle: undefined, not an unsigned integer",
		"float-kind":    "op 0: kind: a float, not an unsigned integer",
		"kind-overflow": "op 0: kind: 256 overflows 255",
		"bytes-type":    "op 0: scope: type: a byte string, not a text string",
		"bad-utf8":      "op 0: scope: type: text is not valid UTF-8",
		"null-key":      "op 0: keys: [0]: null, not a text string",
		"short-op":      "op 0: an array of 3 elements, not 4",
		"too-deep":      "op 0: values: nested deeper than 10008 levels",
		"bignum-values": "op 0: values: tag 2 holds a text string, not a byte string",
		"trailing":      "1 bytes after the body",
		"null-body":     "mutate body is not an array",
		"huge-array":    "an array of 18446744073709551615 elements in 0 bytes",
		"indefinite":    "ops: indefinite length (major type 4)",
		"break-values":  "op 0: values: unexpected break stop code",
	} {
		_, err := wire.DecodeMutate(bodies[name])
		if err == nil || !errors.Is(err, wire.ErrMalformed) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want ErrMalformed saying %q", name, err, want)
		}
	}
}

// TestMutateValuesAlias: the hand decoder does not copy values (the
// daemon decodes them before it reads the next frame into the buffer).
func TestMutateValuesAlias(t *testing.T) {
	body := opBodies(t)["put"]
	m, err := wire.DecodeMutate(body)
	if err != nil {
		t.Fatal(err)
	}
	v := m.Ops[0].Values
	if &v[0] != &body[bytes.Index(body, v)] || cap(v) != len(v) {
		t.Fatalf("values % x do not alias the body % x (or may grow into it)", v, body)
	}
}

// FuzzMutateBody: no body panics either decoder, and the hand decoder
// agrees with the oracle as checkAgainstOracle says; the first byte of the
// input picks mutate or apply.
func FuzzMutateBody(f *testing.F) {
	for name, body := range opBodies(f) {
		typ := byte(wire.TMutate)
		if strings.HasPrefix(name, "apply") {
			typ = byte(wire.TApply)
		}
		f.Add(append([]byte{typ}, body...))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		typ := wire.TMutate
		if in[0]&1 == 1 {
			typ = wire.TApply
		}
		checkAgainstOracle(t, typ, in[1:])
	})
}

// BenchmarkDecodeMutate: one state update's body, by hand and by
// reflection.
func BenchmarkDecodeMutate(b *testing.B) {
	body := opBodies(b)["put"]
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := wire.DecodeMutate(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reflect", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m wire.Mutate
			if err := wire.DecodeBody(wire.Frame{Type: wire.TMutate, Body: body}, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
