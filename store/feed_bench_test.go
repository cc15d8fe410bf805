package store_test

import (
	"bufio"
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/wire"
	"github.com/sysreg/sysreg/store"
)

// BenchmarkFeedLive: durable config updates from 64 writers (real fsync),
// without and with a change feed followed live (R47), side by side. Issue
// target: the feed costs at most 10 % of updates/s.
func BenchmarkFeedLive(b *testing.B) {
	for _, feed := range []bool{false, true} {
		name := "feed=off"
		if feed {
			name = "feed=on"
		}
		b.Run(name+"/writers=64", func(b *testing.B) { benchDurableFeed(b, 64, feed) })
	}
}

// feedHistory fills a store with n config mutations of one change each,
// all retained for the feed, and returns the seq of the last.
func feedHistory(b *testing.B, s *store.Store, n int) uint64 {
	ctx := context.Background()
	const writers = 32
	var wg sync.WaitGroup
	for w := range writers {
		o, err := s.Owner(ctx, "w"+strconv.Itoa(w), core.OwnerOptions{KeepConfig: true})
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			for i := w; i < n; i += writers {
				if err := o.Update(ctx, core.ConfigScope("bench", "w"+strconv.Itoa(w)), core.Values{"n": i, "s": "some text"}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	snap, err := s.Snapshot(ctx)
	if err != nil {
		b.Fatal(err)
	}
	return snap.Seq()
}

// BenchmarkFeedCatchUp: a feed reading back 50,000 retained mutations
// from the journal, embedded and over the socket (R47). Reports changes/s.
// Issue targets: ≥ 200,000/s embedded, ≥ 50,000/s over the socket.
func BenchmarkFeedCatchUp(b *testing.B) {
	const n = 50000
	opts := store.Options{NoSync: true, FeedRetention: 1 << 20, CheckpointRecords: 1 << 20}
	for _, over := range []string{"embedded", "socket"} {
		b.Run("via="+over, func(b *testing.B) {
			dir := b.TempDir()
			var reg store.Registry
			var s *store.Store
			if over == "socket" {
				d := startDaemonB(b, dir, opts)
				s = d.st
				c, err := store.Dial(context.Background(), d.socket)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				reg = c
			} else {
				var err error
				if s, err = store.Open(dir, opts); err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				reg = s
			}
			last := feedHistory(b, s, n)
			b.ReportAllocs()
			changes := 0
			start := time.Now()
			for b.Loop() {
				f, err := reg.Changes(context.Background(), 0)
				if err != nil {
					b.Fatal(err)
				}
				for it := range f.C() {
					changes += len(it.Changes)
					if it.Seq >= last {
						break
					}
				}
				f.Close()
			}
			b.ReportMetric(float64(changes)/time.Since(start).Seconds(), "changes/s")
		})
	}
}

// startDaemonB is startDaemonOpts for benchmarks.
func startDaemonB(b *testing.B, dir string, opts store.Options) *daemon {
	st, err := store.Open(dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	d := &daemon{st: st, srv: store.NewServer(st, store.ServerOptions{MaxFeeds: 4096}), socket: shortSocket(b), served: make(chan error, 1)}
	ln, err := net.Listen("unix", d.socket)
	if err != nil {
		b.Fatal(err)
	}
	go func() { d.served <- d.srv.Serve(ln) }()
	b.Cleanup(func() {
		d.srv.Shutdown(context.Background())
		<-d.served
		d.st.Close()
	})
	return d
}

// BenchmarkFeedIdle: the daemon's memory per idle change feed, 1,000
// feeds opened over one raw connection (so that only the daemon's side is
// counted): heap and goroutine stacks after a GC, per feed. Issue target:
// ≤ 4 KiB per feed.
func BenchmarkFeedIdle(b *testing.B) {
	const feeds = 1000
	d := startDaemonB(b, b.TempDir(), store.Options{NoSync: true})
	for b.Loop() {
		nc, err := net.Dial("unix", d.socket)
		if err != nil {
			b.Fatal(err)
		}
		br := bufio.NewReader(nc)
		call := func(t wire.Type, id uint64, body any) {
			frame, err := wire.AppendFrame(nil, t, id, body)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := nc.Write(frame); err != nil {
				b.Fatal(err)
			}
			if _, _, err := wire.ReadFrame(br, wire.MaxReplyFrame, nil); err != nil {
				b.Fatal(err)
			}
		}
		call(wire.THello, 1, wire.Hello{Version: wire.Version, Client: "bench"})
		before := memInUse()
		for i := range feeds {
			call(wire.TChanges, uint64(i+2), wire.Changes{From: 0})
		}
		after := memInUse()
		b.ReportMetric(float64(after-before)/feeds, "B/feed")
		nc.Close()
	}
}

func memInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc + m.StackInuse)
}

// shortSocket is a Unix socket path under a short temp directory.
func shortSocket(tb testing.TB) string {
	dir, err := os.MkdirTemp("", "sr")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s")
}
