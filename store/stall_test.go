package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

// TestR19_StalledSubscriberBounded: a remote subscriber that stops reading
// while producers flap a key costs the daemon bounded memory — the rate
// limit and coalescing run in the daemon and a subscription holds at most
// one undelivered snapshot (R19, R31) — and is disconnected after the
// server's WriteTimeout, while producers keep going.
func TestR19_StalledSubscriberBounded(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	srvLog := &logBuf{} // Debug: connections opened and closed, nothing per request
	srv := store.NewServer(st, store.ServerOptions{WriteTimeout: 500 * time.Millisecond,
		Logger: hclog.New(&hclog.LoggerOptions{Output: srvLog, Level: hclog.Debug})})
	sockDir, err := os.MkdirTemp("", "sr")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	socket := filepath.Join(sockDir, "s")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		srv.Shutdown(context.Background())
		if err := <-served; !errors.Is(err, store.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
		st.Close()
	}()

	// The stalled subscriber: a raw connection that says hello, subscribes
	// with no rate limit and, once subscribed, never reads again.
	stalled := stalledSubscriber(t, socket)

	producer, err := store.Dial(t.Context(), socket)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	// Ballast: every delivery carries 4 KiB more, so a backlog of encoded
	// deliveries, or of anything per change, would show in the heap.
	ballast, err := producer.Owner(t.Context(), "ballast", core.OwnerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ballast.Update(t.Context(), core.StateScope("ballast", "x"), core.Values{"b": make([]byte, 4<<10)}); err != nil {
		t.Fatal(err)
	}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	// Sample the heap while producers flap.
	var peak atomic.Uint64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
		}
	}()

	const flaps, producers = 100_000, 8
	start := time.Now()
	var wg sync.WaitGroup
	var maxLatency atomic.Int64
	for p := range producers {
		o, err := producer.Owner(t.Context(), fmt.Sprint("flapper-", p), core.OwnerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			scope := core.StateScope("flap", fmt.Sprint(p))
			for i := range flaps / producers {
				t0 := time.Now()
				if err := o.Update(context.Background(), scope, core.Values{"up": i%2 == 0}); err != nil {
					t.Errorf("flap %d: %v", i, err)
					return
				}
				if d := int64(time.Since(t0)); d > maxLatency.Load() {
					maxLatency.Store(d)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stopSampling)
	<-sampled

	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	peakGrowth := int64(peak.Load()) - int64(before.HeapInuse)
	stats := statsOf(t, st)
	t.Logf("%d flaps in %v (slowest update %v); heap %+d KiB after, peak in use %+d KiB; deliveries %d, coalesced %d",
		flaps, elapsed, time.Duration(maxLatency.Load()), growth>>10, peakGrowth>>10, stats.Deliveries, stats.Coalesced)
	if growth > 16<<20 || peakGrowth > 16<<20 {
		t.Errorf("heap grew by %d KiB (peak %d KiB in use) for one stalled subscriber; want < 16 MiB", growth>>10, peakGrowth>>10)
	}

	// The daemon gave up on the stalled client: only the producer's
	// connection is left, and the stalled one reads to its end.
	// The server logs "connection closed" once it has forgotten a
	// connection; the stalled one is the only one to end.
	srvLog.waitLog(t, "connection closed", 1)
	if n := srv.Stats().Connections; n != 1 {
		t.Fatalf("%d connections after the stalled client was dropped, want 1 (the producer's)", n)
	}
	stalled.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := io.Copy(io.Discard, stalled); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the stalled connection was not closed (read %d bytes)", n)
	}
	// The producers' sessions are alive and well.
	if _, err := producer.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	snap, err := producer.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if n := snap.Len(core.State); n != producers+1 {
		t.Fatalf("%d state keys after flapping, want %d", n, producers+1)
	}
}
