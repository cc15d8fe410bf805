package core

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestScheduleOrder: the notifier's schedule hands out buckets in tick
// order, each with exactly the subscriptions added for its tick, and never
// one whose tick is after now (R17: never early).
func TestScheduleOrder(t *testing.T) {
	var q schedule
	rng := rand.New(rand.NewPCG(1, 2))
	want := map[int64][]*Subscription{}
	for range 5000 {
		tick := int64(rng.IntN(300))
		if rng.IntN(4) == 0 { // runs of one tick, as woken cohorts make
			tick = q.last
		}
		s := &Subscription{}
		q.add(tick, s)
		want[tick] = append(want[tick], s)
	}
	prev := int64(-1)
	for now := int64(0); now <= 300*tickNs; now += tickNs / 3 {
		for {
			b := q.due(now)
			if b == nil {
				break
			}
			if len(*b) == 0 {
				t.Fatal("empty bucket")
			}
			tick := int64(-1)
			for k, subs := range want {
				if subs[0] == (*b)[0] {
					tick = k
				}
			}
			if tick*tickNs > now || tick <= prev {
				t.Fatalf("bucket of tick %d handed out at %d ns after tick %d", tick, now, prev)
			}
			if !slices.Equal(*b, want[tick]) {
				t.Fatalf("tick %d: %d subscriptions, want %d", tick, len(*b), len(want[tick]))
			}
			delete(want, tick)
			prev = tick
			q.release(b)
		}
	}
	if len(want) != 0 || q.next() != noTick {
		t.Fatalf("%d ticks never handed out", len(want))
	}
}
