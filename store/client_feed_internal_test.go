package store

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sysreg/sysreg/internal/wire"
)

// feedScript is a fake daemon for one Client connection that serves a
// change feed (R47) by script, to hold a feed's restart at a chosen
// point: the first changes request gets items 1..items; an unchanges is
// answered and reported on unchanged, after which one stale item (Seq
// 10 000) is still pushed under the ended id; a later changes request is
// reported on restarts and, if answer, served from its From (the item
// at From again first, which the client must drop), else left unanswered.
type feedScript struct {
	items     uint64
	answer    bool
	restarts  chan wire.Changes
	unchanged chan uint64
	done      chan struct{}
}

func startFeedScript(t *testing.T, items uint64, answer bool) (*feedScript, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "sr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	s := &feedScript{items: items, answer: answer, restarts: make(chan wire.Changes, 4), unchanged: make(chan uint64, 4), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		nc, err := ln.Accept()
		ln.Close()
		if err != nil {
			return
		}
		defer nc.Close()
		s.serve(nc)
	}()
	return s, socket
}

func (s *feedScript) serve(nc net.Conn) {
	br := bufio.NewReader(nc)
	bw := bufio.NewWriter(nc)
	var buf []byte
	write := func(t wire.Type, id uint64, body any) {
		b, err := wire.AppendFrame(nil, t, id, body)
		if err != nil {
			panic(err)
		}
		bw.Write(b)
	}
	push := func(id, from, to uint64) {
		for seq := from; seq <= to; seq++ {
			write(wire.TChange, id, wire.FeedItem{Seq: seq, Time: int64(seq)})
		}
	}
	feeds := 0
	for {
		var f wire.Frame
		var err error
		if f, buf, err = wire.ReadFrame(br, wire.MaxReplyFrame, buf); err != nil {
			return
		}
		switch f.Type {
		case wire.THello:
			write(wire.THelloOK, f.ID, wire.HelloOK{Version: wire.Version, Server: "script", MaxFrame: wire.DefaultMaxFrame})
		case wire.TChanges:
			var r wire.Changes
			if err := wire.DecodeBody(f, &r); err != nil {
				panic(err)
			}
			feeds++
			if feeds == 1 {
				write(wire.TChangesOK, f.ID, wire.ChangesOK{Feed: f.ID})
				push(f.ID, r.From+1, s.items)
				break
			}
			s.restarts <- r
			if s.answer {
				write(wire.TChangesOK, f.ID, wire.ChangesOK{Feed: f.ID})
				push(f.ID, r.From, s.items)
			}
		case wire.TUnchanges:
			var u wire.Unchanges
			if err := wire.DecodeBody(f, &u); err != nil {
				panic(err)
			}
			write(wire.TOK, f.ID, nil)
			push(u.Feed, 10000, 10000)
			s.unchanged <- u.Feed
		default:
			write(wire.TOK, f.ID, nil)
		}
		if err := bw.Flush(); err != nil {
			return
		}
	}
}

func recvWithin(t *testing.T, ch <-chan uint64) uint64 {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatal("fake daemon: no unchanges within 20s")
		return 0
	}
}

// TestR47_ClientFeedRestart: a Client's feed whose queue overflowed ends
// its feed on the daemon, and once half read asks for a new one from the
// last item it queued; the items of the ended feed and those at or below
// that point are dropped, so the consumer sees each Seq once, in order.
func TestR47_ClientFeedRestart(t *testing.T) {
	defer goleak.VerifyNone(t)
	const n = clientFeedCap + 300
	s, socket := startFeedScript(t, n, true)
	c, err := Dial(t.Context(), socket)
	if err != nil {
		t.Fatal(err)
	}
	f, err := c.Changes(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	first := recvWithin(t, s.unchanged) // the queue overflowed; nothing read yet
	for want := uint64(1); want <= n; want++ {
		select {
		case it := <-f.C():
			if it.Seq != want {
				t.Fatalf("item Seq %d, want %d", it.Seq, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("no item %d within 20s (Err %v)", want, f.Err())
		}
	}
	if r := <-s.restarts; r.From < clientFeedQ || r.From > clientFeedCap {
		t.Fatalf("restarted from %d, want the last item held, %d to %d", r.From, clientFeedQ, clientFeedCap)
	}
	f.Close()
	if second := recvWithin(t, s.unchanged); second == first {
		t.Fatalf("Close ended feed %d again, not the restarted one", first)
	}
	if _, ok := <-f.C(); ok || !errors.Is(f.Err(), ErrClosed) {
		t.Fatalf("after Close: C open %v, Err %v", ok, f.Err())
	}
	c.Close()
	<-s.done
}

// TestR47_ClientFeedEndDuringRestart: Close, or the end of the feed's
// ctx, while the restart's changes request is unanswered ends the feed
// with the documented Err (Feed.Err), ends the restarted feed on the
// daemon, and leaves no goroutine behind.
func TestR47_ClientFeedEndDuringRestart(t *testing.T) {
	for _, how := range []string{"close", "ctx"} {
		t.Run(how, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			s, socket := startFeedScript(t, clientFeedCap+300, false)
			c, err := Dial(t.Context(), socket)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			f, err := c.Changes(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			first := recvWithin(t, s.unchanged)
			var r wire.Changes
		read: // until the restart is asked for
			for {
				select {
				case <-f.C():
				case r = <-s.restarts:
					break read
				case <-time.After(20 * time.Second):
					t.Fatal("no restart within 20s")
				}
			}
			if r.From < clientFeedQ || r.From > clientFeedCap {
				t.Fatalf("restarted from %d, want %d to %d", r.From, clientFeedQ, clientFeedCap)
			}
			want := error(ErrClosed)
			if how == "close" {
				f.Close()
			} else {
				cancel()
				want = context.Canceled
			}
			for range f.C() {
			}
			if !errors.Is(f.Err(), want) {
				t.Fatalf("Err %v, want %v", f.Err(), want)
			}
			if second := recvWithin(t, s.unchanged); second == first {
				t.Fatalf("ended feed %d again, not the restarted one", first)
			}
			f.Close()
			c.Close()
			<-s.done
		})
	}
}
