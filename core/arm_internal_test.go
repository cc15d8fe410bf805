package core

import (
	"context"
	"testing"
	"testing/synctest"
)

// TestR18_ArmRacesInPlaceUpdateAndReader: a subscription that arms while
// an in-place update is pending is still woken by it (R18), whoever
// publishes it. The update here reads the filter before the arm (so it
// kicks nobody), and a reader publishes it between deliverLocked's two
// reads (the published state and the dirty flag): whichever it reads
// second must tell it that a pass has to look again, else the
// subscription waits for the next change with the state from before the
// update.
func TestR18_ArmRacesInPlaceUpdateAndReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		r := New(Options{})
		defer r.Close()
		o, err := r.Owner(ctx, "a", OwnerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sc := StateScope("net", "eth0")
		if err := o.Update(ctx, sc, Values{"n": 0}); err != nil {
			t.Fatal(err)
		}
		var armed, read bool
		h := r.hub
		h.mu.Lock()
		h.seam = func(point int) {
			switch {
			case point == seamArm && !armed: // after Subscribe's own publication
				armed = true
				if err := o.Update(ctx, sc, Values{"n": 1}); err != nil {
					t.Error(err)
				}
				if r.inPlace.n != 1 {
					t.Errorf("%d updates applied in place, want 1", r.inPlace.n)
				}
			case point == seamRead && !read:
				read = true
				r.Snapshot() // a reader publishes the update, and kicks nobody
			}
		}
		h.mu.Unlock()
		sub, err := r.Subscribe(ctx, SubscribeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var last any
		done := make(chan struct{})
		go func() {
			defer close(done)
			for s := range sub.C() {
				last, _ = s.Get(sc, "n")
			}
		}()
		synctest.Wait()
		if !armed || !read {
			t.Fatalf("seams not reached: arm %v, read %v", armed, read)
		}
		sub.Close()
		<-done
		if last != int64(1) {
			t.Errorf("R18: the subscriber holds n=%v once everything settled, want 1", last)
		}
	})
}
