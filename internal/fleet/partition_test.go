package fleet_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/codec"
	"github.com/sysreg/sysreg/internal/fleet"
)

// TestPartition: the server stops in the middle of a push and comes back
// with the same JetStream directory; every device converges on the last
// push, and no device ever applied a half update — every value a device
// applied is one whole pushed value (R53, R54).
func TestPartition(t *testing.T) {
	n, gens := 50, 30
	if testing.Short() {
		n, gens = 20, 20
	}
	srv := startServer(t)
	adm := newAdmin(t, srv.URL())
	devs := make([]*device, n)
	for i := range devs {
		devs[i] = startDevice(t, testOptions(srv.URL(), fmt.Sprintf("dev-%d", i)), "", true)
	}
	subs := []string{"s1", "s2", "s3"}
	value := func(gen int) core.Values {
		g := int64(gen)
		return core.Values{"gen": g, "a": map[string]any{"x": g, "y": []any{g, g}}, "b": fmt.Sprint(g)}
	}
	// Every view each device publishes holds, per scope, nothing or one
	// whole pushed value, never older than the one before.
	var watchers sync.WaitGroup
	stopWatch := make(chan struct{})
	bad := make(chan string, len(devs))
	for _, d := range devs {
		sub, err := d.st.Subscribe(t.Context(), core.SubscribeOptions{Match: core.Pattern{Bucket: core.Config, Type: "p"}})
		if err != nil {
			t.Fatal(err)
		}
		watchers.Go(func() {
			defer sub.Close()
			last := map[string]int64{}
			for {
				select {
				case <-stopWatch:
					return
				case snap := <-sub.C():
					for _, s := range subs {
						vals := snap.Values(core.ConfigScope("p", s))
						if vals == nil {
							continue
						}
						g, _ := vals["gen"].(int64)
						switch {
						case !core.Equal(map[string]any(vals), map[string]any(value(int(g)))):
							bad <- fmt.Sprintf("device %s showed a value that was never pushed: %v", d.id, vals)
							return
						case g < last[s]:
							bad <- fmt.Sprintf("device %s went back from gen %d to %d at p/%s", d.id, last[s], g, s)
							return
						}
						last[s] = g
					}
				}
			}
		})
	}
	// The pusher writes generation after generation, retrying each write
	// until the server takes it.
	half := make(chan struct{})
	pushed := make(chan error, 1)
	go func() {
		for gen := 1; gen <= gens; gen++ {
			if gen == gens/2 {
				close(half)
			}
			for _, sub := range subs {
				data := mustEncode(t, value(gen))
				for {
					ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
					_, err := adm.desired.Put(ctx, fleet.DesiredKey(fleet.AllDevices, "p", sub), data)
					cancel()
					if err == nil {
						break
					}
					if t.Context().Err() != nil {
						pushed <- err
						return
					}
				}
			}
		}
		pushed <- nil
	}()
	<-half
	srv.Stop()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := <-pushed; err != nil {
		t.Fatal(err)
	}
	final := value(gens)
	eachDevice(t, devs, func(d *device) {
		d.waitView(t, 30*time.Second, "converged after restart", func(s core.Snapshot) bool {
			for _, sub := range subs {
				if !hasValues(core.ConfigScope("p", sub), final)(s) {
					return false
				}
			}
			return true
		})
	})
	close(stopWatch)
	watchers.Wait()
	close(bad)
	for msg := range bad {
		t.Error(msg)
	}
	if st := devs[0].status(t); st.Connects < 2 {
		t.Errorf("device 0 connected %d times, want a reconnection", st.Connects)
	}
}

// TestRebootOffline: a device restarted while the server is down starts
// with its last fleet config and revision (journaled), works locally, and
// reports its state once the server is back (R53, R54).
func TestRebootOffline(t *testing.T) {
	srv := startServer(t)
	adm := newAdmin(t, srv.URL())
	d := startDevice(t, testOptions(srv.URL(), "d1"), "", false)
	sc := core.ConfigScope("ntp", "main")
	vals := core.Values{"server": "pool"}
	rev := adm.push(t, fleet.AllDevices, "ntp", "main", vals)
	d.waitView(t, 10*time.Second, "push", hasValues(sc, vals))

	srv.Stop()
	d.stop()
	d2 := startDevice(t, testOptions(srv.URL(), "d1"), d.dir, false)
	snap := d2.snapshot(t)
	if got := snap.Values(sc); !core.Equal(map[string]any(got), map[string]any(vals)) {
		t.Fatalf("after an offline reboot the fleet scope is %v, want %v", got, vals)
	}
	if l, _, _ := snap.Origin(sc, "server"); l != core.Fleet {
		t.Errorf("after an offline reboot %s comes from layer %v, want fleet", sc, l)
	}
	if st := d2.status(t); st.Connected || st.DesiredRevision != rev {
		t.Fatalf("offline status %+v, want disconnected at revision %d", st, rev)
	}
	o := d2.owner(t, "app")
	state := core.Values{"booted": true}
	if err := o.Update(t.Context(), core.StateScope("app", "boot"), state); err != nil {
		t.Fatal(err)
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	reported := watchKey(t, adm.reported, fleet.ReportedKey("d1", core.StateScope("app", "boot")))
	waitKey(t, reported, 20*time.Second, state)
	// And it follows the fleet again.
	vals2 := core.Values{"server": "pool2"}
	adm.push(t, fleet.AllDevices, "ntp", "main", vals2)
	d2.waitView(t, 10*time.Second, "push after reconnect", hasValues(sc, vals2))
}

// TestReportedFlapping: a device that flaps a state key writes at most one
// value per interval for that scope (plus the leading one), the bucket ends
// on the final state, and a deleted scope is deleted in the bucket (R53).
func TestReportedFlapping(t *testing.T) {
	interval, flap := time.Second, 5*time.Second
	if testing.Short() {
		interval, flap = 250*time.Millisecond, 1250*time.Millisecond
	}
	srv := startServer(t)
	adm := newAdmin(t, srv.URL())
	opts := testOptions(srv.URL(), "d1")
	opts.Interval = interval
	d := startDevice(t, opts, "", true)
	o := d.owner(t, "app")
	// Wait until the bridge reports, so that its first full sync is done.
	ready := watchKey(t, adm.reported, fleet.ReportedKey("d1", core.StateScope("app", "ready")))
	if err := o.Update(t.Context(), core.StateScope("app", "ready"), core.Values{"ok": true}); err != nil {
		t.Fatal(err)
	}
	waitKey(t, ready, 20*time.Second, core.Values{"ok": true})

	sc := core.StateScope("flap", "x")
	values := watchKey(t, adm.reported, fleet.ReportedKey("d1", sc))
	start := time.Now()
	var i int64
	for ; time.Since(start) < flap; i++ {
		if err := o.Update(t.Context(), sc, core.Values{"v": i}); err != nil {
			t.Fatal(err)
		}
	}
	final := core.Values{"v": i - 1}
	writes := 0
	deadline := time.After(interval + 10*time.Second)
	for done := false; !done; {
		select {
		case v := <-values:
			writes++
			got, err := codec.DecodeValues(v)
			if err != nil {
				t.Fatal(err)
			}
			done = core.Equal(map[string]any(got), map[string]any(final))
		case <-deadline:
			t.Fatalf("final value %v never reported; %d writes", final, writes)
		}
	}
	limit := int(flap/interval) + 1
	t.Logf("%d updates in %v, %d reported writes at interval %v", i, flap, writes, interval)
	if writes > limit {
		t.Errorf("%d reported writes for one scope in %v at interval %v, want ≤ %d", writes, flap, interval, limit)
	}
	if err := o.Delete(t.Context(), sc); err != nil {
		t.Fatal(err)
	}
	waitKey(t, values, interval+10*time.Second, nil)
}
