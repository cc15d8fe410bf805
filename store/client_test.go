package store_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

// daemon runs a Server for a Store on a Unix socket in a short temp path.
type daemon struct {
	st     *store.Store
	srv    *store.Server
	socket string
	served chan error
}

func startDaemon(t *testing.T, dir string, opts store.ServerOptions) *daemon {
	t.Helper()
	return startDaemonOpts(t, dir, store.Options{NoSync: true}, opts)
}

// startDaemonOpts is startDaemon with the store's options.
func startDaemonOpts(t *testing.T, dir string, sopts store.Options, opts store.ServerOptions) *daemon {
	t.Helper()
	st, err := store.Open(dir, sopts)
	if err != nil {
		t.Fatal(err)
	}
	sockDir, err := os.MkdirTemp("", "sr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	d := &daemon{st: st, srv: store.NewServer(st, opts), socket: filepath.Join(sockDir, "s"), served: make(chan error, 1)}
	ln, err := net.Listen("unix", d.socket)
	if err != nil {
		t.Fatal(err)
	}
	go func() { d.served <- d.srv.Serve(ln) }()
	t.Cleanup(func() { d.stop(t) })
	return d
}

func (d *daemon) stop(t *testing.T) {
	if d.srv == nil {
		return
	}
	if err := d.srv.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
	if err := <-d.served; !errors.Is(err, store.ErrServerClosed) {
		t.Errorf("Serve returned %v", err)
	}
	d.st.Close()
	d.srv = nil
}

func dial(t *testing.T, d *daemon) *store.Client {
	t.Helper()
	c, err := store.Dial(t.Context(), d.socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestR32_ClientSameAsEmbedded runs the same scenario against an embedded
// store and a client of the daemon, and expects the same results and errors.
func TestR32_ClientSameAsEmbedded(t *testing.T) {
	embedded := open(t, t.TempDir(), store.Options{NoSync: true})
	d := startDaemon(t, t.TempDir(), store.ServerOptions{})
	remote := dial(t, d)
	for name, reg := range map[string]store.Registry{"embedded": embedded, "client": remote} {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			sub, err := reg.Subscribe(ctx, core.SubscribeOptions{})
			must(t, err)
			if s := <-sub.C(); s.Seq() != 0 {
				t.Fatalf("initial delivery seq %d", s.Seq())
			}
			a, err := reg.Owner(ctx, "a", core.OwnerOptions{})
			must(t, err)
			b, err := reg.Owner(ctx, "", core.OwnerOptions{})
			must(t, err)
			if b.Name() == "" {
				t.Fatal("anonymous owner has no name")
			}
			if _, err := reg.Owner(ctx, "a", core.OwnerOptions{}); !errors.Is(err, core.ErrOwnerInUse) {
				t.Fatalf("second owner a: %v", err)
			}
			must(t, a.Update(ctx, eth0, core.Values{"up": true, "n": uint64(1) << 63, "raw": []byte{0, 1}}))
			err = b.Update(ctx, eth0, core.Values{"up": false})
			var rk *core.ReservedKeysError
			if !errors.As(err, &rk) || !errors.Is(err, core.ErrReservedKeys) || rk.Scope != eth0 || len(rk.Keys) != 1 || rk.Keys[0] != "up" {
				t.Fatalf("foreign update: %v", err)
			}
			if err := a.Update(ctx, core.Scope{Bucket: core.State, Type: "x"}, core.Values{"k": 1}); !errors.Is(err, core.ErrInvalidScope) {
				t.Fatalf("bad scope: %v", err)
			}
			must(t, a.Commit(ctx, core.Put(wifi, core.Values{"ssid": "x"}), core.Put(eth0, core.Values{"up": false})))
			snap, err := reg.Snapshot(ctx)
			must(t, err)
			if v, _ := snap.Get(eth0, "n"); v != uint64(1)<<63 {
				t.Fatalf("uint64 over the wire: %T %v", v, v)
			}
			if v, _ := snap.Get(wifi, "ssid"); v != "x" {
				t.Fatalf("commit: %v", snap.Map())
			}
			// Own changes are delivered (R23); the latest state arrives.
			deadline := time.After(5 * time.Second)
			for got := false; !got; {
				select {
				case s := <-sub.C():
					got = s.Seq() == snap.Seq()
				case <-deadline:
					t.Fatal("no delivery of the latest state")
				}
			}
			must(t, a.Close())
			must(t, a.Close())
			snap, _ = reg.Snapshot(ctx)
			if snap.Len(0) != 0 {
				t.Fatalf("R13: keys left after owner death: %v", snap.Map())
			}
			must(t, sub.Close())
			must(t, sub.Close())
			must(t, b.Close())
		})
	}
}

// TestR31_ConnectionDropKillsOwners: when a client's connection drops, its
// owners die (R31, R13).
func TestR31_ConnectionDropKillsOwners(t *testing.T) {
	d := startDaemon(t, t.TempDir(), store.ServerOptions{})
	ctx := t.Context()
	c := dial(t, d)
	o, err := c.Owner(ctx, "short", core.OwnerOptions{})
	must(t, err)
	must(t, o.Update(ctx, eth0, core.Values{"up": true}))
	must(t, o.Update(ctx, wifi, core.Values{"ssid": "x"}))
	k, err := c.Owner(ctx, "tool", core.OwnerOptions{KeepConfig: true})
	must(t, err)
	must(t, k.Update(ctx, wifi, core.Values{"kept": 1}))
	watcher := dial(t, d)
	sub, err := watcher.Subscribe(ctx, core.SubscribeOptions{})
	must(t, err)
	c.Close()
	if err := o.Update(ctx, eth0, core.Values{"up": false}); !errors.Is(err, store.ErrClosed) && !errors.Is(err, store.ErrConnLost) {
		t.Fatalf("update after Close: %v", err)
	}
	timeout := time.After(5 * time.Second)
	for {
		select {
		case s := <-sub.C():
			if s.Len(0) == 1 {
				if v, _ := s.Get(wifi, "kept"); v != int64(1) {
					t.Fatalf("after drop: %v", s.Map())
				}
				return
			}
		case <-timeout:
			s, _ := watcher.Snapshot(ctx)
			t.Fatalf("owners did not die with the connection: %v", s.Map())
		}
	}
}
