package core_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sysreg/sysreg/core"
)

// BenchmarkFlap: one owner flapping one key, with no subscribers, in a scope
// of a given width (issue targets: ≥ 1,000,000 updates/s small, ≥ 300,000
// updates/s at 10,000 keys).
func BenchmarkFlap(b *testing.B) {
	for _, width := range []int{1, 10000} {
		b.Run("keys="+strconv.Itoa(width), func(b *testing.B) {
			ctx := context.Background()
			r := core.New(core.Options{})
			defer r.Close()
			o, _ := r.Owner(ctx, "flapper", core.OwnerOptions{})
			sc := core.StateScope("net", "eth0")
			for i := range width - 1 {
				o.Update(ctx, sc, core.Values{"k" + strconv.Itoa(i): i})
			}
			b.ReportAllocs()
			on := core.Values{"up": true}
			off := core.Values{"up": false}
			i := 0
			start, cpu0 := time.Now(), cpuTime()
			for b.Loop() {
				v := on
				if i&1 == 1 {
					v = off
				}
				i++
				if err := o.Update(ctx, sc, v); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "updates/s")
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkFlapSubscribers: producers flap while S subscribers at
// MinInterval consume (R17–R19). Reports producer updates/s, deliveries per
// subscriber against the number of windows, and the time from the last
// change until every subscriber holds it.
func BenchmarkFlapSubscribers(b *testing.B) {
	for _, subs := range []int{0, 1000} {
		b.Run(fmt.Sprintf("subscribers=%d/interval=100ms", subs), func(b *testing.B) {
			ctx := context.Background()
			r := core.New(core.Options{})
			defer r.Close()
			interval := 100 * time.Millisecond
			var wg sync.WaitGroup
			deliveries := make([]int, subs)
			final := make(chan struct{})
			var lastSeq uint64
			var mu sync.Mutex
			convergedAt := make([]time.Time, subs)
			for i := range subs {
				s, err := r.Subscribe(ctx, core.SubscribeOptions{MinInterval: interval})
				if err != nil {
					b.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer s.Close()
					for {
						select {
						case snap := <-s.C():
							deliveries[i]++
							mu.Lock()
							ls := lastSeq
							mu.Unlock()
							if ls != 0 && snap.Seq() >= ls {
								convergedAt[i] = time.Now()
								return
							}
						case <-final:
							// keep draining until the final seq arrives
							final = nil
						}
					}
				}()
			}
			o, _ := r.Owner(ctx, "flapper", core.OwnerOptions{})
			sc := core.StateScope("net", "eth0")
			on, off := core.Values{"up": true}, core.Values{"up": false}
			i := 0
			start := time.Now()
			for b.Loop() {
				v := on
				if i&1 == 1 {
					v = off
				}
				i++
				o.Update(ctx, sc, v)
			}
			elapsed := time.Since(start)
			o.Update(ctx, sc, core.Values{"final": true})
			last := time.Now()
			mu.Lock()
			lastSeq = r.Snapshot().Seq()
			mu.Unlock()
			// Subscribers that already hold an older snapshot get the final one
			// within one window.
			wg.Wait()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "updates/s")
			if subs > 0 {
				worst := time.Duration(0)
				total := 0
				for i := range subs {
					total += deliveries[i]
					worst = max(worst, convergedAt[i].Sub(last))
				}
				windows := float64(time.Since(start)) / float64(interval)
				b.ReportMetric(float64(total)/float64(subs), "deliveries/sub")
				b.ReportMetric(windows, "windows")
				b.ReportMetric(float64(worst.Microseconds())/1000, "converge-ms")
			}
		})
	}
}

// BenchmarkSnapshot: taking a snapshot allocates nothing that grows with
// the state.
func BenchmarkSnapshot(b *testing.B) {
	ctx := context.Background()
	r := core.New(core.Options{})
	defer r.Close()
	o, _ := r.Owner(ctx, "o", core.OwnerOptions{})
	for i := range 10000 {
		o.Update(ctx, core.ConfigScope("t", strconv.Itoa(i%100)), core.Values{strconv.Itoa(i): i})
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Snapshot()
	}
}

// BenchmarkIdleSubscriber reports the memory an idle subscription costs
// (issue target ≤ 2 KiB).
func BenchmarkIdleSubscriber(b *testing.B) {
	ctx := context.Background()
	const n = 10000
	for b.Loop() {
		r := core.New(core.Options{})
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		subs := make([]*core.Subscription, n)
		for i := range subs {
			subs[i], _ = r.Subscribe(ctx, core.SubscribeOptions{MinInterval: time.Second})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/sub")
		runtime.KeepAlive(subs)
		r.Close()
	}
}

// BenchmarkConfigUpdate: one owner updating one key of a config scope of
// 100 keys, memory only. layers=1: the scope lives in the writer's layer
// alone (today's single-layer case); layers=5: every layer holds the scope
// and the key (R37–R42), so the effective value merges five layers. The
// issue's target: layers=5 costs at most twice layers=1.
func BenchmarkConfigUpdate(b *testing.B) {
	for _, layers := range []int{1, 5} {
		b.Run("layers="+strconv.Itoa(layers), func(b *testing.B) {
			ctx := context.Background()
			r := core.New(core.Options{})
			defer r.Close()
			sc := core.ConfigScope("net", "eth0")
			fill := core.Values{}
			for i := range 99 {
				fill["k"+strconv.Itoa(i)] = i
			}
			fill["mtu"] = map[string]any{"v": 1500, "unit": "B"}
			if layers == 5 {
				if err := r.SetDefaults(ctx, map[core.Scope]core.Values{sc: fill}); err != nil {
					b.Fatal(err)
				}
				if err := r.SetFleet(ctx, map[core.Scope]core.Values{sc: fill}); err != nil {
					b.Fatal(err)
				}
				for _, l := range []core.Layer{core.Saved, core.Override} {
					o, _ := r.Owner(ctx, "w-"+l.String(), core.OwnerOptions{Layer: l})
					if err := o.Update(ctx, sc, fill); err != nil {
						b.Fatal(err)
					}
				}
			}
			o, _ := r.Owner(ctx, "writer", core.OwnerOptions{Layer: core.Runtime})
			if err := o.Update(ctx, sc, fill); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			vals := []core.Values{{"mtu": map[string]any{"v": 9000}}, {"mtu": map[string]any{"v": 1500}}}
			i := 0
			start, cpu0 := time.Now(), cpuTime()
			for b.Loop() {
				if err := o.Update(ctx, sc, vals[i&1]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "updates/s")
			// Process CPU per update: on a shared machine wall time also
			// counts the waiting.
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
