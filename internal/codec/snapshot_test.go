package codec_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

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

// randomSnapshot builds a snapshot of both buckets with several owners per
// scope.
func randomSnapshot(t *testing.T, r *rand.Rand) core.Snapshot {
	t.Helper()
	var ops []core.MutationOp
	types := []string{"net", "net2", "wifi", "a"}
	subs := []string{"eth0", "eth0/1", "wlan0", "x"}
	owners := []string{"netd", "wifid", "tool"}
	for range 1 + r.IntN(30) {
		sc := core.Scope{Bucket: core.Bucket(1 + r.IntN(2)), Type: types[r.IntN(len(types))], Subtype: subs[r.IntN(len(subs))]}
		ops = append(ops, core.MutationOp{Kind: core.MutMerge, Scope: sc, Owner: owners[r.IntN(len(owners))],
			Values: codec.RandomValues(r, true)})
	}
	s, err := core.Snapshot{}.Apply(&core.Mutation{Seq: r.Uint64(), Ops: ops})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSnapshotRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(seed(t), 3))
	for i := range 300 {
		s := randomSnapshot(t, r)
		for _, bk := range []core.Bucket{0, core.State, core.Config} {
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
			want, have := walkAll(t, s, bk), walkAll(t, got, 0)
			if len(want) != len(have) {
				t.Fatalf("snapshot %d, bucket %d: %d keys, want %d", i, bk, len(have), len(want))
			}
			for j := range want {
				w, h := want[j], have[j]
				if w.scope != h.scope || w.key != h.key || w.owner != h.owner || !codecEqual(w.value, h.value) {
					t.Fatalf("snapshot %d, bucket %d, key %d: %+v, want %+v", i, bk, j, h, w)
				}
			}
			again, err := codec.EncodeSnapshot(got, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, data) {
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
	if want := unhex(t, "83 01 00 80"); !bytes.Equal(data, want) {
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
