package store_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

// TestR30_ShutdownHonoursContext: with a config write stuck in its fsync
// (the journal's fault hook holds the commit), Shutdown returns ctx's error
// once ctx ends, after closing every connection, as net/http's Shutdown
// does — it does not wait for the stalled request. A second Shutdown
// waits for the rest once the journal moves again (R30).
func TestR30_ShutdownHonoursContext(t *testing.T) {
	var armed atomic.Bool
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	st, err := store.OpenWithHooks(t.TempDir(), store.Options{}, store.Hooks{BeforeCommit: func() error {
		if armed.Load() {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-release
		}
		return nil
	}})
	must(t, err)
	released := false
	t.Cleanup(func() {
		if !released {
			close(release)
		}
		st.Close()
	})

	sockDir, err := os.MkdirTemp("", "sr")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	socket := filepath.Join(sockDir, "s")
	ln, err := net.Listen("unix", socket)
	must(t, err)
	srv := store.NewServer(st, store.ServerOptions{})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	c, err := store.Dial(t.Context(), socket)
	must(t, err)
	defer c.Close()
	o, err := c.Owner(t.Context(), "writer", core.OwnerOptions{})
	must(t, err)

	armed.Store(true)
	updated := make(chan error, 1)
	go func() {
		updated <- o.Update(context.Background(), core.ConfigScope("ntp", "main"), core.Values{"server": "a"})
	}()
	<-entered // the write is in its commit, held there

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctx) }()
	select {
	case err := <-shut:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Shutdown with an ended ctx: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second): // a deadline, not synchronisation
		t.Fatal("Shutdown did not return after its ctx ended (a stalled fsync held it)")
	}
	// The connection was closed: the stalled call fails on the client
	// rather than waiting for the journal.
	select {
	case err := <-updated:
		if err == nil {
			t.Fatal("the stalled Update succeeded although its connection was closed")
		}
	case <-time.After(10 * time.Second): // a deadline, not synchronisation
		t.Fatal("the client's stalled Update did not return after Shutdown closed its connection")
	}
	if err := <-served; !errors.Is(err, store.ErrServerClosed) {
		t.Errorf("Serve: %v, want ErrServerClosed", err)
	}

	// The journal moves again: a second Shutdown waits for what was left.
	close(release)
	released = true
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	must(t, st.Close())
}
