package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/codec"
	"github.com/sysreg/sysreg/internal/faults"
	"github.com/sysreg/sysreg/internal/fleet"
	"github.com/sysreg/sysreg/internal/fsync"
	"github.com/sysreg/sysreg/journal"
	"github.com/sysreg/sysreg/recovery"
)

// Registry is the API that programs use, embedded (*Store) or over the
// daemon's socket (*Client) alike (R32).
type Registry interface {
	Owner(ctx context.Context, name string, opts core.OwnerOptions) (Owner, error)
	Snapshot(ctx context.Context) (core.Snapshot, error)
	Subscribe(ctx context.Context, opts core.SubscribeOptions) (Subscription, error)
	Evict(ctx context.Context, name string) error
	// Reset deletes every key of the named config layers (saved, runtime,
	// override; none named: saved and runtime) in the config scopes p
	// matches, whoever owns them, as one mutation (R46). Over the socket
	// only root and the daemon's uid may (ErrPermission).
	Reset(ctx context.Context, p core.Pattern, layers ...core.Layer) error
	// ResetKeys is Reset of the named keys of one config scope only
	// ("back to the default" for single settings; no keys: the whole
	// scope).
	ResetKeys(ctx context.Context, scope core.Scope, keys []string, layers ...core.Layer) error
	Close() error
	// Changes starts a change feed (R47) of every mutation with a
	// sequence number above from that changed a journaled config layer:
	// see Store.Changes. Over a Client as embedded, a feed left unread
	// costs only itself and catches up from the journal when read again:
	// see Client.Changes.
	Changes(ctx context.Context, from uint64) (Feed, error)
	// Stats returns the registry's figures; see Stats.
	Stats(ctx context.Context) (Stats, error)
	// Confirm makes the pending apply id permanent (R44); Rollback undoes
	// it now and returns the keys it left alone (a later mutation changed
	// them). An id that is not pending is core.ErrNotPending. Over the
	// socket only the uid the apply's owner is bound to, or root, may
	// (ErrPermission).
	Confirm(ctx context.Context, id uint64) error
	Rollback(ctx context.Context, id uint64) (left []core.Change, err error)
	// Pending lists the pending applies (R44), oldest first.
	Pending(ctx context.Context) ([]core.PendingApply, error)
}

// Owner is a live owner session (R8–R15).
type Owner interface {
	Name() string
	Update(ctx context.Context, scope core.Scope, values core.Values) error
	Delete(ctx context.Context, scope core.Scope, keys ...string) error
	Commit(ctx context.Context, ops ...core.Op) error // R15
	// Apply commits ops like Commit and undoes them unless Confirm
	// follows within the deadline (R44); see core.Owner.Apply.
	Apply(ctx context.Context, within time.Duration, ops ...core.Op) (id uint64, err error)
	Close() error // the owner dies (R13)
}

// Subscription delivers snapshots of the whole view (R16–R21).
type Subscription interface {
	C() <-chan core.Snapshot
	Close() error
	// Err says why C was closed: nil while it is open; an error matching
	// core.ErrClosed after Close or after the Store or Client closed;
	// over a Client, one matching ErrConnLost when the daemon went away
	// (and ErrSubscriptionEnded if the daemon ended it).
	Err() error
}

// JournalFile is the name of the journal inside the data directory.
const JournalFile = "journal.db"

// DefaultFeedRetention is the default of Options.FeedRetention.
const DefaultFeedRetention = 10000

// feedRetention is the journal's Retain for Options.FeedRetention n.
func feedRetention(n int) int {
	switch {
	case n == 0:
		return DefaultFeedRetention
	case n < 0:
		return 0
	}
	return n
}

// Options configures Open. The zero value is valid.
type Options struct {
	// Logger receives lifecycle logs (opened, recovered, checkpoints,
	// failures). nil: no logging.
	Logger hclog.Logger
	// NoSync skips fsync. UNSAFE: a crash or power loss may lose
	// acknowledged config or damage the journal. Tests and benchmarks only.
	NoSync bool
	// MaxUpdateBytes limits the CBOR size of one update or transaction
	// (R2). Default 1 MiB.
	MaxUpdateBytes int
	// CheckpointRecords and CheckpointBytes: a checkpoint is written once
	// this many records, or this many bytes of records, accumulated past
	// the last one (R28). Defaults 10,000 and 16 MiB.
	CheckpointRecords int
	CheckpointBytes   int64
	// LockTimeout is how long Open waits for a data directory that another
	// process holds before failing with ErrLocked. Default 1 s.
	LockTimeout time.Duration
	// FeedRetention is how many of the newest journaled mutations the
	// journal keeps for the change feed (R47), across checkpoints and
	// restarts: a feed can resume from any sequence number of the last
	// FeedRetention config mutations (at most FeedRetention +
	// CheckpointRecords are kept). Default 10,000 (DefaultFeedRetention);
	// negative: none beyond the last checkpoint.
	FeedRetention int
	// DefaultsDir names a directory of *.json defaults files (R40), read at
	// Open (a file that cannot be loaded stops Open with a *DefaultsError)
	// and again by ReloadDefaults. "" (the default): no defaults. A named
	// directory that does not exist is an error.
	DefaultsDir string
	// Fleet connects the store to a fleet over NATS JetStream (R53): the
	// bridge starts with Open, never makes Open or any call wait for NATS,
	// and stops with Close. nil (the default): no fleet.
	Fleet *FleetOptions

	hooks faults.Hooks // fault injection, set by tests (export_test.go)
	knobs healthKnobs  // R51 thresholds, set by tests (export_test.go)
}

// Store is the registry embedded in this process, with its config journaled
// in a data directory. It implements Registry. Open starts two goroutines
// (the registry's notifier and the checkpointer); Close stops them.
type Store struct {
	dir    string
	j      *journal.Journal
	reg    *core.Registry
	logger hclog.Logger
	report recovery.Report
	health *health // R50, R51

	prev        string      // PreviousRun
	undone      []uint64    // UndoneAtOpen
	jfailed     atomic.Bool // the journal failed an operation (journalLog)
	defaultsDir string
	maxBytes    int
	defaultsMu  sync.Mutex    // serialises ReloadDefaults
	fleet       *fleet.Bridge // nil without Options.Fleet

	// The change feed (R47). baseMu guards base: the journaled config at
	// the oldest sequence number a feed can start from (the journal's
	// records after it are retained); the checkpointer moves it, holding
	// baseMu across the checkpoint that deletes the records up to it.
	retain  int        // journal Retain: feedRetention(Options.FeedRetention)
	ckptMu  sync.Mutex // serialises checkpoints (the checkpointer's, tests')
	baseMu  sync.Mutex
	base    core.Snapshot
	feedsMu sync.Mutex              // guards feeds
	feeds   map[*storeFeed]struct{} // live feeds, ended by Close

	stop, stopped chan struct{}
	closed        atomic.Bool
	closeOnce     sync.Once
	closeErr      error
}

var _ Registry = (*Store)(nil)

// Open opens (creating if needed, mode 0700) the data directory dir,
// recovers the acknowledged config from its journal and returns the store
// ready to serve (R27). A damaged or foreign journal fails with a
// *CorruptError, a newer format with an error naming both versions, a
// directory in use with ErrLocked.
func Open(dir string, opts Options) (*Store, error) {
	logger := opts.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if err := fsync.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: data directory: %w", err)
	}
	path := filepath.Join(dir, JournalFile)
	jopts := journal.Options{
		NoSync:            opts.NoSync,
		Logger:            logger.Named("journal"),
		LockTimeout:       opts.LockTimeout,
		CheckpointRecords: opts.CheckpointRecords,
		CheckpointBytes:   opts.CheckpointBytes,
		Retain:            feedRetention(opts.FeedRetention),
	}
	faults.SetJournal(&jopts, opts.hooks)
	j, err := journal.Open(path, jopts)
	if err != nil {
		return nil, openError(err)
	}
	res, err := recovery.Run(j)
	if err != nil {
		j.Close()
		return nil, openError(err)
	}
	maxBytes := opts.MaxUpdateBytes
	if maxBytes <= 0 {
		maxBytes = core.DefaultMaxUpdateBytes
	}
	var defaults map[core.Scope]core.Values
	if opts.DefaultsDir != "" {
		if defaults, err = loadDefaults(opts.DefaultsDir, maxBytes, logger.Named("defaults")); err != nil {
			j.Close()
			return nil, err
		}
	}
	base, err := loadBase(j)
	if err != nil {
		j.Close()
		return nil, openError(err)
	}
	rep := res.Report
	prev, err := takeCleanMark(dir, rep)
	if err != nil {
		j.Close()
		return nil, fmt.Errorf("store: open: %w", err)
	}
	s := &Store{
		dir:     dir,
		j:       j,
		logger:  logger,
		report:  rep,
		health:  newHealth(logger, opts.knobs),
		prev:    prev,
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),

		defaultsDir: opts.DefaultsDir,
		maxBytes:    maxBytes,
		retain:      jopts.Retain,
		base:        base,
		feeds:       map[*storeFeed]struct{}{},
	}
	s.reg = core.New(core.Options{
		Log:            journalLog{j, s.health, &s.jfailed},
		Initial:        res.Config,
		SeqFloor:       rep.SeqFloor,
		MaxUpdateBytes: opts.MaxUpdateBytes,
		Logger:         logger.Named("core"),
		UID:            processUID(),
	})
	// R35: names restored from records written before bindings were
	// journaled are bound now, in one record, before any call.
	bound, err := migrateBindings(s.reg, dir, processUID())
	if err != nil {
		s.reg.Close()
		j.Close()
		return nil, err
	}
	if len(bound) > 0 {
		logger.Info("owner bindings migrated into the journal", "owners", len(bound))
	}
	// R44: a restart is never a confirmation. Every apply still pending
	// is undone now, newest first, in one record, before any call.
	undone, left, err := s.reg.RollbackAll(context.Background())
	if err != nil {
		s.reg.Close()
		j.Close()
		return nil, fmt.Errorf("store: undo unconfirmed applies: %w", err)
	}
	if len(undone) > 0 {
		logger.Warn("unconfirmed applies undone at startup", "ids", undone, "keys_left_alone", len(left))
	}
	s.undone = undone
	// Loading the defaults is the first mutation (R40, R42): keys whose
	// value comes from them carry its sequence number. With no defaults it
	// is a no-op, unless the checkpoint held values of unjournaled layers
	// whose metadata it renews.
	if err := s.reg.SetDefaultsOwned(context.Background(), defaults); err != nil {
		s.reg.Close()
		j.Close()
		return nil, fmt.Errorf("store: defaults: %w", err)
	}
	if opts.Fleet != nil {
		if err := s.startFleet(opts.Fleet); err != nil {
			s.reg.Close()
			j.Close()
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	go s.checkpointer()
	logger.Info("recovered", "dir", dir, "records", rep.Records, "keys", rep.Keys,
		"owners", rep.Owners, "seq", rep.SeqFloor, "previous_run", prev, "elapsed", rep.Elapsed)
	return s, nil
}

// CleanFile marks a data directory whose store was closed cleanly (R51):
// Close creates it, after every call has finished and just before it
// closes the journal; Open removes it (and fsyncs the directory) before it
// accepts a call, so that a crash afterwards leaves no mark.
const CleanFile = "clean-shutdown"

// How the previous run of a data directory ended (Store.PreviousRun, R51).
const (
	PreviousRunNone    = "none"    // a new data directory: there was none
	PreviousRunClean   = "clean"   // Store.Close (a clean daemon shutdown) completed
	PreviousRunUnclean = "unclean" // a crash, kill -9, power loss, or a failed journal
)

// takeCleanMark reports how the previous run of dir ended and removes the
// clean mark. The journal is open (its lock held), so no other store of
// dir can be running.
func takeCleanMark(dir string, rep recovery.Report) (string, error) {
	mark := filepath.Join(dir, CleanFile)
	err := os.Remove(mark)
	switch {
	case err == nil:
		if err := fsync.Dir(dir); err != nil {
			return "", fmt.Errorf("remove clean mark: %w", err)
		}
		return PreviousRunClean, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("remove clean mark: %w", err)
	case rep.Records == 0 && rep.CheckpointSeq == 0 && rep.SeqFloor == 0:
		return PreviousRunNone, nil
	}
	return PreviousRunUnclean, nil
}

// putCleanMark creates the clean mark durably.
func putCleanMark(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, CleanFile), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsync.Dir(dir)
	}
	return err
}

// PreviousRun says how the previous run of the data directory ended:
// PreviousRunClean, PreviousRunUnclean or PreviousRunNone (R51). The
// daemon prints it in its start line.
func (s *Store) PreviousRun() string { return s.prev }

// openError maps the journal's and recovery's errors to the store's.
func openError(err error) error {
	var ce *journal.CorruptError
	if errors.As(err, &ce) {
		return &CorruptError{Path: ce.Path, Reason: ce.Reason, Err: ce}
	}
	if errors.Is(err, journal.ErrLocked) {
		return fmt.Errorf("%w (%v)", ErrLocked, err)
	}
	return fmt.Errorf("store: open: %w", err)
}

// journalLog is core's Log on the journal: records are CBOR mutations
// keyed by their sequence number. failed is set once the journal fails an
// operation: the run can no longer end cleanly.
type journalLog struct {
	j      *journal.Journal
	h      *health
	failed *atomic.Bool
}

func (l journalLog) Append(m *core.Mutation, done func(error)) error {
	data, err := codec.EncodeMutation(m)
	if err != nil {
		return fmt.Errorf("store: encode mutation %d: %w", m.Seq, err)
	}
	l.j.Append(m.Seq, data, l.h.timeAppend(l.watch(done)))
	return nil
}

func (l journalLog) Reserve(seq uint64, done func(error)) { l.j.Reserve(seq, l.watch(done)) }

func (l journalLog) watch(done func(error)) func(error) {
	return func(err error) {
		if err != nil {
			l.failed.Store(true)
		}
		done(err)
	}
}

// checkpointer writes a checkpoint of the published config whenever the
// journal says one is due (R28). The encoding runs here, off the write path;
// the journal writes it and drops the records it covers in one transaction.
func (s *Store) checkpointer() {
	defer close(s.stopped)
	lag := time.NewTicker(s.health.knobs.lagScan)
	defer lag.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-lag.C:
			s.health.scanLag(s.reg) // R51: embedded and remote subscribers
			continue
		case <-s.j.Due():
		}
		if seq, err := s.checkpoint(); err != nil {
			s.logger.Warn("checkpoint failed", "seq", seq, "error", err)
		}
	}
}

// UndoneAtOpen returns the ids of the applies that Open undid because
// they were still unconfirmed (R44), oldest first.
func (s *Store) UndoneAtOpen() []uint64 { return slices.Clone(s.undone) }

// Confirm is core.Registry.Confirm (R44).
func (s *Store) Confirm(ctx context.Context, id uint64) error { return s.reg.Confirm(ctx, id) }

// Rollback is core.Registry.Rollback (R44).
func (s *Store) Rollback(ctx context.Context, id uint64) ([]core.Change, error) {
	return s.reg.Rollback(ctx, id)
}

// Pending lists the pending applies (R44), oldest first.
func (s *Store) Pending(ctx context.Context) ([]core.PendingApply, error) {
	snap, err := s.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	return snap.Pending(), nil
}

// Dir returns the data directory.
func (s *Store) Dir() string { return s.dir }

// Recovery returns what Open recovered.
func (s *Store) Recovery() recovery.Report { return s.report }

// Owner opens an owner session (R8). See core.Registry.Owner.
func (s *Store) Owner(ctx context.Context, name string, opts core.OwnerOptions) (Owner, error) {
	o, err := s.reg.Owner(ctx, name, opts)
	if err != nil {
		return nil, err
	}
	return o, nil
}

// BatchUpdate is one update of UpdateBatch: Owner.Update(ctx, Scope,
// Values).
type BatchUpdate struct {
	Owner  Owner // a session this Store opened (Owner or OwnerFor)
	Scope  core.Scope
	Values core.Values
}

// UpdateBatch applies each update as its Owner.Update would, in order, in
// one acquisition of the registry's write lock (core.Registry.UpdateBatch):
// each its own checks, error, no-op suppression (R6) and sequence number
// (R7); config updates each their own record, acknowledged once durable
// (R24); a run of state updates is published once. It returns each
// update's error once every config update in it is durable. An Owner that
// this Store did not open fails with core.ErrInvalidOwner; the other
// updates still apply.
func (s *Store) UpdateBatch(ctx context.Context, us []BatchUpdate) []error {
	cus := make([]core.BatchUpdate, len(us))
	for i, u := range us {
		o, _ := u.Owner.(*core.Owner) // nil for another kind: core refuses it
		cus[i] = core.BatchUpdate{Owner: o, Scope: u.Scope, Values: u.Values}
	}
	if s.closed.Load() {
		errs := make([]error, len(us))
		for i := range errs {
			errs[i] = ErrClosed
		}
		return errs
	}
	return s.reg.UpdateBatch(ctx, cus)
}

// Snapshot returns the current view.
func (s *Store) Snapshot(ctx context.Context) (core.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return core.Snapshot{}, err
	}
	if s.closed.Load() {
		return core.Snapshot{}, ErrClosed
	}
	return s.reg.Snapshot(), nil
}

// Subscribe subscribes to the view (R16–R21).
func (s *Store) Subscribe(ctx context.Context, opts core.SubscribeOptions) (Subscription, error) {
	sub, err := s.reg.Subscribe(ctx, opts)
	if err != nil {
		return nil, err
	}
	return sub, nil
}

// ResetKeys is core.Registry.ResetKeys (R46).
func (s *Store) ResetKeys(ctx context.Context, scope core.Scope, keys []string, layers ...core.Layer) error {
	return s.reg.ResetKeys(ctx, scope, keys, layers...)
}

// Reset is core.Registry.Reset (R46).
func (s *Store) Reset(ctx context.Context, p core.Pattern, layers ...core.Layer) error {
	return s.reg.Reset(ctx, p, layers...)
}

// Evict deletes everything name holds (R14). An embedded program acts as
// its own process: it may evict any name, whatever uid it is bound to.
func (s *Store) Evict(ctx context.Context, name string) error { return s.reg.Evict(ctx, name) }

// processUID is the uid that embedded sessions bind names to (R35).
func processUID() uint32 { return uint32(os.Getuid()) }

// Stats are a registry's figures, the same for an embedded *Store and a
// *Client, which asks the daemon (R50 lists what a metrics exporter makes
// of them). Counters count since the store was opened (the daemon
// started). The JSON names are stable: sysregd stats prints them, and they
// are the keys of the protocol's stats_ok map.
type Stats struct {
	Seq             uint64 `json:"seq"`              // the last sequence number handed out (R7)
	Mutations       uint64 `json:"mutations"`        // effective mutations, both buckets, once published (R6; a failed append never counts)
	ConfigMutations uint64 `json:"config_mutations"` // of those, the ones that changed config
	StateMutations  uint64 `json:"state_mutations"`  // of those, the ones that changed state (a mutation may change both)
	Sessions        int    `json:"sessions"`         // live owner sessions
	Owners          int    `json:"owners"`           // owner names holding keys
	StateKeys       int    `json:"state_keys"`       // keys in the state bucket now
	ConfigKeys      int    `json:"config_keys"`      // keys in the config bucket now
	Subscriptions   int    `json:"subscriptions"`    // live subscriptions
	Deliveries      uint64 `json:"deliveries"`       // snapshots handed to subscriptions
	Coalesced       uint64 `json:"coalesced"`        // snapshots replaced before they were taken (R19)
	// PendingApplies are applied changes waiting for Confirm or their
	// deadline (R44).
	PendingApplies int `json:"pending_applies"`
	// LaggingSubscribers counts the deliveries, embedded or remote, found
	// untaken past 10 × the subscriber's MinInterval, at least 10 s (R51);
	// each delivery counts once.
	LaggingSubscribers uint64 `json:"lagging_subscribers"`

	// Journal: appends, commits (one fsync pair each), batches and the
	// largest batch (group commit, R25), checkpoints (R28), file size.
	Journal journal.Stats `json:"journal"`
	// Recovery: what Open recovered and how long it took (R27).
	Recovery recovery.Report `json:"recovery"`
	// Server holds the daemon's counters (connections, rejected frames,
	// …) when the figures come over a Client; nil for an embedded Store.
	Server *ServerStats `json:"server,omitempty"`
	// Append is the time from a config mutation's journal append to its
	// outcome: queueing, the group commit and its fsync (R50). Over a
	// Client it is the daemon's.
	Append Histogram `json:"append"`
	// PreviousRun says how the run before this one ended: "clean",
	// "unclean" or "none" (a new data directory), R51.
	PreviousRun string `json:"previous_run"`
	// Fleet is the fleet bridge's state (R53); nil without Options.Fleet.
	Fleet *FleetStatus `json:"fleet,omitempty"`
}

// Stats returns the store's figures. Its error is ctx's.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	if err := ctx.Err(); err != nil {
		return Stats{}, err
	}
	return s.stats(), nil
}

func (s *Store) stats() Stats {
	snap := s.reg.Snapshot()
	c := s.reg.Stats()
	js := s.j.Stats()
	return Stats{
		Seq:                c.Seq,
		Mutations:          c.Mutations,
		ConfigMutations:    c.ConfigMutations,
		StateMutations:     c.StateMutations,
		Sessions:           c.Sessions,
		Owners:             len(snap.Owners()),
		StateKeys:          snap.Len(core.State),
		ConfigKeys:         snap.Len(core.Config),
		PendingApplies:     snap.PendingCount(),
		Subscriptions:      c.Subs,
		Deliveries:         c.Deliveries,
		Coalesced:          c.Coalesced,
		Journal:            js,
		Recovery:           s.report,
		Append:             s.health.append.Snapshot(),
		LaggingSubscribers: s.health.lagging.Load(),
		PreviousRun:        s.prev,
		Fleet:              s.fleetStatus(),
	}
}

// Close ends every session without owner deaths — a clean close never
// deletes config (R27) — closes every subscription channel, lets mutations
// already in flight finish, and closes the journal. Idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		if s.fleet != nil {
			s.fleet.Close() // before the registry: its subscription ends first
		}
		s.reg.Close()
		s.closeFeeds()
		close(s.stop)
		<-s.stopped
		// Every call has finished: mark the run clean, unless the journal
		// failed, while the journal's lock still keeps other stores out.
		marked := false
		if !s.jfailed.Load() {
			if err := putCleanMark(s.dir); err != nil {
				s.logger.Warn("cannot mark the shutdown clean", "dir", s.dir, "error", err)
			} else {
				marked = true
			}
		}
		s.closeErr = s.j.Close()
		if s.closeErr != nil && marked {
			_ = os.Remove(filepath.Join(s.dir, CleanFile)) // best effort: the next Open says unclean
		}
		s.logger.Info("closed", "dir", s.dir)
	})
	return s.closeErr
}
