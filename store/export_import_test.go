package store_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

// randValue draws an R2 value of every kind: nil, bool, int64, uint64
// (above 2^63 too), float64 (NaN, ±Inf, -0 too), string, bytes, arrays and
// maps, nested. With jsonOnly, only values JSON holds exactly.
func randValue(r *rand.Rand, depth int, jsonOnly bool) any {
	n := 10
	if depth > 3 {
		n = 8 // no more nesting
	}
	switch r.IntN(n) {
	case 0:
		return nil
	case 1:
		return r.IntN(2) == 0
	case 2:
		return int64(r.Uint64())
	case 3:
		if jsonOnly {
			return uint64(1)<<63 + r.Uint64N(1<<63) // only above int64 reads back as uint64
		}
		return []uint64{0, 1, 1 << 63, math.MaxUint64, r.Uint64()}[r.IntN(5)]
	case 4:
		if jsonOnly {
			return []float64{0, 1, -2.5, 1e300, math.SmallestNonzeroFloat64, r.NormFloat64()}[r.IntN(6)]
		}
		return []float64{math.NaN(), math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 1, r.NormFloat64()}[r.IntN(6)]
	case 5:
		return fmt.Sprintf("s%d é\x01\"", r.IntN(1000))
	case 6:
		if jsonOnly {
			return "bytes-not-in-json"
		}
		b := make([]byte, r.IntN(5))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	case 7:
		return ""
	case 8:
		a := make([]any, r.IntN(4))
		for i := range a {
			a[i] = randValue(r, depth+1, jsonOnly)
		}
		return a
	}
	m := map[string]any{}
	for i := range r.IntN(4) {
		m[fmt.Sprintf("k%d", i)] = randValue(r, depth+1, jsonOnly)
	}
	return m
}

// TestR45_ExportImportRoundTrip: exporting the saved layer and importing
// it into an empty store reproduces that layer exactly, types included —
// the CBOR form for every value, the JSON form for values JSON holds
// (R45, R2). A property test over random values; the seed is printed.
func TestR45_ExportImportRoundTrip(t *testing.T) {
	ctx := t.Context()
	for _, form := range []string{"cbor", "json"} {
		for round := range 20 {
			seed := uint64(round)*7919 + 1
			t.Run(fmt.Sprintf("form=%s/seed=%d", form, seed), func(t *testing.T) {
				r := rand.New(rand.NewPCG(seed, seed))
				src := open(t, t.TempDir(), store.Options{NoSync: true})
				o, err := src.Owner(ctx, "src", core.OwnerOptions{KeepConfig: true})
				must(t, err)
				rt, err := src.Owner(ctx, "rt", core.OwnerOptions{Layer: core.Runtime})
				must(t, err)
				for i := range 1 + r.IntN(6) {
					sc := core.ConfigScope(fmt.Sprintf("t%d", r.IntN(3)), fmt.Sprintf("s/%d", i))
					vals := core.Values{}
					for k := range 1 + r.IntN(4) {
						vals[fmt.Sprintf("key%d", k)] = randValue(r, 0, form == "json")
					}
					must(t, o.Update(ctx, sc, vals))
					must(t, rt.Update(ctx, sc, core.Values{"runtime-only": 1})) // not in the saved layer
				}
				snap, _ := src.Snapshot(ctx)
				data, err := store.Export(snap, core.Pattern{}, store.ExportOptions{Layer: core.Saved, CBOR: form == "cbor"})
				must(t, err)
				scopes, err := store.ParseExport("export", data)
				must(t, err)
				dst := open(t, t.TempDir(), store.Options{NoSync: true})
				if _, err := store.Import(ctx, dst, "imported", scopes); err != nil {
					t.Fatal(err)
				}
				got, _ := dst.Snapshot(ctx)
				want := snap.LayerScopes(core.Saved)
				if have := got.LayerScopes(core.Saved); len(have) != len(want) {
					t.Fatalf("imported scopes %v, want %v", have, want)
				}
				for _, sc := range want {
					w, g := snap.LayerValues(core.Saved, sc), got.LayerValues(core.Saved, sc)
					if !core.Equal(map[string]any(w), map[string]any(g)) {
						t.Fatalf("%s: imported %#v, want %#v", sc, g, w)
					}
				}
			})
		}
	}
}

// TestR45_ExportImportBadInput: a JSON export of a value JSON cannot hold
// fails naming it and pointing to --cbor; an export of a pattern that
// matches nothing fails; an import of a malformed or foreign file fails
// and changes nothing (R45).
func TestR45_ExportImportBadInput(t *testing.T) {
	ctx := t.Context()
	s := open(t, t.TempDir(), store.Options{NoSync: true})
	o, err := s.Owner(ctx, "o", core.OwnerOptions{KeepConfig: true})
	must(t, err)
	must(t, o.Update(ctx, core.ConfigScope("blob", "a"), core.Values{"data": []byte{1, 2}}))
	must(t, o.Update(ctx, core.ConfigScope("num", "a"), core.Values{"n": uint64(5), "f": math.NaN()}))
	snap, _ := s.Snapshot(ctx)
	for _, p := range []string{"config/blob", "config/num"} {
		pat, _ := core.ParsePattern(p)
		if _, err := store.Export(snap, pat, store.ExportOptions{}); !errors.Is(err, store.ErrNotJSON) {
			t.Errorf("JSON export of %s: %v, want ErrNotJSON", p, err)
		}
		if _, err := store.Export(snap, pat, store.ExportOptions{CBOR: true}); err != nil {
			t.Errorf("CBOR export of %s: %v", p, err)
		}
	}
	for _, p := range []core.Pattern{{Type: "nothing"}, {Type: "blob", Subtype: "b"}} {
		if _, err := store.Export(snap, p, store.ExportOptions{}); !errors.Is(err, store.ErrNoMatch) {
			t.Errorf("export of %v: %v, want ErrNoMatch", p, err)
		}
	}
	if _, err := store.Export(snap, core.Pattern{}, store.ExportOptions{Layer: core.Override}); !errors.Is(err, store.ErrNoMatch) {
		t.Errorf("export of an empty layer: %v, want ErrNoMatch", err)
	}
	if _, err := store.Export(snap, core.Pattern{Bucket: core.State}, store.ExportOptions{}); !errors.Is(err, core.ErrInvalidScope) {
		t.Errorf("export of state: %v", err)
	}
	for name, data := range map[string]string{
		"empty":        "",
		"truncated":    `{"wifi": {"wlan0": {"ssid": `,
		"not-nested":   `{"wifi": 1}`,
		"array":        `[1, 2]`,
		"bad-scope":    `{"a/b": {"c": {"k": 1}}}`,
		"too-big":      `{"a": {"b": {"k": 1e400}}}`,
		"bbolt":        "\x00\x00\x00\x00\x00\x00\x00\x00\x04\x00\xed\xda\x0c\xed",
		"other-cbor":   "\x83\x63abc\x01\xa0",
		"cbor-version": "\x83\x6dsysreg-export\x02\xa0",
	} {
		if _, err := store.ParseExport(name, []byte(data)); !errors.Is(err, store.ErrBadImport) {
			t.Errorf("import of %s: %v, want ErrBadImport", name, err)
		}
	}
	// An import that fails in the registry applies nothing.
	before, _ := s.Snapshot(ctx)
	_, err = store.Import(ctx, s, "o", map[core.Scope]core.Values{core.ConfigScope("x", "y"): {"a": 1}})
	if !errors.Is(err, core.ErrOwnerInUse) {
		t.Fatalf("import as a live owner: %v", err)
	}
	if after, _ := s.Snapshot(ctx); after.Seq() != before.Seq() {
		t.Fatal("a failed import changed something")
	}
}
