package store

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/wire"
)

// clientFeedCap is how many items a Client's feed holds for its reader.
const clientFeedCap = 64

// Changes starts a change feed on the daemon (R47); see Store.Changes.
// There is no flow control per feed: the client's one reader goroutine
// hands each item to the feed's channel (64 items deep) and waits while
// it is full, so a feed that is not read stalls the whole connection —
// every call, subscription and other feed of c waits with it — and after
// the daemon's write timeout (ServerOptions.WriteTimeout, default 30 s)
// the daemon disconnects the client: its owners die and every call fails
// with ErrConnLost, the feed's Err too. Nothing is buffered without bound
// on either side. Read a feed promptly, or give it a Client of its own
// (Dial) and resume from the last Seq seen if it is dropped.
func (c *Client) Changes(ctx context.Context, from uint64) (Feed, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	id, ch, err := c.register()
	if err != nil {
		return nil, err
	}
	f := &clientFeed{c: c, id: id, ch: make(chan FeedItem, clientFeedCap), stop: make(chan struct{})}
	c.mu.Lock()
	c.feeds[id] = f
	c.mu.Unlock()
	fr, err := c.exchange(ctx, id, ch, wire.TChanges, wire.Changes{From: from}, nil)
	if err == nil {
		if fr.Type == wire.TCompacted {
			var cp wire.Compacted
			if err = wire.DecodeBody(fr, &cp); err == nil {
				err = &core.CompactedError{Oldest: cp.Oldest}
			} else {
				err = fmt.Errorf("%w: compacted reply: %v", ErrProtocol, err)
			}
		} else {
			err = decodeReply(wire.TChanges, fr, wire.TChangesOK, nil)
		}
	} else if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		c.forget(wire.TUnchanges, wire.Unchanges{Feed: id})
	}
	if err != nil {
		c.mu.Lock()
		delete(c.feeds, id)
		c.mu.Unlock()
		f.closeLocal(err)
		return nil, err
	}
	if ctx.Done() != nil {
		go func() {
			select {
			case <-ctx.Done():
				f.end(ctx.Err())
			case <-f.stop:
			}
		}()
	}
	return f, nil
}

// clientFeed is a feed on the daemon. The client's reader is the only
// goroutine that sends on ch; it holds mu while it does, and gives up
// when stop closes.
type clientFeed struct {
	c    *Client
	id   uint64
	ch   chan FeedItem
	stop chan struct{} // closed by Close (or the end of ctx)
	once sync.Once

	mu     sync.Mutex // guards closed, err and sends on ch
	closed bool
	err    error
}

func (f *clientFeed) C() <-chan FeedItem { return f.ch }

func (f *clientFeed) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// put hands an item over (the client's reader).
func (f *clientFeed) put(it FeedItem) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	select {
	case f.ch <- it:
	case <-f.stop:
	}
}

func (f *clientFeed) closeLocal(why error) {
	f.once.Do(func() { close(f.stop) })
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.closed, f.err = true, why
	close(f.ch)
}

// end stops the feed locally and on the daemon, with why as its Err.
func (f *clientFeed) end(why error) {
	first := false
	f.once.Do(func() { close(f.stop); first = true })
	if !first {
		return
	}
	f.c.mu.Lock()
	_, live := f.c.feeds[f.id]
	delete(f.c.feeds, f.id)
	f.c.mu.Unlock()
	f.closeLocal(why)
	if live {
		err := f.c.call(context.Background(), wire.TUnchanges, wire.Unchanges{Feed: f.id}, wire.TOK, nil)
		_ = err // the connection gone ends the feed on the daemon as well
	}
}

// Close ends the feed on the daemon and closes C. Idempotent.
func (f *clientFeed) Close() error {
	f.end(errFeedClosed)
	return nil
}

// errFeedClosed is what Err reports after a feed's Close.
var errFeedClosed = fmt.Errorf("%w: feed closed", ErrClosed)

// deliverChange hands a change push to its feed (the reader).
func (c *Client) deliverChange(fr wire.Frame) {
	c.mu.Lock()
	f := c.feeds[fr.ID]
	c.mu.Unlock()
	if f == nil {
		return
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
	f.put(it)
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
