package core

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// The bulk settle (many keys of a scope at once: SetDefaults, R40) leaves
// the very effective view, metadata and stale count (R38, R42) that
// settling key by key leaves.
func TestSettleBulkMatchesKeyByKey(t *testing.T) {
	defer func(n int) { settleBulk = n }(settleBulk)
	ctx := context.Background()
	regs := [2]*Registry{New(Options{}), New(Options{})}
	defer regs[0].Close()
	defer regs[1].Close()
	thresholds := [2]int{1, 1 << 30}
	owners := map[*Registry]map[Layer]*Owner{regs[0]: {}, regs[1]: {}}
	sc := ConfigScope("net", "eth0")
	r := rand.New(rand.NewPCG(5, 6))
	value := func() any {
		if r.IntN(2) == 0 {
			return int64(r.IntN(3))
		}
		return map[string]any{"v": int64(r.IntN(3)), "n": "x"}
	}
	vals := func(n int) Values {
		v := Values{}
		for range n {
			v["k"+strconv.Itoa(r.IntN(60))] = value()
		}
		return v
	}
	for step := range 60 {
		var step0 func(reg *Registry) error
		switch r.IntN(3) {
		case 0:
			d := map[Scope]Values{sc: vals(r.IntN(80)), ConfigScope("net", "eth1"): vals(20)}
			step0 = func(reg *Registry) error { return reg.SetDefaults(ctx, d) }
		case 1:
			v := vals(1 + r.IntN(40))
			l := Layers[2+r.IntN(3)]
			step0 = func(reg *Registry) error {
				o := owners[reg][l]
				if o == nil {
					var err error
					if o, err = reg.Owner(ctx, "o-"+l.String(), OwnerOptions{Layer: l}); err != nil {
						return err
					}
					owners[reg][l] = o
				}
				return o.Update(ctx, sc, v)
			}
		default:
			f := map[Scope]Values{sc: vals(r.IntN(50))}
			step0 = func(reg *Registry) error { return reg.SetFleet(ctx, f) }
		}
		for i, reg := range regs {
			settleBulk = thresholds[i]
			if err := step0(reg); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
		}
		a, b := regs[0].Snapshot(), regs[1].Snapshot()
		if d := Diff(a, b); len(d) != 0 || a.Seq() != b.Seq() || a.st().lay().stale != b.st().lay().stale {
			t.Fatalf("step %d: views differ: %+v", step, d)
		}
		type m struct {
			km  KeyMeta
			vol bool
		}
		metas := [2]map[string]m{{}, {}}
		for i, s := range []Snapshot{a, b} {
			s.WalkMeta(0, func(sc Scope, key string, km KeyMeta, vol bool) error {
				km.Modified = time.Time{} // wall clocks differ between the two
				metas[i][sc.String()+"/"+key] = m{km, vol}
				return nil
			})
		}
		for k, x := range metas[0] {
			y := metas[1][k]
			if x != y {
				t.Fatalf("step %d: %s: %+v vs %+v", step, k, x, y)
			}
		}
		if len(metas[0]) != len(metas[1]) {
			t.Fatalf("step %d: %d vs %d keys", step, len(metas[0]), len(metas[1]))
		}
	}
}
