package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

// FlapConfig configures RunFlap. The zero value is the headline scenario:
// 4 producers, 1,000 subscribers at MinInterval 100 ms, 2 s of flapping,
// on an embedded store, with the naive baseline.
type FlapConfig struct {
	// Producers writing concurrently, each as its own owner in its own
	// scope (see the package doc). Default 4.
	Producers int
	// Keys each producer toggles in turn. Default 1.
	Keys int
	// Subscribers consuming concurrently, each on its own goroutine.
	// Default 1,000; negative means none (the bare producers, to compare
	// against).
	Subscribers int
	// Interval is the subscribers' MinInterval. Default 100 ms; negative
	// means none (every change may be delivered).
	Interval time.Duration
	// Duration the producers write for. Default 2 s. Ignored when Updates
	// is set.
	Duration time.Duration
	// Updates, if positive, makes each producer write exactly this many
	// updates instead of writing for Duration: the counts of the run are
	// then deterministic.
	Updates int
	// Rate limits each producer to this many updates per second. Zero: as
	// fast as it can.
	Rate float64
	// Work is CPU time each subscriber burns per delivery (per event in the
	// baseline), standing for what a consumer does with it. Default none.
	Work time.Duration
	// Core runs sysreg's side on a bare core.Registry instead of an
	// embedded store.
	Core bool
	// NoBaseline skips the naive fan-out.
	NoBaseline bool
	// ReuseValues makes each producer pass, for each key, one of two maps
	// it built once (the key true, the key false) instead of a fresh map
	// per update. Not the headline (callers build fresh maps): it takes
	// the callers' allocations, and the collector's cycles they cause,
	// out of the measurement, to show what is left of sysreg's own cost.
	// Ignored by the naive baseline.
	ReuseValues bool
	// Scrape, if positive, reads the store's Stats this often while the
	// producers run, as sysregd's metrics collector does at each scrape
	// (R50): the figures a Prometheus server pulls. Zero: never. Ignored
	// with Core.
	Scrape time.Duration
	// Buffer is the capacity of each baseline consumer's channel. Default
	// 1,024.
	Buffer int
	// SampleEvery is the period of the time series and of the heap
	// sampling. Default 50 ms.
	SampleEvery time.Duration
	// Timeout bounds the wait for convergence after the producers stop.
	// Default 60 s.
	Timeout time.Duration
	// Dir is where the store's temporary data directory is made. Default
	// os.TempDir().
	Dir string
	// Progress receives a line per phase. nil: none.
	Progress io.Writer
}

func (c FlapConfig) withDefaults() FlapConfig {
	if c.Producers <= 0 {
		c.Producers = 4
	}
	if c.Keys <= 0 {
		c.Keys = 1
	}
	switch {
	case c.Subscribers == 0:
		c.Subscribers = 1000
	case c.Subscribers < 0:
		c.Subscribers = 0
	}
	switch {
	case c.Interval == 0:
		c.Interval = 100 * time.Millisecond
	case c.Interval < 0:
		c.Interval = 0
	}
	if c.Duration <= 0 {
		c.Duration = 2 * time.Second
	}
	if c.Buffer <= 0 {
		c.Buffer = 1024
	}
	if c.SampleEvery <= 0 {
		c.SampleEvery = 50 * time.Millisecond
	}
	if c.Timeout <= 0 {
		c.Timeout = 60 * time.Second
	}
	return c
}

// FlapResult is what RunFlap measured: sysreg and the naive baseline on
// the same workload.
type FlapResult struct {
	Target      string  `json:"target"` // "store" (embedded, state scopes) or "core"
	Producers   int     `json:"producers"`
	Keys        int     `json:"keys_per_producer"`
	Subscribers int     `json:"subscribers"`
	IntervalMs  float64 `json:"interval_ms"`
	DurationS   float64 `json:"duration_s"`                     // configured; 0 with fixed Updates
	Updates     int     `json:"updates_per_producer,omitempty"` // configured
	Rate        float64 `json:"rate_per_producer"`              // 0: as fast as possible
	WorkUs      float64 `json:"work_us"`
	BufferCap   int     `json:"baseline_buffer"`
	ReuseValues bool    `json:"reuse_values,omitempty"` // FlapConfig.ReuseValues

	Sysreg   FlapRun  `json:"sysreg"`
	Baseline *FlapRun `json:"baseline,omitempty"`

	// ThroughputRatio is sysreg's producer updates/s over the baseline's;
	// 0 without a baseline.
	ThroughputRatio float64 `json:"throughput_ratio"`
}

// FlapRun is one side of a flap run.
type FlapRun struct {
	// Updates all producers made, and how long they wrote.
	Updates       uint64  `json:"updates"`
	ProduceS      float64 `json:"produce_s"`
	UpdatesPerSec float64 `json:"updates_per_s"`
	// Deliveries per subscriber (events per consumer in the baseline),
	// counted up to and including the one that converged it, the initial
	// delivery included.
	Deliveries Spread `json:"deliveries_per_sub"`
	// Windows is the time from the first Subscribe to the last
	// subscriber's convergence, in MinIntervals: no subscriber may have had
	// more than Windows+1 deliveries (R17). 0 without an interval.
	Windows float64 `json:"windows"`
	// Coalesced is the number of (change, subscriber) pairs that were not
	// delivered one by one but folded into a later delivery: the sum over
	// subscribers of updates − (deliveries − 1). CoalescedFraction divides
	// it by updates × subscribers. Both 0 for the baseline.
	Coalesced         uint64  `json:"coalesced"`
	CoalescedFraction float64 `json:"coalesced_fraction"`
	// ConvergeMs: per subscriber, from the return of the last update to
	// the receipt of the final state.
	ConvergeMs Latency `json:"converge_ms"`
	// PeakHeapBytes is the highest HeapAlloc sampled (garbage included);
	// HeapPerSub is the live heap after a GC once every subscriber has
	// converged, minus the live heap before they existed, per subscriber.
	PeakHeapBytes uint64  `json:"peak_heap_bytes"`
	HeapPerSub    float64 `json:"heap_bytes_per_sub"`
	// CPUSeconds: process user + system time for the phase.
	CPUSeconds float64 `json:"cpu_s"`
	// UpdatesPerCPUSec is Updates over the process CPU time (all
	// goroutines) while the producers wrote: on a shared machine, where the
	// CPU this process gets varies from run to run, it is the steadier
	// measure of what subscribers cost.
	UpdatesPerCPUSec float64 `json:"updates_per_cpu_s"`
	// GCPerSec is the garbage-collection cycles per second and
	// AllocPerUpdate the bytes allocated (by the whole process) per update
	// while the producers wrote: allocation sets how often the collector
	// runs, and each cycle scans every goroutine's stack, the consumers'
	// included.
	GCPerSec       float64 `json:"gc_per_s"`
	AllocPerUpdate float64 `json:"alloc_bytes_per_update"`
	// Series samples cumulative updates and deliveries every SampleEvery.
	Series []Sample `json:"series"`
}

// RunFlap runs the flapping-load scenario on sysreg and then, unless
// NoBaseline, the naive event-per-change fan-out on the same workload.
func RunFlap(ctx context.Context, cfg FlapConfig) (FlapResult, error) {
	cfg = cfg.withDefaults()
	p := &progress{w: cfg.Progress}
	res := FlapResult{
		Target:      "store",
		Producers:   cfg.Producers,
		Keys:        cfg.Keys,
		Subscribers: cfg.Subscribers,
		IntervalMs:  ms(cfg.Interval),
		Updates:     cfg.Updates,
		Rate:        cfg.Rate,
		WorkUs:      float64(cfg.Work) / float64(time.Microsecond),
		BufferCap:   cfg.Buffer,
		ReuseValues: cfg.ReuseValues,
	}
	if cfg.Core {
		res.Target = "core"
	}
	if cfg.Updates <= 0 {
		res.DurationS = cfg.Duration.Seconds()
	}
	p.printf("flap: sysreg (%s): %d producers, %d subscribers, interval %v", res.Target, cfg.Producers, cfg.Subscribers, cfg.Interval)
	run, err := runFlapSysreg(ctx, cfg)
	if err != nil {
		return res, fmt.Errorf("flap: sysreg: %w", err)
	}
	res.Sysreg = run
	p.printf("flap: sysreg: %.0f updates/s, %.1f deliveries/sub, converged within %.1f ms",
		run.UpdatesPerSec, run.Deliveries.Mean, run.ConvergeMs.Max)
	if cfg.NoBaseline {
		return res, nil
	}
	p.printf("flap: naive baseline: channel fan-out, buffer %d", cfg.Buffer)
	base, err := runFlapNaive(ctx, cfg)
	if err != nil {
		return res, fmt.Errorf("flap: baseline: %w", err)
	}
	res.Baseline = &base
	res.ThroughputRatio = ratio(run.UpdatesPerSec, base.UpdatesPerSec)
	p.printf("flap: baseline: %.0f updates/s, converged within %.1f ms; sysreg/baseline %.1fx",
		base.UpdatesPerSec, base.ConvergeMs.Max, res.ThroughputRatio)
	return res, nil
}

// flapWorkload is what the two sides share: key names, expected final
// values, and the producer loop.
type flapWorkload struct {
	cfg    FlapConfig
	scopes []core.Scope // per producer
	keys   []string     // k0…
}

func newFlapWorkload(cfg FlapConfig) *flapWorkload {
	w := &flapWorkload{cfg: cfg}
	for p := range cfg.Producers {
		w.scopes = append(w.scopes, core.StateScope("flap", "p"+strconv.Itoa(p)))
	}
	for k := range cfg.Keys {
		w.keys = append(w.keys, "k"+strconv.Itoa(k))
	}
	return w
}

// value is what update i of a producer writes: key i mod K, alternately
// true and false per key, starting at true.
func (w *flapWorkload) value(i int) (key int, v bool) {
	k := len(w.keys)
	return i % k, (i/k)%2 == 0
}

// final is the value a producer that made n updates left at key k.
func (w *flapWorkload) final(n uint64, key int) (v, ok bool) {
	k := uint64(len(w.keys))
	if n <= uint64(key) {
		return false, false
	}
	last := uint64(key) + k*((n-1-uint64(key))/k)
	return (last/k)%2 == 0, true
}

// produce runs one producer: update(key, value) until stop (or Updates
// done), counting into n. It returns when the last update returned.
func (w *flapWorkload) produce(ctx context.Context, stop *atomic.Bool, n *counter, update func(key int, v bool) error) (time.Time, error) {
	var every time.Duration
	if w.cfg.Rate > 0 {
		every = time.Duration(float64(time.Second) / w.cfg.Rate)
	}
	start := time.Now()
	for i := 0; ; i++ {
		if w.cfg.Updates > 0 {
			if i >= w.cfg.Updates {
				break
			}
		} else if stop.Load() {
			break
		}
		if i&1023 == 0 && ctx.Err() != nil {
			return time.Time{}, ctx.Err()
		}
		if every > 0 {
			if d := time.Until(start.Add(time.Duration(i) * every)); d > 0 {
				time.Sleep(d)
			}
		}
		k, v := w.value(i)
		if err := update(k, v); err != nil {
			return time.Time{}, err
		}
		n.n.Add(1)
	}
	return time.Now(), nil
}

// runProducers runs every producer until Duration passes (or each made
// Updates) and returns the total, the time they took and the time the last
// update returned.
func (w *flapWorkload) runProducers(ctx context.Context, counts []counter, update func(p, key int, v bool) error) (total uint64, took time.Duration, last time.Time, err error) {
	var stop atomic.Bool
	start := time.Now()
	if w.cfg.Updates <= 0 {
		t := time.AfterFunc(w.cfg.Duration, func() { stop.Store(true) })
		defer t.Stop()
	}
	lasts := make([]time.Time, len(counts))
	errs := make([]error, len(counts))
	var wg sync.WaitGroup
	for p := range counts {
		wg.Go(func() {
			lasts[p], errs[p] = w.produce(ctx, &stop, &counts[p], func(k int, v bool) error { return update(p, k, v) })
			if errs[p] != nil {
				stop.Store(true)
			}
		})
	}
	wg.Wait()
	took = time.Since(start)
	for p := range counts {
		if errs[p] != nil {
			return 0, 0, time.Time{}, fmt.Errorf("producer %d: %w", p, errs[p])
		}
		if lasts[p].After(last) {
			last = lasts[p]
		}
	}
	return sum(counts), took, last, nil
}

// flapOwner is the part of an owner session a producer uses; both
// *core.Owner and store.Owner have it.
type flapOwner interface {
	Update(ctx context.Context, scope core.Scope, values core.Values) error
}

// flapTarget is sysreg's side: an embedded store or a bare core.Registry.
type flapTarget struct {
	owner     func(ctx context.Context, name string) (flapOwner, error)
	subscribe func(ctx context.Context, opts core.SubscribeOptions) (store.Subscription, error)
	snapshot  func() core.Snapshot
	close     func()
	stats     func() // reads the figures (Scrape); nil for Core
}

func openFlapTarget(cfg FlapConfig) (*flapTarget, error) {
	if cfg.Core {
		reg := core.New(core.Options{})
		return &flapTarget{
			owner: func(ctx context.Context, name string) (flapOwner, error) {
				return reg.Owner(ctx, name, core.OwnerOptions{})
			},
			subscribe: func(ctx context.Context, opts core.SubscribeOptions) (store.Subscription, error) {
				return reg.Subscribe(ctx, opts)
			},
			snapshot: reg.Snapshot,
			close:    func() { reg.Close() },
		}, nil
	}
	dir, err := tempDir(cfg.Dir, "sysreg-flap-")
	if err != nil {
		return nil, err
	}
	st, err := store.Open(filepath.Join(dir, "data"), store.Options{})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &flapTarget{
		owner: func(ctx context.Context, name string) (flapOwner, error) {
			return st.Owner(ctx, name, core.OwnerOptions{})
		},
		subscribe: st.Subscribe,
		snapshot: func() core.Snapshot {
			s, _ := st.Snapshot(context.Background())
			return s
		},
		close: func() {
			st.Close()
			os.RemoveAll(dir)
		},
		stats: func() { st.Stats(context.Background()) },
	}, nil
}

// scrape calls stats every period on a goroutine of its own until the
// returned stop is called (which waits for it). A nil stats or a period of
// zero starts nothing.
func scrape(stats func(), period time.Duration) (stop func()) {
	if stats == nil || period <= 0 {
		return func() {}
	}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				stats()
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// flapSub is what one sysreg subscriber's goroutine records.
type flapSub struct {
	seq        atomic.Uint64 // of the last delivery, for the main goroutine
	deliveries uint64
	at         time.Time     // receipt of the final state
	snap       core.Snapshot // the final state as received
	ok         bool          // converged
}

func runFlapSysreg(ctx context.Context, cfg FlapConfig) (FlapRun, error) {
	w := newFlapWorkload(cfg)
	tgt, err := openFlapTarget(cfg)
	if err != nil {
		return FlapRun{}, err
	}
	defer tgt.close()
	owners := make([]flapOwner, cfg.Producers)
	for p := range owners {
		if owners[p], err = tgt.owner(ctx, "producer-"+strconv.Itoa(p)); err != nil {
			return FlapRun{}, err
		}
		// A first update outside the measurement: it waits for the
		// store's first sequence number reservation (an fsync at Open).
		if err := owners[p].Update(ctx, w.scopes[p], core.Values{"ready": true}); err != nil {
			return FlapRun{}, err
		}
	}
	startSeq := tgt.snapshot().Seq()

	m := startFlapMeter(cfg)
	subs := make([]store.Subscription, cfg.Subscribers)
	for i := range subs {
		stagger(m.subStart, i, len(subs), cfg.Interval)
		if subs[i], err = tgt.subscribe(ctx, core.SubscribeOptions{MinInterval: cfg.Interval}); err != nil {
			return FlapRun{}, err
		}
	}
	var finalSeq atomic.Uint64
	got := make([]flapSub, cfg.Subscribers)
	var wg sync.WaitGroup
	defer func() { // on errors: closing the store closes C, the consumers return
		tgt.close()
		wg.Wait()
	}()
	for i, s := range subs {
		wg.Go(func() { consumeSnapshots(s, &got[i], &m.dcount[i], &finalSeq, cfg.Work) })
	}

	defer m.stop()
	stopScrape := scrape(tgt.stats, cfg.Scrape)
	update := func(p, k int, v bool) error {
		// A fresh map per update, as real callers build them: its
		// allocation and the collector's work are part of the measurement.
		return owners[p].Update(ctx, w.scopes[p], core.Values{w.keys[k]: v})
	}
	if cfg.ReuseValues {
		vals := make([][][2]core.Values, cfg.Producers) // [p][k][v]
		for p := range vals {
			vals[p] = make([][2]core.Values, len(w.keys))
			for k, key := range w.keys {
				vals[p][k] = [2]core.Values{{key: false}, {key: true}}
			}
		}
		update = func(p, k int, v bool) error {
			i := 0
			if v {
				i = 1
			}
			return owners[p].Update(ctx, w.scopes[p], vals[p][k][i])
		}
	}
	err = m.produce(ctx, w, update)
	stopScrape()
	if err != nil {
		return FlapRun{}, err
	}
	total := m.total
	final := tgt.snapshot()
	finalSeq.Store(final.Seq())
	endHolders(subs, got, final.Seq())
	if got := final.Seq() - startSeq; got != total {
		return FlapRun{}, fmt.Errorf("%w: %d updates made %d sequence numbers", ErrWrongState, total, got)
	}

	if err := waitGroup(ctx, &wg, cfg.Timeout); err != nil {
		return FlapRun{}, fmt.Errorf("%w after %v: %d of %d subscribers hold seq %d", err, cfg.Timeout, countConverged(got), len(got), final.Seq())
	}
	run := m.finish()
	for i := range got {
		if err := w.checkSnapshot(got[i].snap, m.pcount); err != nil {
			return FlapRun{}, fmt.Errorf("subscriber %d: %w", i, err)
		}
	}
	for _, s := range subs {
		s.Close()
	}

	dels := make([]uint64, len(got))
	ats := make([]time.Time, len(got))
	for i := range got {
		g := &got[i]
		dels[i], ats[i] = g.deliveries, g.at
		if folded := total + 1; folded > g.deliveries {
			run.Coalesced += folded - g.deliveries
		}
	}
	m.summarise(&run, dels, ats)
	if total > 0 && cfg.Subscribers > 0 {
		run.CoalescedFraction = float64(run.Coalesced) / (float64(total) * float64(cfg.Subscribers))
	}
	return run, nil
}

// stagger waits until subscriber i of n is due: subscriptions open evenly
// spread over one interval, so their rate-limit windows are out of phase
// as independent consumers' would be, and the worst convergence is
// measured, not a lucky common phase.
func stagger(start time.Time, i, n int, interval time.Duration) {
	if d := time.Until(start.Add(interval * time.Duration(i) / time.Duration(n))); d > 0 {
		time.Sleep(d)
	}
}

// endHolders closes the subscriptions whose consumer already holds the
// final state (at seq final or later), which get no more deliveries, so
// that their loops end. Call it after storing the final seq.
func endHolders(subs []store.Subscription, got []flapSub, final uint64) {
	for i := range got {
		if got[i].seq.Load() >= final {
			subs[i].Close()
		}
	}
}

// consumeSnapshots is one sysreg subscriber, written as users write them:
// a range over C. It takes deliveries until it holds a snapshot at
// finalSeq or later, or until C is closed (the main goroutine closes the
// subscriptions that already held the final state when it became known).
func consumeSnapshots(s store.Subscription, out *flapSub, n *counter, finalSeq *atomic.Uint64, work time.Duration) {
	var last core.Snapshot
	var lastAt time.Time
	for snap := range s.C() {
		last, lastAt = snap, time.Now()
		out.deliveries++
		n.n.Store(out.deliveries)
		out.seq.Store(snap.Seq())
		if f := finalSeq.Load(); f != 0 && snap.Seq() >= f {
			break
		}
		spin(work)
	}
	if f := finalSeq.Load(); f != 0 && last.Seq() >= f {
		out.at, out.snap, out.ok = lastAt, last, true
		spin(work)
	}
}

// checkSnapshot verifies that snap holds what the producers wrote last.
func (w *flapWorkload) checkSnapshot(snap core.Snapshot, counts []counter) error {
	for p, sc := range w.scopes {
		n := counts[p].n.Load()
		for k, key := range w.keys {
			want, wantOK := w.final(n, k)
			v, ok := snap.Get(sc, key)
			if ok != wantOK || ok && v != want {
				return fmt.Errorf("%w: %s %s is %v (present %v), want %v (present %v)", ErrWrongState, sc, key, v, ok, want, wantOK)
			}
		}
	}
	return nil
}

func countConverged(got []flapSub) int {
	n := 0
	for i := range got {
		g := &got[i]
		if g.ok {
			n++
		}
	}
	return n
}

// waitGroup waits for wg, at most timeout; on timeout it returns
// ErrNoConvergence, on ctx's end ctx's error. wg is still running then.
func waitGroup(ctx context.Context, wg *sync.WaitGroup, timeout time.Duration) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		return ErrNoConvergence
	case <-ctx.Done():
		return ctx.Err()
	}
}

func perSub(after, before uint64, subs int) float64 {
	if after < before || subs == 0 {
		return 0
	}
	return float64(after-before) / float64(subs)
}

// naiveEvent is one change as the baseline sends it.
type naiveEvent struct {
	key   string
	value any
}

// naiveHub is the baseline: what a user writes without sysreg. A map under
// a mutex, and every change sent as an event to every consumer's buffered
// channel, in order, with blocking sends — so a producer waits for the
// slowest consumer once its buffer is full. (Holding the mutex across the
// sends is what keeps every consumer's order equal to the map's; it is the
// point of the baseline, not a pattern to copy.)
type naiveHub struct {
	mu    sync.Mutex // guards state and the sends
	state map[string]any
	subs  []chan naiveEvent
}

func (h *naiveHub) update(key string, v any) {
	h.mu.Lock()
	h.state[key] = v
	ev := naiveEvent{key, v}
	for _, c := range h.subs {
		c <- ev
	}
	h.mu.Unlock()
}

func runFlapNaive(ctx context.Context, cfg FlapConfig) (FlapRun, error) {
	w := newFlapWorkload(cfg)
	names := make([][]string, cfg.Producers) // [producer][key] "flap/p0/k0"
	for p, sc := range w.scopes {
		for _, k := range w.keys {
			names[p] = append(names[p], sc.Type+"/"+sc.Subtype+"/"+k)
		}
	}
	h := &naiveHub{state: map[string]any{}}

	m := startFlapMeter(cfg)
	h.subs = make([]chan naiveEvent, cfg.Subscribers)
	for i := range h.subs {
		h.subs[i] = make(chan naiveEvent, cfg.Buffer)
	}
	var want atomic.Uint64 // total events, once the producers stopped
	var abort atomic.Bool  // timeout: stop working, just drain
	states := make([]map[string]any, cfg.Subscribers)
	ats := make([]time.Time, cfg.Subscribers)
	var wg sync.WaitGroup
	for i, ch := range h.subs {
		wg.Go(func() {
			state := map[string]any{}
			n := &m.dcount[i].n
			var got uint64
			for ev := range ch {
				state[ev.key] = ev.value
				got++
				n.Store(got)
				if cfg.Work > 0 && !abort.Load() {
					spin(cfg.Work)
				}
				if got == want.Load() {
					ats[i] = time.Now()
				}
			}
			if ats[i].IsZero() { // it had everything before the total was known
				ats[i] = time.Now()
			}
			states[i] = state
		})
	}

	defer m.stop()
	err := m.produce(ctx, w, func(p, k int, v bool) error {
		h.update(names[p][k], v)
		return nil
	})
	total := m.total
	want.Store(total)
	for _, ch := range h.subs { // no producer is left
		close(ch)
	}
	if err != nil {
		abort.Store(true)
		wg.Wait()
		return FlapRun{}, err
	}
	if err := waitGroup(ctx, &wg, cfg.Timeout); err != nil {
		abort.Store(true)
		wg.Wait()
		return FlapRun{}, fmt.Errorf("%w after %v", err, cfg.Timeout)
	}
	// The channels (and their buffers) count as the consumers' memory
	// until the heap is measured.
	run := m.finish()
	for i := range h.subs {
		h.subs[i] = nil
	}
	dels := make([]uint64, cfg.Subscribers)
	for i := range dels {
		dels[i] = m.dcount[i].n.Load()
		if err := w.checkMap(states[i], names, m.pcount); err != nil {
			return FlapRun{}, fmt.Errorf("consumer %d: %w", i, err)
		}
		if dels[i] != total {
			return FlapRun{}, fmt.Errorf("%w: consumer %d applied %d of %d events", ErrWrongState, i, dels[i], total)
		}
	}
	m.summarise(&run, dels, ats)
	return run, nil
}

// flapMeter is the measuring both sides of a flap run share: process CPU
// and live heap from before the subscribers exist, the sampler while the
// producers write, and the figures of the run.
type flapMeter struct {
	cfg      FlapConfig
	cpu0     time.Duration
	heap0    uint64
	subStart time.Time
	pcount   []counter // updates per producer
	dcount   []counter // deliveries (events) per subscriber
	smp      *sampler

	// Set by produce.
	total uint64
	took  time.Duration
	last  time.Time // the return of the last update

	produceCPU time.Duration // process CPU while the producers wrote
	gcs, alloc uint64        // GC cycles and bytes allocated while they wrote
}

// startFlapMeter starts measuring; call it just before the subscribers
// are created.
func startFlapMeter(cfg FlapConfig) *flapMeter {
	return &flapMeter{
		cfg:      cfg,
		cpu0:     cpuTime(),
		heap0:    heapAfterGC(),
		subStart: time.Now(),
		pcount:   make([]counter, cfg.Producers),
		dcount:   make([]counter, cfg.Subscribers),
	}
}

// produce runs the producers with update, sampling updates and deliveries
// as they go.
func (m *flapMeter) produce(ctx context.Context, w *flapWorkload, update func(p, key int, v bool) error) error {
	m.smp = startSampler(m.cfg.SampleEvery, time.Now(), func() (uint64, float64) {
		return sum(m.pcount), ratio(float64(sum(m.dcount)), float64(len(m.dcount)))
	})
	var err error
	gcs, alloc := gcCounts()
	cpu := cpuTime()
	m.total, m.took, m.last, err = w.runProducers(ctx, m.pcount, update)
	m.produceCPU = cpuTime() - cpu
	gcs1, alloc1 := gcCounts()
	m.gcs, m.alloc = gcs1-gcs, alloc1-alloc
	return err
}

// stop stops the sampler (idempotent; for deferring on error paths).
func (m *flapMeter) stop() {
	if m.smp != nil {
		m.smp.stop()
	}
}

// finish stops measuring once every subscriber converged and returns the
// run's producer, heap and CPU figures.
func (m *flapMeter) finish() FlapRun {
	peak := m.smp.stop()
	heap1 := heapAfterGC()
	cpu := cpuTime() - m.cpu0
	return FlapRun{
		Updates:       m.total,
		ProduceS:      m.took.Seconds(),
		UpdatesPerSec: float64(m.total) / m.took.Seconds(),
		PeakHeapBytes: peak,
		HeapPerSub:    perSub(heap1, m.heap0, m.cfg.Subscribers),
		CPUSeconds:    cpu.Seconds(),
		Series:        m.smp.series,

		UpdatesPerCPUSec: ratio(float64(m.total), m.produceCPU.Seconds()),
		GCPerSec:         ratio(float64(m.gcs), m.took.Seconds()),
		AllocPerUpdate:   ratio(float64(m.alloc), float64(m.total)),
	}
}

// summarise fills the per-subscriber figures of a run, for sysreg and the
// baseline alike: deliveries, the time from the last change to each
// subscriber holding it (ats), and the windows of interval since the
// subscriptions started.
func (m *flapMeter) summarise(run *FlapRun, dels []uint64, ats []time.Time) {
	last, subStart, interval := m.last, m.subStart, m.cfg.Interval
	conv := make([]time.Duration, len(ats))
	var end time.Time
	for i, at := range ats {
		conv[i] = max(0, at.Sub(last))
		if at.After(end) {
			end = at
		}
	}
	run.Deliveries = spreadOf(dels)
	run.ConvergeMs = latencyOf(conv, time.Millisecond)
	if interval > 0 && len(ats) > 0 {
		run.Windows = float64(end.Sub(subStart)) / float64(interval)
	}
}

// checkMap verifies a baseline consumer's map.
func (w *flapWorkload) checkMap(m map[string]any, names [][]string, counts []counter) error {
	n := 0
	for p := range names {
		for k, name := range names[p] {
			want, wantOK := w.final(counts[p].n.Load(), k)
			v, ok := m[name]
			if ok != wantOK || ok && v != want {
				return fmt.Errorf("%w: %s is %v (present %v), want %v (present %v)", ErrWrongState, name, v, ok, want, wantOK)
			}
			if ok {
				n++
			}
		}
	}
	if n != len(m) {
		return fmt.Errorf("%w: %d keys, want %d", ErrWrongState, len(m), n)
	}
	return nil
}
