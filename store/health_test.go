package store_test

import (
	"bytes"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/wire"
	"github.com/sysreg/sysreg/store"
)

// logBuf is a logger's output that tests can read, and wait on, while the
// store writes.
type logBuf struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{} // closed and replaced by every Write
}

func (b *logBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.written != nil {
		close(b.written)
		b.written = nil
	}
	return b.buf.Write(p)
}

func (b *logBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// count is how many lines hold msg.
func (b *logBuf) count(msg string) int {
	n, _ := b.countAndWait(msg)
	return n
}

// countAndWait is count, and a channel closed by the next Write.
func (b *logBuf) countAndWait(msg string) (int, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.written == nil {
		b.written = make(chan struct{})
	}
	return strings.Count(b.buf.String(), msg), b.written
}

// waitLog waits until n lines hold msg: the logger's writes wake it, so it
// returns as soon as the code under test has logged them. After 10 s it
// fails the test.
func (b *logBuf) waitLog(t *testing.T, msg string, n int) {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		got, written := b.countAndWait(msg)
		if got >= n {
			return
		}
		select {
		case <-written:
		case <-timeout.C:
			t.Fatalf("%d log lines hold %q, want %d:\n%s", got, msg, n, b)
		}
	}
}

func newLog() (hclog.Logger, *logBuf) {
	b := &logBuf{}
	return hclog.New(&hclog.LoggerOptions{Output: b, Level: hclog.Warn}), b
}

// stalledSubscriber connects to socket, subscribes to every change with no
// rate limit and returns the connection once the subscription exists (its
// reply has come), never to read it again: the daemon's deliveries to it
// pile up in the socket's buffers.
func stalledSubscriber(t *testing.T, socket string) net.Conn {
	t.Helper()
	conn, err := net.Dial("unix", socket)
	must(t, err)
	t.Cleanup(func() { conn.Close() })
	var req []byte
	req, _ = wire.AppendFrame(req, wire.THello, 1, wire.Hello{Version: wire.Version, Client: "stalled"})
	req, _ = wire.AppendFrame(req, wire.TSubscribe, 2, wire.Subscribe{})
	_, err = conn.Write(req)
	must(t, err)
	// The server registers the subscription before it replies; a
	// delivery may overtake the reply.
	for {
		f, _, err := wire.ReadFrame(conn, wire.MaxReplyFrame, nil)
		must(t, err)
		switch {
		case f.Type == wire.TError:
			t.Fatalf("request %d refused: %s", f.ID, f.Body)
		case f.Type == wire.TSubscribeOK && f.ID == 2:
			return conn
		}
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
// its deliveries is never counted (R51). The thresholds run on
// testing/synctest's clock.
func TestR51_LaggingEmbeddedSubscriber(t *testing.T) {
	const minLag = 200 * time.Millisecond
	synctest.Test(t, func(t *testing.T) {
		log, out := newLog()
		s, err := store.OpenWithKnobs(t.TempDir(), store.Options{NoSync: true, Logger: log},
			store.Knobs{MinLag: minLag, LagScan: 10 * time.Millisecond})
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
		synctest.Wait()
		if n := statsOf(t, s).Deliveries; n < 1 {
			t.Fatalf("the reader took %d deliveries, want its first", n)
		}

		stuck, err := s.Subscribe(ctx, core.SubscribeOptions{})
		must(t, err)
		defer stuck.Close()
		advance(minLag - 50*time.Millisecond)
		if n := statsOf(t, s).LaggingSubscribers; n != 0 {
			t.Fatalf("%d lagging subscribers counted before the threshold, want 0", n)
		}
		// Past the threshold, and a few scans more: counted once.
		advance(100 * time.Millisecond)
		if n := statsOf(t, s).LaggingSubscribers; n != 1 {
			t.Fatalf("%d lagging subscribers counted, want 1 (the stuck one, once)", n)
		}
		if n := out.count(lagMsg); n != 1 {
			t.Fatalf("%d lag warnings, want 1:\n%s", n, out)
		}
		// A newer state replaces the untaken one: a new delivery, counted
		// again, but not logged again within the minute.
		o, err := s.Owner(ctx, "a", core.OwnerOptions{})
		must(t, err)
		must(t, o.Update(ctx, eth0, core.Values{"up": true}))
		advance(minLag + 50*time.Millisecond)
		if n := statsOf(t, s).LaggingSubscribers; n != 2 {
			t.Fatalf("%d lagging subscribers counted, want 2 (the second untaken delivery)", n)
		}
		<-stuck.C()
		if n := out.count(lagMsg); n != 1 {
			t.Errorf("%d lag warnings, want 1 (once a minute):\n%s", n, out)
		}
	})
}

// advance lets d pass on the clock of the calling testing/synctest bubble
// and returns once every goroutine of the bubble is idle.
func advance(d time.Duration) {
	<-time.After(d)
	synctest.Wait()
}

// TestR51_DroppedClientWarning: a remote client that stops reading while
// deliveries pile up is disconnected after the server's WriteTimeout,
// counted in SlowClients and logged at WARN once (R51).
func TestR51_DroppedClientWarning(t *testing.T) {
	log, out := newLog()
	d := startDaemonOpts(t, t.TempDir(), store.Options{NoSync: true, Logger: log},
		store.ServerOptions{WriteTimeout: 100 * time.Millisecond, Logger: log})
	st, srv, socket := d.st, d.srv, d.socket

	stalledSubscriber(t, socket)

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
	out.waitLog(t, dropMsg, 1) // counted first, then logged
	if n := out.count(dropMsg); n != 1 {
		t.Errorf("%d dropped-client warnings, want 1:\n%s", n, out)
	}
}
