package main

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

// TestGrace runs 'sysregd serve --grace' (R48): a client whose connection
// drops keeps its keys for the grace; the same name re-attaching within it
// takes them over with no change (the sequence number does not move);
// otherwise the keys go when it ends; another uid cannot take the name over
// within it; a daemon restart during grace keeps the config (R27) and the
// name can attach again.
func TestGrace(t *testing.T) {
	const grace = 2 * time.Second
	dir := t.TempDir()
	d := startDaemon(t, dir, "--no-sync", "--grace", grace.String())
	wlan, cfg := core.StateScope("net", "wlan0"), core.ConfigScope("net", "wlan0")

	attach := func(t *testing.T, name string) (*store.Client, store.Owner) {
		t.Helper()
		c, err := store.Dial(t.Context(), d.socket)
		must(t, err)
		t.Cleanup(func() { c.Close() })
		o, err := c.Owner(t.Context(), name, core.OwnerOptions{})
		must(t, err)
		return c, o
	}
	// dropped closes c, the connection that holds name's session, and
	// waits until the daemon has handled the drop: name is no longer live
	// (in grace, or gone). Counting connections instead raced with the
	// teardown of an earlier subtest's client, which could leave the count
	// one lower than expected forever.
	dropped := func(t *testing.T, c *store.Client, name string) {
		t.Helper()
		sc, err := store.Dial(t.Context(), d.socket)
		must(t, err)
		defer sc.Close()
		c.Close()
		poll(t, 10*time.Second, "the daemon to see the drop", func() bool {
			infos, err := sc.Owners(t.Context())
			if err != nil {
				t.Fatalf("owners: %v", err)
			}
			for _, in := range infos {
				if in.Name == name {
					return !in.Live
				}
			}
			return true
		})
	}
	holds := func(name string) (state, config bool) {
		c, err := store.Dial(t.Context(), d.socket)
		must(t, err)
		defer c.Close()
		s := snapshot(t, c)
		return s.Holds(name, core.State), s.Holds(name, core.Config)
	}

	t.Run("re-attach", func(t *testing.T) {
		c, o := attach(t, "netd")
		must(t, o.Update(t.Context(), wlan, core.Values{"up": true}))
		must(t, o.Update(t.Context(), cfg, core.Values{"ssid": "home"}))
		seq := snapshot(t, d.dial(t)).Seq() // d.dial's clients stay open until the end
		dropped(t, c, "netd")               // the connection drops: netd goes into grace
		_, o2 := attach(t, "netd")
		if s := snapshot(t, d.dial(t)); s.Seq() != seq || !s.Holds("netd", core.State) || !s.Holds("netd", core.Config) {
			t.Fatalf("after re-attach within grace: seq %d (want %d), keys held %v/%v", s.Seq(), seq, s.Holds("netd", core.State), s.Holds("netd", core.Config))
		}
		must(t, o2.Close()) // Detach is immediate (R13)
		if st, cf := holds("netd"); st || cf {
			t.Fatalf("after Close: netd still holds state %v config %v", st, cf)
		}
	})

	t.Run("grace-ends", func(t *testing.T) {
		c, o := attach(t, "wifid")
		must(t, o.Update(t.Context(), wlan, core.Values{"wifid": 1}))
		dropped(t, c, "wifid")
		if st, _ := holds("wifid"); !st {
			t.Fatal("keys gone at once, before the grace")
		}
		poll(t, grace+10*time.Second, "the end of the grace", func() bool { st, _ := holds("wifid"); return !st })
	})

	t.Run("other-uid", func(t *testing.T) {
		if os.Getuid() != 0 {
			t.Skip("needs root to run a client as another uid")
		}
		must(t, os.Chmod(d.socket, 0o666))
		must(t, os.Chmod(d.dir, 0o755))
		c, o := attach(t, "rootd")
		must(t, o.Update(t.Context(), wlan, core.Values{"rootd": 1}))
		dropped(t, c, "rootd")
		as := &syscall.Credential{Uid: 65534, Gid: 65534}
		r := cliAs(t, as, d.socket, "set", "--owner", "rootd", "state/net/wlan0", "rootd=2")
		if r.code != 1 || !strings.Contains(r.stderr, "permission") {
			t.Fatalf("another uid attaching a name in grace: %s", r)
		}
		if r := cliAs(t, as, d.socket, "evict", "rootd"); r.code != 1 || !strings.Contains(r.stderr, "permission") {
			t.Fatalf("another uid evicting a name in grace: %s", r)
		}
		ok(t, d.socket, "evict", "rootd") // its own uid may: an owner in grace is not live
		if st, _ := holds("rootd"); st {
			t.Fatal("evict of a name in grace left its keys")
		}
	})

	t.Run("restart", func(t *testing.T) {
		c, o := attach(t, "upd")
		must(t, o.Update(t.Context(), wlan, core.Values{"upd": 1}))
		must(t, o.Update(t.Context(), cfg, core.Values{"upd": "x"}))
		dropped(t, c, "upd")
		d.stop()
		d = startDaemonAt(t, dir, d.socket, "--no-sync", "--grace", grace.String())
		// State went with the process (R26); config stays, as at any clean
		// shutdown (R27), and its name attaches again.
		if st, cf := holds("upd"); st || !cf {
			t.Fatalf("after restart: state %v (want gone), config %v (want kept)", st, cf)
		}
		_, o2 := attach(t, "upd")
		must(t, o2.Delete(t.Context(), cfg, "upd"))
	})

	t.Run("bad-flag", func(t *testing.T) {
		for _, g := range []string{"2h", "-1s", "5"} {
			r := cli(t, d.socket, "serve", "--data-dir", t.TempDir(), "--socket", d.socket+"x", "--grace", g)
			if r.code != 2 {
				t.Errorf("serve --grace %s: %s", g, r)
			}
		}
	})
}
