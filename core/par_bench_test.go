package core_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sysreg/sysreg/core"
)

// BenchmarkFlapProducers: P producers, each flapping one key of its own
// scope, with and without 1,000 subscribers at MinInterval 100 ms. The write
// path is serialised, so on two cores more producers add contention, not
// throughput.
func BenchmarkFlapProducers(b *testing.B) {
	for _, p := range []int{1, 2, 4} {
		for _, subs := range []int{0, 1000} {
			b.Run("producers="+strconv.Itoa(p)+"/subs="+strconv.Itoa(subs), func(b *testing.B) {
				ctx := context.Background()
				r := core.New(core.Options{})
				defer r.Close()
				for range subs {
					s, _ := r.Subscribe(ctx, core.SubscribeOptions{MinInterval: 100 * time.Millisecond})
					go func() {
						for range s.C() {
						}
					}()
				}
				owners := make([]*core.Owner, p)
				for i := range owners {
					owners[i], _ = r.Owner(ctx, "p"+strconv.Itoa(i), core.OwnerOptions{})
				}
				b.ReportAllocs()
				on, off := core.Values{"up": true}, core.Values{"up": false}
				start, cpu0 := time.Now(), cpuTime()
				var wg sync.WaitGroup
				per := b.N / p
				for i := range owners {
					wg.Go(func() {
						sc := core.StateScope("flap", "p"+strconv.Itoa(i))
						for n := range per {
							v := on
							if n&1 == 1 {
								v = off
							}
							owners[i].Update(ctx, sc, v)
						}
					})
				}
				wg.Wait()
				if per == 0 {
					return
				}
				b.ReportMetric(float64(per*p)/time.Since(start).Seconds(), "updates/s")
				// Process CPU per update: on a shared machine wall time also
				// counts the waiting, and a shorter critical section shows
				// as more of two cores in use.
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(per*p), "cpu-ns/op")
			})
		}
	}
}
