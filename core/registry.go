package core

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// ErrLog is returned for config writes once the Log has failed (R29): the
// registry refuses config mutations until it is rebuilt from a reopened
// journal, while state keeps working. It wraps the Log's error.
var ErrLog = errors.New("sysreg: journal failed; config is read-only until the store is reopened")

// Options configures New. The zero value is a valid in-memory registry.
type Options struct {
	// Log makes config mutations durable before they are visible (R24). nil:
	// memory only, publication is immediate.
	Log Log
	// Initial is the state to start from (recovered config). Zero: empty.
	Initial Snapshot
	// SeqFloor: sequence numbers handed out are above max(Initial.Seq(),
	// SeqFloor) — the durable high-water mark of an earlier run (R7).
	SeqFloor uint64
	// MaxUpdateBytes limits the CBOR size of one update or transaction
	// (R2). Default DefaultMaxUpdateBytes (1 MiB).
	MaxUpdateBytes int
	// ReserveBlock is the most sequence numbers reserved in the Log at a
	// time for state mutations, which are not journaled (R7). Default 1<<20.
	// The block adapts to the load below that: see Registry.
	ReserveBlock uint64
	// Logger: nil means no logging.
	Logger hclog.Logger
	// UID is the local user of the sessions that Owner opens (R35): a name
	// they give its first key is bound to it. store.Open sets the process's
	// uid (os.Getuid). Default 0. Sessions opened with OwnerFor act for the
	// uid they name instead.
	UID uint32
}

// Registry is the in-memory registry: owners, the global view, and
// subscriptions. All methods are safe for concurrent use. New starts one
// goroutine (the notifier), which Close stops.
type Registry struct {
	// mu guards the write path: everything below up to pub, but for the
	// options (log … logger), set by New and read-only after. mu comes
	// first: the Registry's allocation (a size class of a multiple of 64
	// bytes) is cache-line aligned, so mu and the fields an in-place
	// update writes share one line. It is never held across I/O or a
	// channel send that could block.
	mu sync.Mutex
	// What an update applied in place (inplace.go) reads and writes, next
	// to mu: producers on different cores pass these cache lines back and
	// forth with the lock, so they are kept to as few as possible.
	work    *state      // latest state, published or not
	seq     uint64      // last sequence number handed out
	durable uint64      // highest sequence number durably reserved
	dirty   atomic.Bool // r.work holds in-place updates not yet published
	closed  bool
	// inPlace counts the effective in-place updates (Stats adds n to the
	// mutations counted at publication: a reader publishes them first),
	// and those of them made while earlier ones were still unpublished
	// (tests, InPlaceUpdates).
	inPlace struct{ n, chained uint64 }
	queue   []*pending // unpublished mutations, in sequence order
	failed  error      // non-nil: the Log failed; config writes refused
	// lazy holds the transient nodes of the in-place state updates not
	// yet published (inplace.go).
	lazy editSet

	log      Log
	uid      uint32 // Options.UID
	maxBytes int
	maxBlock uint64 // Options.ReserveBlock
	logger   hclog.Logger

	sessions map[string]*Owner      // live owner sessions by name
	graces   map[string]*graceEntry // owner names in grace (R48), not live
	reserved uint64                 // highest sequence number asked of Log.Reserve
	anon     uint64                 // counter for anonymous owner names
	scratch  txn                    // the working copy of the mutation in progress
	edits    editSet                // the transient nodes of a batch of updates (combine.go)
	taps     []*Tap                 // change feed taps (R47): every logged mutation as published
	// batches and batched count the runs of state updates published
	// together and the updates in them (combine.go; Stats).
	batches, batched uint64
	// deadline fires at the earliest deadline of the pending applies
	// (R44), when RollbackDue undoes what is due; guarded by mu.
	deadline struct {
		timer *time.Timer
		at    time.Time
	}

	// The last reservation (reserveLocked), also guarded by mu.
	block      uint64    // its size
	reservedAt time.Time // when it was asked

	// clock is the wall clock of mutations (R42), read at most once per
	// clockTick: now and timer are guarded by mu; stale is set by the timer.
	clock struct {
		now   int64
		stale atomic.Bool
		timer *time.Timer
	}

	pub atomic.Pointer[state] // the published state: what readers see
	hub *hub

	stats struct {
		mutations, deliveries, coalesced atomic.Uint64
		byBucket                         [Config + 1]atomic.Uint64 // effective mutations that changed each bucket
	}
}

// pending is a sequenced mutation waiting for durability or for the
// mutations before it.
type pending struct {
	st     *state
	ready  bool          // durable (or needs no log)
	logged bool          // carries a record; ready when the Log says so
	bkts   uint8         // the buckets it changes (txn.buckets), counted when published
	n      uint64        // the effective mutations it carries (a batch of updates, combine.go); 0: one
	at     int64         // logged: the record's time (Unix ns), for taps
	err    error         // set on failure
	done   chan struct{} // closed when published or failed
}

// New returns a registry in memory. See Options.
func New(opts Options) *Registry {
	r := &Registry{
		log:      opts.Log,
		uid:      opts.UID,
		maxBytes: opts.MaxUpdateBytes,
		maxBlock: opts.ReserveBlock,
		logger:   opts.Logger,
		sessions: map[string]*Owner{},
		graces:   map[string]*graceEntry{},
	}
	if r.maxBytes <= 0 {
		r.maxBytes = DefaultMaxUpdateBytes
	}
	if r.maxBlock == 0 {
		r.maxBlock = 1 << 20
	}
	if r.logger == nil {
		r.logger = hclog.NewNullLogger()
	}
	st := opts.Initial.st()
	r.seq = max(st.seq, opts.SeqFloor)
	r.durable, r.reserved = r.seq, r.seq
	if st.seq != r.seq {
		c := *st
		c.seq = r.seq
		st = &c
	}
	r.work = st
	r.pub.Store(st)
	r.hub = newHub(r)
	// Pending applies of Initial get no deadline timer: a restart is
	// never a confirmation, and the caller undoes them (RollbackAll, as
	// store.Open does) before it serves a call (R44).
	if r.log != nil {
		r.mu.Lock()
		r.reserveLocked()
		r.mu.Unlock()
	}
	return r
}

// Snapshot returns the current published view, which holds every
// acknowledged update. It is O(1): after state updates applied in place
// (inplace.go) it publishes them first, taking the write lock once for
// the whole run.
func (r *Registry) Snapshot() Snapshot { return Snapshot{r.published()} }

// Stats are counters for monitoring.
type Stats struct {
	Seq       uint64 // last sequence number handed out
	Sessions  int    // live owner sessions
	Mutations uint64 // effective mutations since New, counted once published (a failed Log append never counts)
	// StateMutations and ConfigMutations count those of Mutations that
	// changed the state or the config bucket; one that changed both counts
	// in both (R50: mutations per bucket).
	StateMutations, ConfigMutations uint64
	Deliveries                      uint64 // snapshots handed to subscriptions
	Coalesced                       uint64 // undelivered snapshots replaced by a newer one (R19)
	Subs                            int    // live subscriptions
	// Batches counts the runs of state updates that UpdateBatch published
	// together, Batched the updates in them: Batched/Batches is the mean
	// batch.
	Batches, Batched uint64
}

// Stats returns current counters.
func (r *Registry) Stats() Stats {
	r.mu.Lock()
	s := Stats{Seq: r.seq, Sessions: len(r.sessions), Batches: r.batches, Batched: r.batched}
	inPlace := r.inPlace.n // counted under the lock, not with atomics: on the hot path
	r.mu.Unlock()
	s.Mutations = r.stats.mutations.Load() + inPlace
	s.StateMutations = r.stats.byBucket[State].Load() + inPlace
	s.ConfigMutations = r.stats.byBucket[Config].Load()
	s.Deliveries = r.stats.deliveries.Load()
	s.Coalesced = r.stats.coalesced.Load()
	s.Subs = r.hub.count()
	return s
}

// Close ends every session without owner deaths (config is kept, R27),
// closes every subscription channel and stops the notifier. Later calls on
// the registry return ErrClosed. Mutations already sequenced still complete.
// Close is idempotent.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	for _, o := range r.sessions {
		o.closed.Store(true)
		o.ended = true
	}
	clear(r.sessions)
	for name := range r.graces {
		r.endGraceLocked(name)
	}
	r.mu.Unlock()
	r.hub.close()
	r.mu.Lock()
	if r.clock.timer != nil {
		r.clock.timer.Stop()
	}
	if r.deadline.timer != nil {
		r.deadline.timer.Stop()
	}
	r.mu.Unlock()
	return nil
}

// Owner opens an owner session by name (R8). An empty name makes an
// anonymous owner with a generated name that clashes with no name in use or
// holding keys. The session acts for the registry's own process
// (Options.UID): it may act for any name, whatever uid the name is bound
// to, and a name it gives its first key is bound to Options.UID (R35).
func (r *Registry) Owner(ctx context.Context, name string, opts OwnerOptions) (*Owner, error) {
	return r.owner(ctx, name, opts, r.uid, false)
}

// OwnerFor opens an owner session as Owner does, for the local user uid:
// the daemon opens one for each attach, with the uid of the socket's peer
// (R35). It fails with ErrPermission when name is bound to another uid,
// unless uid is 0 (root); a name the session gives its first key is bound
// to uid.
func (r *Registry) OwnerFor(ctx context.Context, name string, uid uint32, opts OwnerOptions) (*Owner, error) {
	return r.owner(ctx, name, opts, uid, true)
}

// MayAct reports whether the local user uid may act for owner name (R35):
// attach as it, evict it, confirm or roll back its changes. It is nil for
// root (uid 0), for a name that holds no key and for one bound to uid, and
// an error matching ErrPermission for a name bound to another uid. It
// reads the latest state, mutations not yet durable included, so that a
// check followed by a mutation in the same order sees every earlier one.
func (r *Registry) MayAct(uid uint32, name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mayActLocked(uid, name)
}

func (r *Registry) mayActLocked(uid uint32, name string) error {
	if uid == 0 {
		return nil
	}
	if oi, ok := r.work.owners.get(name); ok && oi.bound && oi.uid != uid {
		return fmt.Errorf("%w: owner %q is bound to uid %d", ErrPermission, name, oi.uid)
	}
	return nil
}

func (r *Registry) owner(ctx context.Context, name string, opts OwnerOptions, uid uint32, check bool) (*Owner, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if name != "" {
		if err := validOwner(name); err != nil {
			return nil, err
		}
	}
	layer, err := opts.layer()
	if err != nil {
		return nil, err
	}
	if err := validGrace(opts.Grace); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	if name == "" {
		for {
			r.anon++
			name = "anonymous-" + strconv.FormatUint(r.anon, 10)
			if _, live := r.sessions[name]; !live && !r.work.holds(name, 0) {
				break
			}
		}
	}
	if check {
		if err := r.mayActLocked(uid, name); err != nil {
			return nil, err
		}
	}
	if _, live := r.sessions[name]; live {
		return nil, fmt.Errorf("%w: %q", ErrOwnerInUse, name)
	}
	// R48: a session of a name in grace takes its keys over, with no
	// mutation and no notification.
	r.endGraceLocked(name)
	o := &Owner{r: r, name: name, uid: uid, layer: layer, maxKeys: opts.MaxKeys, grace: opts.Grace}
	r.sessions[name] = o
	return o, nil
}

// Evict deletes everything that name holds, in the state bucket and every
// writable config layer (saved, runtime, override), as one mutation (R14).
// It fails with ErrOwnerInUse while name has a live session. Like Owner,
// it acts for the registry's own process, which may evict any name; the
// name's binding ends with its last key (R35).
func (r *Registry) Evict(ctx context.Context, name string) error {
	return r.evict(ctx, name, 0, false)
}

// EvictFor is Evict for the local user uid (the daemon's peer): it fails
// with ErrPermission when name is bound to another uid, unless uid is 0
// (R35).
func (r *Registry) EvictFor(ctx context.Context, name string, uid uint32) error {
	return r.evict(ctx, name, uid, true)
}

func (r *Registry) evict(ctx context.Context, name string, uid uint32, check bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validOwner(name); err != nil {
		return err
	}
	return r.mutate(func(t *txn) error {
		if check {
			if err := r.mayActLocked(uid, name); err != nil {
				return err
			}
		}
		if _, live := r.sessions[name]; live {
			return fmt.Errorf("%w: %q has a live session", ErrOwnerInUse, name)
		}
		r.endGraceLocked(name) // R48: an owner in grace is not live
		t.drop(name, State)
		// With a failed Log, an eviction that touches journaled layers
		// fails with ErrLog as a whole (mutateAsync).
		t.drop(name, Config, Saved, Runtime, Override)
		return nil
	})
}

// mutate runs fn on a working copy of the latest state under the write lock
// and, if it changed anything, sequences, logs and publishes the result. It
// returns once the mutation is published, or failed.
func (r *Registry) mutate(fn func(t *txn) error) error { return r.mutateAsync(fn)() }

// done and failed are the wait functions of mutations settled at once.
func doneWait() error { return nil }

func failedWait(err error) func() error { return func() error { return err } }

// mutateAsync is mutate split in two: it validates, sequences and (if
// possible) publishes under the write lock, and returns a function that
// waits for the outcome. Mutations are applied in the order of mutateAsync
// calls, whatever order their waits happen in.
func (r *Registry) mutateAsync(fn func(t *txn) error) func() error {
	r.mu.Lock()
	w, n := r.mutateLocked(fn)
	r.mu.Unlock()
	n.send(r.hub)
	return w
}

// mutateLocked is mutateAsync with r.mu held: the notifier is told of a
// change published at once by the returned notice, once the caller has
// released the lock.
func (r *Registry) mutateLocked(fn func(t *txn) error) (func() error, notice) {
	r.publishInPlaceLocked() // before anything shares r.work's nodes
	if r.closed {
		return failedWait(ErrClosed), notice{}
	}
	// The working copy: field by field, and the record's part (txnCold)
	// only if the last mutation collected something for a record, so that
	// a state update pays for no more than it uses (R42).
	t := &r.scratch
	if t.collected() {
		t.txnCold = txnCold{}
	}
	t.st, t.base, t.changed, t.record = *r.work, r.work, false, r.log != nil
	t.seq, t.now, t.edits, t.reg = r.seq+1, 0, nil, r
	t.one, t.touched, t.many, t.buckets, t.uid = Scope{}, false, false, 0, r.uid
	if err := fn(t); err != nil {
		return failedWait(err), notice{}
	}
	if !t.changed { // R6: no sequence number, no record, no notification
		return doneWait, notice{}
	}
	var binds []Bind
	var applies []PendingApply
	var finished []uint64
	logged := false
	if t.collected() {
		if t.record {
			binds = t.binds() // R35: in the same record as the ops that make them
		}
		if t.started != nil {
			applies = []PendingApply{*t.started}
		}
		finished = t.finished
		logged = len(t.ops) > 0 || len(binds) > 0 || applies != nil || len(finished) > 0
	}
	if logged && r.failed != nil {
		return failedWait(r.failed), notice{}
	}
	seq := r.seq + 1
	var p *pending
	if logged {
		lp := &pending{logged: true, at: t.clock(), done: make(chan struct{})} // not p: a captured p would be heap-allocated on every call
		err := r.log.Append(&Mutation{Seq: seq, Time: time.Unix(0, lp.at), Ops: t.ops, Binds: binds, Applies: applies, Finish: finished}, func(err error) { r.logDone(lp, err) })
		if err != nil { // nothing queued: the mutation never happened
			return failedWait(err), notice{}
		}
		p = lp
	}
	bkts := t.buckets
	if bkts == 0 { // whole-tree changes (defaults, recovered metadata) are config
		bkts = 1 << Config
	}
	w, n := r.sequencedLocked(t.finish(seq), p, bkts, t.notice()) // t is reused once the lock is released
	if applies != nil || len(finished) > 0 {
		r.armDeadlineLocked()
	}
	return w, n
}

// sequencedLocked makes st, the state after the next sequence number's
// mutation (st.seq is r.seq+1), the working state, and publishes it at once
// if it may be, else queues it. p is its logged entry, ready once durable;
// nil for a mutation without a record, which needs only a durably reserved
// sequence number (or a failed log, which can no longer reserve). bkts are
// the buckets it changes, n what the notifier must hear if it is published
// now. It returns the wait for the outcome and the notice to send once the
// lock is released.
func (r *Registry) sequencedLocked(st *state, p *pending, bkts uint8, n notice) (func() error, notice) {
	r.seq = st.seq
	r.work = st
	ready := p == nil && r.reservedLocked()
	if ready && len(r.queue) == 0 {
		r.pub.Store(st)
		r.countPublished(bkts, 1)
		return doneWait, n
	}
	if p == nil {
		p = &pending{ready: ready, done: make(chan struct{})}
	}
	p.st, p.bkts = st, bkts
	r.queue = append(r.queue, p)
	if r.log != nil && r.failed == nil {
		r.reserveLocked()
	}
	return p.wait, notice{}
}

// reservedLocked reports whether every sequence number handed out is
// durably reserved (or needs no reservation: no Log, or a failed one that
// can no longer reserve), so that a state-only mutation may be published.
func (r *Registry) reservedLocked() bool {
	return r.log == nil || r.failed != nil || r.seq <= r.durable
}

// wait waits for p's publication (or failure) and returns its error.
func (p *pending) wait() error {
	<-p.done
	return p.err
}

// minReserveBlock is the block reserved while the registry is idle: a
// restart, which starts above the reserved mark, skips at most about this
// many sequence numbers (R7).
const minReserveBlock = 256

// reserveLocked asks the Log to reserve the next block of sequence numbers
// once less than half of the last one is left. The block adapts to the
// load: it grows fourfold (up to Options.ReserveBlock) while reservations
// come less than a second apart — state updates at a high rate, which then
// cost few Log.Reserve calls (an fsync each in a store) — and is back to
// minReserveBlock after a quiet second, so that an idle registry leaves
// only a small gap in the numbers at a restart.
//
// New calls it with no block yet (r.block == 0): the first reservation is
// always made then, so it is queued ahead of the first mutation's record
// instead of landing in a commit of its own right after it.
func (r *Registry) reserveLocked() {
	if r.block > 0 && r.seq+r.block/2 <= r.reserved {
		return
	}
	now := time.Now()
	if r.block > 0 && now.Sub(r.reservedAt) < time.Second {
		r.block = min(4*r.block, r.maxBlock)
	} else {
		r.block = min(minReserveBlock, r.maxBlock)
	}
	r.reservedAt = now
	mark := r.seq + r.block
	if mark <= r.reserved { // a smaller block than the last one: still covered
		return
	}
	r.reserved = mark
	r.log.Reserve(mark, func(err error) {
		r.mu.Lock()
		if err != nil {
			r.failLocked(err)
		} else {
			r.durable = max(r.durable, mark)
			// State-only entries wait for the mark; logged ones are
			// made ready by their own callback.
			for _, p := range r.queue {
				if !p.logged && p.st.seq <= mark {
					p.ready = true
				}
			}
		}
		r.publishLocked()
		r.mu.Unlock()
		r.hub.notify()
	})
}

// logDone is the Log's callback for one record.
func (r *Registry) logDone(p *pending, err error) {
	r.mu.Lock()
	if err != nil {
		r.failLocked(err)
	} else {
		p.ready = true
	}
	r.publishLocked()
	r.mu.Unlock()
	r.hub.notify()
}

// publishLocked publishes the ready prefix of the queue, in sequence order.
func (r *Registry) publishLocked() {
	n := 0
	for _, p := range r.queue {
		if !p.ready {
			break
		}
		if p.logged && len(r.taps) > 0 {
			it := TapItem{Seq: p.st.seq, Time: time.Unix(0, p.at), Old: Snapshot{r.pub.Load()}, New: Snapshot{p.st}}
			for _, t := range r.taps {
				t.push(it)
			}
		}
		r.pub.Store(p.st)
		r.countPublished(p.bkts, max(p.n, 1))
		close(p.done)
		n++
	}
	r.queue = slices.Delete(r.queue, 0, n)
}

// countPublished counts n effective mutations, of the buckets bkts, once
// they are published.
func (r *Registry) countPublished(bkts uint8, n uint64) {
	r.stats.mutations.Add(n)
	// Not a loop over the buckets: this runs once per state update.
	if bkts&(1<<State) != 0 {
		r.stats.byBucket[State].Add(n)
	}
	if bkts&(1<<Config) != 0 {
		r.stats.byBucket[Config].Add(n)
	}
}

// failLocked handles a Log failure: every queued mutation fails (none of
// them can be published in order any more), the working state falls back to
// the published one, and config writes are refused from now on (R29).
func (r *Registry) failLocked(cause error) {
	if r.failed == nil {
		r.failed = fmt.Errorf("%w: %w", ErrLog, cause)
		r.logger.Error("journal failed; config writes refused until reopen", "error", cause)
	}
	for _, p := range r.queue {
		p.err = r.failed
		close(p.done)
	}
	r.queue = r.queue[:0]
	r.publishInPlaceLocked() // acknowledged, and their numbers were reserved
	r.work = r.pub.Load()
}

// OwnerOptions configures an owner session.
type OwnerOptions struct {
	// KeepConfig is shorthand for Layer: Saved (R13, R39): config keys
	// outlive the session.
	KeepConfig bool
	// Layer is the config layer that the owner's config writes and deletes
	// go to (R39): Saved, Runtime or Override. 0: Saved if KeepConfig, else
	// Runtime; when both are set, Layer wins. Default and Fleet are
	// ErrReadOnlyLayer.
	Layer Layer
	// Grace is how long the owner's keys outlive a session that ended by a
	// dropped connection or a dead process (Abandon; R48), at most
	// MaxGrace (1 h). 0: the owner dies at once (R13); over the socket,
	// the daemon's default (serve --grace). Close is always immediate.
	Grace time.Duration
	// MaxKeys limits how many keys (both buckets, all scopes) the owner name
	// may hold; an update that would insert more fails with ErrLimit.
	// Zero: no limit. The daemon sets it per session (R35).
	MaxKeys int
}

// layer resolves the layer of an owner's config writes (R39).
func (o OwnerOptions) layer() (Layer, error) {
	switch l := o.Layer; {
	case l == 0 && o.KeepConfig:
		return Saved, nil
	case l == 0:
		return Runtime, nil
	case l.Writable():
		return l, nil
	case l.Valid():
		return 0, fmt.Errorf("%w: %s cannot be written by an owner", ErrReadOnlyLayer, l)
	default:
		return 0, fmt.Errorf("%w: %d", ErrInvalidLayer, uint8(l))
	}
}

// Owner is a live owner session (R8). Its methods are safe for concurrent
// use; mutations of one owner are applied in the order they are sequenced.
type Owner struct {
	r       *Registry
	name    string
	uid     uint32 // the local user it acts for (R35)
	layer   Layer  // where config writes go (R39)
	maxKeys int
	grace   time.Duration // R48
	closed  atomic.Bool   // Close was called
	ended   bool          // the session is over; guarded by r.mu
	// memo is the state scope this owner last updated in place, validated
	// and with its key and hash (inplace.go): a producer flapping one
	// scope validates and hashes it once.
	memo     atomic.Pointer[scopeMemo]
	patience atomic.Uint32 // misses before memo is replaced (remember)
}

// Name returns the owner's name (generated for anonymous owners).
func (o *Owner) Name() string { return o.name }

// Layer returns the config layer the owner writes (R39).
func (o *Owner) Layer() Layer { return o.layer }

// layerOf is the layer of the owner's writes to sc: its layer for config,
// 0 for state.
func (o *Owner) layerOf(sc Scope) Layer {
	if sc.Bucket == Config {
		return o.layer
	}
	return 0
}

func (o *Owner) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if o.closed.Load() {
		return fmt.Errorf("owner %q: %w", o.name, ErrClosed)
	}
	return nil
}

// Update deep-merges values into scope (R4) with R10/R11's permissions. It
// is Commit(Put(scope, values)), errors included; a path of its own only
// spares the allocations of a transaction.
func (o *Owner) Update(ctx context.Context, scope Scope, values Values) error {
	if err := o.check(ctx); err != nil {
		return err
	}
	m := o.memo.Load()
	if m == nil || m.sc != scope {
		m = nil
		if err := scope.Validate(); err != nil {
			return err
		}
	}
	var buf [8]pair
	ps, size, err := normalizePairs(values, buf[:0])
	if err != nil {
		return err
	}
	if size > o.r.maxBytes {
		return tooLarge(size, o.r.maxBytes, scope, 1)
	}
	if scope.Bucket == State {
		return o.updateState(scope, m, ps)
	}
	return o.r.mutate(func(t *txn) error { return o.put(t, scope, ps) })
}

// put is the mutation of an update of scope with the pairs ps, by o: what
// Update and UpdateBatch run under the write lock.
func (o *Owner) put(t *txn, scope Scope, ps []pair) error {
	if err := o.live(); err != nil {
		return err
	}
	t.uid = o.uid
	return o.updatePairs(t, scope, ps)
}

// live reports ErrClosed for a session that ended while the caller waited
// for the lock. Called with r.mu held.
func (o *Owner) live() error {
	if o.ended {
		return fmt.Errorf("owner %q: %w", o.name, ErrClosed)
	}
	return nil
}

func (o *Owner) update(t *txn, scope Scope, vals Values) error {
	var buf [8]pair
	return o.updatePairs(t, scope, pairsOf(vals, buf[:0]))
}

// updatePairs is update with the values as pairs. One lookup of every key
// serves the permission check, the key limit and the merge.
func (o *Owner) updatePairs(t *txn, scope Scope, ps []pair) error {
	k := scopeKey(scope.Type, scope.Subtype)
	h := hashKey(k)
	l := o.layerOf(scope)
	km := scopeIn(t.st.tree(scope.Bucket, l), k, h)
	var buf [8]lookup
	ls := lookupAll(km, ps, buf[:0])
	var reserved []string
	added := 0
	for i, lk := range ls {
		switch {
		case lk.old == nil:
			added++
		case scope.Bucket == State && lk.old.owner() != o.name:
			reserved = append(reserved, ps[i].key)
		}
	}
	if len(reserved) > 0 {
		slices.Sort(reserved)
		return &ReservedKeysError{Scope: scope, Keys: reserved}
	}
	if o.maxKeys > 0 && added > 0 {
		if oi, _ := t.st.owners.get(o.name); oi.keys.len()+added > o.maxKeys {
			return fmt.Errorf("%w: owner %q would hold %d keys, the limit is %d", ErrLimit, o.name, oi.keys.len()+added, o.maxKeys)
		}
	}
	t.mergeLookups(o.name, scope, l, k, h, km, ps, ls)
	return nil
}

// Delete removes keys from scope; with no keys, every key of this owner in
// scope (R12). Missing keys and scopes are a no-op. Keys of other owners fail
// the whole call (R10, R11).
func (o *Owner) Delete(ctx context.Context, scope Scope, keys ...string) error {
	return o.CommitAsync(ctx, Del(scope, keys...))()
}

// delete removes keys from the owner's layer of scope only (R39).
func (o *Owner) delete(t *txn, scope Scope, keys []string) error {
	l := o.layerOf(scope)
	k := scopeKey(scope.Type, scope.Subtype)
	km := scopeIn(t.st.tree(scope.Bucket, l), k, hashKey(k))
	if len(keys) == 0 {
		keys = ownedKeys(km, o.name)
	} else if f := foreign(km, o.name, keys); len(f) > 0 {
		return &ReservedKeysError{Scope: scope, Keys: f}
	}
	t.remove(scope, l, keys)
	return nil
}

// Commit applies ops atomically (R15): in order, each checked against the
// working copy as it stands; one sequence number, one record, one
// notification, or nothing at all. When ops touch keys of other owners, the
// error names the first such scope in text order with all its reserved keys.
func (o *Owner) Commit(ctx context.Context, ops ...Op) error { return o.CommitAsync(ctx, ops...)() }

// CommitAsync is Commit split in two: the transaction is validated and
// takes its place in the sequence before CommitAsync returns, and the
// returned function waits for its outcome (durability, for config). A
// pipelining server uses it to keep many mutations of one owner in flight,
// in order, sharing fsyncs. Update is CommitAsync(Put(scope, values)) and
// Delete is CommitAsync(Del(scope, keys...)), errors included.
func (o *Owner) CommitAsync(ctx context.Context, ops ...Op) (wait func() error) {
	return o.commitAsync(ctx, ops, nil)
}

// commitAsync is CommitAsync; then, if the transaction is effective, it
// calls after with the transaction and the state before it (Apply's undo
// information, R44), under the write lock.
func (o *Owner) commitAsync(ctx context.Context, ops []Op, after func(t *txn, base *state)) (wait func() error) {
	if err := o.check(ctx); err != nil {
		return failedWait(err)
	}
	norm := make([]Op, len(ops))
	size := 0
	for i, op := range ops {
		if err := op.scope.Validate(); err != nil {
			return failedWait(opError(i, len(ops), err))
		}
		n := op
		switch op.kind {
		case opPut:
			vals, sz, err := NormalizeValues(op.values)
			if err != nil {
				return failedWait(opError(i, len(ops), err))
			}
			n.values, size = vals, size+sz
		case opDel:
			for _, k := range op.keys {
				size += headSize(uint64(len(k))) + len(k)
			}
		case opIfModSeq, opIfEqual: // checked, never journaled: no size
			if op.key == "" {
				return failedWait(opError(i, len(ops), fmt.Errorf("%w: a condition needs a non-empty key", ErrInvalidValue)))
			}
			if op.kind == opIfEqual {
				v, _, err := NormalizeValue(op.value)
				if err != nil {
					return failedWait(opError(i, len(ops), err))
				}
				n.value = v
			}
		default:
			return failedWait(opError(i, len(ops), fmt.Errorf("%w: zero Op", ErrInvalidValue)))
		}
		norm[i] = n
	}
	if size > o.r.maxBytes {
		var scope Scope
		if len(ops) == 1 {
			scope = ops[0].scope
		}
		return failedWait(tooLarge(size, o.r.maxBytes, scope, len(ops)))
	}
	return o.r.mutateAsync(func(t *txn) error {
		if err := o.live(); err != nil {
			return err
		}
		t.uid = o.uid
		base := t.st
		var reserved *ReservedKeysError
		for i, op := range norm {
			var err error
			switch op.kind {
			case opPut:
				err = o.update(t, op.scope, op.values)
			case opDel:
				err = o.delete(t, op.scope, op.keys)
			default: // a condition (R43): a conflict fails the whole transaction at once
				if err := checkCond(t, op); err != nil {
					return opError(i, len(norm), err)
				}
				continue
			}
			var rk *ReservedKeysError
			if errors.As(err, &rk) {
				switch {
				case reserved == nil || compareScopes(rk.Scope, reserved.Scope) < 0:
					reserved = &ReservedKeysError{Scope: rk.Scope, Keys: rk.Keys}
				case rk.Scope == reserved.Scope:
					reserved.Keys = slices.Compact(slices.Sorted(slices.Values(append(reserved.Keys, rk.Keys...))))
				}
			} else if err != nil {
				return err
			}
		}
		if reserved != nil {
			return reserved
		}
		// R6: a transaction whose net effect is nothing (a key put and
		// deleted again, a value changed and put back) is a no-op: no
		// sequence number, no record, no notification. Single ops never
		// get here with t.changed set and nothing changed.
		if t.changed && len(norm) > 1 && sameView(&base, &t.st) {
			t.changed = false
		}
		if t.changed && after != nil {
			after(t, &base)
		}
		return nil
	})
}

// opError is the error of op i of a transaction of n ops: it names the op
// when there are several, and is err itself for one (so Update, Delete and
// Commit of one op fail alike, embedded or over the socket).
func opError(i, n int, err error) error {
	if n == 1 {
		return err
	}
	return fmt.Errorf("op %d: %w", i, err)
}

// tooLarge is the ErrTooLarge of a mutation of size bytes: one op on scope
// (n == 1) or a transaction of n ops.
func tooLarge(size, limit int, scope Scope, n int) error {
	if n == 1 {
		return fmt.Errorf("%w: %d bytes in %s, the limit is %d", ErrTooLarge, size, scope, limit)
	}
	return fmt.Errorf("%w: transaction of %d bytes, the limit is %d", ErrTooLarge, size, limit)
}

// Close ends the session: the owner dies (R13) and every key its name holds
// in the state bucket and in the runtime and override layers goes, as one
// mutation — whichever session wrote them. Its saved keys stay: retention
// belongs to the layer, not to the session. Close is idempotent; later
// calls return nil.
func (o *Owner) Close() error {
	if o.closed.Swap(true) {
		return nil
	}
	err := o.r.mutate(func(t *txn) error {
		if o.ended {
			return nil // the registry closed: no owner death (R27)
		}
		o.ended = true
		delete(o.r.sessions, o.name)
		o.die(t)
		return nil
	})
	if errors.Is(err, ErrClosed) {
		return nil
	}
	return err
}

// die drops what the owner's death takes (R13) into t.
func (o *Owner) die(t *txn) {
	t.drop(o.name, State)
	if o.r.failed != nil {
		// The runtime drop cannot be journaled: runtime config stays
		// until reopen; override is never journaled and goes.
		t.drop(o.name, Config, Override)
	} else {
		t.drop(o.name, Config, Runtime, Override)
	}
}

type opKind uint8

const (
	opPut opKind = iota + 1
	opDel
	opIfModSeq // a condition (R43), see cond.go
	opIfEqual
)

// Op is one operation of a transaction (R15), made by Put or Del, or a
// condition made by IfModSeq or IfEqual (R43).
type Op struct {
	kind   opKind
	scope  Scope
	values Values
	keys   []string // Del
	key    string   // a condition's
	seq    uint64   // IfModSeq
	value  any      // IfEqual
}

// Put is an update inside a transaction.
func Put(scope Scope, values Values) Op { return Op{kind: opPut, scope: scope, values: values} }

// Del is a delete inside a transaction; with no keys, every key of the
// committing owner in scope.
func Del(scope Scope, keys ...string) Op { return Op{kind: opDel, scope: scope, keys: keys} }

// Parts returns what an Op holds: its scope, and either its values (Put)
// or its keys (Del). Clients that send ops elsewhere use it, with Kind and
// Cond for conditions (isPut is false for them too).
func (op Op) Parts() (scope Scope, values Values, keys []string, isPut bool) {
	return op.scope, op.values, op.keys, op.kind == opPut
}

// clockTick is the resolution of KeyMeta.Modified under load: mutations
// within one tick of the first that read the clock share its reading.
const clockTick = time.Millisecond

// coarseNow returns the wall clock in Unix nanoseconds, reading it at most
// once per clockTick (a reading costs as much as a small state update on
// some machines; R42 must not slow the flapping benchmark). Called with
// r.mu held.
func (r *Registry) coarseNow() int64 {
	if r.clock.now != 0 && !r.clock.stale.Load() {
		return r.clock.now
	}
	r.clock.now = time.Now().UnixNano()
	r.clock.stale.Store(false)
	if r.clock.timer == nil {
		r.clock.timer = time.AfterFunc(clockTick, func() { r.clock.stale.Store(true) })
	} else {
		r.clock.timer.Reset(clockTick)
	}
	return r.clock.now
}

// BindUnbound binds, as one mutation, every owner name that holds keys
// but no binding — restored from a journal written before bindings were
// journaled (R35) — to uids[name], or to fallback for a name that uids
// does not list, and returns the names it bound. With a Log the bindings
// are journaled in one record (store.Open migrates owners.json so). A
// registry with no unbound name makes no mutation.
func (r *Registry) BindUnbound(ctx context.Context, uids map[string]uint32, fallback uint32) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var bound []string
	err := r.mutate(func(t *txn) error {
		bound = bound[:0]
		t.st.owners.each(func(l *hleaf[ownerInfo]) bool {
			if !l.val.bound {
				bound = append(bound, l.key)
			}
			return true
		})
		for _, name := range bound {
			oi, _ := t.st.owners.get(name)
			uid, ok := uids[name]
			if !ok {
				uid = fallback
			}
			oi.uid, oi.bound = uid, true
			t.st.owners = t.st.owners.set(name, oi)
			if oi.journaled > 0 {
				t.bindTouched(name)
			}
		}
		t.changed = len(bound) > 0
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(bound)
	return bound, nil
}
