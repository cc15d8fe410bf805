package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/wire"
)

// changes starts a change feed (R47) on the connection. Its items are
// written as change pushes by one goroutine per feed, which runs the
// store's feed loop itself (no channel, no queue in between): a client
// that does not read blocks that write, and the write deadline
// (WriteTimeout) disconnects it; meanwhile the feed's tap drops what it
// cannot hold and the feed would catch up from the journal, so nothing
// is buffered without bound.
func (c *conn) changes(id uint64, r wire.Changes) reply {
	s := c.srv
	c.smu.Lock()
	defer c.smu.Unlock()
	if len(c.feeds) >= s.opts.MaxFeeds {
		return errReply(id, fmt.Errorf("%w: %d change feeds on this connection", core.ErrLimit, s.opts.MaxFeeds))
	}
	if _, dup := c.feeds[id]; dup {
		return badRequest(id, "feed id %d in use", id)
	}
	tap, err := s.st.startFeed(r.From)
	var ce *core.CompactedError
	if errors.As(err, &ce) {
		return reply{id: id, typ: wire.TCompacted, body: wire.Compacted{Oldest: ce.Oldest}}
	}
	if err != nil {
		return errReply(id, err)
	}
	stop := make(chan struct{})
	c.feeds[id] = stop
	c.subWG.Add(1)
	go c.pushFeed(id, r.From, tap, stop)
	// The feed id is the request id: pushes that overtake this reply
	// still find their feed at the client.
	return reply{id: id, typ: wire.TChangesOK, body: wire.ChangesOK{Feed: id}}
}

func (c *conn) unchanges(id uint64, u wire.Unchanges) reply {
	c.smu.Lock()
	if stop, ok := c.feeds[u.Feed]; ok {
		close(stop)
		delete(c.feeds, u.Feed)
	}
	c.smu.Unlock()
	return reply{id: id, typ: wire.TOK}
}

// errWrite marks a failed socket write in pushFeed.
type errWrite struct{ err error }

func (e errWrite) Error() string { return e.err.Error() }
func (e errWrite) Unwrap() error { return e.err }

// pushFeed runs one feed and writes its items; flushes when the feed
// waits for more.
func (c *conn) pushFeed(id, from uint64, tap *core.Tap, stop chan struct{}) {
	defer c.subWG.Done()
	emit := func(it FeedItem) error {
		w, err := wireFeedItem(it)
		if err != nil {
			return err
		}
		body, err := wire.EncodeBody(wire.TChange, w)
		if err != nil {
			return err
		}
		if err := c.writeFrame(wire.TChange, id, body, false); err != nil {
			return errWrite{err}
		}
		return nil
	}
	idle := func() error {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		c.nc.SetWriteDeadline(time.Now().Add(c.srv.opts.WriteTimeout))
		if err := c.bw.Flush(); err != nil {
			return errWrite{err}
		}
		return nil
	}
	err := c.srv.st.follow(context.Background(), from, tap, stop, emit, idle)
	var we errWrite
	if errors.As(err, &we) {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.srv.health.drop(c.log, c.srv.opts.WriteTimeout)
		}
		c.nc.Close()
		return
	}
	c.smu.Lock()
	_, live := c.feeds[id]
	delete(c.feeds, id)
	c.smu.Unlock()
	if !live || errors.Is(err, errFeedStop) {
		return // Unchanges or the connection's end
	}
	end := wire.ChangesEnd{Code: wire.CodeInternal, Message: fmt.Sprint(err)}
	var ce *core.CompactedError
	if errors.As(err, &ce) {
		end = wire.ChangesEnd{Oldest: ce.Oldest, Message: err.Error()}
	} else {
		end.Code = toWireError(err).Code
	}
	if body, err := wire.EncodeBody(wire.TChangesEnd, end); err == nil {
		if err := c.writeFrame(wire.TChangesEnd, id, body, true); err != nil {
			c.nc.Close()
		}
	}
}
