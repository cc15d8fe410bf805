package main

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sysreg/sysreg/core"
)

// TestWait runs 'sysregd wait' against a real daemon (R49): a condition that
// already holds returns at once, one that comes true later returns when it
// does (on the subscription's delivery), a timeout is exit 1 naming what is
// missing, bad arguments are exit 2.
func TestWait(t *testing.T) {
	d := startDaemon(t, t.TempDir(), "--no-sync")
	sock := d.socket
	ok(t, sock, "set", "--owner", "netd", "--keep-config", "config/net/wan",
		"up=true", "mtu=1500", `dns=["1.1.1.1","9.9.9.9"]`, `opts={"a":1,"b":"x"}`, "name=wan0", "ratio=0.5")

	t.Run("already-there", func(t *testing.T) {
		for _, args := range [][]string{
			{"up=true"}, {"up"}, {"mtu=1500"}, {"mtu=1500.0"}, {"name=wan0"}, {`name="wan0"`},
			{`dns=["1.1.1.1","9.9.9.9"]`}, {`opts={"b":"x","a":1.0}`}, {"ratio=0.50"},
			{"up=true", "mtu=1500", "name"},
		} {
			r := cli(t, sock, append([]string{"wait", "--timeout", "10s", "config/net/wan"}, args...)...)
			if r.code != 0 || r.stdout != "" {
				t.Errorf("wait %s: %s", args, r)
			}
		}
	})

	t.Run("arriving-later", func(t *testing.T) {
		p := start(t, sock, "wait", "--timeout", "30s", "state/net/wlan0", "up=true", "addr")
		c := d.dial(t)
		o, err := c.Owner(t.Context(), "wifid", core.OwnerOptions{})
		must(t, err)
		must(t, o.Update(t.Context(), core.Scope{Bucket: core.State, Type: "net", Subtype: "wlan0"}, core.Values{"up": false, "addr": "10.0.0.2"}))
		must(t, o.Update(t.Context(), core.Scope{Bucket: core.State, Type: "net", Subtype: "other"}, core.Values{"up": true}))
		select {
		case <-p.done:
			t.Fatalf("wait returned before up=true: exit %d\n%s", p.state.ExitCode(), p.stderr)
		case <-time.After(200 * time.Millisecond): // a wrong early exit would show here; no synchronisation relies on it
		}
		must(t, o.Update(t.Context(), core.Scope{Bucket: core.State, Type: "net", Subtype: "wlan0"}, core.Values{"up": true}))
		if code := p.wait(10 * time.Second); code != 0 {
			t.Fatalf("wait: exit %d\n%s", code, p.stderr)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		start := time.Now()
		r := cli(t, sock, "wait", "--timeout", "300ms", "config/net/wan", "up=false", "gone")
		if r.code != 1 || r.stdout != "" {
			t.Fatalf("want exit 1: %s", r)
		}
		for _, want := range []string{"timed out", "up is true, want false", "gone is absent"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q: %s", want, r)
			}
		}
		if el := time.Since(start); el < 300*time.Millisecond {
			t.Errorf("returned after %v, before the timeout", el)
		}
	})

	t.Run("interrupted", func(t *testing.T) {
		p := start(t, sock, "wait", "--timeout", "0", "config/net/wan", "up=false")
		// Wait until it is subscribed: the daemon counts it.
		c := d.dial(t)
		poll(t, 10*time.Second, "the wait's subscription", func() bool {
			m, err := c.Stats(t.Context())
			return err == nil && m.Subscriptions == 1
		})
		if code := p.signal(syscall.SIGINT); code != 1 {
			t.Fatalf("interrupted wait: exit %d, want 1\n%s", code, p.stderr)
		}
	})

	t.Run("bad-arguments", func(t *testing.T) {
		for _, args := range [][]string{
			{},
			{"config/net/wan"},
			{"config/net", "up"},
			{"nobucket/a/b", "up"},
			{"config/net/wan", "=true"},
			{"config/net/wan", "up", "up=true"},
			{"config/net/wan", "--", "-up=true"},
			{"config/net/wan", "n=1e400"},
			{"--timeout", "-1s", "config/net/wan", "up"},
			{"--timeout", "5", "config/net/wan", "up"},
		} {
			r := cli(t, sock, append([]string{"wait"}, args...)...)
			if r.code != 2 || !strings.Contains(r.stderr, "sysregd:") || r.stdout != "" {
				t.Errorf("wait %q: want usage error 2: %s", args, r)
			}
		}
	})

	t.Run("no-daemon", func(t *testing.T) {
		r := cli(t, sock+".none", "wait", "config/net/wan", "up")
		if r.code != 1 || !strings.Contains(r.stderr, "sysregd serve running") {
			t.Fatalf("%s", r)
		}
	})
}
