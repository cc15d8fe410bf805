package core_test

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/sysreg/sysreg/core"
)

// R27: a registry started from Replay.Finish's packed snapshot: live mutations
// (config updates, batches mixing state and config, deletes, evictions)
// must leave the recovered snapshot as it was.
func TestR27_RecoveredSlabsUntouchedByLiveMutations(t *testing.T) {
	ctx := context.Background()
	for seed := range uint64(4) {
		rng := rand.New(rand.NewPCG(seed, 7))
		rp := core.NewReplay(core.Snapshot{})
		for _, m := range randomRecords(rng, 1, 60) {
			if err := rp.Apply(m); err != nil {
				t.Fatal(err)
			}
		}
		snap := rp.Finish()
		before := fingerprint(snap)
		r := core.New(core.Options{Initial: snap})
		owners := map[string]*core.Owner{}
		for _, n := range []string{"netd", "wifid", "updd"} {
			o, err := r.Owner(ctx, n, core.OwnerOptions{})
			if err != nil {
				t.Fatal(err)
			}
			owners[n] = o
		}
		names := []string{"netd", "wifid", "updd"}
		for i := range 300 {
			o := owners[names[rng.IntN(3)]]
			sc := core.ConfigScope("net", "if"+strconv.Itoa(rng.IntN(4)))
			vals := core.Values{}
			for range 1 + rng.IntN(6) {
				vals["k"+strconv.Itoa(rng.IntN(40))] = int64(rng.IntN(5) + i)
			}
			switch rng.IntN(4) {
			case 0:
				_ = o.Update(ctx, sc, vals)
			case 1:
				var bu []core.BatchUpdate
				for j := range 4 {
					bu = append(bu, core.BatchUpdate{Owner: o, Scope: core.StateScope("st", strconv.Itoa(j%2)), Values: vals})
					bu = append(bu, core.BatchUpdate{Owner: o, Scope: sc, Values: vals})
				}
				_ = r.UpdateBatch(ctx, bu)
			case 2:
				_ = o.Delete(ctx, sc, "k"+strconv.Itoa(rng.IntN(40)))
			case 3:
				_ = o.Commit(ctx, core.Put(sc, vals), core.Del(sc, "k"+strconv.Itoa(rng.IntN(40))))
			}
			if after := fingerprint(snap); after != before {
				t.Fatalf("seed %d step %d: the recovered snapshot changed", seed, i)
			}
		}
		r.Close()
	}
}
