package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/codec"
	"github.com/sysreg/sysreg/internal/wire"
)

// Client is a Registry served by sysregd over its Unix socket (R32): the
// same method set and the same errors as an embedded *Store. Calls from
// many goroutines are pipelined on one connection. If the connection is
// lost, every call fails with an error matching ErrConnLost; the daemon has
// then ended this client's owner sessions (R31) and nothing re-attaches by
// itself. A Client owns one reader goroutine, which Close stops.
type Client struct {
	nc       net.Conn
	maxFrame atomic.Int64 // the daemon's frame limit (handshake)
	server   string

	wmu      sync.Mutex // guards wbuf, spare, flushing
	wbuf     []byte     // frames waiting to be written
	spare    []byte
	flushing bool // a goroutine is writing wbuf out

	mu      sync.Mutex // guards the fields below
	nextID  uint64
	pending map[uint64]chan wire.Frame
	subs    map[uint64]*clientSub
	feeds   map[uint64]*clientFeed
	err     error // set once the connection is lost or closed

	done chan struct{} // closed when the reader exits
}

var _ Registry = (*Client)(nil)

// Dial connects to the daemon's socket and performs the handshake.
func Dial(ctx context.Context, socket string) (*Client, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("store: dial %s: %w", socket, err)
	}
	c := &Client{
		nc:      nc,
		pending: map[uint64]chan wire.Frame{},
		subs:    map[uint64]*clientSub{},
		feeds:   map[uint64]*clientFeed{},
		done:    make(chan struct{}),
	}
	c.maxFrame.Store(wire.DefaultMaxFrame)
	go c.read()
	var ok wire.HelloOK
	if err := c.call(ctx, wire.THello, wire.Hello{Version: wire.Version, Client: "sysreg-go"}, wire.THelloOK, &ok); err != nil {
		c.Close()
		return nil, fmt.Errorf("store: handshake with %s: %w", socket, err)
	}
	c.server = ok.Server
	if ok.MaxFrame > 0 && ok.MaxFrame < 1<<31 {
		c.maxFrame.Store(int64(ok.MaxFrame))
	}
	return c, nil
}

// Close closes the connection: the daemon ends this client's owner
// sessions (their keys go, R13/R31) and subscriptions; every channel of the
// client's subscriptions is closed. Idempotent.
func (c *Client) Close() error {
	c.fail(ErrClosed)
	<-c.done
	return nil
}

// closeReason is why the client's subscriptions end with its connection:
// its Close, or the connection lost.
func (c *Client) closeReason() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if errors.Is(c.err, ErrClosed) {
		return fmt.Errorf("%w: client closed", ErrClosed)
	}
	return c.err
}

// errSubClosed is what Err reports after a subscription's Close.
var errSubClosed = fmt.Errorf("%w: subscription closed", ErrClosed)

// fail marks the client unusable with err (the first error wins) and
// closes the connection; the reader then wakes every waiter.
func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.nc.Close()
}

// read dispatches replies to waiting calls and deliveries to subscriptions.
func (c *Client) read() {
	defer close(c.done)
	br := bufio.NewReaderSize(c.nc, 64<<10)
	var err error
	var buf []byte
	for {
		var f wire.Frame
		// Not the daemon's MaxFrame, which limits requests: a reply or
		// delivery carries the whole view, which may be larger. buf is
		// reused: pushes are decoded here, and a reply's body is copied
		// for its caller (an ok's null is shared).
		f, buf, err = wire.ReadFrame(br, wire.MaxReplyFrame, buf)
		if err != nil {
			break
		}
		if cap(buf) > 1<<20 {
			buf = nil // a large view: do not keep its buffer
		}
		switch f.Type {
		case wire.TDelivery:
			c.deliver(f)
			continue
		case wire.TChange:
			c.deliverChange(f)
			continue
		case wire.TChangesEnd:
			c.endFeed(f)
			continue
		case wire.TSubClosed:
			c.mu.Lock()
			s := c.subs[f.ID]
			delete(c.subs, f.ID)
			c.mu.Unlock()
			if s != nil {
				s.closeLocal(ErrSubscriptionEnded)
			}
			continue
		}
		c.mu.Lock()
		ch := c.pending[f.ID]
		delete(c.pending, f.ID)
		c.mu.Unlock()
		if ch != nil {
			if len(f.Body) == 1 && f.Body[0] == 0xf6 {
				f.Body = nullBody
			} else {
				f.Body = bytes.Clone(f.Body)
			}
			ch <- f
		}
	}
	c.mu.Lock()
	if c.err == nil {
		c.err = fmt.Errorf("%w: %v", ErrConnLost, err)
	}
	pending, subs, feeds := c.pending, c.subs, c.feeds
	c.pending, c.subs, c.feeds = map[uint64]chan wire.Frame{}, map[uint64]*clientSub{}, map[uint64]*clientFeed{}
	c.mu.Unlock()
	c.nc.Close()
	for _, ch := range pending {
		close(ch)
	}
	for _, s := range subs {
		s.closeLocal(c.closeReason())
	}
	for _, f := range feeds {
		f.closeLocal(c.closeReason())
	}
}

func (c *Client) deliver(f wire.Frame) {
	c.mu.Lock()
	s := c.subs[f.ID]
	c.mu.Unlock()
	if s == nil {
		return
	}
	var d wire.Delivery
	if err := wire.DecodeBody(f, &d); err != nil {
		c.fail(fmt.Errorf("%w: delivery: %v", ErrProtocol, err))
		return
	}
	snap, err := codec.DecodeSnapshot(d.Data)
	if err != nil {
		c.fail(fmt.Errorf("%w: delivery: %v", ErrProtocol, err))
		return
	}
	s.put(snap)
}

// replyChans recycles reply channels: one that delivered its reply is
// empty and referenced by nobody else (the reader unregisters a channel
// before it sends on it).
var replyChans = sync.Pool{New: func() any { return make(chan wire.Frame, 1) }}

// register allocates a request id and its reply channel.
func (c *Client) register() (uint64, chan wire.Frame, error) {
	return c.registerFeed(nil)
}

// registerFeed is register for a changes request of f (nil: any other
// request), which it also files under the id in the same step: the feed
// id is the request id, and the pushes that overtake the reply find their
// feed. f then takes the daemon's items sent under that id.
func (c *Client) registerFeed(f *clientFeed) (uint64, chan wire.Frame, error) {
	ch := replyChans.Get().(chan wire.Frame)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, nil, c.err
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = ch
	if f != nil {
		c.feeds[id] = f
		f.mu.Lock()
		f.id = id
		f.mu.Unlock()
	}
	return id, ch, nil
}

func (c *Client) unregister(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// send queues a frame and writes out everything queued unless another
// goroutine is already doing so: concurrent calls share write syscalls.
func (c *Client) send(frame []byte) error {
	c.wmu.Lock()
	c.wbuf = append(c.wbuf, frame...)
	return c.flushLocked()
}

// sendFrame encodes the request t with id into the queue, refusing one
// above the daemon's frame limit, and sends it as send does. The body of
// a mutate may come as mut instead, encoded without boxing it into body
// (every update passes here; boxing costs an allocation).
func (c *Client) sendFrame(t wire.Type, id uint64, body any, mut *wire.Mutate) error {
	c.wmu.Lock()
	start := len(c.wbuf)
	var buf []byte
	var err error
	if mut != nil {
		buf, err = wire.AppendMutateFrame(c.wbuf, id, mut)
	} else {
		buf, err = wire.AppendFrame(c.wbuf, t, id, body)
	}
	if max := int(c.maxFrame.Load()); err == nil && len(buf)-start-4 > max { // not max+4: it overflows a 32-bit int
		err = fmt.Errorf("%w: request of %d bytes, the daemon's frame limit is %d", core.ErrTooLarge, len(buf)-start, max)
	}
	if err != nil {
		c.wbuf = buf[:start]
		c.wmu.Unlock()
		return err
	}
	c.wbuf = buf
	c.flushLocked()
	return nil
}

// flushLocked is send's second half: wmu is held, and released. The
// goroutine that writes first yields once, so that the callers woken by
// the same read of replies queue their requests behind it: one write
// carries them all.
func (c *Client) flushLocked() error {
	if c.flushing {
		c.wmu.Unlock()
		return nil
	}
	c.flushing = true
	c.wmu.Unlock()
	runtime.Gosched()
	c.wmu.Lock()
	for len(c.wbuf) > 0 {
		buf := c.wbuf
		c.wbuf = c.spare[:0]
		c.wmu.Unlock()
		_, err := c.nc.Write(buf)
		c.wmu.Lock()
		c.spare = buf[:0]
		if err != nil {
			c.wbuf = c.wbuf[:0]
			c.flushing = false
			c.wmu.Unlock()
			c.fail(fmt.Errorf("%w: %v", ErrConnLost, err))
			return err
		}
	}
	c.flushing = false
	c.wmu.Unlock()
	return nil
}

// exchange sends the request t with id (registered with its reply channel
// ch) and waits for the reply frame. If ctx ends first the request may
// still take effect; the id is unregistered and ctx's error returned.
func (c *Client) exchange(ctx context.Context, id uint64, ch chan wire.Frame, t wire.Type, body any, mut *wire.Mutate) (wire.Frame, error) {
	if err := c.sendFrame(t, id, body, mut); err != nil {
		c.unregister(id)
		return wire.Frame{}, err
	}
	var f wire.Frame
	ok := true
	if done := ctx.Done(); done == nil {
		f, ok = <-ch // a plain receive: a select costs a lock per channel
	} else {
		select {
		case f, ok = <-ch:
		case <-done:
			c.unregister(id)
			return wire.Frame{}, ctx.Err()
		}
	}
	if !ok {
		c.mu.Lock()
		err := c.err
		c.mu.Unlock()
		return wire.Frame{}, err
	}
	replyChans.Put(ch)
	return f, nil
}

// decodeReply turns the reply f to request t into an error: the daemon's
// error, a reply of another type than want, or a body that does not decode
// into out (nil: the body is not read).
func decodeReply(t wire.Type, f wire.Frame, want wire.Type, out any) error {
	switch f.Type {
	case wire.TError:
		var we wire.Error
		if err := wire.DecodeBody(f, &we); err != nil {
			return fmt.Errorf("%w: error reply: %v", ErrProtocol, err)
		}
		return fromWireError(we)
	case wire.TConflict:
		var c wire.Conflict
		if err := wire.DecodeBody(f, &c); err != nil {
			return fmt.Errorf("%w: conflict reply: %v", ErrProtocol, err)
		}
		return fromConflict(c)
	case want:
		if out != nil {
			if err := wire.DecodeBody(f, out); err != nil {
				return fmt.Errorf("%w: %s reply: %v", ErrProtocol, f.Type, err)
			}
		}
		return nil
	}
	return fmt.Errorf("%w: %s answered with %s", ErrProtocol, t, f.Type)
}

// call sends a request and decodes its reply: a typed reply (want) into
// out, or OK (want TOK, out nil).
func (c *Client) call(ctx context.Context, t wire.Type, body any, want wire.Type, out any) error {
	return c.roundTrip(ctx, t, body, nil, want, out)
}

// roundTrip is call with a mutate's body as mut (see sendFrame).
func (c *Client) roundTrip(ctx context.Context, t wire.Type, body any, mut *wire.Mutate, want wire.Type, out any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	id, ch, err := c.register()
	if err != nil {
		return err
	}
	f, err := c.exchange(ctx, id, ch, t, body, mut)
	if err != nil {
		return err
	}
	return decodeReply(t, f, want, out)
}

// Owner attaches an owner session on this connection (R8, R31).
func (c *Client) Owner(ctx context.Context, name string, opts core.OwnerOptions) (Owner, error) {
	var ok wire.AttachOK
	if err := c.call(ctx, wire.TAttach, wire.Attach{Name: name, KeepConfig: opts.KeepConfig, Layer: uint8(opts.Layer), Grace: int64(opts.Grace)}, wire.TAttachOK, &ok); err != nil {
		return nil, err
	}
	return &clientOwner{c: c, handle: ok.Handle, name: ok.Name}, nil
}

// Reset asks the daemon to reset config layers (R46); see Registry.Reset.
func (c *Client) Reset(ctx context.Context, p core.Pattern, layers ...core.Layer) error {
	r := wire.Reset{Pattern: wire.Scope{Bucket: uint8(p.Bucket), Type: p.Type, Subtype: p.Subtype}, Layers: make([]uint64, len(layers))}
	for i, l := range layers {
		r.Layers[i] = uint64(l)
	}
	return c.call(ctx, wire.TReset, r, wire.TOK, nil)
}

// ResetKeys asks the daemon to reset named keys of one config scope (R46);
// see core.Registry.ResetKeys.
func (c *Client) ResetKeys(ctx context.Context, scope core.Scope, keys []string, layers ...core.Layer) error {
	r := wire.ResetKeys{Scope: wire.Scope{Bucket: uint8(scope.Bucket), Type: scope.Type, Subtype: scope.Subtype}, Keys: keys, Layers: make([]uint64, len(layers))}
	for i, l := range layers {
		r.Layers[i] = uint64(l)
	}
	return c.call(ctx, wire.TResetKeys, r, wire.TOK, nil)
}

// Confirm asks the daemon to make the pending apply id permanent (R44).
func (c *Client) Confirm(ctx context.Context, id uint64) error {
	return c.call(ctx, wire.TConfirm, wire.Confirm{ID: id}, wire.TOK, nil)
}

// Rollback asks the daemon to undo the pending apply id now (R44) and
// returns the keys the undo left alone.
func (c *Client) Rollback(ctx context.Context, id uint64) ([]core.Change, error) {
	var ok wire.RollbackOK
	if err := c.call(ctx, wire.TRollback, wire.Rollback{ID: id}, wire.TRollbackOK, &ok); err != nil {
		return nil, err
	}
	left, err := coreChanges(ok.Left)
	if err != nil {
		return nil, fmt.Errorf("%w: rollback_ok: %v", ErrProtocol, err)
	}
	return left, nil
}

// Pending lists the daemon's pending applies (R44), oldest first.
func (c *Client) Pending(ctx context.Context) ([]core.PendingApply, error) {
	var ok wire.PendingOK
	if err := c.call(ctx, wire.TPending, nil, wire.TPendingOK, &ok); err != nil {
		return nil, err
	}
	ps, err := corePending(ok.Applies)
	if err != nil {
		return nil, fmt.Errorf("%w: pending_ok: %v", ErrProtocol, err)
	}
	return ps, nil
}

// Snapshot returns the daemon's current view.
func (c *Client) Snapshot(ctx context.Context) (core.Snapshot, error) {
	var ok wire.SnapshotOK
	if err := c.call(ctx, wire.TSnapshot, nil, wire.TSnapshotOK, &ok); err != nil {
		return core.Snapshot{}, err
	}
	snap, err := codec.DecodeSnapshot(ok.Data)
	if err != nil {
		return core.Snapshot{}, fmt.Errorf("%w: snapshot: %v", ErrProtocol, err)
	}
	return snap, nil
}

// Subscribe subscribes on the daemon, which applies the rate limit (R31).
func (c *Client) Subscribe(ctx context.Context, opts core.SubscribeOptions) (Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	id, ch, err := c.register()
	if err != nil {
		return nil, err
	}
	// The subscription id is the request id: registered before the
	// request goes out, so that deliveries overtaking the reply find it.
	s := &clientSub{c: c, id: id, ch: make(chan core.Snapshot, 1)}
	c.mu.Lock()
	c.subs[id] = s
	c.mu.Unlock()
	body := wire.Subscribe{
		MinInterval: int64(opts.MinInterval),
		Hysteresis:  int64(opts.Hysteresis),
		Match:       wire.Scope{Bucket: uint8(opts.Match.Bucket), Type: opts.Match.Type, Subtype: opts.Match.Subtype},
	}
	f, err := c.exchange(ctx, id, ch, wire.TSubscribe, body, nil)
	if err == nil {
		err = decodeReply(wire.TSubscribe, f, wire.TSubscribeOK, nil)
	} else if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		// The daemon may have subscribed already: end it there too,
		// without waiting (a lost connection ends it anyway).
		c.forget(wire.TUnsubscribe, wire.Unsubscribe{Sub: id})
	}
	if err != nil {
		c.mu.Lock()
		delete(c.subs, id)
		c.mu.Unlock()
		s.closeLocal(err)
		return nil, err
	}
	return s, nil
}

// forget sends a request whose reply nobody waits for (the reader drops a
// reply for an id that is not pending).
func (c *Client) forget(t wire.Type, body any) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.nextID++
	id := c.nextID
	c.mu.Unlock()
	if frame, err := wire.AppendFrame(nil, t, id, body); err == nil {
		c.send(frame)
	}
}

// Evict deletes everything name holds (R14).
func (c *Client) Evict(ctx context.Context, name string) error {
	return c.call(ctx, wire.TEvict, wire.Evict{Name: name}, wire.TOK, nil)
}

// Owners lists the daemon's owner names (R52), with the uid each is bound
// to (R35); see Store.Owners.
func (c *Client) Owners(ctx context.Context) ([]OwnerInfo, error) {
	var ok wire.OwnersOK
	if err := c.call(ctx, wire.TOwners, nil, wire.TOwnersOK, &ok); err != nil {
		return nil, err
	}
	var list []OwnerInfo
	if err := cbor.Unmarshal(ok.Data, &list); err != nil {
		return nil, fmt.Errorf("%w: owners: %v", ErrProtocol, err)
	}
	return list, nil
}

// Stats returns the daemon's figures (sysregd stats), with its server's
// counters in Server.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var ok wire.StatsOK
	if err := c.call(ctx, wire.TStats, nil, wire.TStatsOK, &ok); err != nil {
		return Stats{}, err
	}
	var st Stats
	if err := cbor.Unmarshal(ok.Data, &st); err != nil {
		return Stats{}, fmt.Errorf("%w: stats: %v", ErrProtocol, err)
	}
	return st, nil
}

// Ping measures a round trip to the daemon.
func (c *Client) Ping(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	err := c.call(ctx, wire.TPing, nil, wire.TOK, nil)
	return time.Since(start), err
}

// clientOwner is an owner session on the daemon.
type clientOwner struct {
	c      *Client
	handle uint64
	name   string

	mu     sync.Mutex // guards closed
	closed bool
}

func (o *clientOwner) Name() string { return o.name }

func (o *clientOwner) live() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return fmt.Errorf("owner %q: %w", o.name, ErrClosed)
	}
	return nil
}

func (o *clientOwner) Update(ctx context.Context, scope core.Scope, values core.Values) error {
	return o.Commit(ctx, core.Put(scope, values))
}

func (o *clientOwner) Delete(ctx context.Context, scope core.Scope, keys ...string) error {
	return o.Commit(ctx, core.Del(scope, keys...))
}

func (o *clientOwner) Commit(ctx context.Context, ops ...core.Op) error {
	if err := o.live(); err != nil {
		return err
	}
	s := opScratches.Get().(*opScratch)
	defer s.put()
	wops, err := s.wireOps(ops)
	if err != nil {
		return err
	}
	m := wire.Mutate{Handle: o.handle, Ops: wops}
	return o.c.roundTrip(ctx, wire.TMutate, nil, &m, wire.TOK, nil)
}

// opScratch holds the wire form of a transaction's ops while it is
// encoded into a frame: every update a client sends passes here, and
// reusing the storage makes that free of allocations.
type opScratch struct {
	ops  []wire.Op
	vals []byte // the ops' values, one after the other
	ends []int  // where each op's values end in vals
}

var opScratches = sync.Pool{New: func() any { return new(opScratch) }}

// put returns s to the pool, unless it grew large.
func (s *opScratch) put() {
	if cap(s.vals) > 64<<10 || cap(s.ops) > 1024 {
		return
	}
	// The ops keep their scopes and keys alive until reused: clearing
	// them would cost a write barrier per pointer while the collector
	// runs, which under load is most of the time.
	s.ops, s.vals, s.ends = s.ops[:0], s.vals[:0], s.ends[:0]
	opScratches.Put(s)
}

// wireOps is ops on the wire, in s's storage; a bad op's error names it
// as core does.
func (s *opScratch) wireOps(ops []core.Op) ([]wire.Op, error) {
	for i, op := range ops {
		w, err := s.wireOp(op)
		if err != nil {
			return nil, opError(i, len(ops), err)
		}
		s.ops = append(s.ops, w)
		s.ends = append(s.ends, len(s.vals))
	}
	// vals may have moved as it grew: point the ops at it now.
	start := 0
	for i := range s.ops {
		if s.ops[i].Values == nil {
			s.ops[i].Values = s.vals[start:s.ends[i]:s.ends[i]]
		}
		start = s.ends[i]
	}
	return s.ops, nil
}

// wireOp is one op on the wire; a put's values are appended to s.vals
// (Values left nil), other ops carry their own.
func (s *opScratch) wireOp(op core.Op) (wire.Op, error) {
	if op.Kind() == core.OpPut {
		scope, values, _, _ := op.Parts()
		vals, err := codec.AppendValues(s.vals, values)
		if err != nil {
			return wire.Op{}, err
		}
		s.vals = vals
		return wire.Op{Kind: wire.OpPut, Scope: wireScope(scope)}, nil
	}
	return wireOp(op)
}

// Apply is core.Owner.Apply on the daemon (R44): the daemon runs the
// deadline, so an apply is undone even if this client goes away.
func (o *clientOwner) Apply(ctx context.Context, within time.Duration, ops ...core.Op) (uint64, error) {
	if err := o.live(); err != nil {
		return 0, err
	}
	wops, err := wireOps(ops)
	if err != nil {
		return 0, err
	}
	var ok wire.ApplyOK
	if err := o.c.call(ctx, wire.TApply, wire.Apply{Handle: o.handle, Within: int64(within), Ops: wops}, wire.TApplyOK, &ok); err != nil {
		return 0, err
	}
	return ok.ID, nil
}

// wireOps is ops on the wire; a bad op's error names it as core does.
func wireOps(ops []core.Op) ([]wire.Op, error) {
	out := make([]wire.Op, len(ops))
	for i, op := range ops {
		w, err := wireOp(op)
		if err != nil {
			return nil, opError(i, len(ops), err)
		}
		out[i] = w
	}
	return out, nil
}

func wireOp(op core.Op) (wire.Op, error) {
	switch op.Kind() {
	case core.OpIfModSeq, core.OpIfEqual: // R43
		scope, key, seq, value := op.Cond()
		kind, v := wire.OpIfEqual, value
		if op.Kind() == core.OpIfModSeq {
			kind, v = wire.OpIfModSeq, seq
		}
		raw, err := codec.EncodeValues(core.Values{key: v})
		if err != nil {
			return wire.Op{}, err
		}
		return wire.Op{Kind: kind, Scope: wireScope(scope), Values: raw}, nil
	case 0:
		return wire.Op{}, fmt.Errorf("%w: zero Op", core.ErrInvalidValue)
	}
	scope, values, keys, isPut := op.Parts()
	w := wire.Op{Scope: wireScope(scope), Keys: keys}
	if !isPut {
		w.Kind = wire.OpDel
		w.Values = []byte{0xf6}
		return w, nil
	}
	w.Kind = wire.OpPut
	raw, err := codec.EncodeValues(values)
	if err != nil {
		return w, err
	}
	w.Values = raw
	return w, nil
}

// Close ends the session on the daemon: the owner dies (R13). Idempotent.
func (o *clientOwner) Close() error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	o.mu.Unlock()
	err := o.c.call(context.Background(), wire.TDetach, wire.Detach{Handle: o.handle}, wire.TOK, nil)
	if errors.Is(err, ErrClosed) || errors.Is(err, ErrConnLost) {
		return nil // the connection is gone: the daemon ended the session
	}
	return err
}

// clientSub is a subscription on the daemon with a local one-slot channel:
// a delivery the consumer has not taken is replaced by the newer one (R19).
type clientSub struct {
	c  *Client
	id uint64
	ch chan core.Snapshot

	mu     sync.Mutex // guards closed, err and sends on ch
	closed bool
	err    error // why ch was closed
}

func (s *clientSub) C() <-chan core.Snapshot { return s.ch }

// Err says why C was closed (see Subscription).
func (s *clientSub) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *clientSub) put(snap core.Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	select {
	case <-s.ch:
	default:
	}
	s.ch <- snap
}

func (s *clientSub) closeLocal(why error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed, s.err = true, why
	select {
	case <-s.ch:
	default:
	}
	close(s.ch)
}

// Close ends the subscription on the daemon and closes C. Idempotent.
func (s *clientSub) Close() error {
	s.c.mu.Lock()
	_, live := s.c.subs[s.id]
	delete(s.c.subs, s.id)
	s.c.mu.Unlock()
	s.closeLocal(errSubClosed)
	if !live {
		return nil
	}
	err := s.c.call(context.Background(), wire.TUnsubscribe, wire.Unsubscribe{Sub: s.id}, wire.TOK, nil)
	if errors.Is(err, ErrClosed) || errors.Is(err, ErrConnLost) {
		return nil
	}
	return err
}
