package codec

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sysreg/sysreg/core"
)

type walkEntry struct {
	scope      core.Scope
	key, owner string
	value      any
}

// fakeWalk reports entries as keys of the runtime layer (config) or the
// state bucket.
func fakeWalk(entries []walkEntry) func(layerWalkFunc) error {
	return func(fn layerWalkFunc) error {
		for _, e := range entries {
			l := core.Layer(0)
			if e.scope.Bucket == core.Config {
				l = core.Runtime
			}
			if err := fn(l, e.scope, e.key, e.owner, e.value); err != nil {
				return err
			}
		}
		return nil
	}
}

func noMeta(metaFunc) error { return nil }

// TestSnapshotMutation: the ops that rebuild a snapshot group the keys of a
// scope by runs of the same owner, in canonical order whatever order the
// walk reported them in.
func TestSnapshotMutation(t *testing.T) {
	a := core.ConfigScope("net", "eth0")
	b := core.ConfigScope("net", "eth0/1")
	c := core.ConfigScope("net2", "a")
	s := core.StateScope("net", "eth0")
	entries := []walkEntry{
		{s, "k", "o1", int64(1)},
		{c, "x", "o1", nil},
		{a, "d", "o2", "4"},
		{a, "a", "o1", uint64(1)},
		{a, "b", "o1", 2.5},
		{a, "c", "o2", []any{}},
		{b, "k", "o1", map[string]any{"n": true}},
	}
	data, err := encodeSnapshot(WireSnapshotVersion, 9, fakeWalk(entries), noMeta, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := snapshotMutation(data)
	if err != nil {
		t.Fatal(err)
	}
	want := &core.Mutation{Seq: 9, Ops: []core.MutationOp{
		{Kind: core.MutSet, Layer: core.Runtime, Scope: a, Owner: "o1", Values: core.Values{"a": uint64(1), "b": 2.5}},
		{Kind: core.MutSet, Layer: core.Runtime, Scope: a, Owner: "o2", Values: core.Values{"c": []any{}, "d": "4"}},
		{Kind: core.MutSet, Layer: core.Runtime, Scope: b, Owner: "o1", Values: core.Values{"k": map[string]any{"n": true}}},
		{Kind: core.MutSet, Layer: core.Runtime, Scope: c, Owner: "o1", Values: core.Values{"x": nil}},
		{Kind: core.MutSet, Scope: s, Owner: "o1", Values: core.Values{"k": int64(1)}},
	}}
	if m.Seq != want.Seq || len(m.Ops) != len(want.Ops) {
		t.Fatalf("got %+v, want %+v", m, want)
	}
	for i := range m.Ops {
		g, w := m.Ops[i], want.Ops[i]
		if g.Kind != w.Kind || g.Layer != w.Layer || g.Scope != w.Scope || g.Owner != w.Owner || !equalValue(map[string]any(g.Values), map[string]any(w.Values)) {
			t.Fatalf("op %d = %+v, want %+v", i, g, w)
		}
	}

	// Any order of the walk gives the same bytes.
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		r.Shuffle(len(entries), func(i, j int) { entries[i], entries[j] = entries[j], entries[i] })
		again, err := encodeSnapshot(WireSnapshotVersion, 9, fakeWalk(entries), noMeta, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if string(again) != string(data) {
			t.Fatalf("order of the walk changes the encoding:\n%x\n%x", again, data)
		}
	}
}

func TestEncodeSnapshotInvalid(t *testing.T) {
	sc := core.ConfigScope("t", "s")
	tests := []struct {
		name    string
		entries []walkEntry
		want    error
	}{
		{"key=twice", []walkEntry{{sc, "k", "o", 1}, {sc, "k", "p", 2}}, ErrInvalidMutation},
		{"key=empty", []walkEntry{{sc, "", "o", 1}}, ErrInvalidMutation},
		{"owner=empty", []walkEntry{{sc, "k", "", 1}}, ErrInvalidMutation},
		{"scope", []walkEntry{{core.ConfigScope("a/b", "s"), "k", "o", 1}}, core.ErrInvalidScope},
		{"value", []walkEntry{{sc, "k", "o", make(chan int)}}, core.ErrInvalidValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := encodeSnapshot(WireSnapshotVersion, 1, fakeWalk(tt.entries), noMeta, nil, nil); !errors.Is(err, tt.want) {
				t.Fatalf("encodeSnapshot error %v, want %v", err, tt.want)
			}
		})
	}
	stop := errors.New("stop")
	if _, err := encodeSnapshot(WireSnapshotVersion, 1, func(layerWalkFunc) error { return stop }, noMeta, nil, nil); !errors.Is(err, stop) {
		t.Fatalf("walk error not returned: %v", err)
	}
}

// TestCompareScopes: the order is that of the text form.
func TestCompareScopes(t *testing.T) {
	parts := []string{"a", "b", "a.b", "ab", "a-", "a0", "é", "a\x01", "z"}
	var scopes []core.Scope
	for _, bk := range []core.Bucket{core.State, core.Config} {
		for _, typ := range parts {
			for _, sub := range append(parts, "a/b", "/", "a/") {
				scopes = append(scopes, core.Scope{Bucket: bk, Type: typ, Subtype: sub})
			}
		}
	}
	for _, x := range scopes {
		for _, y := range scopes {
			if got, want := compareScopes(x, y), strings.Compare(x.String(), y.String()); got != want {
				t.Fatalf("compareScopes(%s, %s) = %d, want %d", x, y, got, want)
			}
		}
	}
}

func TestDecodeSnapshotMalformed(t *testing.T) {
	tests := []struct {
		name string
		hex  string
	}{
		{"empty", ""},
		{"envelope=short", "82 01 00"},
		{"trailing", "83 01 00 80 00"},
		{"scopes=map", "83 01 00 a0"},
		{"scope=fields", "83 01 00 81 83 02 6174 6173"},
		{"scope=bucket", "83 01 00 81 84 03 6174 6173 81 83 616b 616f 01"},
		{"scope=type-slash", "83 01 00 81 84 02 632f2f2f 6173 81 83 616b 616f 01"},
		{"scope=no-keys", "83 01 00 81 84 02 6174 6173 80"},
		{"scope=twice", "83 01 00 82 84 02 6174 6173 81 83 616b 616f 01 84 02 6174 6173 81 83 616c 616f 01"},
		{"scope=order", "83 01 00 82 84 01 6174 6173 81 83 616b 616f 01 84 02 6174 6173 81 83 616b 616f 01"},
		{"entry=fields", "83 01 00 81 84 02 6174 6173 81 82 616b 616f"},
		{"entry=key-empty", "83 01 00 81 84 02 6174 6173 81 83 60 616f 01"},
		{"entry=owner-empty", "83 01 00 81 84 02 6174 6173 81 83 616b 60 01"},
		{"entry=value", "83 01 00 81 84 02 6174 6173 81 83 616b 616f f7"},
		{"key=twice", "83 01 00 81 84 02 6174 6173 82 83 616b 616f 01 83 616b 6170 01"},
		{"key=order", "83 01 00 81 84 02 6174 6173 82 83 616c 616f 01 83 616b 616f 01"},
		// Version 2: [bucket, type, subtype, [[layer, entries]...], [meta...]].
		{"v2=scope-fields", "83 02 00 81 84 02 6174 6173 80"},
		{"v2=no-layers", "83 02 00 81 85 02 6174 6173 80 80"},
		{"v2=layer-6", "83 02 00 81 85 02 6174 6173 81 82 06 81 83 616b 616f 01 80"},
		{"v2=config-layer-0", "83 02 00 81 85 02 6174 6173 81 82 00 81 83 616b 616f 01 80"},
		{"v2=state-layer-3", "83 02 00 81 85 01 6174 6173 81 82 03 81 83 616b 616f 01 80"},
		{"v2=layer-order", "83 02 00 81 85 02 6174 6173 82 82 04 81 83 616b 616f 01 82 03 81 83 616b 616f 01 80"},
		{"v2=saved-no-owner", "83 02 00 81 85 02 6174 6173 81 82 03 81 83 616b 60 01 80"},
		{"v2=default-owner", "83 02 00 81 85 02 6174 6173 81 82 01 81 83 616b 616f 01 80"},
		{"v2=meta-unknown-key", "83 02 00 81 85 02 6174 6173 81 82 03 81 83 616b 616f 01 81 86 616c 01 01 01 00 f4"},
		{"v2=meta-fields", "83 02 00 81 85 02 6174 6173 81 82 03 81 83 616b 616f 01 81 85 616b 01 01 01 00"},
		{"v2=meta-not-bool", "83 02 00 81 85 02 6174 6173 81 82 03 81 83 616b 616f 01 81 86 616b 01 01 01 00 00"},
		{"v2=meta-order", "83 02 00 81 85 02 6174 6173 81 82 03 82 83 616b 616f 01 83 616c 616f 01 82 86 616c 01 01 01 00 f4 86 616b 01 01 01 00 f4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := unhexT(t, tt.hex)
			if m, err := snapshotMutation(b); !errors.Is(err, ErrMalformed) {
				t.Fatalf("snapshotMutation = %+v, %v; want ErrMalformed", m, err)
			}
		})
	}
	var ve *VersionError
	if _, err := snapshotMutation(unhexT(t, "85 05 00 80 80 80")); !errors.As(err, &ve) || ve.Format != "snapshot" || ve.Found != 5 || ve.Supported != 4 {
		t.Fatalf("version 5: error %v, want a snapshot *VersionError", err)
	}
}
