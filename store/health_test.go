package store_test

import (
	"bytes"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/wire"
	"github.com/sysreg/sysreg/store"
)

// logBuf is a logger's output that tests can read while the store writes.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// count is how many lines hold msg.
func (b *logBuf) count(msg string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), msg)
}

func newLog() (hclog.Logger, *logBuf) {
	b := &logBuf{}
	return hclog.New(&hclog.LoggerOptions{Output: b, Level: hclog.Warn}), b
}

// waitFor polls cond (a store's counter or log) until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling a counter, not ordering goroutines
	}
}

const (
	slowMsg = "slow journal append"
	lagMsg  = "subscriber lags"
	dropMsg = "client does not read"
)

// TestR51_SlowAppendWarning: a config append slower than the threshold is
// logged at WARN, once a minute however many there are; under the
// threshold nothing is logged. The test shrinks the threshold to 1 ns
// rather than stall the disk for a second.
func TestR51_SlowAppendWarning(t *testing.T) {
	for _, tc := range []struct {
		name string
		slow time.Duration
		want int
	}{
		{"threshold=1ns", time.Nanosecond, 1},
		{"threshold=1h", time.Hour, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log, out := newLog()
			s, err := store.OpenWithKnobs(t.TempDir(), store.Options{NoSync: true, Logger: log}, store.Knobs{SlowAppend: tc.slow})
			must(t, err)
			defer s.Close()
			o, err := s.Owner(t.Context(), "a", core.OwnerOptions{KeepConfig: true})
			must(t, err)
			for i := range 5 {
				must(t, o.Update(t.Context(), wifi, core.Values{"i": i}))
			}
			if n := out.count(slowMsg); n != tc.want {
				t.Errorf("%d slow-append warnings, want %d:\n%s", n, tc.want, out)
			}
			if st := statsOf(t, s); st.Append.Count < 5 {
				t.Errorf("append histogram counted %d, want at least 5", st.Append.Count)
			}
		})
	}
}

// TestR51_LaggingEmbeddedSubscriber: an embedded subscription that leaves
// its delivery untaken past the threshold is counted and logged; each
// delivery counts once, the warning comes once a minute; one that takes
// its deliveries is never counted (R51).
func TestR51_LaggingEmbeddedSubscriber(t *testing.T) {
	log, out := newLog()
	s, err := store.OpenWithKnobs(t.TempDir(), store.Options{NoSync: true, Logger: log},
		store.Knobs{MinLag: 200 * time.Millisecond, LagScan: 10 * time.Millisecond}) // the reader takes within 200 ms
	must(t, err)
	defer s.Close()
	ctx := t.Context()
	reader, err := s.Subscribe(ctx, core.SubscribeOptions{})
	must(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range reader.C() {
		}
	}()
	defer func() { reader.Close(); <-done }()
	waitFor(t, "the reader to take its first delivery", func() bool { return statsOf(t, s).Deliveries >= 1 })

	stuck, err := s.Subscribe(ctx, core.SubscribeOptions{})
	must(t, err)
	defer stuck.Close()
	waitFor(t, "the stuck subscriber to be counted", func() bool { return statsOf(t, s).LaggingSubscribers == 1 })
	if n := out.count(lagMsg); n != 1 {
		t.Fatalf("%d lag warnings, want 1:\n%s", n, out)
	}
	// A newer state replaces the untaken one: a new delivery, counted
	// again, but not logged again within the minute.
	o, err := s.Owner(ctx, "a", core.OwnerOptions{})
	must(t, err)
	must(t, o.Update(ctx, eth0, core.Values{"up": true}))
	waitFor(t, "the second untaken delivery to be counted", func() bool { return statsOf(t, s).LaggingSubscribers == 2 })
	<-stuck.C()
	if n := out.count(lagMsg); n != 1 {
		t.Errorf("%d lag warnings, want 1 (once a minute):\n%s", n, out)
	}
}

// TestR51_DroppedClientWarning: a remote client that stops reading while
// deliveries pile up is disconnected after the server's WriteTimeout,
// counted in SlowClients and logged at WARN once (R51).
func TestR51_DroppedClientWarning(t *testing.T) {
	log, out := newLog()
	d := startDaemonOpts(t, t.TempDir(), store.Options{NoSync: true, Logger: log},
		store.ServerOptions{WriteTimeout: 100 * time.Millisecond, Logger: log})
	st, srv, socket := d.st, d.srv, d.socket

	stalled, err := net.Dial("unix", socket)
	must(t, err)
	defer stalled.Close()
	var req []byte
	req, _ = wire.AppendFrame(req, wire.THello, 1, wire.Hello{Version: wire.Version, Client: "stalled"})
	req, _ = wire.AppendFrame(req, wire.TSubscribe, 2, wire.Subscribe{})
	_, err = stalled.Write(req)
	must(t, err)
	waitFor(t, "the stalled subscription", func() bool { return statsOf(t, st).Subscriptions == 1 })

	// Deliveries of 256 KiB each fill the socket's buffers at once.
	o, err := st.Owner(t.Context(), "big", core.OwnerOptions{})
	must(t, err)
	ballast := make([]byte, 256<<10)
	for i := 0; srv.Stats().SlowClients == 0; i++ {
		ballast[0] = byte(i)
		must(t, o.Update(t.Context(), eth0, core.Values{"b": ballast}))
		if i > 100_000 {
			t.Fatal("the stalled client was never dropped")
		}
	}
	waitFor(t, "the warning", func() bool { return out.count(dropMsg) >= 1 })
	if n := out.count(dropMsg); n != 1 {
		t.Errorf("%d dropped-client warnings, want 1:\n%s", n, out)
	}
}
