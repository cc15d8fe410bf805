package core

import (
	"context"
	"fmt"
	"sync"
)

// The batched write path (issue #14): Registry.UpdateBatch applies several
// updates under one acquisition of the write lock, as a batch:
//
//   - each update is checked and applied on its own, in order, against the
//     working state as the updates before it left it: its own error
//     (nothing applied), its own no-op suppression (R6) and, if effective,
//     its own sequence number (R7) and metadata (R42);
//   - consecutive state updates share one working copy whose new nodes are
//     changed in place until it is published (transient nodes, see edits):
//     a key flapped a hundred times in a batch is one node, not a hundred
//     copies, and the run is published once, with one wake of the notifier;
//   - a config update is one mutation as Commit makes it (mutateLocked): its
//     own record, published only once durable and after everything before
//     it (R24); the state updates before it are published (or queued) first
//     and those after it wait behind it, in sequence order.
//
// Owner.Update does not combine concurrent callers into batches. That was
// built and measured on two cores (4 producers, fresh values per update):
// the lock is held for a fraction of an update's cost, so a producer rarely
// finds another one queued (1.0 to 2.4 updates per batch when it does), the
// lock-free check and queue cost the uncontended update 4 to 8 % of its CPU
// time, and spinning for the lock instead of parking cost more CPU than it
// saved; no throughput was gained. A caller with several updates at hand
// (a daemon connection's pipelined requests) batches them itself.

// request is one update of a batch.
type request struct {
	o     *Owner
	scope Scope
	ps    []pair
	buf   [4]pair // ps's storage for small updates
	next  *request

	// Set under r.mu when it is applied.
	err     error
	wait    func() error // the outcome of a mutation queued for durability (nil: err)
	applied bool         // effective, in the state batch being applied
}

var requests = sync.Pool{New: func() any { return new(request) }}

// release returns a request to the pool. Its values stay referenced until
// it is reused or the pool drops it: clearing them would cost a write
// barrier per pointer while the collector runs, which is most of the time
// under a flapping load.
func (q *request) release() {
	q.next, q.err, q.wait, q.applied = nil, nil, nil, false
	requests.Put(q)
}

// outcome is the error of a done request, after its durability for a
// queued mutation.
func (q *request) outcome() error {
	if q.wait != nil {
		return q.wait()
	}
	return q.err
}

// applyBatchLocked applies list, requests in order, setting each one's
// outcome, and publishes (or queues) what they changed.
func (r *Registry) applyBatchLocked(n *notice, list *request) {
	r.publishInPlaceLocked() // before the batch shares r.work's nodes
	b := batch{from: list}
	for q := list; q != nil; q = q.next {
		switch {
		case r.closed:
			q.err = ErrClosed
		case q.scope.Bucket == Config:
			// One mutation of its own, after the state updates before it.
			b.flush(r, n, q)
			w, m := r.mutateLocked(func(t *txn) error { return q.o.put(t, q.scope, q.ps) })
			n.add(m)
			q.wait = w
			b.from = q.next
		default:
			q.err, q.applied = b.apply(r, q.o, q.scope, q.ps)
		}
	}
	b.flush(r, n, nil)
}

// batch is a run of state updates applied on one working copy (r.scratch)
// and published together: the requests from from on.
type batch struct {
	from    *request
	started bool
	applied int // effective updates
}

// apply applies one state update to the batch's working copy: nothing if
// it fails or changes nothing (R6), else with the next sequence number.
func (b *batch) apply(r *Registry, o *Owner, scope Scope, ps []pair) (err error, applied bool) {
	if err := o.live(); err != nil {
		return err, false
	}
	t := &r.scratch
	switch {
	case !b.started:
		*t = txn{st: *r.work, base: r.work, reg: r}
		b.started = true
	case b.applied > 0 && t.edits == nil:
		// A second effective update: from now on the nodes the batch
		// creates are changed in place until it is published.
		t.edits = &r.edits
	}
	t.seq, t.uid, t.changed = r.seq+1, o.uid, false
	if err := o.updatePairs(t, scope, ps); err != nil {
		return err, false // checked before anything changed
	}
	if !t.changed {
		return nil, false
	}
	r.seq = t.seq
	b.applied++
	return nil, true
}

// flush publishes the batch's working copy, or queues it behind unpublished
// mutations or for a sequence number reservation; then the outcome of its
// effective updates, the requests from b.from up to end (exclusive), is
// that entry's. n gets what to tell the notifier.
func (b *batch) flush(r *Registry, n *notice, end *request) {
	if !b.started {
		return
	}
	t := &r.scratch
	b.started = false
	if t.edits != nil {
		t.edits.reset() // the batch's nodes are immutable from here on
		t.edits = nil
	}
	if b.applied == 0 {
		return
	}
	count := uint64(b.applied)
	b.applied = 0
	r.batches++
	r.batched += count
	st := t.finish(r.seq)
	r.work = st
	if r.reservedLocked() && len(r.queue) == 0 {
		r.pub.Store(st)
		r.countPublished(t.buckets, count)
		n.add(t.notice())
	} else {
		p := &pending{st: st, bkts: t.buckets, n: count, ready: r.reservedLocked(), done: make(chan struct{})}
		r.queue = append(r.queue, p)
		for q := b.from; q != end; q = q.next {
			if q.applied {
				q.wait = p.wait
			}
		}
	}
	if r.log != nil && r.failed == nil {
		r.reserveLocked() // ahead of use: the next batch need not wait
	}
}

// BatchUpdate is one update of UpdateBatch: Owner.Update(ctx, Scope,
// Values).
type BatchUpdate struct {
	Owner  *Owner
	Scope  Scope
	Values Values
}

// UpdateBatch applies each update as its Owner.Update would, in order,
// under one acquisition of the write lock: with the same checks and
// errors, each its own no-op suppression (R6), sequence number (R7) and,
// for config, record (R24); a run of state updates is published once (see
// the package doc's write path). It returns each update's error (nil:
// applied, or a no-op) once every config update in it is durable, as
// Update would have. A failing update changes nothing and does not stop
// the others. Every Owner must be a session of r; one of another registry
// fails with ErrInvalidOwner. The daemon applies a connection's pipelined
// updates so.
func (r *Registry) UpdateBatch(ctx context.Context, us []BatchUpdate) []error {
	errs := make([]error, len(us))
	qs := make([]*request, len(us))
	var first, last *request
	for i, u := range us {
		q := requests.Get().(*request)
		if errs[i] = u.prepare(ctx, r, q); errs[i] != nil {
			q.release()
			continue
		}
		qs[i] = q
		if last == nil {
			first = q
		} else {
			last.next = q
		}
		last = q
	}
	if first != nil {
		var n notice
		r.mu.Lock()
		r.applyBatchLocked(&n, first)
		r.mu.Unlock()
		n.send(r.hub)
	}
	for i, q := range qs {
		if q != nil {
			errs[i] = q.outcome()
			q.release()
		}
	}
	return errs
}

// prepare does Owner.Update's checks that need no lock, into q.
func (u BatchUpdate) prepare(ctx context.Context, r *Registry, q *request) error {
	o := u.Owner
	if o == nil || o.r != r {
		return fmt.Errorf("%w: not a session of this registry", ErrInvalidOwner)
	}
	if err := o.check(ctx); err != nil {
		return err
	}
	if err := u.Scope.Validate(); err != nil {
		return err
	}
	ps, size, err := normalizePairs(u.Values, q.buf[:0])
	if err != nil {
		return err
	}
	if size > r.maxBytes {
		return tooLarge(size, r.maxBytes, u.Scope, 1)
	}
	q.o, q.scope, q.ps = o, u.Scope, ps
	return nil
}

// notice is what the notifier must hear of changes published under the
// write lock, once the lock is released.
type notice struct {
	set  bool
	many bool  // several (or unknown) scopes changed
	one  Scope // else the one that changed
}

// notice returns what to tell the notifier of t's published changes.
func (t *txn) notice() notice {
	return notice{set: true, one: t.one, many: t.many || !t.touched}
}

// add merges m into n.
func (n *notice) add(m notice) {
	switch {
	case !m.set:
	case !n.set:
		*n = m
	case m.many || n.many || m.one != n.one:
		n.many = true
	}
}

func (n notice) send(h *hub) {
	switch {
	case !n.set:
	case n.many:
		h.notify()
	default:
		h.notifyScope(n.one)
	}
}
