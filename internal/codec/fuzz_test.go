package codec_test

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/codec"
)

// The fuzz targets check every decoder: it never panics, fails only with
// ErrMalformed or ErrVersion, and whatever it accepts is in normal form,
// re-encodes, and decodes again to the same thing, whose encoding is a fixed
// point. Seeds live in testdata/fuzz/<FuzzName>/ (written by
// TestFuzzSeeds -update) and run with every go test.

func checkDecodeError(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, codec.ErrMalformed) && !errors.Is(err, codec.ErrVersion) {
		t.Fatalf("decode error matches neither ErrMalformed nor ErrVersion: %v", err)
	}
}

func FuzzDecodeValue(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := codec.DecodeValue(b)
		if err != nil {
			checkDecodeError(t, err)
		} else {
			sameAsReference(t, b, v)
			nv, size, err := core.NormalizeValue(v)
			if err != nil {
				t.Fatalf("decoded value is not valid: %v", err)
			}
			if !codecEqual(nv, v) {
				t.Fatalf("decoded value %#v not in normal form", v)
			}
			b2, err := codec.EncodeValue(v)
			if err != nil {
				t.Fatalf("decoded value does not encode: %v", err)
			}
			if len(b2) != size {
				t.Fatalf("encoding has %d bytes, core says %d", len(b2), size)
			}
			v2, err := codec.DecodeValue(b2)
			if err != nil {
				t.Fatalf("re-encoded value does not decode: %v", err)
			}
			if !codecEqual(v2, v) {
				t.Fatalf("round trip of %#v gave %#v", v, v2)
			}
		}

		vals, err := codec.DecodeValues(b)
		// Into a used map, the same.
		used, uerr := codec.DecodeValuesInto(b, core.Values{"old": int64(1), "up": "x"})
		if (err == nil) != (uerr == nil) || err == nil && !codecEqual(map[string]any(vals), map[string]any(used)) {
			t.Fatalf("DecodeValuesInto a used map: %#v, %v; DecodeValues: %#v, %v", used, uerr, vals, err)
		}
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		if _, _, err := core.NormalizeValues(vals); err != nil {
			t.Fatalf("decoded values are not valid: %v", err)
		}
		b2, err := codec.EncodeValues(vals)
		if err != nil {
			t.Fatalf("decoded values do not encode: %v", err)
		}
		vals2, err := codec.DecodeValues(b2)
		if err != nil || !codecEqual(map[string]any(vals), map[string]any(vals2)) {
			t.Fatalf("round trip of %#v gave %#v, %v", vals, vals2, err)
		}
	})
}

func FuzzDecodeMutation(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := codec.DecodeMutation(b)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		for i, op := range m.Ops {
			if op.Kind == core.MutMerge || op.Kind == core.MutSet {
				if _, _, err := core.NormalizeValues(op.Values); err != nil {
					t.Fatalf("op %d: decoded values are not valid: %v", i, err)
				}
			}
		}
		b2, err := codec.EncodeMutation(m)
		if err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
		m2, err := codec.DecodeMutation(b2)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !equalMutation(m, m2) {
			t.Fatalf("round trip of %+v gave %+v", m, m2)
		}
		b3, err := codec.EncodeMutation(m2)
		if err != nil || !bytes.Equal(b2, b3) {
			t.Fatalf("encoding is not a fixed point: %x then %x (%v)", b2, b3, err)
		}
	})
}

func FuzzDecodeSnapshot(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := codec.DecodeSnapshot(b)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		b2, err := codec.EncodeSnapshot(s, 0)
		if err != nil {
			t.Fatalf("decoded snapshot does not encode: %v", err)
		}
		s2, err := codec.DecodeSnapshot(b2)
		if err != nil {
			t.Fatalf("re-encoded snapshot does not decode: %v", err)
		}
		if s2.Seq() != s.Seq() {
			t.Fatalf("seq %d became %d", s.Seq(), s2.Seq())
		}
		w1, w2 := walkAll(t, s, 0), walkAll(t, s2, 0)
		if len(w1) != len(w2) {
			t.Fatalf("%d keys became %d", len(w1), len(w2))
		}
		for i := range w1 {
			x, y := w1[i], w2[i]
			if x.scope != y.scope || x.key != y.key || x.owner != y.owner || !codecEqual(x.value, y.value) {
				t.Fatalf("key %d: %+v became %+v", i, x, y)
			}
		}
		b3, err := codec.EncodeSnapshot(s2, 0)
		if err != nil || !bytes.Equal(b2, b3) {
			t.Fatalf("encoding is not a fixed point: %x then %x (%v)", b2, b3, err)
		}
		// A snapshot keeps its bindings, and its unbound names, through a
		// checkpoint's encoding (R35).
		binds, unbound := s.Bindings()
		c, err := codec.EncodeSnapshot(s, core.Config)
		if err != nil {
			t.Fatalf("decoded snapshot does not encode as a checkpoint: %v", err)
		}
		s3, err := codec.DecodeSnapshot(c)
		if err != nil {
			t.Fatalf("checkpoint does not decode: %v", err)
		}
		if b, u := s3.Bindings(); !slices.Equal(b, binds) || !slices.Equal(u, unbound) {
			t.Fatalf("bindings %+v became %+v (unbound %q)", binds, b, u)
		}
	})
}
