package core_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sysreg/sysreg/core"
)

// delivery is one snapshot taken from a subscription, with the (bubble)
// time it was taken at.
type delivery struct {
	at   time.Duration // since the start of the bubble
	seq  uint64
	snap core.Snapshot
}

// collect drains sub into a slice until C is closed. The consumer is always
// ready, so the time a snapshot is taken is the time it was delivered.
func collect(t0 time.Time, sub *core.Subscription) (get func() []delivery) {
	var mu sync.Mutex
	var out []delivery
	go func() {
		for s := range sub.C() {
			mu.Lock()
			out = append(out, delivery{time.Since(t0), s.Seq(), s})
			mu.Unlock()
		}
	}()
	synctest.Wait() // the consumer has taken the initial delivery
	return func() []delivery {
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		return append([]delivery(nil), out...)
	}
}

func mustOwner(t *testing.T, r *core.Registry, name string) *core.Owner {
	t.Helper()
	o, err := r.Owner(t.Context(), name, core.OwnerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func update(t *testing.T, o *core.Owner, sc core.Scope, vals core.Values) {
	t.Helper()
	if err := o.Update(context.Background(), sc, vals); err != nil {
		t.Fatal(err)
	}
}

var eth0 = core.StateScope("net", "eth0")

func times(ds []delivery) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.at
	}
	return out
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func ms(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x) * time.Millisecond
	}
	return out
}

func TestR16_InitialDeliveryIsCurrentState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := core.New(core.Options{})
		defer r.Close()
		o := mustOwner(t, r, "netd")
		update(t, o, eth0, core.Values{"up": true})
		sub, err := r.Subscribe(t.Context(), core.SubscribeOptions{MinInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		select {
		case s := <-sub.C():
			if v, _ := s.Get(eth0, "up"); v != true || s.Seq() != 1 {
				t.Fatalf("initial delivery = seq %d up=%v, want seq 1 up=true", s.Seq(), v)
			}
		default:
			t.Fatal("R16: no initial delivery waiting on C after Subscribe")
		}
	})
}

func TestR17_LeadingAndTrailingEdge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		r := core.New(core.Options{})
		defer r.Close()
		o := mustOwner(t, r, "netd")
		sub, _ := r.Subscribe(t.Context(), core.SubscribeOptions{MinInterval: 100 * time.Millisecond})
		get := collect(t0, sub)

		// Changes at 10, 20, 30 ms come within the window of the initial
		// delivery: one trailing delivery at 100 ms with the latest state.
		for i := 1; i <= 3; i++ {
			time.Sleep(10 * time.Millisecond)
			update(t, o, eth0, core.Values{"n": i})
		}
		// Quiet past the window: a change at 350 ms goes out at once
		// (leading edge), the next at 360 ms at 450 ms (trailing edge).
		time.Sleep(320 * time.Millisecond)
		update(t, o, eth0, core.Values{"n": 4})
		time.Sleep(10 * time.Millisecond)
		update(t, o, eth0, core.Values{"n": 5})
		time.Sleep(time.Second)

		ds := get()
		if want := ms(0, 100, 350, 450); !equalDurations(times(ds), want) {
			t.Fatalf("R17: delivery times %v, want %v", times(ds), want)
		}
		for i, want := range []any{nil, int64(3), int64(4), int64(5)} {
			if got, _ := ds[i].snap.Get(eth0, "n"); got != want {
				t.Errorf("delivery %d: n = %v, want %v (latest state)", i, got, want)
			}
		}
		sub.Close()
	})
}

func TestR17_DeliveriesAtLeastMinIntervalApart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		r := core.New(core.Options{})
		defer r.Close()
		o := mustOwner(t, r, "netd")
		const interval = 50 * time.Millisecond
		sub, _ := r.Subscribe(t.Context(), core.SubscribeOptions{MinInterval: interval})
		get := collect(t0, sub)
		// A change every 7 ms for one second.
		for i := range 143 {
			update(t, o, eth0, core.Values{"n": i})
			time.Sleep(7 * time.Millisecond)
		}
		time.Sleep(time.Second)
		ds := get()
		for i := 1; i < len(ds); i++ {
			if gap := ds[i].at - ds[i-1].at; gap < interval {
				t.Fatalf("R17: deliveries %d and %d only %v apart", i-1, i, gap)
			}
		}
		// 1 s of changes in 50 ms windows: the initial delivery plus one per
		// window, and the last one holds the final state.
		if n := len(ds); n != 21 {
			t.Errorf("R17: %d deliveries, want 21 (initial + one per 50 ms window)", n)
		}
		if last := ds[len(ds)-1]; last.seq != r.Snapshot().Seq() {
			t.Errorf("last delivery seq %d, want final %d", last.seq, r.Snapshot().Seq())
		}
		sub.Close()
	})
}

// TestR18_ThousandSubscribersConverge: producers flap without pause; every
// one of 1,000 subscribers holds the last change within MinInterval of it,
// and the producers never wait for the subscribers.
func TestR18_ThousandSubscribersConverge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := core.New(core.Options{})
		defer r.Close()
		const n = 1000
		const interval = 100 * time.Millisecond
		var holding atomic.Int64
		var final atomic.Uint64
		var wg sync.WaitGroup
		for range n {
			sub, _ := r.Subscribe(t.Context(), core.SubscribeOptions{MinInterval: interval})
			wg.Add(1)
			go func() {
				defer wg.Done()
				for s := range sub.C() {
					if f := final.Load(); f != 0 && s.Seq() >= f {
						holding.Add(1)
						sub.Close()
					}
				}
			}()
		}
		producers := make([]*core.Owner, 4)
		for i := range producers {
			producers[i] = mustOwner(t, r, "p"+string(rune('0'+i)))
		}
		// Flap for 1 s of bubble time in 1 ms steps: 4,000 updates per step
		// burst, none of which may wait on a subscriber (time does not move
		// while the producers run, so a blocked producer would deadlock).
		for range 1000 {
			for i, p := range producers {
				update(t, p, core.StateScope("net", "eth"+string(rune('0'+i))), core.Values{"up": true})
				update(t, p, core.StateScope("net", "eth"+string(rune('0'+i))), core.Values{"up": false})
			}
			time.Sleep(time.Millisecond)
		}
		// Announce the final sequence number before the change: a subscriber
		// may receive it before update returns.
		final.Store(r.Snapshot().Seq() + 1)
		update(t, producers[0], core.StateScope("net", "eth0"), core.Values{"final": true})
		changedAt := time.Now()
		// Each subscriber holds the final state by changedAt + MinInterval.
		time.Sleep(interval)
		synctest.Wait()
		if got := holding.Load(); got != n {
			t.Fatalf("R18: %d of %d subscribers hold the last change %v after it", got, n, time.Since(changedAt))
		}
		wg.Wait()
	})
}

func TestR19_LatestOnlyNoBacklog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := core.New(core.Options{})
		defer r.Close()
		o := mustOwner(t, r, "netd")
		sub, _ := r.Subscribe(t.Context(), core.SubscribeOptions{})
		// Nobody reads: 10,000 changes leave exactly one snapshot waiting,
		// the latest one, and never block the producer.
		for i := range 10000 {
			update(t, o, eth0, core.Values{"n": i})
		}
		synctest.Wait()
		if l := len(sub.C()); l != 1 {
			t.Fatalf("R19: %d snapshots waiting, want 1", l)
		}
		s := <-sub.C()
		if v, _ := s.Get(eth0, "n"); v != int64(9999) || s.Seq() != r.Snapshot().Seq() {
			t.Fatalf("R19: waiting snapshot seq %d n=%v, want the latest", s.Seq(), v)
		}
		if st := r.Stats(); st.Coalesced == 0 {
			t.Errorf("coalesced counter not counting replaced snapshots: %+v", st)
		}
		sub.Close()
	})
}

func TestR20_Hysteresis(t *testing.T) {
	cases := []struct {
		name     string
		opts     core.SubscribeOptions
		changes  []int // ms
		want     []time.Duration
		closeAt  int // ms, 0: never
		wantLast int
	}{
		{
			name:    "delay-from-first-change",
			opts:    core.SubscribeOptions{Hysteresis: 50 * time.Millisecond},
			changes: []int{10, 20, 40, 200},
			// 10 → 60 (20 and 40 collapse into it); 200 → 250. It keeps
			// receiving: no stall without MinInterval.
			want: ms(0, 60, 250),
		},
		{
			name:    "not-a-debounce",
			opts:    core.SubscribeOptions{Hysteresis: 50 * time.Millisecond},
			changes: []int{10, 30, 50, 70, 90, 110},
			// A debounce would wait for 50 ms of quiet (160); a fixed delay
			// delivers at 60, then 70 starts a new delay → 120; 110 → 170? no:
			// 70 arrives after the 60 delivery, so 70+50 = 120 delivers 70, 90,
			// 110; nothing is left.
			want: ms(0, 60, 120),
		},
		{
			name:    "later-of-hysteresis-and-interval",
			opts:    core.SubscribeOptions{Hysteresis: 20 * time.Millisecond, MinInterval: 100 * time.Millisecond},
			changes: []int{10, 150, 300},
			// 10+20=30 < 0+100 → 100; 150+20=170 < 100+100 → 200; 300+20=320.
			want: ms(0, 100, 200, 320),
		},
		{
			name:    "close-during-delay",
			opts:    core.SubscribeOptions{Hysteresis: 50 * time.Millisecond},
			changes: []int{10},
			closeAt: 30,
			want:    ms(0),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				t0 := time.Now()
				r := core.New(core.Options{})
				defer r.Close()
				o := mustOwner(t, r, "netd")
				sub, _ := r.Subscribe(t.Context(), tc.opts)
				get := collect(t0, sub)
				events := map[int]func(){}
				for i, c := range tc.changes {
					events[c] = func() { update(t, o, eth0, core.Values{"n": i}) }
				}
				if tc.closeAt > 0 {
					events[tc.closeAt] = func() { sub.Close() }
				}
				for ms := 0; ms <= 1000; ms++ {
					if f := events[ms]; f != nil {
						f()
					}
					time.Sleep(time.Millisecond)
				}
				ds := get()
				if !equalDurations(times(ds), tc.want) {
					t.Fatalf("R20: delivery times %v, want %v", times(ds), tc.want)
				}
				if tc.closeAt == 0 {
					if last := ds[len(ds)-1]; last.seq != r.Snapshot().Seq() {
						t.Errorf("last delivery seq %d, want %d", last.seq, r.Snapshot().Seq())
					}
				}
				sub.Close()
			})
		})
	}
}

func TestR21_ScopedSubscriptions(t *testing.T) {
	cases := []struct {
		pattern string
		wake    []core.Scope
		sleep   []core.Scope
	}{
		{"state/net", []core.Scope{core.StateScope("net", "eth0"), core.StateScope("net", "wlan0")},
			[]core.Scope{core.ConfigScope("net", "eth0"), core.StateScope("network", "eth0")}},
		{"config/*/eth0", []core.Scope{core.ConfigScope("net", "eth0"), core.ConfigScope("wifi", "eth0")},
			[]core.Scope{core.ConfigScope("net", "eth1"), core.StateScope("net", "eth0")}},
		{"*/net/eth0", []core.Scope{core.ConfigScope("net", "eth0"), core.StateScope("net", "eth0")},
			[]core.Scope{core.ConfigScope("net", "eth1")}},
		{"config", []core.Scope{core.ConfigScope("a", "b")}, []core.Scope{core.StateScope("a", "b")}},
		{"*", []core.Scope{core.ConfigScope("a", "b"), core.StateScope("a", "b")}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.pattern, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				t0 := time.Now()
				pat, err := core.ParsePattern(tc.pattern)
				if err != nil {
					t.Fatal(err)
				}
				r := core.New(core.Options{})
				defer r.Close()
				o := mustOwner(t, r, "o")
				sub, _ := r.Subscribe(t.Context(), core.SubscribeOptions{Match: pat})
				get := collect(t0, sub)
				want := 1
				for i, sc := range tc.sleep {
					if pat.Matches(sc) {
						t.Fatalf("pattern %v matches %v", pat, sc)
					}
					update(t, o, sc, core.Values{"k": i})
					time.Sleep(time.Millisecond)
				}
				if n := len(get()); n != want {
					t.Fatalf("R21: %d deliveries after changes outside %s, want %d", n, tc.pattern, want)
				}
				for i, sc := range tc.wake {
					update(t, o, sc, core.Values{"k": i + 100})
					time.Sleep(time.Millisecond)
					want++
					ds := get()
					if len(ds) != want {
						t.Fatalf("R21: change in %s: %d deliveries, want %d", sc, len(ds), want)
					}
					// Deliveries carry the whole view, outside changes included.
					if got := ds[len(ds)-1].snap; got.Seq() != r.Snapshot().Seq() {
						t.Fatalf("delivery seq %d, want %d", got.Seq(), r.Snapshot().Seq())
					}
				}
				// Deleting inside the pattern wakes too; a no-op does not.
				o.Delete(t.Context(), tc.wake[0])
				o.Delete(t.Context(), tc.wake[0])
				time.Sleep(time.Millisecond)
				if n := len(get()); n != want+1 {
					t.Fatalf("R21: delete inside pattern: %d deliveries, want %d", n, want+1)
				}
				sub.Close()
			})
		})
	}
}

// TestR21_NilRegionRestored: a region that goes from empty to non-empty and
// back while one subscriber of a shared pattern group arms must still wake
// every member whose last view differs.
func TestR21_GroupMembersArmingAtDifferentStates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		r := core.New(core.Options{})
		defer r.Close()
		o := mustOwner(t, r, "o")
		pat := core.Pattern{Bucket: core.State, Type: "net"}
		a, _ := r.Subscribe(t.Context(), core.SubscribeOptions{Match: pat})
		getA := collect(t0, a)
		b, _ := r.Subscribe(t.Context(), core.SubscribeOptions{Match: pat, MinInterval: 10 * time.Millisecond})
		getB := collect(t0, b)
		update(t, o, eth0, core.Values{"up": true}) // a gets it at once, b at 10 ms
		time.Sleep(20 * time.Millisecond)
		o.Delete(t.Context(), eth0) // back to the empty region
		time.Sleep(20 * time.Millisecond)
		da, db := getA(), getB()
		if len(da) != 3 || len(db) != 3 {
			t.Fatalf("deliveries a=%v b=%v, want 3 each", times(da), times(db))
		}
		for _, d := range [][]delivery{da, db} {
			if _, ok := d[2].snap.Get(eth0, "up"); ok {
				t.Fatalf("last delivery still holds the deleted key")
			}
		}
		a.Close()
		b.Close()
	})
}

func TestR23_OwnChangesDelivered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := core.New(core.Options{})
		defer r.Close()
		o := mustOwner(t, r, "self")
		sub, _ := r.Subscribe(t.Context(), core.SubscribeOptions{})
		<-sub.C()
		update(t, o, eth0, core.Values{"up": true})
		synctest.Wait()
		select {
		case s := <-sub.C():
			if v, _ := s.Get(eth0, "up"); v != true {
				t.Fatalf("own change not in delivery: %v", s.Map())
			}
		default:
			t.Fatal("R23: a writer's own change was not delivered to its subscription")
		}
		sub.Close()
	})
}

func TestSubscriptionClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := core.New(core.Options{})
		o := mustOwner(t, r, "o")
		s1, _ := r.Subscribe(t.Context(), core.SubscribeOptions{MinInterval: time.Second})
		s2, _ := r.Subscribe(t.Context(), core.SubscribeOptions{Hysteresis: time.Second})
		update(t, o, eth0, core.Values{"a": 1}) // both now have a timer pending
		synctest.Wait()
		if err := s1.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s1.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, ok := <-s1.C(); ok {
			t.Fatal("C delivers after Close")
		}
		// Registry.Close closes the remaining subscription channels (R27).
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		for range s2.C() {
		}
		if err := s2.Close(); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("second registry Close: %v", err)
		}
		if _, err := r.Subscribe(t.Context(), core.SubscribeOptions{}); err == nil {
			t.Fatal("Subscribe after Close succeeded")
		}
		time.Sleep(2 * time.Second) // no timer fires into a closed subscription
	})
}

// TestR21_MultiScopeMutationsWake: a transaction or an owner's death that
// touches a scope inside the pattern among others wakes the subscription;
// unrelated single-scope changes in between do not.
func TestR21_MultiScopeMutationsWake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		r := core.New(core.Options{})
		defer r.Close()
		sub, _ := r.Subscribe(t.Context(), core.SubscribeOptions{Match: core.Pattern{Bucket: core.Config, Type: "wifi"}})
		get := collect(t0, sub)
		o := mustOwner(t, r, "o")
		for i := range 100 {
			update(t, o, core.StateScope("net", "eth0"), core.Values{"n": i})
		}
		time.Sleep(time.Millisecond)
		if n := len(get()); n != 1 {
			t.Fatalf("R21: %d deliveries after unrelated changes, want 1", n)
		}
		if err := o.Commit(t.Context(),
			core.Put(core.StateScope("net", "eth1"), core.Values{"a": 1}),
			core.Put(core.ConfigScope("wifi", "wlan0"), core.Values{"ssid": "x"})); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
		if n := len(get()); n != 2 {
			t.Fatalf("R21: %d deliveries after a transaction touching the pattern, want 2", n)
		}
		o.Close() // death: its state and config keys go in one mutation
		time.Sleep(time.Millisecond)
		ds := get()
		if len(ds) != 3 || ds[2].snap.Len(0) != 0 {
			t.Fatalf("R21/R13: owner death inside the pattern: %d deliveries, last view %v", len(ds), ds[len(ds)-1].snap.Map())
		}
		sub.Close()
	})
}

// TestR21_SharedAndDistinctPatterns: many subscriptions sharing a pattern
// wake together, closed ones (closed while armed) never deliver again, and
// subscriptions with distinct exact patterns wake only for their own
// scope, however the notifier groups and filters them.
func TestR21_SharedAndDistinctPatterns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := core.New(core.Options{})
		defer r.Close()
		o := mustOwner(t, r, "o")
		shared := core.Pattern{Bucket: core.State, Type: "net"}
		var subs []*core.Subscription
		for range 100 {
			s, _ := r.Subscribe(t.Context(), core.SubscribeOptions{Match: shared})
			<-s.C()
			subs = append(subs, s)
		}
		exact := make([]*core.Subscription, 50)
		for i := range exact {
			exact[i], _ = r.Subscribe(t.Context(), core.SubscribeOptions{Match: core.Pattern{Bucket: core.State, Type: "net", Subtype: "eth" + strconv.Itoa(i)}})
			<-exact[i].C()
		}
		for _, s := range subs[:60] { // closed while armed
			s.Close()
		}
		update(t, o, core.StateScope("net", "eth7"), core.Values{"up": true})
		synctest.Wait()
		for i, s := range subs {
			snap, ok := <-s.C()
			switch {
			case i < 60 && ok:
				t.Fatalf("closed subscription %d delivered seq %d", i, snap.Seq())
			case i >= 60 && (!ok || snap.Seq() != 1):
				t.Fatalf("subscription %d: got seq %d (open %v), want the change", i, snap.Seq(), ok)
			}
		}
		for i, s := range exact {
			if got, want := len(s.C()), map[bool]int{true: 1}[i == 7]; got != want {
				t.Errorf("R21: subscription to net/eth%d holds %d deliveries after a change of net/eth7, want %d", i, got, want)
			}
		}
		if n := r.Stats().Subs; n != 90 {
			t.Errorf("Stats.Subs = %d, want 90", n)
		}
	})
}
