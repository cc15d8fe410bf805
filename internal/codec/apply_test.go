package codec_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/codec"
)

func equalApplies(a, b []core.PendingApply) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.ID != y.ID || x.Owner != y.Owner || x.Layer != y.Layer || !x.Deadline.Equal(y.Deadline) || len(x.Undo) != len(y.Undo) {
			return false
		}
		for j := range x.Undo {
			u, v := x.Undo[j], y.Undo[j]
			if u.Scope != v.Scope || u.Key != v.Key || u.Had != v.Had || u.Owner != v.Owner || u.Left != v.Left || u.LeftOwner != v.LeftOwner ||
				!codecEqual(u.Value, v.Value) || !codecEqual(u.LeftValue, v.LeftValue) {
				return false
			}
		}
	}
	return true
}

// goldenApply is an apply (R44) of every kind of undo: a key changed (to
// a value of every type), one added, one deleted, one whose owner changed.
func goldenApply(id uint64) core.PendingApply {
	sc := core.ConfigScope("network_interface", "eth0")
	return core.PendingApply{ID: id, Owner: "ui", Layer: core.Saved, Deadline: time.Unix(1700000060, 5), Undo: []core.UndoKey{
		{Scope: sc, Key: "address", Had: true, Owner: "netd", Value: "192.168.1.100", Left: true, LeftOwner: "netd", LeftValue: goldenValue()},
		{Scope: sc, Key: "new", Left: true, LeftOwner: "ui", LeftValue: uint64(1 << 63)},
		{Scope: sc, Key: "old", Had: true, Owner: "ui", Value: []byte{1, 2}},
		{Scope: core.ConfigScope("wifi", "wlan0/ap"), Key: "ssid", Had: true, Owner: "wifid", Value: "home", Left: true, LeftOwner: "ui", LeftValue: "home"},
	}}
}

// goldenRecordV4 is goldenRecord that starts an apply and ends two
// (format version 4, R44).
func goldenRecordV4() *core.Mutation {
	m := goldenRecord()
	m.Applies = []core.PendingApply{goldenApply(m.Seq)}
	m.Finish = []uint64{7, 1 << 40}
	return m
}

// TestGoldenRecordV4: testdata/record_v4.cbor, a record that starts and
// ends applies (R44), decodes to them forever.
func TestGoldenRecordV4(t *testing.T) {
	enc, err := codec.EncodeMutation(goldenRecordV4())
	if err != nil {
		t.Fatal(err)
	}
	data := golden(t, "record_v4.cbor", enc)
	got, err := codec.DecodeMutation(data)
	if err != nil {
		t.Fatal(err)
	}
	if !equalMutation(got, goldenRecordV4()) {
		t.Fatalf("record_v4.cbor decodes to %+v", got)
	}
}

// goldenCheckpointV4 is goldenCheckpoint with two applies pending (R44).
func goldenCheckpointV4(t *testing.T) core.Snapshot {
	s := goldenCheckpoint(t)
	a, b := goldenApply(250), goldenApply(301)
	b.Layer, b.Owner = core.Runtime, "netd"
	s, err := s.Apply(&core.Mutation{Seq: 302, Applies: []core.PendingApply{a, b}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestGoldenCheckpointV4: a checkpoint keeps the pending applies (R44);
// testdata/checkpoint_v4.cbor decodes to them forever. A checkpoint with
// none pending is still version 3 (TestGoldenCheckpoint).
func TestGoldenCheckpointV4(t *testing.T) {
	want := goldenCheckpointV4(t)
	enc, err := codec.EncodeSnapshot(want, core.Config)
	if err != nil {
		t.Fatal(err)
	}
	data := golden(t, "checkpoint_v4.cbor", enc)
	got, err := codec.DecodeSnapshot(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []core.Layer{core.Fleet, core.Saved, core.Runtime} {
		sameWalk(t, "checkpoint_v4.cbor", walkLayer(t, want, l), walkLayer(t, got, l))
	}
	if !equalApplies(got.Pending(), want.Pending()) || len(got.Pending()) != 2 || got.Seq() != 302 {
		t.Fatalf("checkpoint_v4.cbor pending %+v", got.Pending())
	}
	wb, _ := want.Bindings()
	if gb, _ := got.Bindings(); !reflect.DeepEqual(wb, gb) {
		t.Fatalf("bindings %+v, want %+v", gb, wb)
	}
}

// TestApplyEncodeBad: what the decoder refuses, the encoder refuses too
// (R44): a record starting another's apply, ids 0 or out of order, an
// undo with neither side, the override layer, a state scope.
func TestApplyEncodeBad(t *testing.T) {
	sc := core.ConfigScope("t", "s")
	ok := core.UndoKey{Scope: sc, Key: "k", Had: true, Owner: "o", Value: int64(1)}
	for _, tc := range []struct {
		name string
		m    core.Mutation
		want error
	}{
		{"other-id", core.Mutation{Seq: 5, Applies: []core.PendingApply{{ID: 4, Owner: "o", Layer: core.Saved, Undo: []core.UndoKey{ok}}}}, codec.ErrInvalidMutation},
		{"finish-0", core.Mutation{Seq: 5, Finish: []uint64{0}}, codec.ErrInvalidMutation},
		{"finish-order", core.Mutation{Seq: 5, Finish: []uint64{3, 2}}, codec.ErrInvalidMutation},
		{"no-side", core.Mutation{Seq: 5, Applies: []core.PendingApply{{ID: 5, Owner: "o", Layer: core.Saved, Undo: []core.UndoKey{{Scope: sc, Key: "k"}}}}}, codec.ErrInvalidMutation},
		{"override", core.Mutation{Seq: 5, Applies: []core.PendingApply{{ID: 5, Owner: "o", Layer: core.Override, Undo: []core.UndoKey{ok}}}}, codec.ErrInvalidMutation},
		{"no-owner", core.Mutation{Seq: 5, Applies: []core.PendingApply{{ID: 5, Layer: core.Saved, Undo: []core.UndoKey{ok}}}}, codec.ErrInvalidMutation},
		{"state", core.Mutation{Seq: 5, Applies: []core.PendingApply{{ID: 5, Owner: "o", Layer: core.Saved, Undo: []core.UndoKey{{Scope: core.StateScope("t", "s"), Key: "k", Had: true, Owner: "o"}}}}}, core.ErrInvalidScope},
		{"bad-value", core.Mutation{Seq: 5, Applies: []core.PendingApply{{ID: 5, Owner: "o", Layer: core.Saved, Undo: []core.UndoKey{{Scope: sc, Key: "k", Had: true, Owner: "o", Value: struct{}{}}}}}}, core.ErrInvalidValue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := codec.EncodeMutation(&tc.m); !errors.Is(err, tc.want) {
				t.Fatalf("EncodeMutation = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestApplyDecodeMalformed: broken applies and finishes are ErrMalformed.
func TestApplyDecodeMalformed(t *testing.T) {
	for _, tc := range []struct{ name, hex string }{
		{"finish-not-uint", "87 04 05 00 80 80 80 81 6161"},
		{"finish-zero", "87 04 05 00 80 80 80 81 00"},
		{"finish-order", "87 04 05 00 80 80 80 82 03 02"},
		{"other-apply", "87 04 05 00 80 80 81 85 04 616f 03 00 81 85 6174 6173 616b 82 616f 01 80 80"},
		{"layer-override", "87 04 05 00 80 80 81 85 05 616f 05 00 81 85 6174 6173 616b 82 616f 01 80 80"},
		{"undo-empty", "87 04 05 00 80 80 81 85 05 616f 03 00 81 85 6174 6173 616b 80 80 80"},
		{"undo-fields", "87 04 05 00 80 80 81 85 05 616f 03 00 81 84 6174 6173 616b 80 80"},
		{"state-no-owner", "87 04 05 00 80 80 81 85 05 616f 03 00 81 85 6174 6173 616b 82 60 01 80 80"},
		{"bad-value", "87 04 05 00 80 80 81 85 05 616f 03 00 81 85 6174 6173 616b 82 616f f7 80 80"},
		{"v4-five-fields", "85 04 05 00 80 80"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if m, err := codec.DecodeMutation(unhex(t, tc.hex)); !errors.Is(err, codec.ErrMalformed) {
				t.Fatalf("DecodeMutation = %+v, %v; want ErrMalformed", m, err)
			}
		})
	}
	// The smallest valid v4 record: one apply of one undo.
	m, err := codec.DecodeMutation(unhex(t, "87 04 05 00 80 80 81 85 05 616f 03 00 81 85 6174 6173 616b 82 616f 01 80 80"))
	if err != nil || len(m.Applies) != 1 || m.Applies[0].Undo[0].Value != int64(1) {
		t.Fatalf("DecodeMutation = %+v, %v", m, err)
	}
}
