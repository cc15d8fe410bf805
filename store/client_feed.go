package store

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/wire"
)

// clientFeedCap is how many items a Client's feed holds for its
// consumer, in its queue and in C together: as many as an embedded
// feed's tap (feedTapLimit), so that a consumer that keeps up with an
// embedded feed keeps up over the socket too. clientFeedChan of them are
// in C, so that the feed's goroutine hands items over without waiting
// for the consumer each time.
const (
	clientFeedCap  = feedTapLimit
	clientFeedChan = 64
	clientFeedQ    = clientFeedCap - clientFeedChan
)

// Changes starts a change feed on the daemon (R47); see Store.Changes.
// Each feed has its own flow control on the client, as an embedded feed
// has: the client's one reader goroutine never waits for a feed. It
// holds up to 1,024 items that the consumer has not taken yet; past
// that the feed drops what the daemon sends, ends its feed on the daemon,
// and once the consumer has taken those it holds it starts the feed
// again on the daemon from the Seq of the last item it queued — the daemon
// catches up from its journal — under the same Feed. The consumer sees
// every change once, in order, with no gap; a slow feed costs only itself
// (every call, subscription and other feed of c goes on), and the daemon
// never waits for it. Each restart costs the daemon a replay of its
// retained history, so a consumer slower than the writers for long
// costs that once per 1,024 items. A feed that falls behind the daemon's retained
// history (Options.FeedRetention) ends with a *core.CompactedError, as an
// embedded one does. If the connection is lost the feed ends with an
// error matching ErrConnLost once the items it holds are read; after
// Client.Close or the feed's Close, C closes at once. Close a feed that
// is no longer read: its goroutine waits for the reader until then.
func (c *Client) Changes(ctx context.Context, from uint64) (Feed, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f := &clientFeed{
		c: c, ctx: ctx, out: make(chan FeedItem, clientFeedChan), stop: make(chan struct{}),
		wake: make(chan struct{}, 1), done: make(chan struct{}), last: from,
	}
	id, ch, err := c.registerFeed(f)
	if err != nil {
		return nil, err
	}
	fr, err := c.exchange(ctx, id, ch, wire.TChanges, wire.Changes{From: from}, nil)
	if err == nil {
		err = changesReply(fr)
	} else if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		c.forget(wire.TUnchanges, wire.Unchanges{Feed: id})
	}
	if err != nil {
		c.dropFeed(id, f)
		return nil, err
	}
	go f.pump()
	return f, nil
}

// changesReply is the error the daemon's reply fr to a changes request
// carries: nil for changes_ok, a *core.CompactedError for compacted.
func changesReply(fr wire.Frame) error {
	if fr.Type != wire.TCompacted {
		return decodeReply(wire.TChanges, fr, wire.TChangesOK, nil)
	}
	var cp wire.Compacted
	if err := wire.DecodeBody(fr, &cp); err != nil {
		return fmt.Errorf("%w: compacted reply: %v", ErrProtocol, err)
	}
	return &core.CompactedError{Oldest: cp.Oldest}
}

// dropFeed unfiles f's daemon-side feed id, if it is still f's.
func (c *Client) dropFeed(id uint64, f *clientFeed) {
	c.mu.Lock()
	if c.feeds[id] == f {
		delete(c.feeds, id)
	}
	c.mu.Unlock()
}

// clientFeed is a feed on the daemon. The client's reader queues the
// items (put) and never waits; one goroutine per feed, pump, moves them
// into out and restarts the daemon's feed when the queue overflowed (see
// Client.Changes): as the only sender on out it is the one that knows
// when the consumer has drained the queue, which a buffered channel
// alone would not tell without polling.
type clientFeed struct {
	c    *Client
	ctx  context.Context // the ctx given to Changes: the feed's life
	out  chan FeedItem   // C (clientFeedChan deep), fed from q by pump
	stop chan struct{}   // closed by Close (end)
	once sync.Once
	wake chan struct{} // one slot: q or the state below changed
	done chan struct{} // closed when pump returned

	mu      sync.Mutex // guards the fields below
	id      uint64     // the daemon-side feed whose items are taken; 0: none
	q       []FeedItem // taken, not yet handed to the consumer
	last    uint64     // Seq of the newest item taken: where a restart resumes
	lagging bool       // q overflowed: items are dropped until the restart
	ended   bool       // the feed is over; pump hands out q, then closes out
	err     error      // why it ended
	closed  bool       // out is closed: Err reports err
}

func (f *clientFeed) C() <-chan FeedItem { return f.out }

func (f *clientFeed) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		return nil
	}
	return f.err
}

func (f *clientFeed) signal() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// put queues an item the daemon sent under the feed id id (the client's
// reader; it never waits). Items of an earlier daemon-side feed, items
// at or below the last one taken, and items past a full queue are
// dropped; the last ones are read again from the journal by the restart.
// While the queue is over a quarter full the reader yields its processor
// after each item (runtime.Gosched, not a wait): a burst of items read
// in one go (a catch-up from the journal) would otherwise overflow the
// queue of a consumer that keeps up but was not scheduled, and each
// restart costs the daemon a replay of its retained history.
func (f *clientFeed) put(id uint64, it FeedItem) {
	f.mu.Lock()
	if f.ended || f.lagging || id != f.id || it.Seq <= f.last {
		f.mu.Unlock()
		return
	}
	if len(f.q) >= clientFeedQ {
		f.lagging = true
		f.mu.Unlock()
		f.signal()
		return
	}
	f.q = append(f.q, it)
	f.last = it.Seq
	n := len(f.q)
	f.mu.Unlock()
	f.signal()
	if n >= clientFeedQ/4 { // crowded: let the feed's goroutine and its consumer run
		runtime.Gosched()
	}
}

// takes says whether put would consider an item sent under id.
func (f *clientFeed) takes(id uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.ended && !f.lagging && id == f.id
}

// pop drops the head of the queue, which went out; f.mu is held.
func (f *clientFeed) pop() {
	if len(f.q) > 0 {
		f.q[0] = FeedItem{}
		f.q = f.q[1:]
	}
}

// closeLocal ends the feed with why (the first reason wins). The items
// queued are still handed out, unless why is the Client's or the feed's
// Close.
func (f *clientFeed) closeLocal(why error) {
	f.mu.Lock()
	if !f.ended {
		f.ended, f.err = true, why
		if errors.Is(why, ErrClosed) {
			clear(f.q)
			f.q = nil
		}
	}
	f.mu.Unlock()
	f.signal()
}

// pump hands the queued items to the consumer and restarts the daemon's
// feed after an overflow: it ends the daemon-side feed at once, so that
// the daemon stops sending what would be dropped, and once the consumer
// has emptied the queue (C may still hold some) it asks for a new one
// from the last item taken. It returns when the feed ended and its queue is handed out, on
// Close, or when ctx ends.
func (f *clientFeed) pump() {
	c := f.c
	var rid uint64 // the restart's changes request, while in flight
	var reply chan wire.Frame
	defer func() {
		if reply != nil {
			c.unregister(rid)
		}
		f.mu.Lock()
		f.closed = true
		f.mu.Unlock()
		close(f.out)
		close(f.done)
	}()
	for {
		f.mu.Lock()
		if f.ended && len(f.q) == 0 {
			f.mu.Unlock()
			return
		}
		var old uint64 // a daemon-side feed to end
		if f.lagging && f.id != 0 && !f.ended {
			old, f.id = f.id, 0
		}
		restart := f.lagging && f.id == 0 && reply == nil && !f.ended && len(f.q) == 0
		from := f.last
		var outc chan FeedItem
		var head FeedItem
		if len(f.q) > 0 {
			outc, head = f.out, f.q[0]
		}
		f.mu.Unlock()
		if old != 0 {
			c.dropFeed(old, f)
			c.forget(wire.TUnchanges, wire.Unchanges{Feed: old})
		}
		if restart {
			f.mu.Lock()
			f.lagging = false
			f.mu.Unlock()
			id, ch, err := c.registerFeed(f)
			if err == nil {
				err = c.sendFrame(wire.TChanges, id, wire.Changes{From: from}, nil)
				if err != nil {
					c.unregister(id)
					c.dropFeed(id, f)
				}
			}
			if err != nil {
				if why := c.closeReason(); why != nil {
					err = why
				}
				f.closeLocal(err)
				continue
			}
			rid, reply = id, ch
		}
		select {
		case outc <- head:
			// The head went out; move what else fits without waiting.
			f.mu.Lock()
			f.pop()
			for len(f.q) > 0 {
				select {
				case f.out <- f.q[0]:
					f.pop()
					continue
				default:
				}
				break
			}
			f.mu.Unlock()
		case <-f.wake:
		case fr, ok := <-reply:
			id, ch := rid, reply
			rid, reply = 0, nil
			if !ok {
				f.closeLocal(c.closeReason())
				continue
			}
			replyChans.Put(ch)
			if err := changesReply(fr); err != nil {
				c.dropFeed(id, f)
				f.closeLocal(err)
			}
		case <-f.stop:
			return
		case <-f.ctx.Done():
			f.end(f.ctx.Err())
			return
		}
	}
}

// end stops the feed locally and on the daemon, with why as its Err.
func (f *clientFeed) end(why error) {
	first := false
	f.once.Do(func() { f.closeLocal(why); close(f.stop); first = true })
	if !first {
		return
	}
	f.mu.Lock()
	id := f.id
	f.id = 0
	f.mu.Unlock()
	if id == 0 {
		return
	}
	f.c.mu.Lock()
	live := f.c.feeds[id] == f
	if live {
		delete(f.c.feeds, id)
	}
	f.c.mu.Unlock()
	if live {
		err := f.c.call(context.Background(), wire.TUnchanges, wire.Unchanges{Feed: id}, wire.TOK, nil)
		_ = err // the connection gone ends the feed on the daemon as well
	}
}

// Close ends the feed on the daemon and closes C. Idempotent.
func (f *clientFeed) Close() error {
	f.end(errFeedClosed)
	<-f.done
	return nil
}

// errFeedClosed is what Err reports after a feed's Close.
var errFeedClosed = fmt.Errorf("%w: feed closed", ErrClosed)

// deliverChange hands a change push to its feed (the reader).
func (c *Client) deliverChange(fr wire.Frame) {
	c.mu.Lock()
	f := c.feeds[fr.ID]
	c.mu.Unlock()
	if f == nil || !f.takes(fr.ID) {
		return // not decoded: a feed that lags drops many
	}
	var w wire.FeedItem
	if err := wire.DecodeBody(fr, &w); err != nil {
		c.fail(fmt.Errorf("%w: change: %v", ErrProtocol, err))
		return
	}
	it, err := fromWireFeedItem(w)
	if err != nil {
		c.fail(fmt.Errorf("%w: change: %v", ErrProtocol, err))
		return
	}
	f.put(fr.ID, it)
}

// endFeed handles a changes_end push: the daemon ended the feed.
func (c *Client) endFeed(fr wire.Frame) {
	c.mu.Lock()
	f := c.feeds[fr.ID]
	delete(c.feeds, fr.ID)
	c.mu.Unlock()
	if f == nil {
		return
	}
	var e wire.ChangesEnd
	var why error
	switch err := wire.DecodeBody(fr, &e); {
	case err != nil:
		why = fmt.Errorf("%w: changes_end: %v", ErrProtocol, err)
	case e.Oldest > 0:
		why = &core.CompactedError{Oldest: e.Oldest}
	default:
		why = fromWireError(wire.Error{Code: e.Code, Message: e.Message})
	}
	f.closeLocal(why)
}
