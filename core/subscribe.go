package core

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// SubscribeOptions configures a subscription (R16–R21).
type SubscribeOptions struct {
	// MinInterval: consecutive deliveries, the initial one included, are at
	// least this far apart (R17). Zero: no rate limit.
	MinInterval time.Duration
	// Hysteresis: a fixed delay from the first change after a delivery to
	// the delivery of the latest state (R20). Zero: none.
	Hysteresis time.Duration
	// Match limits the changes that wake the subscription (R21). Zero:
	// every change. Deliveries always carry the whole view.
	Match Pattern
}

// Subscription delivers snapshots of the whole view (R16). It holds at most
// one undelivered snapshot (R19): a newer one replaces it. An idle
// subscription owns no goroutine; a pending delivery is a timer.
type Subscription struct {
	h    *hub
	opts SubscribeOptions
	ch   chan Snapshot

	mu     sync.Mutex // guards the fields below
	last   *state     // the state last handed over
	lastAt time.Time  // when
	armed  bool       // waiting for a change (registered in its group)
	timer  *time.Timer
	timed  bool // a timer delivery is pending
	closed bool
}

// C returns the delivery channel. It is closed by Close and by the
// registry's Close.
func (s *Subscription) C() <-chan Snapshot { return s.ch }

// Subscribe returns a subscription whose first delivery, the current state,
// is already waiting on C (R16). ctx bounds only this call.
func (r *Registry) Subscribe(ctx context.Context, opts SubscribeOptions) (*Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := &Subscription{h: r.hub, opts: opts, ch: make(chan Snapshot, 1)}
	h := r.hub
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	s.mu.Lock()
	closed := s.closed // the registry may have closed in between
	if !closed {
		s.deliverLocked(time.Now())
	}
	s.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	return s, nil
}

// Close ends the subscription: nothing is delivered afterwards, a snapshot
// not yet taken is dropped, and C is closed. Idempotent.
func (s *Subscription) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.timed && s.timer.Stop() {
		s.timed = false
		s.h.timers.Done()
	}
	if s.armed {
		s.disarmLocked()
	}
	select {
	case <-s.ch:
	default:
	}
	close(s.ch)
	s.mu.Unlock()
	s.h.mu.Lock()
	delete(s.h.subs, s)
	s.h.mu.Unlock()
	return nil
}

// deliverLocked hands the latest state over and arms the subscription for
// the next change. The arm happens before the state is read, so a change
// published in between is never missed.
func (s *Subscription) deliverLocked(now time.Time) {
	h := s.h
	h.mu.Lock()
	g := h.groups[s.opts.Match]
	if g == nil {
		g = &group{armed: map[*Subscription]struct{}{}}
		h.groups[s.opts.Match] = g
		h.patternsChangedLocked()
	}
	g.armed[s] = struct{}{}
	h.narmed.Add(1)
	s.armed = true
	cur := h.r.pub.Load()
	kick := false
	if len(g.armed) == 1 {
		g.seen, g.dirty = cur, false
	} else if regionChanged(g.seen, cur, s.opts.Match) {
		// The group's reference is older than this member's view: make
		// the notifier re-check every member individually.
		g.dirty, kick = true, true
	}
	h.mu.Unlock()

	select {
	case <-s.ch:
		h.r.stats.coalesced.Add(1)
	default:
	}
	s.ch <- Snapshot{cur}
	s.last, s.lastAt = cur, now
	h.r.stats.deliveries.Add(1)
	if kick {
		h.kick()
	}
}

func (s *Subscription) disarmLocked() {
	h := s.h
	h.mu.Lock()
	if g := h.groups[s.opts.Match]; g != nil {
		delete(g.armed, s)
		if len(g.armed) == 0 {
			delete(h.groups, s.opts.Match)
			h.patternsChangedLocked()
		}
	}
	h.narmed.Add(-1)
	s.armed = false
	h.mu.Unlock()
}

// changed is called by the notifier when cur may hold a change for s.
func (s *Subscription) changed(cur *state, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.armed || !regionChanged(s.last, cur, s.opts.Match) {
		return
	}
	s.disarmLocked()
	// R20: Hysteresis from the change; R17: MinInterval from the last
	// delivery; whichever is later.
	at := now.Add(s.opts.Hysteresis)
	if next := s.lastAt.Add(s.opts.MinInterval); next.After(at) {
		at = next
	}
	d := at.Sub(now)
	if d <= 0 {
		s.deliverLocked(now)
		return
	}
	s.timed = true
	s.h.timers.Add(1)
	if s.timer == nil {
		s.timer = time.AfterFunc(d, s.fire)
	} else {
		s.timer.Reset(d)
	}
}

func (s *Subscription) fire() {
	defer s.h.timers.Done()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timed = false
	if !s.closed {
		s.deliverLocked(time.Now())
	}
}

// hub is the notifier: one goroutine that, after each published change
// while any subscription is armed, finds the subscriptions the change
// concerns and schedules their deliveries. Producers only do an atomic load
// and, when someone is armed, a non-blocking send (R19: producers never
// block on subscribers).
type hub struct {
	r        *Registry
	narmed   atomic.Int64              // armed subscriptions
	patterns atomic.Pointer[[]Pattern] // patterns of the groups with armed members
	kickc    chan struct{}             // 1 slot: a pass is due
	stop     chan struct{}             // closed by close
	done     chan struct{}             // closed when the goroutine ends
	timers   sync.WaitGroup            // pending timer deliveries

	mu     sync.Mutex // guards the fields below; taken after Subscription.mu
	groups map[Pattern]*group
	subs   map[*Subscription]struct{}
	closed bool
}

// group holds the armed subscriptions of one pattern. Invariant: unless
// dirty, no armed member's last state differs from seen inside the pattern,
// so one regionChanged(seen, cur) check covers all members.
type group struct {
	seen  *state
	dirty bool
	armed map[*Subscription]struct{}
}

func newHub(r *Registry) *hub {
	h := &hub{
		r:      r,
		kickc:  make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		groups: map[Pattern]*group{},
		subs:   map[*Subscription]struct{}{},
	}
	go h.run()
	return h
}

// notify is called by producers after publishing.
func (h *hub) notify() {
	if h.narmed.Load() > 0 {
		h.kick()
	}
}

// notifyScope is notify for a mutation that changed only sc: it kicks the
// notifier only if an armed group's pattern matches sc, so scoped
// subscriptions cost producers nothing while unrelated keys flap. The
// patterns are published before an arming subscription reads the state,
// and producers read them after publishing, so no change is missed.
func (h *hub) notifyScope(sc Scope) {
	if h.narmed.Load() == 0 {
		return
	}
	if ps := h.patterns.Load(); ps != nil {
		for _, p := range *ps {
			if p.Matches(sc) {
				h.kick()
				return
			}
		}
	}
}

// patternsChangedLocked republishes the patterns of the armed groups.
// Called with h.mu held whenever a group appears or disappears.
func (h *hub) patternsChangedLocked() {
	ps := make([]Pattern, 0, len(h.groups))
	for p := range h.groups {
		ps = append(ps, p)
	}
	h.patterns.Store(&ps)
}

func (h *hub) kick() {
	select {
	case h.kickc <- struct{}{}:
	default:
	}
}

func (h *hub) run() {
	defer close(h.done)
	for {
		select {
		case <-h.stop:
			return
		case <-h.kickc:
		}
		h.pass()
	}
}

func (h *hub) pass() {
	cur := h.r.pub.Load()
	var fire []*Subscription
	h.mu.Lock()
	for pat, g := range h.groups {
		if !g.dirty && !regionChanged(g.seen, cur, pat) {
			continue
		}
		g.seen, g.dirty = cur, false
		for s := range g.armed {
			fire = append(fire, s)
		}
	}
	h.mu.Unlock()
	now := time.Now()
	for _, s := range fire {
		s.changed(cur, now)
	}
}

func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// close closes every subscription and stops the goroutine and timers.
func (h *hub) close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	subs := make([]*Subscription, 0, len(h.subs))
	for s := range h.subs {
		subs = append(subs, s)
	}
	h.mu.Unlock()
	for _, s := range subs {
		s.Close()
	}
	close(h.stop)
	<-h.done
	h.timers.Wait()
}
