package store_test

import (
	"errors"
	"testing"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

// drain reads sub's channel until it is closed.
func drain(sub store.Subscription) {
	for range sub.C() {
	}
}

// TestR16_SubscriptionErr: Err says why C was closed — nil while it is
// open; the subscription's own Close; the registry or client closing; the
// daemon going away — embedded and over the socket alike (issue #8 item 10).
func TestR16_SubscriptionErr(t *testing.T) {
	t.Run("close", func(t *testing.T) {
		d := startDaemon(t, t.TempDir(), store.ServerOptions{})
		for name, reg := range map[string]store.Registry{"embedded": open(t, t.TempDir(), store.Options{NoSync: true}), "client": dial(t, d)} {
			t.Run(name, func(t *testing.T) {
				sub, err := reg.Subscribe(t.Context(), core.SubscribeOptions{})
				must(t, err)
				if err := sub.Err(); err != nil {
					t.Fatalf("Err of an open subscription: %v", err)
				}
				must(t, sub.Close())
				drain(sub)
				if err := sub.Err(); !errors.Is(err, core.ErrClosed) {
					t.Fatalf("Err after Close: %v, want ErrClosed", err)
				}
			})
		}
	})
	t.Run("registry-closed", func(t *testing.T) {
		d := startDaemon(t, t.TempDir(), store.ServerOptions{})
		c, err := store.Dial(t.Context(), d.socket)
		must(t, err)
		for name, reg := range map[string]store.Registry{"embedded": open(t, t.TempDir(), store.Options{NoSync: true}), "client": c} {
			t.Run(name, func(t *testing.T) {
				sub, err := reg.Subscribe(t.Context(), core.SubscribeOptions{})
				must(t, err)
				must(t, reg.Close())
				drain(sub)
				if err := sub.Err(); !errors.Is(err, core.ErrClosed) {
					t.Fatalf("Err after the registry closed: %v, want ErrClosed", err)
				}
			})
		}
	})
	t.Run("daemon-gone", func(t *testing.T) {
		d := startDaemon(t, t.TempDir(), store.ServerOptions{})
		c := dial(t, d)
		sub, err := c.Subscribe(t.Context(), core.SubscribeOptions{})
		must(t, err)
		d.stop(t)
		drain(sub)
		if err := sub.Err(); !errors.Is(err, store.ErrConnLost) {
			t.Fatalf("Err after the daemon went away: %v, want ErrConnLost", err)
		}
	})
}
