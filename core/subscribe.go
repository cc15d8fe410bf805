package core

import (
	"context"
	"fmt"
	"slices"
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
// one undelivered snapshot (R19): a newer one replaces it. A subscription
// owns no goroutine and no timer: the registry's notifier delivers.
type Subscription struct {
	h    *hub
	opts SubscribeOptions
	ch   chan Snapshot
	g    *group // the subscriptions sharing opts.Match

	// Guarded by h.mu.
	lastAt int64   // when the last delivery was made, in ns since h.epoch
	lagAt  int64   // the lastAt that Lagging counted last (-1: none)
	cohort *cohort // while armed: the cohort it waits in
	idx    int32   // index in h.all
	phase  subPhase
	err    error // why C was closed (Err)
}

type subPhase uint8

const (
	armed   subPhase = iota // waiting for a change (in a cohort)
	waiting                 // a change came; a delivery is scheduled
	closed
)

// C returns the delivery channel. It is closed by Close and by the
// registry's Close.
func (s *Subscription) C() <-chan Snapshot { return s.ch }

// Subscribe returns a subscription whose first delivery, the current state,
// is already waiting on C (R16). ctx bounds only this call.
func (r *Registry) Subscribe(ctx context.Context, opts SubscribeOptions) (*Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := opts.Match.Validate(); err != nil {
		return nil, err
	}
	h := r.hub
	s := &Subscription{h: h, opts: opts, ch: make(chan Snapshot, 1), lagAt: -1}
	// The first delivery is the current state (R16): publish the updates
	// applied in place first (inplace.go), before h.mu, which deliverLocked
	// holds and under which the write lock may not be waited for.
	r.published()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	g := h.groups[opts.Match]
	if g == nil {
		g = newGroup(opts.Match)
		h.groups[opts.Match] = g
	}
	g.nsubs++
	s.g = g
	s.idx = int32(len(h.all))
	h.all = append(h.all, s)
	h.deliverLocked(s, h.since(time.Now()))
	return s, nil
}

// Lagging finds the subscriptions whose last delivery has waited on C, not
// taken, for at least threshold(their MinInterval) at now (R51). Each
// delivery counts once: a subscription found lagging is found again only
// after it took that delivery and lags on a later one. n is how many were
// found, worst the longest wait among them. It scans every subscription
// under the notifier's lock, never a producer's: call it every few
// seconds, not per mutation. threshold runs under that lock and must not
// call the registry.
func (r *Registry) Lagging(now time.Time, threshold func(minInterval time.Duration) time.Duration) (n int, worst time.Duration) {
	h := r.hub
	at := h.since(now)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.all {
		if len(s.ch) == 0 || s.lagAt == s.lastAt {
			continue
		}
		waited := time.Duration(at - s.lastAt)
		if waited < threshold(s.opts.MinInterval) {
			continue
		}
		s.lagAt = s.lastAt
		n++
		worst = max(worst, waited)
	}
	return n, worst
}

// errSubClosed and errRegistryClosed are what Err reports after Close and
// after the registry's Close.
var (
	errSubClosed      = fmt.Errorf("%w: subscription closed", ErrClosed)
	errRegistryClosed = fmt.Errorf("%w: registry closed", ErrClosed)
)

// Err says why C was closed: nil while the subscription is open; an error
// matching ErrClosed after its Close ("subscription closed") or the
// registry's ("registry closed"). The ctx given to Subscribe bounds only
// that call, so it never closes C.
func (s *Subscription) Err() error {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	return s.err
}

// Close ends the subscription: nothing is delivered afterwards, a snapshot
// not yet taken is dropped, and C is closed. Idempotent.
func (s *Subscription) Close() error { return s.closeWith(errSubClosed) }

// closeWith is Close, with the reason Err will report.
func (s *Subscription) closeWith(why error) error {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.phase == closed {
		return nil
	}
	s.err = why
	if s.phase == armed {
		h.leaveCohortLocked(s)
	}
	// A scheduled delivery finds it closed and skips it.
	s.phase = closed
	last := len(h.all) - 1
	h.all[s.idx] = h.all[last]
	h.all[s.idx].idx = s.idx
	h.all[last] = nil
	h.all = h.all[:last]
	if s.g.nsubs--; s.g.nsubs == 0 && s.g.aidx < 0 {
		delete(h.groups, s.g.pat)
	}
	select {
	case <-s.ch:
	default:
	}
	close(s.ch)
	return nil
}

// hub is the notifier: one goroutine that, after published changes while
// any subscription is armed, finds the cohorts the changes concern,
// schedules their members' deliveries, and makes the deliveries when they
// are due. Producers only do atomic loads and, when a matching subscription
// is armed, a non-blocking send (R19: producers never block on
// subscribers).
type hub struct {
	r     *Registry
	epoch time.Time // times below are ns since epoch (monotonic)

	// What producers read. narmed counts the groups with armed members;
	// filter says which scopes they may care about.
	narmed atomic.Int32
	filter [2]interest // per bucket

	kickc chan struct{} // 1 slot: a pass is due
	stop  chan struct{} // closed by close
	done  chan struct{} // closed when the goroutine ends
	timer *time.Timer   // the earliest scheduled tick; used by the notifier only
	tick  int64         // the tick the timer is set for; noTick: none

	mu     sync.Mutex // guards the fields below and every Subscription's
	groups map[Pattern]*group
	armed  []*group        // groups with armed members
	all    []*Subscription // live subscriptions
	sched  schedule        // waiting subscriptions by due tick
	counts [2][nKinds][64]int32
	free   []*cohort // recycled cohorts
	closed bool

	// seam, if set (internal tests, under mu before any Subscribe), runs
	// in deliverLocked under mu: at seamArm before the subscription is
	// armed, at seamRead between the reads of the dirty flag and of the
	// published state, so that a test can race an in-place update and a
	// reader into the arming protocol.
	seam func(point int)
}

// The points where hub.seam runs.
const (
	seamArm = iota
	seamRead
)

// group is every live subscription with one pattern; its armed members are
// kept in cohorts by the state they last saw.
type group struct {
	pat     Pattern
	nsubs   int
	cohorts []*cohort // oldest first
	aidx    int       // index in hub.armed; -1 while none is armed
}

// cohort holds armed subscriptions of one group that last saw the same
// region: no member's last delivery differs from seen inside the pattern.
// One regionChanged(seen, cur) check therefore covers every member.
type cohort struct {
	g    *group
	seen *state
	subs []*Subscription
	dead int // members closed while armed (left in subs)
}

func newGroup(p Pattern) *group { return &group{pat: p, aidx: -1} }

const (
	// tickNs is the granularity of scheduled deliveries: a delivery due at
	// t goes out at the first multiple of tickNs after epoch not before t,
	// so it is never early (R17, R20) and at most 1 ms late.
	tickNs = int64(time.Millisecond)
	noTick = int64(-1)
)

func newHub(r *Registry) *hub {
	h := &hub{
		r:      r,
		epoch:  time.Now(),
		kickc:  make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		tick:   noTick,
		groups: map[Pattern]*group{},
	}
	h.timer = time.NewTimer(time.Hour)
	h.timer.Stop()
	go h.run()
	return h
}

func (h *hub) since(t time.Time) int64 { return int64(t.Sub(h.epoch)) }

// notify is called by producers after publishing a change of several (or
// unknown) scopes.
func (h *hub) notify() {
	if h.narmed.Load() > 0 {
		h.kick()
	}
}

// notifyScope is notify for a mutation that changed only sc. It kicks the
// notifier only if an armed group may match sc: a few atomic loads, whatever
// the number of subscriptions and patterns, so subscriptions cost the
// producers nothing while they are not due. The filter is published before
// an arming subscription reads the state, and producers read it after
// publishing, so no change is missed.
func (h *hub) notifyScope(sc Scope) {
	if h.narmed.Load() == 0 {
		return
	}
	if b := int(sc.Bucket) - 1; b >= 0 && b < 2 && h.filter[b].mayMatch(sc) {
		h.kick()
	}
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
			h.timer.Stop()
			return
		case <-h.kickc:
		case <-h.timer.C:
			h.tick = noTick
		}
		h.pass()
	}
}

// pass wakes the members of every cohort whose region changed, makes the
// deliveries that are due, and sets the timer for the next ones. Its work
// is one check per armed cohort plus one step per woken or delivered
// subscription: members sharing a pattern and a last state cost one check.
func (h *hub) pass() {
	cur := h.r.published()
	h.mu.Lock()
	now := h.since(time.Now())
	var fired []*cohort
	for i := 0; i < len(h.armed); {
		g := h.armed[i]
		keep := g.cohorts[:0]
		for _, c := range g.cohorts {
			if regionChanged(c.seen, cur, g.pat) {
				fired = append(fired, c)
			} else {
				keep = append(keep, c)
			}
		}
		clear(g.cohorts[len(keep):])
		g.cohorts = keep
		if len(keep) == 0 {
			h.disarmLocked(g) // swaps the last armed group into i
			continue
		}
		i++
	}
	for _, c := range fired {
		for _, s := range c.subs {
			if s.phase == armed && s.cohort == c {
				s.cohort = nil
				h.wakeLocked(s, now)
			}
		}
		h.recycle(c)
	}
	for {
		subs := h.sched.due(now)
		if subs == nil {
			break
		}
		for _, s := range *subs {
			if s.phase == waiting {
				h.deliverLocked(s, now)
			}
		}
		h.sched.release(subs)
	}
	next := h.sched.next()
	h.mu.Unlock()
	if next != h.tick {
		h.tick = next
		if next != noTick {
			h.timer.Reset(time.Duration(next*tickNs - h.since(time.Now())))
		} else {
			h.timer.Stop()
		}
	}
}

// wakeLocked schedules the delivery of a subscription whose region changed
// at now: at max(now + Hysteresis, last delivery + MinInterval) (R17, R20),
// at once if that has passed.
func (h *hub) wakeLocked(s *Subscription, now int64) {
	at := max(now+int64(s.opts.Hysteresis), s.lastAt+int64(s.opts.MinInterval))
	if at <= now {
		h.deliverLocked(s, now)
		return
	}
	s.phase = waiting
	h.sched.add((at+tickNs-1)/tickNs, s)
}

// deliverLocked hands the latest state over and arms the subscription for
// the next change. The arm (publishing the filter) happens before the state
// is read, so a change published in between is never missed.
func (h *hub) deliverLocked(s *Subscription, now int64) {
	g := s.g
	if h.seam != nil {
		h.seam(seamArm)
	}
	if len(g.cohorts) == 0 {
		h.armLocked(g)
	}
	if h.r.dirty.Load() {
		// An in-place update not yet published (inplace.go) may have
		// read the filter before the arm: a pass publishes it and wakes
		// the cohort if it changed the region. (The notifier holds h.mu
		// here and may not wait for the write lock.) The flag is read
		// before the state: if it is clear, whoever published such an
		// update stored it before clearing the flag, so cur holds it.
		// Read after the state, a reader (a Snapshot, another write)
		// could publish it in between, kicking nobody (R18).
		h.kick()
	}
	if h.seam != nil {
		h.seam(seamRead)
	}
	cur := h.r.pub.Load()
	var c *cohort
	if n := len(g.cohorts); n > 0 && !regionChanged(g.cohorts[n-1].seen, cur, g.pat) {
		c = g.cohorts[n-1]
	} else {
		if n > 0 {
			// The older cohorts saw a region that cur no longer has: a
			// pass must wake them (a producer kicked already; this is
			// belt and braces).
			h.kick()
		}
		c = h.newCohort(g, cur)
		g.cohorts = append(g.cohorts, c)
	}
	c.subs = append(c.subs, s)
	s.cohort, s.phase = c, armed

	select {
	case <-s.ch:
		h.r.stats.coalesced.Add(1)
	default:
	}
	s.ch <- Snapshot{cur} // cannot block: only senders hold h.mu, and the slot is free
	s.lastAt = now
	h.r.stats.deliveries.Add(1)
}

// leaveCohortLocked removes an armed subscription that is closing from its
// cohort: lazily, compacting once half the cohort is gone.
func (h *hub) leaveCohortLocked(s *Subscription) {
	c := s.cohort
	s.cohort = nil
	c.dead++
	if c.dead < len(c.subs) {
		if c.dead > 16 && 2*c.dead > len(c.subs) {
			live := c.subs[:0]
			for _, m := range c.subs {
				if m.cohort == c {
					live = append(live, m)
				}
			}
			clear(c.subs[len(live):])
			c.subs, c.dead = live, 0
		}
		return
	}
	g := c.g
	if i := slices.Index(g.cohorts, c); i >= 0 {
		g.cohorts = slices.Delete(g.cohorts, i, i+1)
	}
	h.recycle(c)
	if len(g.cohorts) == 0 {
		h.disarmLocked(g)
	}
}

func (h *hub) newCohort(g *group, seen *state) *cohort {
	var c *cohort
	if n := len(h.free); n > 0 {
		c, h.free = h.free[n-1], h.free[:n-1]
	} else {
		c = &cohort{}
	}
	c.g, c.seen = g, seen
	return c
}

func (h *hub) recycle(c *cohort) {
	clear(c.subs)
	c.g, c.seen, c.subs, c.dead = nil, nil, c.subs[:0], 0
	if cap(c.subs) > 4096 {
		c.subs = nil // do not keep a burst's memory for ever
	}
	if len(h.free) < 64 {
		h.free = append(h.free, c)
	}
}

// armLocked makes g armed: producers see its pattern in the filter from now
// on.
func (h *hub) armLocked(g *group) {
	g.aidx = len(h.armed)
	h.armed = append(h.armed, g)
	h.countLocked(g.pat, 1)
	h.narmed.Add(1)
}

// disarmLocked removes g, which has no cohort left, from the armed groups
// (swapping the last one into its place) and from the filter.
func (h *hub) disarmLocked(g *group) {
	last := len(h.armed) - 1
	h.armed[g.aidx] = h.armed[last]
	h.armed[g.aidx].aidx = g.aidx
	h.armed[last] = nil
	h.armed = h.armed[:last]
	g.aidx = -1
	h.narmed.Add(-1)
	h.countLocked(g.pat, -1)
	if g.nsubs == 0 {
		delete(h.groups, g.pat)
	}
}

// countLocked adds d to the filter bits of pattern p in both buckets it
// covers, publishing a bit when its count leaves or reaches zero.
func (h *hub) countLocked(p Pattern, d int32) {
	for b := range 2 {
		if p.Bucket != 0 && int(p.Bucket)-1 != b {
			continue
		}
		k, bit := filterBit(p)
		n := &h.counts[b][k][bit]
		switch *n += d; {
		case d > 0 && *n == d:
			h.filter[b].words[k].Or(1 << bit)
		case d < 0 && *n == 0:
			h.filter[b].words[k].And(^uint64(1 << bit))
		}
	}
}

// interest is the producers' view of the armed patterns of one bucket: a
// bit per kind of pattern and hash of its fields. It may say yes for a
// scope no armed pattern matches (then the notifier's pass finds nothing to
// do), never no for one that one matches.
type interest struct {
	words [nKinds]atomic.Uint64
}

const (
	kindAll     = iota // Type and Subtype wildcards: bit 0
	kindType           // Type only: bit of the type's hash
	kindSubtype        // Subtype only
	kindScope          // both
	nKinds
)

func filterBit(p Pattern) (kind int, bit uint) {
	switch {
	case p.Type == "" && p.Subtype == "":
		return kindAll, 0
	case p.Subtype == "":
		return kindType, uint(strHash(p.Type) & 63)
	case p.Type == "":
		return kindSubtype, uint(strHash(p.Subtype) & 63)
	}
	return kindScope, scopeBit(strHash(p.Type), strHash(p.Subtype))
}

func scopeBit(ht, hs uint64) uint { return uint((ht ^ hs*0x9e3779b97f4a7c15) >> 58) }

func (in *interest) mayMatch(sc Scope) bool {
	if in.words[kindAll].Load() != 0 {
		return true
	}
	wt, ws, wsc := in.words[kindType].Load(), in.words[kindSubtype].Load(), in.words[kindScope].Load()
	if wt|ws|wsc == 0 {
		return false
	}
	ht, hs := strHash(sc.Type), strHash(sc.Subtype)
	return wt&(1<<(ht&63)) != 0 || ws&(1<<(hs&63)) != 0 || wsc&(1<<scopeBit(ht, hs)) != 0
}

// strHash is FNV-1a: short, inlinable, and good enough for a 64-bit filter.
func strHash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// schedule holds waiting subscriptions by the tick their delivery is due:
// a bucket per tick and a min-heap of the ticks. Members of a cohort woken
// together were mostly delivered together, so they fall into one tick: the
// last bucket used is kept at hand, and adding to it is an append.
type schedule struct {
	buckets map[int64]*[]*Subscription
	ticks   []int64 // min-heap
	spare   []*[]*Subscription
	last    int64 // the tick of lastB
	lastB   *[]*Subscription
}

func (q *schedule) add(tick int64, s *Subscription) {
	if q.lastB != nil && q.last == tick {
		*q.lastB = append(*q.lastB, s)
		return
	}
	if q.buckets == nil {
		q.buckets = map[int64]*[]*Subscription{}
	}
	b := q.buckets[tick]
	if b == nil {
		if n := len(q.spare); n > 0 {
			b, q.spare = q.spare[n-1], q.spare[:n-1]
		} else {
			b = new([]*Subscription)
		}
		q.buckets[tick] = b
		q.push(tick)
	}
	*b = append(*b, s)
	q.last, q.lastB = tick, b
}

// due removes and returns the earliest bucket if its tick is not after now;
// hand it back with release.
func (q *schedule) due(now int64) *[]*Subscription {
	if len(q.ticks) == 0 || q.ticks[0]*tickNs > now {
		return nil
	}
	t := q.pop()
	b := q.buckets[t]
	delete(q.buckets, t)
	if q.lastB == b {
		q.lastB = nil
	}
	return b
}

// release returns a bucket for reuse.
func (q *schedule) release(b *[]*Subscription) {
	clear(*b)
	*b = (*b)[:0]
	if cap(*b) > 4096 {
		*b = nil // do not keep a burst's memory for ever
	}
	if len(q.spare) < 64 {
		q.spare = append(q.spare, b)
	}
}

func (q *schedule) next() int64 {
	if len(q.ticks) == 0 {
		return noTick
	}
	return q.ticks[0]
}

func (q *schedule) push(t int64) {
	q.ticks = append(q.ticks, t)
	for i := len(q.ticks) - 1; i > 0; {
		p := (i - 1) / 2
		if q.ticks[p] <= q.ticks[i] {
			break
		}
		q.ticks[p], q.ticks[i] = q.ticks[i], q.ticks[p]
		i = p
	}
}

func (q *schedule) pop() int64 {
	t := q.ticks[0]
	last := len(q.ticks) - 1
	q.ticks[0] = q.ticks[last]
	q.ticks = q.ticks[:last]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < last && q.ticks[l] < q.ticks[m] {
			m = l
		}
		if r := l + 1; r < last && q.ticks[r] < q.ticks[m] {
			m = r
		}
		if m == i {
			break
		}
		q.ticks[i], q.ticks[m] = q.ticks[m], q.ticks[i]
		i = m
	}
	return t
}

func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.all)
}

// close closes every subscription and stops the goroutine.
func (h *hub) close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	subs := append([]*Subscription(nil), h.all...)
	h.mu.Unlock()
	for _, s := range subs {
		s.closeWith(errRegistryClosed)
	}
	close(h.stop)
	<-h.done
}
