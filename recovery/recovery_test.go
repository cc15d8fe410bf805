package recovery_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/codec"
	"github.com/sysreg/sysreg/journal"
	"github.com/sysreg/sysreg/recovery"
)

// memSource is a journal in memory.
type memSource struct {
	ckKey   uint64
	ckData  []byte
	records []rec
	mark    uint64
	replay  error
}

type rec struct {
	key  uint64
	data []byte
}

func (m *memSource) ReadCheckpoint() (uint64, []byte, bool, error) {
	return m.ckKey, m.ckData, m.ckData != nil, nil
}

func (m *memSource) Replay(after uint64, fn func(uint64, []byte) error) error {
	for _, r := range m.records {
		if r.key <= after {
			continue
		}
		if err := fn(r.key, r.data); err != nil {
			return err
		}
	}
	return m.replay
}

func (m *memSource) Mark() uint64 { return m.mark }
func (m *memSource) Path() string { return "/data/journal.db" }

var wifi = core.ConfigScope("wifi", "wlan0")

func record(t *testing.T, seq uint64, ops ...core.MutationOp) rec {
	t.Helper()
	data, err := codec.EncodeMutation(&core.Mutation{Seq: seq, Ops: ops})
	if err != nil {
		t.Fatal(err)
	}
	return rec{seq, data}
}

func merge(owner string, vals core.Values) core.MutationOp {
	return core.MutationOp{Kind: core.MutMerge, Layer: core.Runtime, Scope: wifi, Owner: owner, Values: vals}
}

func checkpoint(t *testing.T, seq uint64, ops ...core.MutationOp) (uint64, []byte) {
	t.Helper()
	snap, err := core.Snapshot{}.Apply(&core.Mutation{Seq: seq, Ops: ops})
	if err != nil {
		t.Fatal(err)
	}
	data, err := codec.EncodeSnapshot(snap, 0)
	if err != nil {
		t.Fatal(err)
	}
	return seq, data
}

func TestR27_ReplayAfterCheckpoint(t *testing.T) {
	src := &memSource{mark: 5}
	src.ckKey, src.ckData = checkpoint(t, 10, core.MutationOp{Kind: core.MutSet, Layer: core.Runtime, Scope: wifi, Owner: "a", Values: core.Values{"ssid": "home", "ch": int64(1)}})
	src.records = []rec{
		record(t, 9, merge("a", core.Values{"old": true})), // covered by the checkpoint: skipped
		record(t, 12, merge("b", core.Values{"ch": int64(6), "pw": "x"})),
		record(t, 15, core.MutationOp{Kind: core.MutDelete, Layer: core.Runtime, Scope: wifi, Keys: []string{"ssid"}}),
	}
	res, err := recovery.Run(src)
	if err != nil {
		t.Fatal(err)
	}
	got := res.Config
	want := map[string]any{"ch": int64(6), "pw": "x"}
	if v := got.Values(wifi); len(v) != 2 || v["ch"] != want["ch"] || v["pw"] != want["pw"] {
		t.Fatalf("restored %v, want %v", v, want)
	}
	if o, _ := got.Owner(wifi, "ch"); o != "a" {
		t.Fatalf("R9: owner of ch = %q, want a (updates do not move ownership)", o)
	}
	if o, _ := got.Owner(wifi, "pw"); o != "b" {
		t.Fatalf("owner of pw = %q, want b", o)
	}
	r := res.Report
	if r.CheckpointSeq != 10 || r.CheckpointKeys != 2 || r.Records != 2 || r.Keys != 2 || r.Owners != 2 || r.Seq != 15 || r.SeqFloor != 15 {
		t.Fatalf("report %+v", r)
	}
}

func TestR7_SeqFloorAboveMark(t *testing.T) {
	src := &memSource{mark: 1 << 20, records: []rec{record(t, 3, merge("a", core.Values{"k": 1}))}}
	res, err := recovery.Run(src)
	if err != nil {
		t.Fatal(err)
	}
	if res.Report.SeqFloor != 1<<20 || res.Config.Seq() != 3 {
		t.Fatalf("floor %d seq %d, want the mark above the last record", res.Report.SeqFloor, res.Config.Seq())
	}
}

func TestEmpty(t *testing.T) {
	res, err := recovery.Run(&memSource{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Config.Len(0) != 0 || res.Report.SeqFloor != 0 {
		t.Fatalf("empty source: %+v", res.Report)
	}
}

// TestR29_CorruptionIsRefused: anything that does not decode or is out of
// sequence fails with a CorruptError naming the file and the record; no
// record is ever skipped.
func TestR29_CorruptionIsRefused(t *testing.T) {
	good := record(t, 2, merge("a", core.Values{"k": 1}))
	stateOp := record(t, 3, core.MutationOp{Kind: core.MutMerge, Scope: core.StateScope("net", "eth0"), Owner: "a", Values: core.Values{"up": true}})
	ck, ckData := checkpoint(t, 5, core.MutationOp{Kind: core.MutSet, Scope: core.StateScope("net", "eth0"), Owner: "a", Values: core.Values{"up": true}})
	cases := []struct {
		name   string
		src    *memSource
		reason string
	}{
		{"garbage record", &memSource{records: []rec{good, {3, []byte{0xff, 0x00}}}}, "record 3"},
		{"seq differs from key", &memSource{records: []rec{{7, good.data}}}, "record 7 holds sequence 2"},
		{"seq not increasing", &memSource{records: []rec{good, {3, good.data}}}, "record 3 holds sequence 2"},
		{"state op journaled", &memSource{records: []rec{stateOp}}, "bucket state"},
		{"garbage checkpoint", &memSource{ckKey: 4, ckData: []byte("nope")}, "checkpoint at 4"},
		{"checkpoint under wrong key", &memSource{ckKey: 6, ckData: ckData}, "holds sequence 5"},
		{"state in checkpoint", &memSource{ckKey: ck, ckData: ckData}, "state keys"},
		{"override journaled", &memSource{records: []rec{record(t, 3, core.MutationOp{Kind: core.MutMerge, Layer: core.Override, Scope: wifi, Owner: "a", Values: core.Values{"x": 1}})}}, "never journaled"},
		{"default journaled", &memSource{records: []rec{record(t, 3, core.MutationOp{Kind: core.MutSet, Layer: core.Default, Scope: wifi, Values: core.Values{"x": 1}})}}, "never journaled"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := recovery.Run(tc.src)
			var ce *journal.CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("Run: %v, want *journal.CorruptError", err)
			}
			if ce.Path != "/data/journal.db" || !strings.Contains(ce.Reason, tc.reason) {
				t.Fatalf("CorruptError %+v, want path and reason mentioning %q", ce, tc.reason)
			}
		})
	}
}

func TestReplayErrorPropagates(t *testing.T) {
	boom := errors.New("disk on fire")
	_, err := recovery.Run(&memSource{replay: boom})
	if !errors.Is(err, boom) {
		t.Fatalf("Run: %v, want the source's error", err)
	}
}

// TestR29_NewerVersionRefused: a record or checkpoint of a newer format is
// refused with an error naming the file and both versions, not taken for
// corruption and never skipped.
func TestR29_NewerVersionRefused(t *testing.T) {
	for name, src := range map[string]*memSource{
		"record":     {records: []rec{{3, []byte{0x87, 0x05, 0x03, 0x00, 0x80, 0x80, 0x80, 0x80}}}},
		"checkpoint": {ckKey: 4, ckData: []byte{0x85, 0x05, 0x04, 0x80, 0x80, 0x80}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := recovery.Run(src)
			var ve *codec.VersionError
			if !errors.As(err, &ve) || ve.Found != 5 || ve.Supported != 4 {
				t.Fatalf("Run: %v, want a *codec.VersionError 5 > 4", err)
			}
			if msg := err.Error(); !strings.Contains(msg, "/data/journal.db") || !strings.Contains(msg, "version 5") || !strings.Contains(msg, "version 4") {
				t.Fatalf("error %q does not name the file and both versions", msg)
			}
		})
	}
}

// TestR41_MigrateV1: a data directory of format version 1 opens; its
// config lands in the saved layer (nothing it kept can be lost), with
// owners, and replays of version-1 drops still apply.
func TestR41_MigrateV1(t *testing.T) {
	v1 := func(hex string) []byte {
		b := make([]byte, 0, len(hex)/2)
		for i := 0; i+1 < len(hex); i += 2 {
			var x byte
			for _, c := range hex[i : i+2] {
				x <<= 4
				if c >= 'a' {
					x |= byte(c-'a') + 10
				} else {
					x |= byte(c - '0')
				}
			}
			b = append(b, x)
		}
		return b
	}
	// [1, 0x10, [[2, "t", "s", [["k", "o", 1]]]]]: a v1 checkpoint of config/t/s.
	ck := v1("83011081840261746173818361" + "6b" + "616f" + "01")
	// [1, 0x11, [[1, 2, "t", "s", "p", {"j": 2}]]]: a v1 merge by p.
	r1 := v1("83011181860102617461736170a1616a02")
	// [1, 0x12, [[3, 2, "o"]]]: a v1 drop of o's config (its session ended).
	r2 := v1("8301128183030261" + "6f")
	src := &memSource{ckKey: 0x10, ckData: ck, records: []rec{{0x11, r1}, {0x12, r2}}}
	res, err := recovery.Run(src)
	if err != nil {
		t.Fatal(err)
	}
	sc := core.ConfigScope("t", "s")
	snap := res.Config
	if got := snap.LayerValues(core.Saved, sc); len(got) != 1 || got["j"] != int64(2) {
		t.Fatalf("saved layer after migration: %v", got)
	}
	if l, o, ok := snap.Origin(sc, "j"); !ok || l != core.Saved || o != "p" {
		t.Fatalf("Origin(j) = %s %q %v", l, o, ok)
	}
	if snap.Seq() != 0x12 {
		t.Fatalf("seq %d", snap.Seq())
	}
}
