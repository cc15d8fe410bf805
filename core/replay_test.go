package core_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/sysreg/sysreg/core"
)

// fingerprint is everything a reader can see of a snapshot's config: the
// effective view with metadata (R42), every journaled layer with owners
// (R41), the owners, what each holds per layer, and bindings (R35).
func fingerprint(s core.Snapshot) string {
	out := fmt.Sprintf("seq %d\nview %v\n", s.Seq(), s.Map())
	s.WalkMeta(core.Config, func(sc core.Scope, key string, m core.KeyMeta, vol bool) error {
		out += fmt.Sprintf("meta %s %s %+v %v\n", sc, key, m, vol)
		return nil
	})
	for _, l := range []core.Layer{core.Fleet, core.Saved, core.Runtime} {
		s.WalkLayer(l, func(sc core.Scope, key, owner string, v any) error {
			out += fmt.Sprintf("layer %s %s %s %s %v\n", l, sc, key, owner, v)
			return nil
		})
	}
	for _, o := range s.Owners() {
		out += fmt.Sprintf("owner %s config %v saved %v runtime %v\n", o, s.Holds(o, core.Config), s.HoldsIn(o, core.Saved), s.HoldsIn(o, core.Runtime))
	}
	binds, unbound := s.Bindings()
	return out + fmt.Sprintf("binds %v unbound %v\n", binds, unbound)
}

// randomRecords returns n journal records of random config ops: merges,
// sets, deletes and drops of a few owners in a few scopes of the fleet,
// saved and runtime layers, starting at sequence number seq.
func randomRecords(rng *rand.Rand, seq uint64, n int) []*core.Mutation {
	owners := []string{"netd", "wifid", "updd"}
	layers := []core.Layer{core.Fleet, core.Saved, core.Runtime}
	var recs []*core.Mutation
	for i := range n {
		m := &core.Mutation{Seq: seq + uint64(i), Time: time.Unix(1700000000+int64(i), 0)}
		for range 1 + rng.IntN(3) {
			l := layers[rng.IntN(len(layers))]
			owner := owners[rng.IntN(len(owners))]
			if l == core.Fleet {
				owner = ""
			}
			sc := core.ConfigScope("net", "if"+strconv.Itoa(rng.IntN(4)))
			op := core.MutationOp{Layer: l, Scope: sc, Owner: owner}
			switch k := rng.IntN(10); {
			case k < 5:
				op.Kind = core.MutMerge
			case k < 7:
				op.Kind = core.MutSet
			case k < 9:
				op.Kind = core.MutDelete
			default:
				op.Kind = core.MutDrop
			}
			if l == core.Fleet && op.Kind != core.MutDelete { // the fleet layer is set whole, never merged or dropped by owner
				op.Kind = core.MutSet
			}
			switch op.Kind {
			case core.MutMerge, core.MutSet:
				op.Values = core.Values{}
				for range 1 + rng.IntN(20) {
					op.Values["k"+strconv.Itoa(rng.IntN(40))] = int64(rng.IntN(3))
				}
			case core.MutDelete:
				for range 1 + rng.IntN(5) {
					op.Keys = append(op.Keys, "k"+strconv.Itoa(rng.IntN(40)))
				}
			}
			m.Ops = append(m.Ops, op)
		}
		recs = append(recs, m)
	}
	return recs
}

// issue #14's startup: a Replay rebuilds exactly what successive
// Snapshot.Apply calls rebuild — the view, layers, metadata (R41, R42),
// owners and their index — and leaves its starting snapshot alone.
func TestReplayIsSuccessiveApply(t *testing.T) {
	seeds := uint64(25)
	if testing.Short() {
		seeds = 10
	}
	for seed := range seeds {
		rng := rand.New(rand.NewPCG(seed, 14))
		// A start that is not empty, as after a checkpoint.
		var start core.Snapshot
		for _, m := range randomRecords(rng, 1, 5) {
			var err error
			if start, err = start.Apply(m); err != nil {
				t.Fatalf("seed %d: start: %v", seed, err)
			}
		}
		before := fingerprint(start)
		recs := randomRecords(rng, start.Seq()+1, 1+rng.IntN(40))
		want := start
		r := core.NewReplay(start)
		for _, m := range recs {
			var err error
			if want, err = want.Apply(m); err != nil {
				t.Fatalf("seed %d: Apply(record %d): %v", seed, m.Seq, err)
			}
			if err := r.Apply(m); err != nil {
				t.Fatalf("seed %d: Replay.Apply(record %d): %v", seed, m.Seq, err)
			}
		}
		if rng.IntN(2) == 0 {
			if got, w := fingerprint(r.Snapshot()), fingerprint(want); got != w {
				t.Fatalf("seed %d: Replay.Snapshot:\n%s\nwant\n%s", seed, got, w)
			}
		}
		got := r.Finish()
		if g, w := fingerprint(got), fingerprint(want); g != w {
			t.Fatalf("seed %d: Replay.Finish:\n%s\nwant\n%s", seed, g, w)
		}
		if after := fingerprint(start); after != before {
			t.Fatalf("seed %d: the starting snapshot changed:\n%s\nwas\n%s", seed, after, before)
		}
		// Finish's result is packed into shared allocations (issue #14's
		// footprint): records applied after it give what they give on the
		// applied snapshot, and leave it as it was.
		finished := fingerprint(got)
		g, w := got, want
		for _, m := range randomRecords(rng, want.Seq()+100, 1+rng.IntN(10)) {
			var err1, err2 error
			w, err1 = w.Apply(m)
			g, err2 = g.Apply(m)
			if (err1 == nil) != (err2 == nil) {
				t.Fatalf("seed %d: record %d after the replay: %v, want %v", seed, m.Seq, err2, err1)
			}
		}
		if fg, fw := fingerprint(g), fingerprint(w); fg != fw {
			t.Fatalf("seed %d: records after the replay:\n%s\nwant\n%s", seed, fg, fw)
		}
		if after := fingerprint(got); after != finished {
			t.Fatalf("seed %d: records after the replay changed its snapshot:\n%s\nwas\n%s", seed, after, finished)
		}
		// The owner index is whole: dropping an owner's keys (which finds
		// them through it) leaves the same as on the applied snapshot.
		for i, o := range []string{"netd", "wifid", "updd"} {
			for _, l := range []core.Layer{core.Saved, core.Runtime} {
				drop := &core.Mutation{Seq: want.Seq() + 1 + uint64(i), Ops: []core.MutationOp{{Kind: core.MutDrop, Layer: l, Scope: core.Scope{Bucket: core.Config}, Owner: o}}}
				w, err1 := want.Apply(drop)
				g, err2 := got.Apply(drop)
				if (err1 == nil) != (err2 == nil) || fingerprint(g) != fingerprint(w) {
					t.Fatalf("seed %d: drop of %s in %s after the replay: %v\n%s\nwant %v\n%s", seed, o, l, err2, fingerprint(g), err1, fingerprint(w))
				}
			}
		}
	}
}

// A record that fails spends the Replay: the same error again, and no
// snapshot, since the record may have changed some of its nodes.
func TestReplayFailedRecordSpendsIt(t *testing.T) {
	ok := &core.Mutation{Seq: 1, Ops: []core.MutationOp{{Kind: core.MutMerge, Layer: core.Saved, Scope: core.ConfigScope("net", "eth0"), Owner: "netd", Values: core.Values{"mtu": int64(1500)}}}}
	bad := &core.Mutation{Seq: 2, Ops: []core.MutationOp{
		{Kind: core.MutMerge, Layer: core.Saved, Scope: core.ConfigScope("net", "eth0"), Owner: "netd", Values: core.Values{"up": true}},
		{Kind: core.MutMerge, Layer: core.Saved, Scope: core.ConfigScope("net", "eth0")}, // no owner
	}}
	r := core.NewReplay(core.Snapshot{})
	if err := r.Apply(ok); err != nil {
		t.Fatal(err)
	}
	if got := r.Snapshot().Values(core.ConfigScope("net", "eth0")); !reflect.DeepEqual(got, core.Values{"mtu": int64(1500)}) {
		t.Fatalf("after the first record: %v", got)
	}
	err := r.Apply(bad)
	if !errors.Is(err, core.ErrInvalidOwner) {
		t.Fatalf("a merge without an owner: %v, want ErrInvalidOwner", err)
	}
	if _, want := (core.Snapshot{}).Apply(bad); want == nil || want.Error() != err.Error() {
		t.Fatalf("Replay.Apply's error %q is not Snapshot.Apply's %q", err, want)
	}
	if again := r.Apply(ok); again != err {
		t.Fatalf("Apply after a failure: %v, want the first error again", again)
	}
	if s := r.Snapshot(); s.Seq() != 0 || s.Len(core.Config) != 0 {
		t.Fatalf("Snapshot after a failure holds %d keys at %d", s.Len(core.Config), s.Seq())
	}
	if s := r.Finish(); s.Seq() != 0 || s.Len(core.Config) != 0 {
		t.Fatalf("Finish after a failure holds %d keys at %d", s.Len(core.Config), s.Seq())
	}
}

// TestR4_MergeAfterInsertInPlace: within one update, keys that are new and
// keys that exist mix in the same trie nodes, which a replay (Apply) and a
// batch (UpdateBatch) change in place; each existing key still merges
// against its own old value (R4) and gets its own metadata (R42), whatever
// the insertions beside it moved.
func TestR4_MergeAfterInsertInPlace(t *testing.T) {
	sc := core.ConfigScope("net", "eth0")
	old, mixed, want := core.Values{}, core.Values{}, map[string]any{}
	for i := range 40 {
		old["old"+strconv.Itoa(i)] = int64(1)
		mixed["old"+strconv.Itoa(i)] = int64(2)
		mixed["new"+strconv.Itoa(i)] = int64(2)
		want["old"+strconv.Itoa(i)] = int64(2)
		want["new"+strconv.Itoa(i)] = int64(2)
	}
	check := func(t *testing.T, s core.Snapshot, sc core.Scope, modSeq uint64) {
		t.Helper()
		got := s.Values(sc)
		if !reflect.DeepEqual(map[string]any(got), want) {
			t.Fatalf("got %v, want %v", got, want)
		}
		for key := range want {
			if m, ok := s.Meta(sc, key); !ok || m.ModSeq != modSeq || m.Owner != "o" {
				t.Fatalf("%s: meta %+v, want ModSeq %d, owner o", key, m, modSeq)
			}
		}
	}
	t.Run("Apply", func(t *testing.T) {
		for range 20 { // the keys' order comes from map iteration
			s, err := core.Snapshot{}.Apply(&core.Mutation{Seq: 1, Ops: []core.MutationOp{
				{Kind: core.MutMerge, Layer: core.Runtime, Scope: sc, Owner: "o", Values: old},
				{Kind: core.MutMerge, Layer: core.Runtime, Scope: sc, Owner: "o", Values: mixed},
			}})
			if err != nil {
				t.Fatal(err)
			}
			check(t, s, sc, 1)
		}
	})
	t.Run("UpdateBatch", func(t *testing.T) {
		st := core.StateScope("net", "eth0")
		for range 20 {
			r := core.New(core.Options{})
			t.Cleanup(func() { r.Close() })
			o, err := r.Owner(t.Context(), "o", core.OwnerOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// After the batch's first effective update, the nodes it
			// creates are changed in place: the third update finds the
			// second's.
			errs := r.UpdateBatch(t.Context(), []core.BatchUpdate{
				{Owner: o, Scope: core.StateScope("net", "lo"), Values: core.Values{"up": true}},
				{Owner: o, Scope: st, Values: old},
				{Owner: o, Scope: st, Values: mixed},
			})
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			s := r.Snapshot()
			check(t, s, st, s.Seq())
		}
	})
}
