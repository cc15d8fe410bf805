package codec

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/sysreg/sysreg/core"
)

// randomView builds a registry view with keys in every config layer and
// the state bucket, nested maps that merge across layers (R4, R38),
// deletions and metadata that moved on (R42), from seed.
func randomView(t testing.TB, seed uint64) core.Snapshot {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(seed, 7))
	reg := core.New(core.Options{})
	defer reg.Close()
	scopes := []core.Scope{core.ConfigScope("net", "eth0"), core.ConfigScope("net", "eth1"), core.ConfigScope("wifi", "w/0")}
	value := func() any {
		switch r.IntN(5) {
		case 0:
			return int64(r.IntN(4))
		case 1:
			return "s" + strconv.Itoa(r.IntN(3))
		case 2:
			return map[string]any{"a": int64(r.IntN(3)), "m": map[string]any{strconv.Itoa(r.IntN(3)): true}}
		case 3:
			return map[string]any{"b": []any{uint64(1), nil}}
		}
		return nil
	}
	vals := func() core.Values {
		v := core.Values{}
		for range 1 + r.IntN(4) {
			v["k"+strconv.Itoa(r.IntN(8))] = value()
		}
		return v
	}
	var owners []*core.Owner
	for i, l := range []core.Layer{core.Saved, core.Runtime, core.Override, core.Runtime} {
		o, err := reg.Owner(ctx, "o"+strconv.Itoa(i), core.OwnerOptions{Layer: l})
		if err != nil {
			t.Fatal(err)
		}
		owners = append(owners, o)
	}
	for range 20 + r.IntN(40) {
		sc := scopes[r.IntN(len(scopes))]
		o := owners[r.IntN(len(owners))]
		var err error
		switch r.IntN(7) {
		case 0:
			err = reg.SetDefaults(ctx, map[core.Scope]core.Values{sc: vals(), scopes[0]: vals()})
		case 1:
			err = reg.SetFleet(ctx, map[core.Scope]core.Values{sc: vals()})
		case 2:
			err = o.Delete(ctx, sc, "k"+strconv.Itoa(r.IntN(8)))
		case 3:
			err = o.Update(ctx, core.StateScope("st", strconv.Itoa(r.IntN(2))), vals())
		default:
			err = o.Update(ctx, sc, vals())
		}
		if err != nil && !errors.Is(err, core.ErrReservedKeys) { // another owner's key (R10, R11)
			t.Fatal(err)
		}
	}
	return reg.Snapshot()
}

// checkRestoreMatchesApply: core.RestoreSnapshot (the bulk path that
// DecodeSnapshot takes) and Snapshot.Apply (key by key) agree on every
// snapshot data decodes to: both fail, or both give the same layers,
// effective view, metadata and owner index (R24, R42).
func checkRestoreMatchesApply(t *testing.T, data []byte) {
	t.Helper()
	m, err := snapshotMutation(data)
	if err != nil {
		return
	}
	a, errA := core.Snapshot{}.Apply(m)
	b, errB := core.RestoreSnapshot(m)
	if (errA == nil) != (errB == nil) {
		t.Fatalf("Apply: %v; RestoreSnapshot: %v", errA, errB)
	}
	if errA != nil {
		return
	}
	ea, err := EncodeSnapshot(a, 0)
	if err != nil {
		t.Fatal(err)
	}
	eb, err := EncodeSnapshot(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ea, eb) {
		t.Fatalf("Apply and RestoreSnapshot differ:\n%x\n%x", ea, eb)
	}
	if !slices.Equal(a.Owners(), b.Owners()) {
		t.Fatalf("owners %v vs %v", a.Owners(), b.Owners())
	}
	for _, o := range a.Owners() {
		for l := range core.Layer(core.NumLayers + 1) {
			if a.HoldsIn(o, l) != b.HoldsIn(o, l) {
				t.Fatalf("owner %s in layer %s: %v vs %v", o, l, a.HoldsIn(o, l), b.HoldsIn(o, l))
			}
		}
	}
	ba, ua := a.Bindings()
	bb, ub := b.Bindings()
	if !slices.Equal(ba, bb) || !slices.Equal(ua, ub) {
		t.Fatalf("bindings %v %v vs %v %v", ba, ua, bb, ub)
	}
	if d := core.Diff(a, b); len(d) != 0 {
		t.Fatalf("Diff: %+v", d)
	}
}

// TestRestoreMatchesApply (R24, R42): checkpoints, whole views and damaged
// copies of them rebuild the same through the bulk path as key by key.
func TestRestoreMatchesApply(t *testing.T) {
	for _, name := range []string{"snapshot_v1.cbor", "snapshot_v2.cbor"} {
		data, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		checkRestoreMatchesApply(t, data)
	}
	for seed := range uint64(60) {
		s := randomView(t, seed)
		for _, b := range []core.Bucket{0, core.Config, core.State} {
			data, err := EncodeSnapshot(s, b)
			if err != nil {
				t.Fatal(err)
			}
			checkRestoreMatchesApply(t, data)
			r := rand.New(rand.NewPCG(seed, uint64(b)))
			for range 20 {
				bad := slices.Clone(data)
				bad[r.IntN(len(bad))] ^= byte(1 + r.IntN(255))
				checkRestoreMatchesApply(t, bad)
			}
		}
	}
}

func FuzzRestoreMatchesApply(f *testing.F) {
	for seed := range uint64(4) {
		data, err := EncodeSnapshot(randomView(f, seed), 0)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(checkRestoreMatchesApply)
}
