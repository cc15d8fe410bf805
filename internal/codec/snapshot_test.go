package codec_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/codec"
)

type walked struct {
	scope      core.Scope
	key, owner string
	value      any
}

func walkAll(t *testing.T, s core.Snapshot, b core.Bucket) []walked {
	t.Helper()
	var out []walked
	if err := s.Walk(b, func(scope core.Scope, key, owner string, value any) error {
		out = append(out, walked{scope, key, owner, value})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// randomSnapshot builds a snapshot of both buckets and every config layer
// with several owners per scope, out of several mutations (so that
// metadata differs between keys).
func randomSnapshot(t *testing.T, r *rand.Rand) core.Snapshot {
	t.Helper()
	types := []string{"net", "net2", "wifi", "a"}
	subs := []string{"eth0", "eth0/1", "wlan0", "x"}
	owners := []string{"netd", "wifid", "tool"}
	var s core.Snapshot
	seq := r.Uint64N(1 << 40)
	for range 1 + r.IntN(6) {
		var ops []core.MutationOp
		for range 1 + r.IntN(8) {
			sc := core.Scope{Bucket: core.Bucket(1 + r.IntN(2)), Type: types[r.IntN(len(types))], Subtype: subs[r.IntN(len(subs))]}
			op := core.MutationOp{Kind: core.MutMerge, Scope: sc, Owner: owners[r.IntN(len(owners))], Values: codec.RandomValues(r, true)}
			if sc.Bucket == core.Config {
				op.Layer = core.Layers[r.IntN(core.NumLayers)]
				if op.Layer == core.Default || op.Layer == core.Fleet {
					op.Kind, op.Owner = core.MutSet, ""
				}
			}
			ops = append(ops, op)
		}
		seq += 1 + r.Uint64N(100)
		var err error
		if s, err = s.Apply(&core.Mutation{Seq: seq, Time: time.Unix(0, r.Int64()), Ops: ops}); err != nil {
			t.Fatal(err)
		}
	}
	// R35: a checkpoint needs every name holding journaled keys bound.
	_, unbound := s.Bindings()
	var binds []core.Bind
	for _, name := range unbound {
		binds = append(binds, core.Bind{Name: name, UID: r.Uint32()})
	}
	s, err := s.Apply(&core.Mutation{Seq: seq + 1, Binds: binds})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type metaRow struct {
	scope    core.Scope
	key      string
	m        core.KeyMeta
	volatile bool
}

func walkMeta(t *testing.T, s core.Snapshot, b core.Bucket) []metaRow {
	t.Helper()
	var out []metaRow
	if err := s.WalkMeta(b, func(sc core.Scope, key string, m core.KeyMeta, volatile bool) error {
		out = append(out, metaRow{sc, key, m, volatile})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func walkLayer(t *testing.T, s core.Snapshot, l core.Layer) []walked {
	t.Helper()
	var out []walked
	if err := s.WalkLayer(l, func(scope core.Scope, key, owner string, value any) error {
		out = append(out, walked{scope, key, owner, value})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSnapshotRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(seed(t), 3))
	n := 300
	if testing.Short() { // under emulation (.ci/run's qemu-arm suite) each costs ~70 ms
		n = 60
	}
	for i := range n {
		s := randomSnapshot(t, r)
		for _, bk := range []core.Bucket{0, core.State, core.Config} {
			layers := map[core.Bucket][]core.Layer{
				0:           {0, core.Default, core.Fleet, core.Saved, core.Runtime, core.Override},
				core.State:  {0},
				core.Config: {core.Fleet, core.Saved, core.Runtime}, // R41: a checkpoint holds the journaled layers
			}[bk]
			data, err := codec.EncodeSnapshot(s, bk)
			if err != nil {
				t.Fatal(err)
			}
			got, err := codec.DecodeSnapshot(data)
			if err != nil {
				t.Fatalf("snapshot %d, bucket %d: %v", i, bk, err)
			}
			if got.Seq() != s.Seq() {
				t.Fatalf("seq %d, want %d", got.Seq(), s.Seq())
			}
			for _, l := range []core.Layer{0, core.Default, core.Fleet, core.Saved, core.Runtime, core.Override} {
				want, have := walkLayer(t, s, l), walkLayer(t, got, l)
				if !slices.Contains(layers, l) {
					want = nil
				}
				if len(want) != len(have) {
					t.Fatalf("snapshot %d, bucket %d, layer %d: %d keys, want %d", i, bk, l, len(have), len(want))
				}
				for j := range want {
					w, h := want[j], have[j]
					if w.scope != h.scope || w.key != h.key || w.owner != h.owner || !codecEqual(w.value, h.value) {
						t.Fatalf("snapshot %d, bucket %d, layer %d, key %d: %+v, want %+v", i, bk, l, j, h, w)
					}
				}
			}
			// R42: the metadata of every key the decoded snapshot holds is
			// the original's, times included.
			orig := map[string]metaRow{}
			for _, m := range walkMeta(t, s, 0) {
				orig[m.scope.String()+"\x00"+m.key] = m
			}
			for _, h := range walkMeta(t, got, 0) {
				w := orig[h.scope.String()+"\x00"+h.key]
				if h.m.CreateSeq != w.m.CreateSeq || h.m.ModSeq != w.m.ModSeq || h.m.Version != w.m.Version || !h.m.Modified.Equal(w.m.Modified) {
					t.Fatalf("snapshot %d, bucket %d: meta %+v, want %+v", i, bk, h, w)
				}
				if bk == 0 && (h.m.Layer != w.m.Layer || h.m.Owner != w.m.Owner || h.volatile != w.volatile) {
					t.Fatalf("snapshot %d: meta %+v, want %+v", i, h, w)
				}
				if bk == core.Config && w.volatile && !h.volatile {
					t.Fatalf("snapshot %d: a checkpoint lost the volatile mark of %+v", i, w)
				}
			}
			if bk == core.Config {
				wb, _ := s.Bindings()
				gb, unbound := got.Bindings()
				if !slices.Equal(wb, gb) || len(unbound) > 0 {
					t.Fatalf("snapshot %d: checkpoint bindings %+v (unbound %q), want %+v", i, gb, unbound, wb)
				}
			}
			again, err := codec.EncodeSnapshot(got, bk)
			if err != nil {
				t.Fatal(err)
			}
			if bk == 0 && !bytes.Equal(again, data) {
				t.Fatalf("snapshot %d, bucket %d: re-encoding differs", i, bk)
			}
		}
	}
}

func TestSnapshotEmpty(t *testing.T) {
	data, err := codec.EncodeSnapshot(core.Snapshot{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := unhex(t, "83 02 00 80"); !bytes.Equal(data, want) {
		t.Fatalf("empty snapshot = %x, want %x", data, want)
	}
	s, err := codec.DecodeSnapshot(data)
	if err != nil || s.Seq() != 0 || len(s.Map()) != 0 {
		t.Fatalf("DecodeSnapshot = %v, %v", s.Map(), err)
	}
	if _, err := codec.EncodeSnapshot(core.Snapshot{}, 3); !errors.Is(err, core.ErrInvalidScope) {
		t.Fatalf("bucket 3: error %v", err)
	}
}

// TestDecodeSnapshotApplyError: an owner that breaks R8 passes the codec's
// structural checks but not core's; that is ErrMalformed too.
func TestDecodeSnapshotApplyError(t *testing.T) {
	// [1, 0, [[2, "t", "s", [["k", "o\x00", 1]]]]]
	_, err := codec.DecodeSnapshot(unhex(t, "83 01 00 81 84 02 6174 6173 81 83 616b 626f00 01"))
	if !errors.Is(err, codec.ErrMalformed) {
		t.Fatalf("error %v, want ErrMalformed", err)
	}
}

// TestCheckpointUnbound: a checkpoint of a snapshot restored from records
// written before bindings (R35) — the change feed's base may be one —
// encodes, and its names decode unbound again, bound ones bound.
func TestCheckpointUnbound(t *testing.T) {
	put := func(owner string) core.MutationOp {
		return core.MutationOp{Kind: core.MutMerge, Layer: core.Saved, Scope: core.ConfigScope("a", owner), Owner: owner, Values: core.Values{"k": int64(1)}}
	}
	s, err := core.Snapshot{}.Apply(&core.Mutation{Seq: 1, Ops: []core.MutationOp{put("old"), put("new")},
		Binds: []core.Bind{{Name: "new", UID: 7}}})
	if err != nil {
		t.Fatal(err)
	}
	data, err := codec.EncodeSnapshot(s, core.Config)
	if err != nil {
		t.Fatal(err)
	}
	got, err := codec.DecodeSnapshot(data)
	if err != nil {
		t.Fatal(err)
	}
	binds, unbound := got.Bindings()
	if !slices.Equal(binds, []core.Bind{{Name: "new", UID: 7}}) || !slices.Equal(unbound, []string{"old"}) {
		t.Fatalf("bindings %+v, unbound %q", binds, unbound)
	}
}
