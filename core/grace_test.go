package core_test

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sysreg/sysreg/core"
)

const grace = 10 * time.Second

var wlanState, wlanCfg = core.StateScope("net", "wlan0"), core.ConfigScope("net", "wlan0")

// graceSetup starts a registry with owner netd (Grace 10s) holding a state
// and a config key, and a subscription whose initial delivery was taken.
func graceSetup(t *testing.T) (*core.Registry, *core.Owner, *core.Subscription) {
	t.Helper()
	r := core.New(core.Options{})
	t.Cleanup(func() { r.Close() })
	o, err := r.Owner(t.Context(), "netd", core.OwnerOptions{Grace: grace})
	if err != nil {
		t.Fatal(err)
	}
	update(t, o, wlanState, core.Values{"up": true})
	update(t, o, wlanCfg, core.Values{"ssid": "home"})
	sub, err := r.Subscribe(t.Context(), core.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	<-sub.C()
	return r, o, sub
}

// noDelivery fails if sub has a delivery waiting once the bubble is idle.
func noDelivery(t *testing.T, sub *core.Subscription, when string) {
	t.Helper()
	synctest.Wait()
	select {
	case s := <-sub.C():
		t.Fatalf("%s: delivery of seq %d, want none", when, s.Seq())
	default:
	}
}

func holdsBoth(s core.Snapshot) bool {
	_, st := s.Get(wlanState, "up")
	_, cf := s.Get(wlanCfg, "ssid")
	return st && cf
}

// TestR48_ReattachWithinGrace: a session abandoned (its connection dropped)
// keeps its keys; the same name attaching at Grace−ε takes them over with
// no mutation and no notification, and nothing happens at Grace. The name
// in grace is not live: attaching raises no ErrOwnerInUse.
func TestR48_ReattachWithinGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, o, sub := graceSetup(t)
		seq := r.Snapshot().Seq()
		if err := o.Abandon(); err != nil {
			t.Fatal(err)
		}
		if !r.InGrace("netd") {
			t.Fatal("netd not in grace after Abandon")
		}
		noDelivery(t, sub, "after Abandon")
		if err := o.Update(t.Context(), wlanState, core.Values{"up": false}); !errors.Is(err, core.ErrClosed) {
			t.Fatalf("Update on the abandoned session = %v, want ErrClosed", err)
		}
		time.Sleep(grace - time.Nanosecond)
		o2, err := r.Owner(t.Context(), "netd", core.OwnerOptions{Grace: grace})
		if err != nil {
			t.Fatalf("re-attach within grace: %v", err)
		}
		noDelivery(t, sub, "re-attach")
		if s := r.Snapshot(); s.Seq() != seq || !holdsBoth(s) || r.InGrace("netd") {
			t.Fatalf("after re-attach: seq %d (want %d), keys held %v, in grace %v", s.Seq(), seq, holdsBoth(s), r.InGrace("netd"))
		}
		time.Sleep(time.Minute) // past the old grace: its timer was stopped
		noDelivery(t, sub, "past the old grace")
		if s := r.Snapshot(); s.Seq() != seq || !holdsBoth(s) {
			t.Fatalf("the old grace ended the new session's keys: seq %d", s.Seq())
		}
		// The new session owns the keys: it may delete them (R10).
		if err := o2.Delete(t.Context(), wlanState, "up"); err != nil {
			t.Fatalf("the re-attached session cannot delete its state key: %v", err)
		}
	})
}

// TestR48_GraceEnds: at Grace+ε the owner dies as R13 says — state and
// non-kept config — in one mutation with one notification.
func TestR48_GraceEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, o, sub := graceSetup(t)
		seq := r.Snapshot().Seq()
		if err := o.Abandon(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(grace - time.Nanosecond)
		noDelivery(t, sub, "within grace")
		if !holdsBoth(r.Snapshot()) {
			t.Fatal("keys gone within grace")
		}
		time.Sleep(2 * time.Nanosecond)
		synctest.Wait()
		s := r.Snapshot()
		if s.Seq() != seq+1 || s.Holds("netd", core.State) || s.Holds("netd", core.Config) || r.InGrace("netd") {
			t.Fatalf("after grace: seq %d (want %d, one mutation), netd holds state %v config %v",
				s.Seq(), seq+1, s.Holds("netd", core.State), s.Holds("netd", core.Config))
		}
		select {
		case d := <-sub.C():
			if d.Seq() != seq+1 {
				t.Fatalf("delivery of seq %d, want %d", d.Seq(), seq+1)
			}
		default:
			t.Fatal("no notification of the owner's death")
		}
		noDelivery(t, sub, "after the death")
	})
}

// TestR48_KeepConfigGrace: at the end of grace, kept config stays (R13).
func TestR48_KeepConfigGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := core.New(core.Options{})
		defer r.Close()
		o, err := r.Owner(t.Context(), "tool", core.OwnerOptions{Grace: grace, KeepConfig: true})
		if err != nil {
			t.Fatal(err)
		}
		update(t, o, wlanState, core.Values{"up": true})
		update(t, o, wlanCfg, core.Values{"ssid": "home"})
		o.Abandon()
		time.Sleep(grace + time.Second)
		synctest.Wait()
		if s := r.Snapshot(); s.Holds("tool", core.State) || !s.Holds("tool", core.Config) {
			t.Fatalf("after grace: state %v (want gone), config %v (want kept)", s.Holds("tool", core.State), s.Holds("tool", core.Config))
		}
	})
}

// TestR48_EvictAndCloseAreImmediate: Evict of a name in grace ends it at
// once (no ErrOwnerInUse); Owner.Close of a session with Grace is
// immediate (R13); so is Abandon without Grace.
func TestR48_EvictAndCloseAreImmediate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, o, sub := graceSetup(t)
		seq := r.Snapshot().Seq()
		o.Abandon()
		if err := r.Evict(t.Context(), "netd"); err != nil {
			t.Fatalf("Evict of a name in grace: %v", err)
		}
		if s := r.Snapshot(); s.Seq() != seq+1 || s.Holds("netd", core.State) || s.Holds("netd", core.Config) || r.InGrace("netd") {
			t.Fatalf("after Evict: seq %d, holds %v", s.Seq(), holdsBoth(s))
		}
		<-sub.C()
		time.Sleep(2 * grace)
		noDelivery(t, sub, "after the evicted grace")
		if r.Snapshot().Seq() != seq+1 {
			t.Fatal("the evicted grace's timer made a mutation")
		}

		for _, end := range []struct {
			name  string
			grace time.Duration
			end   func(*core.Owner) error
		}{{"close", grace, (*core.Owner).Close}, {"abandon-without-grace", 0, (*core.Owner).Abandon}} {
			o, err := r.Owner(t.Context(), end.name, core.OwnerOptions{Grace: end.grace})
			if err != nil {
				t.Fatal(err)
			}
			update(t, o, wlanState, core.Values{end.name: 1})
			if err := end.end(o); err != nil {
				t.Fatal(err)
			}
			if r.Snapshot().Holds(end.name, core.State) || r.InGrace(end.name) {
				t.Errorf("%s: keys kept", end.name)
			}
		}
	})
}

// TestR48_GraceLimits: Grace is 0 to 1 h; anything else is refused.
func TestR48_GraceLimits(t *testing.T) {
	r := core.New(core.Options{})
	defer r.Close()
	for _, g := range []time.Duration{-time.Second, core.MaxGrace + 1} {
		if _, err := r.Owner(t.Context(), "x", core.OwnerOptions{Grace: g}); !errors.Is(err, core.ErrLimit) {
			t.Errorf("Grace %v: %v, want ErrLimit", g, err)
		}
	}
	o, err := r.Owner(t.Context(), "x", core.OwnerOptions{Grace: core.MaxGrace})
	if err != nil {
		t.Fatal(err)
	}
	o.Abandon()
	// Registry.Close during grace: no owner death, the timer stops (goleak).
	r.Close()
	if r.InGrace("x") {
		t.Error("still in grace after Registry.Close")
	}
}
