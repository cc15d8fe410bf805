package core

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// MaxGrace is the longest OwnerOptions.Grace (R48).
const MaxGrace = time.Hour

// Grace periods (R48). A session that ends by Abandon — the daemon calls it
// when a connection drops or a client process dies — with a Grace above
// zero leaves its keys where they are: the name goes from r.sessions to
// r.graces, with a timer. Within Grace, Owner of the same name takes the
// keys over (no mutation, no notification); Evict ends the grace at once;
// when the timer fires, the owner dies as Close makes it die (R13), in one
// mutation. An owner in grace is not live: it raises no ErrOwnerInUse.
// Registry.Close stops every timer: a clean close never deletes config
// (R27), and state goes with the process anyway.

// graceEntry is an owner name in grace: the ended session, whose death
// runs when timer fires.
type graceEntry struct {
	o     *Owner
	timer *time.Timer
}

func validGrace(d time.Duration) error {
	if d < 0 || d > MaxGrace {
		return fmt.Errorf("%w: grace %v, want 0 to %v", ErrLimit, d, MaxGrace)
	}
	return nil
}

// Abandon ends the session as a dropped connection or a dead process ends
// it (R48): with OwnerOptions.Grace above zero its keys stay for Grace,
// and a session of the same name that attaches within it takes them over
// without a mutation; otherwise, and at the end of Grace, the owner dies
// as with Close (R13). Without Grace, Abandon is Close. Like Close it is
// idempotent and ends the Owner value: its later calls fail with
// ErrClosed.
func (o *Owner) Abandon() error {
	if o.grace <= 0 {
		return o.Close()
	}
	if o.closed.Swap(true) {
		return nil
	}
	r := o.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if o.ended || r.closed {
		return nil // the registry closed: no owner death (R27)
	}
	o.ended = true
	delete(r.sessions, o.name)
	g := &graceEntry{o: o}
	g.timer = time.AfterFunc(o.grace, func() { r.graceEnd(g) })
	r.graces[o.name] = g
	return nil
}

// graceEnd runs when g's timer fires: the owner dies (R13), unless its name
// was taken over or evicted meanwhile.
func (r *Registry) graceEnd(g *graceEntry) {
	err := r.mutate(func(t *txn) error {
		if r.graces[g.o.name] != g {
			return nil
		}
		delete(r.graces, g.o.name)
		g.o.die(t)
		return nil
	})
	if err != nil && !errors.Is(err, ErrClosed) {
		r.logger.Warn("owner death at the end of grace failed", "owner", g.o.name, "error", err)
	}
}

// endGraceLocked ends name's grace, if any, without a mutation: its keys
// are taken over or evicted. Called with r.mu held.
func (r *Registry) endGraceLocked(name string) {
	if g := r.graces[name]; g != nil {
		g.timer.Stop()
		delete(r.graces, name)
	}
}

// InGrace reports whether name's last session was abandoned and its grace
// has not ended (R48): its keys are there, and no session is live.
func (r *Registry) InGrace(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.graces[name]
	return ok
}

// Sessions returns the names that have a live session and the names in
// grace (R48), each sorted. The two lists are read together, under the
// registry's lock, but apart from any Snapshot.
func (r *Registry) Sessions() (live, grace []string) {
	r.mu.Lock()
	live = slices.Sorted(maps.Keys(r.sessions))
	grace = slices.Sorted(maps.Keys(r.graces))
	r.mu.Unlock()
	return live, grace
}
