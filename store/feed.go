package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/codec"
	"github.com/sysreg/sysreg/journal"
)

// Feed is a change feed (R47): every mutation of a journaled config layer
// after a sequence number, in order and uncoalesced, caught up from the
// journal and then followed live. See Registry.Changes.
type Feed interface {
	// C delivers the items; it is closed when the feed ends, and Err
	// then says why. A feed that falls behind (more than 1,024 items
	// not taken) re-reads the journal, embedded or over a Client (see
	// Client.Changes and the package doc's "Change feed"); only one that
	// falls behind the retained history ends, with a *core.CompactedError.
	C() <-chan FeedItem
	// Err is nil while C is open; after it closed: core.ErrClosed after
	// Close or the registry's Close; a *core.CompactedError when the feed
	// fell so far behind that the history it still needed is gone; the
	// context's error when the ctx given to Changes ended; over a Client,
	// an error matching ErrConnLost when the daemon went away.
	Err() error
	// Close ends the feed and closes C. Idempotent; it returns nil.
	Close() error
}

// FeedItem is one mutation in a change feed (R47): its sequence number,
// its time (the mutation's wall-clock time, as journaled: zero for records
// of format version 1), and its changes layer by layer — Change.Layer is
// the layer written (fleet, saved or runtime) and Old/New, Existed/Exists
// and the owners are as they were in that layer, not in the effective
// view. Changes are sorted by layer, then scope text, then key.
type FeedItem struct {
	Seq     uint64
	Time    time.Time
	Changes []core.Change
}

// feedTapLimit is how many live items a feed buffers while its reader is
// busy; past that it falls back to the journal (never blocking writers).
const feedTapLimit = 1024

// errFeedStop ends a feed's catch-up when the feed is closed.
var errFeedStop = errors.New("store: feed stopped")

// feedBase returns the base of the change feed: the journaled config at
// the oldest sequence number a feed can start from. The feed replays the
// journal's records after it.
func (s *Store) feedBase() core.Snapshot {
	s.baseMu.Lock()
	defer s.baseMu.Unlock()
	return s.base
}

// catchUp calls emit, in order, for every journaled mutation after pos
// that changed a journaled layer, up to the newest durable record, and
// returns the sequence number of the last record it read (at least pos).
// It replays the retained records from the feed base in memory to learn
// each layer's old values. If the history after pos is gone it returns a
// *core.CompactedError.
func (s *Store) catchUp(pos uint64, emit func(FeedItem) error) (uint64, error) {
	for {
		base := s.feedBase()
		if pos < base.Seq() {
			return pos, &core.CompactedError{Oldest: base.Seq()}
		}
		cur := base
		_, err := s.j.Read(base.Seq(), func(key uint64, data []byte) error {
			m, err := codec.DecodeMutation(data)
			if err != nil {
				return err
			}
			next, err := cur.ApplyLayers(m)
			if err != nil {
				return err
			}
			if m.Seq > pos {
				if ch := core.FeedChanges(cur, next); len(ch) > 0 {
					if err := emit(FeedItem{Seq: m.Seq, Time: m.Time, Changes: ch}); err != nil {
						return err
					}
				}
				pos = m.Seq
			}
			cur = next
			return nil
		})
		if errors.Is(err, journal.ErrCompacted) {
			continue // a checkpoint moved the base: start again from the new one
		}
		if err != nil && !errors.Is(err, errFeedStop) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("store: change feed: %w", err)
		}
		return pos, err
	}
}

// Changes starts a change feed of every mutation with a sequence number
// above from that changed a journaled config layer (R47): first the
// history from the journal, then live. from is the last sequence number
// the caller has seen (0: none yet). A from below the oldest history
// kept fails with a *core.CompactedError: resync from Snapshot and resume
// from its Seq. The feed ends when ctx ends, on Close, or when the store
// closes; see Feed.Err.
func (s *Store) Changes(ctx context.Context, from uint64) (Feed, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tap, err := s.startFeed(from)
	if err != nil {
		return nil, err
	}
	f := &storeFeed{s: s, c: make(chan FeedItem, feedChanCap), stop: make(chan struct{}), done: make(chan struct{})}
	s.feedsMu.Lock()
	if s.closed.Load() {
		s.feedsMu.Unlock()
		tap.Close()
		return nil, ErrClosed
	}
	s.feeds[f] = struct{}{}
	s.feedsMu.Unlock()
	go f.run(ctx, from, tap)
	return f, nil
}

// feedChanCap is the capacity of an embedded feed's channel.
const feedChanCap = 64

// startFeed registers a feed's tap — first, so that nothing published
// from now on is missed — and checks that from is not compacted.
func (s *Store) startFeed(from uint64) (*core.Tap, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	tap := s.reg.Tap(feedTapLimit)
	if base := s.feedBase(); from < base.Seq() {
		tap.Close()
		return nil, &core.CompactedError{Oldest: base.Seq()}
	}
	return tap, nil
}

// storeFeed is a Feed of a Store: one goroutine, run, which catches up
// from the journal and then follows the registry's tap.
type storeFeed struct {
	s    *Store
	c    chan FeedItem
	stop chan struct{} // closed by Close
	done chan struct{} // closed when run returned
	once sync.Once
	err  atomic.Pointer[error]
}

func (f *storeFeed) C() <-chan FeedItem { return f.c }

func (f *storeFeed) Err() error {
	if p := f.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (f *storeFeed) Close() error {
	f.once.Do(func() { close(f.stop) })
	<-f.done
	return nil
}

func (f *storeFeed) run(ctx context.Context, pos uint64, tap *core.Tap) {
	err := f.s.follow(ctx, pos, tap, f.stop, func(it FeedItem) error { return f.send(ctx, it) }, nil)
	if errors.Is(err, errFeedStop) {
		err = ErrClosed
	}
	f.err.Store(&err)
	close(f.c)
	f.s.feedsMu.Lock()
	delete(f.s.feeds, f)
	f.s.feedsMu.Unlock()
	close(f.done)
}

func (f *storeFeed) send(ctx context.Context, it FeedItem) error {
	select {
	case f.c <- it:
		return nil
	case <-f.stop:
		return errFeedStop
	case <-ctx.Done():
		return ctx.Err()
	}
}

// follow runs a feed started by startFeed until stop closes, ctx ends
// or emit fails, and closes tap: it catches up from the journal, then
// delivers the tap's items, dropping those the catch-up delivered; when
// the tap lost items (the reader fell behind), it catches up from the
// journal again. idle, if set, is called before each wait for the tap
// (the daemon flushes its writes there).
func (s *Store) follow(ctx context.Context, pos uint64, tap *core.Tap, stop <-chan struct{},
	emit func(FeedItem) error, idle func() error) error {
	defer tap.Close()
	var items []core.TapItem
	for {
		var err error
		if pos, err = s.catchUp(pos, emit); err != nil {
			return err
		}
		for {
			var lost bool
			items, lost = tap.Take(items)
			if lost {
				break
			}
			for _, it := range items {
				if it.Seq <= pos {
					continue
				}
				if ch := it.Changes(); len(ch) > 0 {
					if err := emit(FeedItem{Seq: it.Seq, Time: it.Time, Changes: ch}); err != nil {
						return err
					}
				}
				pos = it.Seq
			}
			clear(items)
			if idle != nil {
				if err := idle(); err != nil {
					return err
				}
			}
			select {
			case <-tap.Ready():
			case <-stop:
				return errFeedStop
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// closeFeeds ends every feed (Store.Close) and waits for them.
func (s *Store) closeFeeds() {
	s.feedsMu.Lock()
	fs := make([]*storeFeed, 0, len(s.feeds))
	for f := range s.feeds {
		fs = append(fs, f)
	}
	s.feedsMu.Unlock()
	for _, f := range fs {
		f.Close()
	}
}

// loadBase finds the feed base at Open: the base data of the last
// checkpoint, or without one (a journal of format version 3 or older,
// or no history kept) the checkpoint itself, or without a checkpoint
// the empty config at sequence 0.
func loadBase(j *journal.Journal) (core.Snapshot, error) {
	key, data, ok, err := j.ReadBase()
	if err != nil {
		return core.Snapshot{}, err
	}
	what := "checkpoint base"
	if !ok {
		if key, data, ok, err = j.ReadCheckpoint(); err != nil || !ok {
			return core.Snapshot{}, err
		}
		what = "checkpoint"
	}
	snap, err := codec.DecodeSnapshot(data)
	if errors.Is(err, codec.ErrVersion) {
		return core.Snapshot{}, fmt.Errorf("%s: %s at %d: %w", j.Path(), what, key, err)
	}
	if err == nil && snap.Seq() != key {
		err = fmt.Errorf("stored under %d holds sequence %d", key, snap.Seq())
	}
	if err != nil {
		return core.Snapshot{}, &journal.CorruptError{Path: j.Path(), Reason: fmt.Sprintf("%s at %d: %v", what, key, err)}
	}
	return snap, nil
}

// checkpoint writes a checkpoint of the journaled layers of the published
// config (R28, R41) and returns its sequence number. With history kept for
// the change feed (R47) it also moves the feed base forward, to the state
// after the oldest records beyond Options.FeedRetention, and stores it
// with the checkpoint, which deletes those records.
func (s *Store) checkpoint() (uint64, error) {
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	snap := s.reg.Snapshot()
	key := snap.Seq()
	start := time.Now()
	data, err := codec.EncodeSnapshot(snap, core.Config)
	if err != nil {
		return key, err
	}
	if s.retain <= 0 {
		s.baseMu.Lock()
		defer s.baseMu.Unlock()
		if err := s.j.Checkpoint(key, data); err != nil {
			return key, err
		}
		s.base = snap
		s.logger.Debug("checkpoint", "seq", key, "bytes", len(data), "elapsed", time.Since(start))
		return key, nil
	}
	// Only a checkpoint moves the base, under ckptMu.
	base := s.feedBase()
	st := s.j.Stats()
	drop := st.Records + st.Retained - s.retain
	n := 0
	_, err = s.j.Read(base.Seq(), func(k uint64, rec []byte) error {
		if n >= drop || k > key {
			return errFeedStop
		}
		m, err := codec.DecodeMutation(rec)
		if err != nil {
			return err
		}
		if base, err = base.Apply(m); err != nil {
			return err
		}
		n++
		return nil
	})
	if err != nil && !errors.Is(err, errFeedStop) {
		return key, fmt.Errorf("feed base: %w", err)
	}
	baseData, err := codec.EncodeSnapshot(base, core.Config)
	if err != nil {
		return key, err
	}
	s.baseMu.Lock()
	defer s.baseMu.Unlock()
	if err := s.j.CheckpointBase(key, data, base.Seq(), baseData); err != nil {
		return key, err
	}
	s.base = base
	s.logger.Debug("checkpoint", "seq", key, "bytes", len(data), "base", base.Seq(), "base_bytes", len(baseData), "elapsed", time.Since(start))
	return key, nil
}
