package core_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/sysreg/sysreg/core"
)

// TestR51_Lagging: a subscription whose delivery sits untaken for the
// threshold is found lagging once per delivery; one that takes its
// deliveries never is (R51).
func TestR51_Lagging(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := core.New(core.Options{})
		defer r.Close()
		threshold := func(mi time.Duration) time.Duration { return max(10*mi, 10*time.Second) }
		slow, err := r.Subscribe(t.Context(), core.SubscribeOptions{MinInterval: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		fast, err := r.Subscribe(t.Context(), core.SubscribeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for range fast.C() {
			}
		}()
		// slow never reads: its initial delivery waits.
		check := func(at string, wantN int, wantWorst time.Duration) {
			t.Helper()
			synctest.Wait()
			if n, worst := r.Lagging(time.Now(), threshold); n != wantN || worst != wantWorst {
				t.Errorf("%s: Lagging = %d, %v; want %d, %v", at, n, worst, wantN, wantWorst)
			}
		}
		time.Sleep(19 * time.Second) // bubble time: 10 × 2 s is the threshold
		check("19 s", 0, 0)
		time.Sleep(2 * time.Second)
		check("21 s", 1, 21*time.Second)
		check("21 s again", 0, 0) // counted once per delivery
		<-slow.C()                // taken: a change delivers again after MinInterval
		o := mustOwner(t, r, "a")
		update(t, o, eth0, core.Values{"up": true})
		time.Sleep(3 * time.Second) // delivered at once (the interval has passed), then waits
		check("3 s after", 0, 0)
		time.Sleep(18 * time.Second)
		check("21 s after", 1, 21*time.Second)
		o.Close()
		slow.Close()
		fast.Close()
	})
}
