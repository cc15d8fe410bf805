package codec_test

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/codec"
)

// update rewrites the golden files and the fuzz seeds. Use it only for a new
// format version, with the old golden files kept: they must decode forever.
var update = flag.Bool("update", false, "rewrite testdata golden files and fuzz seeds")

// goldenValue holds every kind of value of R2.
func goldenValue() map[string]any {
	return map[string]any{
		"nil":   nil,
		"false": false,
		"true":  true,
		"int": []any{int64(0), int64(23), int64(24), int64(255), int64(256), int64(65536), int64(1 << 32),
			int64(math.MaxInt64), int64(-1), int64(-25), int64(math.MinInt64)},
		"uint": []any{uint64(0), uint64(24), uint64(1 << 40), uint64(math.MaxUint64)},
		"float": []any{1.5, math.Copysign(0, -1), math.Inf(1), math.Inf(-1),
			math.Float64frombits(0x7ff8000000000001), // quiet NaN with payload
			math.Float64frombits(0xfff0000000000002), // negative signalling NaN
			math.SmallestNonzeroFloat64, math.MaxFloat64},
		"string": "héllo, wörld €𝄞",
		"long":   strings.Repeat("0123456789", 30),
		"bytes":  []byte{0, 1, 0xfe, 0xff},
		"list":   []any{int64(1), []any{"two", []any{uint64(3)}}, map[string]any{"four": 4.0}},
		"map":    map[string]any{"a": map[string]any{"b": map[string]any{"c": []any{nil}}, "": "empty key"}},
		"empty":  map[string]any{"list": []any{}, "map": map[string]any{}, "bytes": []byte{}, "string": ""},
	}
}

// goldenRecordV1 is what record_v1.cbor holds, as version 2 reads it: one
// op of every kind, written before config layers; its config ops read as
// ops of the saved layer (R41's migration) and it has no time.
func goldenRecordV1() *core.Mutation {
	cfg := core.ConfigScope("network_interface", "eth0")
	return &core.Mutation{Seq: 123456789, Ops: []core.MutationOp{
		{Kind: core.MutMerge, Layer: core.Saved, Scope: cfg, Owner: "netd", Values: goldenValue()},
		{Kind: core.MutSet, Layer: core.Saved, Scope: core.ConfigScope("wifi", "wlan0/ap"), Owner: "wifid",
			Values: core.Values{"ssid": "home", "channel": int64(6)}},
		{Kind: core.MutDelete, Layer: core.Saved, Scope: cfg, Keys: []string{"nil", "false"}},
		{Kind: core.MutDrop, Layer: core.Saved, Scope: core.Scope{Bucket: core.Config}, Owner: "gone"},
	}}
}

// goldenRecordV2 is what record_v2.cbor holds (format version 2, before
// bindings were journaled): one op of every kind, in every journaled
// layer, and a time.
func goldenRecordV2() *core.Mutation {
	cfg := core.ConfigScope("network_interface", "eth0")
	return &core.Mutation{Seq: 123456789, Time: time.Unix(1700000000, 123456789), Ops: []core.MutationOp{
		{Kind: core.MutMerge, Layer: core.Runtime, Scope: cfg, Owner: "netd", Values: goldenValue()},
		{Kind: core.MutSet, Layer: core.Saved, Scope: core.ConfigScope("wifi", "wlan0/ap"), Owner: "wifid",
			Values: core.Values{"ssid": "home", "channel": int64(6)}},
		{Kind: core.MutSet, Layer: core.Fleet, Scope: core.ConfigScope("wifi", "wlan0/ap"), Values: core.Values{"country": "DE"}},
		{Kind: core.MutDelete, Layer: core.Runtime, Scope: cfg, Keys: []string{"nil", "false"}},
		{Kind: core.MutDelete, Layer: core.Fleet, Scope: cfg, Keys: []string{"gone"}},
		{Kind: core.MutDrop, Layer: core.Runtime, Scope: core.Scope{Bucket: core.Config}, Owner: "gone"},
		{Kind: core.MutDrop, Layer: core.Saved, Scope: core.Scope{Bucket: core.Config}, Owner: "evicted"},
	}}
}

// goldenSnapshotV1 is what snapshot_v1.cbor holds, as version 2 reads it:
// both buckets, several owners in one scope, and scopes whose text order
// differs from the order of their parts; config in the saved layer.
func goldenSnapshotV1(t *testing.T) core.Snapshot {
	s, err := core.Snapshot{}.Apply(&core.Mutation{Seq: 987654321, Ops: []core.MutationOp{
		{Kind: core.MutSet, Layer: core.Saved, Scope: core.ConfigScope("net", "eth0"), Owner: "netd",
			Values: core.Values{"address": "192.168.1.100", "mtu": int64(1500), "up": true}},
		{Kind: core.MutSet, Layer: core.Saved, Scope: core.ConfigScope("net", "eth0"), Owner: "tool", Values: core.Values{"note": nil}},
		{Kind: core.MutSet, Layer: core.Saved, Scope: core.ConfigScope("net", "eth0/1"), Owner: "netd", Values: core.Values{"vlan": uint64(7)}},
		{Kind: core.MutSet, Layer: core.Saved, Scope: core.ConfigScope("net.x", "a"), Owner: "netd", Values: core.Values{"k": []byte{1}}},
		{Kind: core.MutSet, Scope: core.StateScope("net", "eth0"), Owner: "netd", Values: goldenValue()},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// goldenSnapshot has the state bucket and all five config layers over
// each other, ownerless default and fleet keys, and metadata from three
// mutations at known times (format version 2).
func goldenSnapshot(t *testing.T) core.Snapshot {
	eth0 := core.ConfigScope("net", "eth0")
	muts := []*core.Mutation{
		{Seq: 100, Time: time.Unix(1700000000, 0), Ops: []core.MutationOp{
			{Kind: core.MutSet, Layer: core.Default, Scope: eth0, Values: core.Values{"mtu": int64(1500), "ip": map[string]any{"mode": "dhcp"}}},
			{Kind: core.MutSet, Layer: core.Fleet, Scope: eth0, Values: core.Values{"ntp": "pool.example"}},
			{Kind: core.MutSet, Layer: core.Saved, Scope: eth0, Owner: "ui", Values: core.Values{"ip": map[string]any{"mode": "static"}}},
			{Kind: core.MutSet, Scope: core.StateScope("net", "eth0"), Owner: "netd", Values: goldenValue()},
		}},
		{Seq: 200, Time: time.Unix(1700000100, 5), Ops: []core.MutationOp{
			{Kind: core.MutMerge, Layer: core.Runtime, Scope: eth0, Owner: "netd", Values: core.Values{"mtu": int64(9000)}},
			{Kind: core.MutSet, Layer: core.Runtime, Scope: core.ConfigScope("net", "eth0/1"), Owner: "netd", Values: core.Values{"vlan": uint64(7)}},
		}},
		{Seq: 300, Time: time.Unix(1700000200, 0), Ops: []core.MutationOp{
			{Kind: core.MutMerge, Layer: core.Override, Scope: eth0, Owner: "ops", Values: core.Values{"ntp": "10.0.0.1"}},
			{Kind: core.MutSet, Layer: core.Saved, Scope: core.ConfigScope("net.x", "a"), Owner: "tool", Values: core.Values{"k": []byte{1}}},
		}},
	}
	var s core.Snapshot
	for _, m := range muts {
		var err error
		if s, err = s.Apply(m); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// golden compares data with testdata/name, or writes it with -update.
func golden(t *testing.T, name string, data []byte) []byte {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, want) {
		// The golden file stays what it is: old data must decode forever.
		// A deliberate change of encoding needs a new format version.
		t.Errorf("encoding differs from %s: the format changed\n got  %x\n want %x", path, data, want)
	}
	return want
}

func TestGoldenValue(t *testing.T) {
	enc, err := codec.EncodeValue(goldenValue())
	if err != nil {
		t.Fatal(err)
	}
	data := golden(t, "value_v1.cbor", enc)
	got, err := codec.DecodeValue(data)
	if err != nil {
		t.Fatal(err)
	}
	if !codecEqual(got, goldenValue()) {
		t.Fatalf("value_v1.cbor decodes to %#v", got)
	}
}

// TestGoldenRecordV1: records of format version 1 decode forever, their
// config ops into the saved layer.
func TestGoldenRecordV1(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "record_v1.cbor"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := codec.DecodeMutation(data)
	if err != nil {
		t.Fatal(err)
	}
	if !equalMutation(got, goldenRecordV1()) {
		t.Fatalf("record_v1.cbor decodes to %+v", got)
	}
}

// goldenRecord is goldenRecordV2 with binding changes (format version 3,
// R35): a bind, a bind to root, an unbind, a uid above 2^16.
func goldenRecord() *core.Mutation {
	m := goldenRecordV2()
	m.Binds = []core.Bind{{Name: "evicted", Unbind: true}, {Name: "netd", UID: 1234}, {Name: "root-tool", UID: 0},
		{Name: "wifid", UID: 4000000000}}
	return m
}

// TestGoldenRecordV2: records of format version 2 decode forever, with no
// binding changes.
func TestGoldenRecordV2(t *testing.T) {
	got, err := codec.DecodeMutation(readFile(t, "record_v2.cbor"))
	if err != nil {
		t.Fatal(err)
	}
	if !equalMutation(got, goldenRecordV2()) || got.Binds != nil {
		t.Fatalf("record_v2.cbor decodes to %+v", got)
	}
}

func TestGoldenRecord(t *testing.T) {
	enc, err := codec.EncodeMutation(goldenRecord())
	if err != nil {
		t.Fatal(err)
	}
	data := golden(t, "record_v3.cbor", enc)
	got, err := codec.DecodeMutation(data)
	if err != nil {
		t.Fatal(err)
	}
	if !equalMutation(got, goldenRecord()) {
		t.Fatalf("record_v3.cbor decodes to %+v", got)
	}
}

// TestGoldenCheckpoint: a checkpoint (format version 3) holds the
// journaled layers, their metadata and the bindings of the names that hold
// journaled keys (R35); testdata/checkpoint_v3.cbor decodes to them forever.
func TestGoldenCheckpoint(t *testing.T) {
	want := goldenCheckpoint(t)
	enc, err := codec.EncodeSnapshot(want, core.Config)
	if err != nil {
		t.Fatal(err)
	}
	data := golden(t, "checkpoint_v3.cbor", enc)
	got, err := codec.DecodeSnapshot(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []core.Layer{core.Fleet, core.Saved, core.Runtime} {
		sameWalk(t, "checkpoint_v3.cbor", walkLayer(t, want, l), walkLayer(t, got, l))
	}
	wb, _ := want.Bindings()
	gb, unbound := got.Bindings()
	if !slices.Equal(wb, gb) || len(unbound) > 0 || len(gb) != 3 {
		t.Fatalf("checkpoint_v3.cbor bindings %+v (unbound %q), want %+v", gb, unbound, wb)
	}
}

// goldenCheckpoint is goldenSnapshot with its owners bound: ui to 1000,
// netd to root, tool to 65534 (ops, which holds only override keys, has no
// journaled binding).
func goldenCheckpoint(t *testing.T) core.Snapshot {
	s, err := goldenSnapshot(t).Apply(&core.Mutation{Seq: 301, Binds: []core.Bind{
		{Name: "netd", UID: 0}, {Name: "tool", UID: 65534}, {Name: "ui", UID: 1000}}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestGoldenSnapshotV1: snapshots of format version 1 decode forever,
// their config into the saved layer.
func TestGoldenSnapshotV1(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "snapshot_v1.cbor"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := codec.DecodeSnapshot(data)
	if err != nil {
		t.Fatal(err)
	}
	want := goldenSnapshotV1(t)
	if got.Seq() != want.Seq() {
		t.Fatalf("seq %d, want %d", got.Seq(), want.Seq())
	}
	for _, l := range []core.Layer{0, core.Default, core.Fleet, core.Saved, core.Runtime, core.Override} {
		sameWalk(t, "snapshot_v1.cbor", walkLayer(t, want, l), walkLayer(t, got, l))
	}
}

func TestGoldenSnapshot(t *testing.T) {
	want := goldenSnapshot(t)
	enc, err := codec.EncodeSnapshot(want, 0)
	if err != nil {
		t.Fatal(err)
	}
	data := golden(t, "snapshot_v2.cbor", enc)
	got, err := codec.DecodeSnapshot(data)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq() != want.Seq() {
		t.Fatalf("seq %d, want %d", got.Seq(), want.Seq())
	}
	for _, l := range []core.Layer{0, core.Default, core.Fleet, core.Saved, core.Runtime, core.Override} {
		sameWalk(t, "snapshot_v2.cbor", walkLayer(t, want, l), walkLayer(t, got, l))
	}
	sameWalk(t, "snapshot_v2.cbor", walkAll(t, want, 0), walkAll(t, got, 0))
	if w, g := walkMeta(t, want, 0), walkMeta(t, got, 0); !reflect.DeepEqual(w, g) {
		t.Fatalf("snapshot_v2.cbor metadata:\n got  %+v\n want %+v", g, w)
	}
}

func sameWalk(t *testing.T, what string, w, g []walked) {
	t.Helper()
	if len(w) != len(g) {
		t.Fatalf("%s has %d keys, want %d", what, len(g), len(w))
	}
	for i := range w {
		if w[i].scope != g[i].scope || w[i].key != g[i].key || w[i].owner != g[i].owner || !codecEqual(w[i].value, g[i].value) {
			t.Fatalf("%s: key %d: %+v, want %+v", what, i, g[i], w[i])
		}
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFuzzSeeds writes the seed corpora with -update; otherwise it checks
// that each fuzz target has seeds (go test runs them as subtests of the
// targets).
func TestFuzzSeeds(t *testing.T) {
	rec := func(m *core.Mutation) []byte {
		b, err := codec.EncodeMutation(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	val := func(v any) []byte {
		b, err := codec.EncodeValue(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	snap, err := codec.EncodeSnapshot(goldenSnapshot(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	seeds := map[string]map[string][]byte{
		"FuzzDecodeValue": {
			"golden":      val(goldenValue()),
			"typical":     val(typicalRecord().Ops[0].Values),
			"scalar":      val(uint64(1)),
			"half-float":  unhex(t, "82 f97e01 fa7f800001"),
			"long-head":   unhex(t, "a1 7800 1b0000000000000001"),
			"unsorted":    unhex(t, "a2 6162 01 6161 02"),
			"dup-key":     unhex(t, "a2 6161 01 6161 02"),
			"tag":         unhex(t, "d9d9f7 00"),
			"indefinite":  unhex(t, "9f 01 ff"),
			"huge-length": unhex(t, "9b ffffffffffffffff 00"),
			"deep":        unhex(t, nest("81", "80", "", 200)),
		},
		"FuzzDecodeMutation": {
			"golden":    rec(goldenRecord()),
			"golden-v1": readFile(t, "record_v1.cbor"),
			"golden-v2": readFile(t, "record_v2.cbor"),
			"binds":     unhex(t, "85 03 07 00 80 82 81 6161 82 6162 19 04d2"),
			"bad-binds": unhex(t, "85 03 07 00 80 82 82 6162 01 81 6161"),
			"layers":    unhex(t, "84 02 05 1a000f4240 82 84 03 02 04 616f 87 04 02 02 6174 6173 60 a1 616b 01"),
			"typical":   rec(typicalRecord()),
			"empty":     rec(&core.Mutation{Seq: 1}),
			"version-2": unhex(t, "83 02 01 80"),
			"version-3": unhex(t, "84 03 01 00 80"),
			"drop":      unhex(t, "83 01 01 81 83 03 02 616f"),
			"delete":    unhex(t, "83 01 01 81 85 02 02 6174 6173 81 616b"),
			"bad-kind":  unhex(t, "83 01 01 81 83 05 02 616f"),
			"golden-v4": rec(goldenRecordV4()),
			"apply":     unhex(t, "87 04 05 00 80 80 81 85 05 616f 03 00 81 85 6174 6173 616b 82 616f 01 80 80"),
			"finish":    unhex(t, "87 04 05 00 80 80 80 82 02 03"),
		},
		"FuzzDecodeSnapshot": {
			"golden":     snap,
			"golden-v1":  readFile(t, "snapshot_v1.cbor"),
			"checkpoint": readFile(t, "checkpoint_v3.cbor"),
			"pending":    readFile(t, "checkpoint_v4.cbor"),
			"v3-bound":   unhex(t, "84 03 05 81 85 02 6174 6173 81 82 03 81 83 616b 616f 01 80 81 82 616f 19 04d2"),
			"v2-one":     unhex(t, "83 02 05 81 85 02 6174 6173 81 82 03 81 83 616b 616f 01 81 86 616b 01 05 02 1a000f4240 f5"),
			"v2-fleet":   unhex(t, "83 02 05 81 85 02 6174 6173 82 82 02 81 83 616b 60 01 82 04 81 83 616b 616f 02 80"),
			"empty":      unhex(t, "83 01 00 80"),
			"one":        unhex(t, "83 01 05 81 84 02 6174 6173 81 83 616b 616f 01"),
			"two-owner":  unhex(t, "83 01 05 81 84 02 6174 6173 82 83 616b 616f 01 83 616c 6170 02"),
			"version-2":  unhex(t, "83 02 00 80"),
			"version-3":  unhex(t, "83 03 00 80"),
		},
	}
	for target, files := range seeds {
		dir := filepath.Join("testdata", "fuzz", target)
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, b := range files {
				content := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b)))
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) == 0 {
			t.Errorf("no seeds for %s in %s (run go test -run TestFuzzSeeds -update): %v", target, dir, err)
		}
	}
}
