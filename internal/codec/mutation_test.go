package codec_test

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/codec"
)

// typicalRecord is the small record of the benchmarks and of the annotated
// dump in doc.go.
func typicalRecord() *core.Mutation {
	return &core.Mutation{Seq: 42, Time: time.Unix(1700000000, 0), Ops: []core.MutationOp{{
		Kind:   core.MutMerge,
		Layer:  core.Runtime,
		Scope:  core.ConfigScope("network_interface", "eth0"),
		Owner:  "netd",
		Values: core.Values{"address": "192.168.1.100", "up": true},
	}}}
}

// docDump returns the annotated hex dump in doc.go that follows the line
// containing marker, so that the package documentation cannot drift from
// the encoding.
func docDump(t testing.TB, marker string) string {
	t.Helper()
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(src), marker)
	if !ok {
		t.Fatalf("doc.go has no %q", marker)
	}
	var sb strings.Builder
	lines := strings.Split(rest, "\n")[1:]
	for len(lines) > 0 && lines[0] == "//" {
		lines = lines[1:]
	}
	for _, line := range lines {
		dump, ok := strings.CutPrefix(line, "//\t")
		if !ok {
			break
		}
		sb.WriteString(dump + "\n")
	}
	return sb.String()
}

// hexOf extracts the hex bytes of an annotated dump: the leading hex words
// of each line, up to the first word that is not hex.
func hexOf(t testing.TB, dump string) []byte {
	t.Helper()
	var out []byte
	for _, line := range bytes.Split([]byte(dump), []byte("\n")) {
		for _, w := range bytes.Fields(line) {
			if len(w)%2 != 0 || !isHex(w) {
				break
			}
			out = append(out, unhex(t, string(w))...)
		}
	}
	return out
}

func isHex(w []byte) bool {
	for _, c := range w {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func equalMutation(a, b *core.Mutation) bool {
	if a.Seq != b.Seq || len(a.Ops) != len(b.Ops) || !a.Time.Equal(b.Time) || !slices.Equal(a.Binds, b.Binds) {
		return false
	}
	if !slices.Equal(a.Finish, b.Finish) || !equalApplies(a.Applies, b.Applies) {
		return false
	}
	for i := range a.Ops {
		x, y := &a.Ops[i], &b.Ops[i]
		if x.Kind != y.Kind || x.Layer != y.Layer || x.Scope != y.Scope || x.Owner != y.Owner || len(x.Keys) != len(y.Keys) ||
			!codecEqual(map[string]any(x.Values), map[string]any(y.Values)) && (len(x.Values) != 0 || len(y.Values) != 0) {
			return false
		}
		for j := range x.Keys {
			if x.Keys[j] != y.Keys[j] {
				return false
			}
		}
	}
	return true
}

func TestMutationBytes(t *testing.T) {
	got, err := codec.EncodeMutation(typicalRecord())
	if err != nil {
		t.Fatal(err)
	}
	dump := docDump(t, "is these 74 bytes:")
	if want := hexOf(t, dump); !bytes.Equal(got, want) || len(got) != 74 {
		t.Fatalf("EncodeMutation = %x\nwant             %x", got, want)
	}
}

func TestMutationRoundTrip(t *testing.T) {
	cfg := core.ConfigScope("wifi", "wlan0/ap")
	tests := []struct {
		name string
		m    *core.Mutation
	}{
		{"typical", typicalRecord()},
		{"empty", &core.Mutation{Seq: 1}},
		{"seq=max", &core.Mutation{Seq: math.MaxUint64}},
		{"merge", &core.Mutation{Seq: 2, Ops: []core.MutationOp{
			{Kind: core.MutMerge, Layer: core.Runtime, Scope: cfg, Owner: "o", Values: core.Values{"a": map[string]any{"b": uint64(1)}}}}}},
		{"merge=empty-values", &core.Mutation{Seq: 2, Ops: []core.MutationOp{
			{Kind: core.MutMerge, Layer: core.Runtime, Scope: cfg, Owner: "o", Values: core.Values{}}}}},
		{"set", &core.Mutation{Seq: 3, Ops: []core.MutationOp{
			{Kind: core.MutSet, Scope: core.StateScope("t", "s"), Owner: "o", Values: core.Values{"k": nil}}}}},
		{"delete", &core.Mutation{Seq: 4, Ops: []core.MutationOp{
			{Kind: core.MutDelete, Layer: core.Runtime, Scope: cfg, Keys: []string{"a", "b"}}}}},
		{"delete=no-keys", &core.Mutation{Seq: 4, Ops: []core.MutationOp{
			{Kind: core.MutDelete, Layer: core.Runtime, Scope: cfg, Keys: []string{}}}}},
		{"drop", &core.Mutation{Seq: 5, Ops: []core.MutationOp{
			{Kind: core.MutDrop, Layer: core.Runtime, Scope: core.Scope{Bucket: core.Config}, Owner: "gone"}}}},
		{"transaction", &core.Mutation{Seq: 6, Ops: []core.MutationOp{
			{Kind: core.MutMerge, Layer: core.Runtime, Scope: cfg, Owner: "o", Values: core.Values{"a": int64(-1)}},
			{Kind: core.MutDelete, Layer: core.Runtime, Scope: cfg, Keys: []string{"a"}},
			{Kind: core.MutDrop, Scope: core.Scope{Bucket: core.State}, Owner: "o"},
			{Kind: core.MutSet, Layer: core.Runtime, Scope: cfg, Owner: "p", Values: core.Values{"z": []any{1.5, []byte{0}}}},
		}}},
		{"layers", &core.Mutation{Seq: 7, Time: time.Unix(-5, 3), Ops: []core.MutationOp{
			{Kind: core.MutSet, Layer: core.Fleet, Scope: cfg, Values: core.Values{"f": true}},
			{Kind: core.MutDelete, Layer: core.Fleet, Scope: cfg, Keys: []string{"g"}},
			{Kind: core.MutSet, Layer: core.Default, Scope: cfg, Values: core.Values{"d": 1.0}},
			{Kind: core.MutMerge, Layer: core.Saved, Scope: cfg, Owner: "o", Values: core.Values{"s": "x"}},
			{Kind: core.MutMerge, Layer: core.Override, Scope: cfg, Owner: "o", Values: core.Values{"o": "x"}},
			{Kind: core.MutDrop, Layer: core.Saved, Scope: core.Scope{Bucket: core.Config}, Owner: "o"},
			{Kind: core.MutDrop, Layer: core.Override, Scope: core.Scope{Bucket: core.Config}, Owner: "o"},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := codec.EncodeMutation(tt.m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := codec.DecodeMutation(b)
			if err != nil {
				t.Fatal(err)
			}
			if !equalMutation(got, tt.m) {
				t.Fatalf("round trip of %+v gave %+v", tt.m, got)
			}
		})
	}
}

func TestMutationRandomRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(seed(t), 2))
	for i := range 1000 {
		m := &core.Mutation{Seq: r.Uint64(), Time: time.Unix(0, r.Int64())}
		for range r.IntN(4) {
			m.Ops = append(m.Ops, core.MutationOp{Kind: core.MutMerge, Layer: core.Runtime, Scope: core.ConfigScope("t", "s"),
				Owner: "o", Values: codec.RandomValues(r, true)})
		}
		b, err := codec.EncodeMutation(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := codec.DecodeMutation(b)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !equalMutation(got, m) {
			t.Fatalf("record %d: round trip of %+v gave %+v", i, m, got)
		}
	}
}

// TestLargeRecord: a value that the default 1 MiB limit admits must come
// back from the journal, however many elements it has (no decoder limit
// on elements or pairs below what fits in the bytes).
func TestLargeRecord(t *testing.T) {
	list := make([]any, 200_000)
	for i := range list {
		list[i] = int64(i % 24)
	}
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	m := make(map[string]any, 150_000)
	for i := 0; len(m) < 150_000; i++ {
		k := ""
		for n := i; n > 0 || k == ""; n /= len(alphabet) {
			k += alphabet[n%len(alphabet) : n%len(alphabet)+1]
		}
		m[k] = false
	}
	for name, v := range map[string]any{"list=200k": list, "map=150k": m} {
		t.Run(name, func(t *testing.T) {
			mut := &core.Mutation{Seq: 7, Ops: []core.MutationOp{{Kind: core.MutMerge, Layer: core.Saved,
				Scope: core.ConfigScope("big", "one"), Owner: "o", Values: core.Values{"v": v}}}}
			_, size, err := core.NormalizeValues(mut.Ops[0].Values)
			if err != nil {
				t.Fatal(err)
			}
			if size > core.DefaultMaxUpdateBytes {
				t.Fatalf("test value has %d bytes, over the default limit", size)
			}
			b, err := codec.EncodeMutation(mut)
			if err != nil {
				t.Fatal(err)
			}
			got, err := codec.DecodeMutation(b)
			if err != nil {
				t.Fatal(err)
			}
			if !equalMutation(got, mut) {
				t.Fatal("round trip differs")
			}
		})
	}
}

func TestEncodeMutationInvalid(t *testing.T) {
	cfg := core.ConfigScope("t", "s")
	tests := []struct {
		name string
		op   core.MutationOp
		want error
	}{
		{"kind=0", core.MutationOp{Layer: core.Runtime, Scope: cfg, Owner: "o"}, codec.ErrInvalidMutation},
		{"kind=9", core.MutationOp{Kind: 9, Layer: core.Runtime, Scope: cfg, Owner: "o"}, codec.ErrInvalidMutation},
		{"scope=bucket", core.MutationOp{Kind: core.MutMerge, Scope: core.Scope{Type: "t", Subtype: "s"}, Owner: "o"}, core.ErrInvalidScope},
		{"scope=type", core.MutationOp{Kind: core.MutMerge, Scope: core.ConfigScope("a/b", "s"), Owner: "o"}, core.ErrInvalidScope},
		{"scope=empty", core.MutationOp{Kind: core.MutDelete, Layer: core.Runtime, Scope: core.ConfigScope("", "s"), Keys: []string{"k"}}, core.ErrInvalidScope},
		{"owner=empty", core.MutationOp{Kind: core.MutSet, Layer: core.Runtime, Scope: cfg}, codec.ErrInvalidMutation},
		{"owner=utf8", core.MutationOp{Kind: core.MutMerge, Layer: core.Runtime, Scope: cfg, Owner: "\xff"}, codec.ErrInvalidMutation},
		{"key=empty", core.MutationOp{Kind: core.MutDelete, Layer: core.Runtime, Scope: cfg, Keys: []string{""}}, codec.ErrInvalidMutation},
		{"drop=type", core.MutationOp{Kind: core.MutDrop, Layer: core.Runtime, Scope: cfg, Owner: "o"}, codec.ErrInvalidMutation},
		{"drop=bucket", core.MutationOp{Kind: core.MutDrop, Owner: "o"}, core.ErrInvalidScope},
		{"values", core.MutationOp{Kind: core.MutMerge, Layer: core.Runtime, Scope: cfg, Owner: "o", Values: core.Values{"k": struct{}{}}}, core.ErrInvalidValue},
		{"values=key", core.MutationOp{Kind: core.MutMerge, Layer: core.Runtime, Scope: cfg, Owner: "o", Values: core.Values{"": 1}}, core.ErrInvalidValue},
		{"layer=0", core.MutationOp{Kind: core.MutMerge, Scope: cfg, Owner: "o"}, codec.ErrInvalidMutation},
		{"layer=9", core.MutationOp{Kind: core.MutMerge, Layer: 9, Scope: cfg, Owner: "o"}, codec.ErrInvalidMutation},
		{"layer=state", core.MutationOp{Kind: core.MutMerge, Layer: core.Saved, Scope: core.StateScope("t", "s"), Owner: "o"}, codec.ErrInvalidMutation},
		{"merge=fleet", core.MutationOp{Kind: core.MutMerge, Layer: core.Fleet, Scope: cfg}, codec.ErrInvalidMutation},
		{"drop=default", core.MutationOp{Kind: core.MutDrop, Layer: core.Default, Scope: core.Scope{Bucket: core.Config}, Owner: "o"}, codec.ErrInvalidMutation},
		{"fleet=owner", core.MutationOp{Kind: core.MutSet, Layer: core.Fleet, Scope: cfg, Owner: "o"}, codec.ErrInvalidMutation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := codec.EncodeMutation(&core.Mutation{Seq: 1, Ops: []core.MutationOp{tt.op}})
			if !errors.Is(err, tt.want) {
				t.Fatalf("EncodeMutation error %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := codec.EncodeMutation(nil); !errors.Is(err, codec.ErrInvalidMutation) {
		t.Fatalf("EncodeMutation(nil) error %v", err)
	}
}

func TestDecodeMutationVersion(t *testing.T) {
	tests := []struct {
		name  string
		hex   string
		found uint64
	}{
		{"v0", "83 00 01 80", 0},
		{"v5", "87 05 01 00 80 80 80 80", 5},
		// A newer version may have another shape: the version decides first.
		{"v5=shape", "86 05 01 80 f6 f6 f6", 5},
		{"v5=one-field", "81 05", 5},
		{"vmax", "83 1bffffffffffffffff 01 80", math.MaxUint64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := codec.DecodeMutation(unhex(t, tt.hex))
			var ve *codec.VersionError
			if !errors.Is(err, codec.ErrVersion) || !errors.As(err, &ve) {
				t.Fatalf("DecodeMutation error %v, want a *VersionError", err)
			}
			if ve.Found != tt.found || ve.Supported != codec.RecordVersion || ve.Format != "record" {
				t.Fatalf("VersionError %+v, want found %d, supported %d", ve, tt.found, codec.RecordVersion)
			}
			if errors.Is(err, codec.ErrMalformed) {
				t.Fatal("a version error also matches ErrMalformed")
			}
		})
	}
}

func TestDecodeMutationMalformed(t *testing.T) {
	tests := []struct {
		name string
		hex  string
	}{
		{"empty", ""},
		{"not-array", "a0"},
		{"envelope=empty", "80"},
		{"envelope=short", "82 01 01"},
		{"envelope=long", "84 01 01 80 80"},
		{"version=string", "83 6131 01 80"},
		{"seq=negative", "83 01 20 80"},
		{"seq=string", "83 01 6131 80"},
		{"ops=map", "83 01 01 a0"},
		{"ops=truncated", "83 01 01 81"},
		{"trailing", "83 01 01 80 00"},
		{"op=empty", "83 01 01 81 80"},
		{"op=not-array", "83 01 01 81 01"},
		{"kind=0", "83 01 01 81 83 00 02 616f"},
		{"kind=5", "83 01 01 81 83 05 02 616f"},
		{"kind=string", "83 01 01 81 83 6131 02 616f"},
		{"drop=fields", "83 01 01 81 84 03 02 616f 616f"},
		{"drop=bucket-0", "83 01 01 81 83 03 00 616f"},
		{"drop=bucket-3", "83 01 01 81 83 03 03 616f"},
		{"drop=owner-empty", "83 01 01 81 83 03 02 60"},
		{"drop=owner-bytes", "83 01 01 81 83 03 02 416f"},
		{"merge=fields", "83 01 01 81 85 01 02 6174 6173 616f"},
		{"merge=type-empty", "83 01 01 81 86 01 02 60 6173 616f a0"},
		{"merge=type-slash", "83 01 01 81 86 01 02 632f2f2f 6173 616f a0"},
		{"merge=subtype-nul", "83 01 01 81 86 01 02 6174 6100 616f a0"},
		{"merge=type-utf8", "83 01 01 81 86 01 02 61ff 6173 616f a0"},
		{"merge=owner-empty", "83 01 01 81 86 01 02 6174 6173 60 a0"},
		{"merge=values-null", "83 01 01 81 86 01 02 6174 6173 616f f6"},
		{"merge=values-list", "83 01 01 81 86 01 02 6174 6173 616f 80"},
		{"merge=key-empty", "83 01 01 81 86 01 02 6174 6173 616f a1 60 01"},
		{"merge=value-tag", "83 01 01 81 86 01 02 6174 6173 616f a1 616b c0 00"},
		{"merge=value-big", "83 01 01 81 86 01 02 6174 6173 616f a1 616b 1bffffffffffffffff"},
		{"set=dup-key", "83 01 01 81 86 04 02 6174 6173 616f a2 616b 01 616b 02"},
		{"delete=keys-map", "83 01 01 81 85 02 02 6174 6173 a0"},
		{"delete=key-empty", "83 01 01 81 85 02 02 6174 6173 81 60"},
		{"delete=key-int", "83 01 01 81 85 02 02 6174 6173 81 01"},
		{"indefinite", "9f 01 01 80 ff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := codec.DecodeMutation(unhex(t, tt.hex))
			if !errors.Is(err, codec.ErrMalformed) {
				t.Fatalf("DecodeMutation = %+v, %v; want ErrMalformed", m, err)
			}
		})
	}
}

// TestDecodeMutationTruncated: every proper prefix of a record is an
// error, never a panic or a shorter record.
func TestDecodeMutationTruncated(t *testing.T) {
	b, err := codec.EncodeMutation(&core.Mutation{Seq: 300, Ops: []core.MutationOp{
		{Kind: core.MutMerge, Layer: core.Runtime, Scope: core.ConfigScope("t", "s"), Owner: "o", Values: core.Values{"k": []any{uint64(1), 2.5, "x"}}},
		{Kind: core.MutDelete, Layer: core.Runtime, Scope: core.ConfigScope("t", "s"), Keys: []string{"k"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range len(b) {
		if _, err := codec.DecodeMutation(b[:i]); !errors.Is(err, codec.ErrMalformed) {
			t.Fatalf("prefix of %d bytes: error %v, want ErrMalformed", i, err)
		}
	}
}
