package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sysreg/sysreg/store"
)

// Spread summarises a count over subscribers.
type Spread struct {
	Mean float64 `json:"mean"`
	Min  float64 `json:"min"`
	Max  float64 `json:"max"`
}

// Latency summarises durations, in the unit its field name says.
type Latency struct {
	P50  float64 `json:"p50"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// spreadOf summarises xs (zero for none).
func spreadOf(xs []uint64) Spread {
	if len(xs) == 0 {
		return Spread{}
	}
	s := Spread{Min: math.Inf(1)}
	var sum float64
	for _, x := range xs {
		f := float64(x)
		sum += f
		s.Min = min(s.Min, f)
		s.Max = max(s.Max, f)
	}
	s.Mean = sum / float64(len(xs))
	return s
}

// latencyOf summarises ds in units of unit (time.Millisecond: ms). It
// sorts ds.
func latencyOf(ds []time.Duration, unit time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	f := func(d time.Duration) float64 { return float64(d) / float64(unit) }
	return Latency{
		P50:  f(quantile(ds, 0.50)),
		P99:  f(quantile(ds, 0.99)),
		Max:  f(ds[len(ds)-1]),
		Mean: f(sum / time.Duration(len(ds))),
	}
}

// quantile is the nearest-rank q-quantile of sorted ds.
func quantile(ds []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(ds)))) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// counter is an atomic counter on its own cache line, so that counters of
// different goroutines kept in one slice do not share lines.
type counter struct {
	n atomic.Uint64
	_ [56]byte
}

func sum(cs []counter) uint64 {
	var t uint64
	for i := range cs {
		t += cs[i].n.Load()
	}
	return t
}

// Sample is one point of a flap run's time series.
type Sample struct {
	Ms         float64 `json:"t_ms"`               // since the producers started
	Updates    uint64  `json:"updates"`            // producer updates so far
	Deliveries float64 `json:"deliveries_per_sub"` // mean deliveries (events) per subscriber so far
	HeapBytes  uint64  `json:"heap_bytes"`         // runtime.MemStats.HeapAlloc
}

// sampler records a time series and the peak heap while a phase runs. Its
// goroutine runs from start until stop.
type sampler struct {
	every  time.Duration
	read   func() (updates uint64, deliveries float64)
	start  time.Time
	peak   uint64
	series []Sample
	quit   chan struct{}
	done   chan struct{}
	once   sync.Once
}

func startSampler(every time.Duration, start time.Time, read func() (uint64, float64)) *sampler {
	s := &sampler{every: every, read: read, start: start, quit: make(chan struct{}), done: make(chan struct{})}
	s.sample(time.Now())
	go s.run()
	return s
}

func (s *sampler) run() {
	defer close(s.done)
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
			// Now, not the tick's time: that is when the tick was due,
			// which a late tick (a loaded machine, an emulator) puts before
			// the previous sample's reading, and the counters are read now.
			s.sample(time.Now())
		}
	}
}

func (s *sampler) sample(now time.Time) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.peak = max(s.peak, ms.HeapAlloc)
	u, d := s.read()
	s.series = append(s.series, Sample{
		Ms:         float64(now.Sub(s.start).Microseconds()) / 1000,
		Updates:    u,
		Deliveries: d,
		HeapBytes:  ms.HeapAlloc,
	})
}

// stop ends sampling with a last sample and returns the peak heap. Later
// calls only return the peak.
func (s *sampler) stop() uint64 {
	s.once.Do(func() {
		close(s.quit)
		<-s.done
		s.sample(time.Now())
	})
	return s.peak
}

// heapAfterGC is HeapAlloc after a full collection.
func heapAfterGC() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// progress writes one line of progress to w (nil: nowhere).
type progress struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *progress) printf(format string, args ...any) {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "bench: "+format+"\n", args...)
}

// tempDir makes a temporary directory under parent (default os.TempDir()).
func tempDir(parent, pattern string) (string, error) {
	d, err := os.MkdirTemp(parent, pattern)
	if err != nil {
		return "", fmt.Errorf("bench: temporary directory: %w", err)
	}
	return d, nil
}

// dirBytes is the total size of the regular files under dir.
func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// spin burns CPU for d: the "work per delivery" of a consumer.
func spin(d time.Duration) {
	if d <= 0 {
		return
	}
	for start := time.Now(); time.Since(start) < d; {
	}
}

// ms converts a duration to float milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// ratio is a/b, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// storeStats returns an embedded store's figures (in process: it cannot
// fail).
func storeStats(st *store.Store) store.Stats {
	s, _ := st.Stats(context.Background())
	return s
}

// gcCounts returns the process's garbage-collection cycles and bytes
// allocated so far.
func gcCounts() (cycles, allocBytes uint64) {
	ss := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(ss)
	for i, s := range ss {
		if s.Value.Kind() != metrics.KindUint64 {
			continue
		}
		if i == 0 {
			cycles = s.Value.Uint64()
		} else {
			allocBytes = s.Value.Uint64()
		}
	}
	return cycles, allocBytes
}
