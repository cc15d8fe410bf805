package store_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

var recoveryDir = flag.String("recovery-dir", "",
	"BenchmarkRecovery: keep the data dirs under this directory and reuse them (so that a baseline and a candidate open the same dir)")

var recoveryLarge = flag.Bool("recovery-large", false,
	"BenchmarkRecovery: also build and time the 10^6-update data dir (the build takes a while)")

// BenchmarkDurableUpdates: N writers, each updating its own config key as
// fast as its calls return, with real fsync (R24, R25). One op is one
// update. Reports updates/s (wall clock, in-flight tail included) and
// fsyncs/op, the journal's commits per update: 1 with one writer, and the
// group-commit saving as writers are added (writers=1 is the baseline of
// one fsync per update, side by side). Issue target: writers=64 ≥ 50,000
// updates/s.
func BenchmarkDurableUpdates(b *testing.B) {
	for _, writers := range []int{1, 8, 64, 256} {
		b.Run("writers="+strconv.Itoa(writers), func(b *testing.B) {
			benchDurable(b, writers)
		})
	}
}

func benchDurable(b *testing.B, writers int) { benchDurableFeed(b, writers, false) }

// benchDurableFeed is benchDurable, with a change feed (R47) followed
// live during the run when feed is set.
func benchDurableFeed(b *testing.B, writers int, feed bool) {
	ctx := context.Background()
	s, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if feed {
		f, err := s.Changes(ctx, 0)
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range f.C() {
			}
		}()
		defer func() { f.Close(); <-done }()
	}
	work := make(chan struct{}, writers)
	errs := make(chan error, writers)
	var wg, warm sync.WaitGroup
	for w := range writers {
		o, err := s.Owner(ctx, "w"+strconv.Itoa(w), core.OwnerOptions{})
		if err != nil {
			b.Fatal(err)
		}
		sc := core.ConfigScope("bench", "w"+strconv.Itoa(w))
		warm.Add(1)
		wg.Go(func() {
			// Warm-up, untimed: the key exists, the first sequence block
			// is reserved.
			n := int64(1)
			err := o.Update(ctx, sc, core.Values{"n": n})
			warm.Done()
			if err != nil {
				errs <- err
				for range work {
				}
				return
			}
			for range work {
				n++
				if err := o.Update(ctx, sc, core.Values{"n": n}); err != nil {
					errs <- err
					for range work { // drain, so the loop never blocks
					}
					return
				}
			}
		})
	}
	warm.Wait()
	before := statsOf(b, s).Journal.Commits
	b.ReportAllocs()
	n := 0
	start := time.Now()
	for b.Loop() {
		work <- struct{}{}
		n++
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	st := statsOf(b, s).Journal
	b.ReportMetric(float64(n)/elapsed.Seconds(), "updates/s")
	b.ReportMetric(float64(st.Commits-before)/float64(n), "fsyncs/op")
	b.ReportMetric(float64(st.MaxBatch), "max-batch")
}

// BenchmarkStateUpdatesWithJournal: one producer flaps a state key (the
// workload of core's BenchmarkFlap), on a store with its journal attached
// (journal=on) and, side by side, on a bare in-memory core registry
// (journal=off). State never touches the disk (R26): the two should be
// within noise of each other (issue: "state updates are not slowed by the
// journal being attached"), apart from the rare durable reservation of a
// block of sequence numbers (R7).
func BenchmarkStateUpdatesWithJournal(b *testing.B) {
	for _, width := range []int{1, 10000} {
		for _, journal := range []bool{true, false} {
			name := fmt.Sprintf("keys=%d/journal=%s", width, map[bool]string{true: "on", false: "off"}[journal])
			b.Run(name, func(b *testing.B) {
				ctx := context.Background()
				var o updater
				if journal {
					s, err := store.Open(b.TempDir(), store.Options{})
					if err != nil {
						b.Fatal(err)
					}
					defer s.Close()
					if o, err = s.Owner(ctx, "flapper", core.OwnerOptions{}); err != nil {
						b.Fatal(err)
					}
				} else {
					r := core.New(core.Options{})
					defer r.Close()
					var err error
					if o, err = r.Owner(ctx, "flapper", core.OwnerOptions{}); err != nil {
						b.Fatal(err)
					}
				}
				sc := core.StateScope("net", "eth0")
				for i := range width - 1 {
					if err := o.Update(ctx, sc, core.Values{"k" + strconv.Itoa(i): i}); err != nil {
						b.Fatal(err)
					}
				}
				on, off := core.Values{"up": true}, core.Values{"up": false}
				// Warm-up, untimed: the first sequence block is reserved.
				if err := o.Update(ctx, sc, off); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				i := 0
				start := time.Now()
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
				b.ReportMetric(float64(i)/time.Since(start).Seconds(), "updates/s")
			})
		}
	}
}

// updater is what store.Owner and *core.Owner have in common here.
type updater interface {
	Update(ctx context.Context, scope core.Scope, values core.Values) error
}

// BenchmarkRecovery: the time store.Open (and Close) takes on a data dir
// holding N config updates over 10,000 keys, written with the default
// checkpoint policy (R27, R28). The dir is built once, before the timed
// loop, with NoSync for speed (the bytes on disk are the same); the timed
// opens use real fsync. Reports open-ms, the records replayed after the
// checkpoint, and the size of the data dir. Issue targets for 10^6
// updates: ≤ 0.5 s and ≤ 64 MiB. The 10^6 case runs only with
// -recovery-large (its build takes tens of seconds).
func BenchmarkRecovery(b *testing.B) {
	for _, updates := range []int{1e4, 1e5, 1e6} {
		b.Run("updates="+strconv.Itoa(updates), func(b *testing.B) {
			if updates >= 1e6 && !*recoveryLarge {
				b.Skip("10^6 updates: run with -recovery-large")
			}
			dir := b.TempDir()
			if *recoveryDir != "" {
				// A prebuilt dir, shared by baseline and candidate runs:
				// built on first use, opened read-mostly after.
				dir = filepath.Join(*recoveryDir, "updates="+strconv.Itoa(updates))
			}
			if _, err := os.Stat(filepath.Join(dir, "ready")); err != nil {
				buildStart := time.Now()
				if err := os.MkdirAll(dir, 0o755); err != nil {
					b.Fatal(err)
				}
				buildRecoveryDir(b, dir, updates, 10000)
				b.Logf("built %d updates in %v", updates, time.Since(buildStart).Round(time.Millisecond))
				if err := os.WriteFile(filepath.Join(dir, "ready"), nil, 0o644); err != nil {
					b.Fatal(err)
				}
			}
			size := dirSize(b, dir)
			b.ReportAllocs()
			n, records := 0, 0
			start, cpu0 := time.Now(), cpuTime()
			for b.Loop() {
				s, err := store.Open(dir, store.Options{})
				if err != nil {
					b.Fatal(err)
				}
				records = s.Recovery().Records
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(n), "open-ms")
			// Process CPU per Open: on a shared machine wall time also
			// counts the waiting.
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(n), "open-cpu-ms")
			b.ReportMetric(float64(records), "records")
			b.ReportMetric(float64(size)/(1<<20), "dir-MiB")
		})
	}
}

// buildRecoveryDir writes updates config updates over keys keys (100 per
// scope) into a store on dir, from 64 writers so that group commit keeps
// the build short.
func buildRecoveryDir(b *testing.B, dir string, updates, keys int) {
	const writers = 64
	ctx := context.Background()
	s, err := store.Open(dir, store.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}()
	scopes := make([]core.Scope, keys/100+1)
	for i := range scopes {
		scopes[i] = core.ConfigScope("recovery", "s"+strconv.Itoa(i))
	}
	names := make([]string, keys)
	for i := range names {
		names[i] = "key-" + strconv.Itoa(i)
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		// Half the writers keep config (saved), half write runtime config:
		// keys end up in both layers, with metadata (R37, R42).
		layer := core.Runtime
		if w%2 == 0 {
			layer = core.Saved
		}
		o, err := s.Owner(ctx, "builder-"+strconv.Itoa(w), core.OwnerOptions{Layer: layer})
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			for i := w; i < updates; i += writers {
				k := i % keys
				if err := o.Update(ctx, scopes[k/100], core.Values{names[k]: map[string]any{"n": int64(i), "on": i%2 == 0}}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	if got := statsOf(b, s).ConfigKeys; got != min(keys, updates) {
		b.Fatalf("built %d keys, want %d", got, min(keys, updates))
	}
}

func dirSize(b *testing.B, dir string) int64 {
	var size int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if fi, err := d.Info(); err == nil && fi.Mode().IsRegular() {
			size += fi.Size()
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return size
}

// BenchmarkReloadDefaults: ReloadDefaults of a defaults directory of 10,000
// keys (10 files of 10 scopes of 100 keys) whose values all change on
// every reload (R40; target ≤ 50 ms). It reports reload-ms and the
// notifications a subscriber got per reload (target: one).
func BenchmarkReloadDefaults(b *testing.B) {
	ctx := context.Background()
	defs := b.TempDir()
	write := func(v int) {
		for f := range 10 {
			subs := map[string]any{}
			doc := map[string]any{"file" + strconv.Itoa(f): subs}
			for sc := range 10 {
				vals := map[string]any{}
				for k := range 100 {
					vals["key-"+strconv.Itoa(k)] = map[string]any{"v": v, "name": "default " + strconv.Itoa(k)}
				}
				subs["s"+strconv.Itoa(sc)] = vals
			}
			data, err := json.Marshal(doc)
			if err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(defs, fmt.Sprintf("%02d.json", f)), data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	write(0)
	s, err := store.Open(b.TempDir(), store.Options{NoSync: true, DefaultsDir: defs})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if n := statsOf(b, s).ConfigKeys; n != 10000 {
		b.Fatalf("%d default keys, want 10,000", n)
	}
	sub, err := s.Subscribe(ctx, core.SubscribeOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	<-sub.C()
	deliveries := 0
	var elapsed, cpu time.Duration
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		write(i)
		b.StartTimer()
		start, cpu0 := time.Now(), cpuTime()
		if err := s.ReloadDefaults(ctx); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
		cpu += cpuTime() - cpu0
		snap := <-sub.C() // the reload's notification
		deliveries++
		if snap.Seq() != statsOf(b, s).Seq {
			b.Fatalf("delivery of seq %d, the registry is at %d", snap.Seq(), statsOf(b, s).Seq)
		}
	}
	select {
	case <-sub.C():
		deliveries++
	default:
	}
	b.ReportMetric(float64(elapsed.Microseconds())/1000/float64(i), "reload-ms")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(i), "reload-cpu-ms")
	b.ReportMetric(float64(deliveries)/float64(i), "notifications/reload")
}
