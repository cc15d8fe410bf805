package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
	"weak"

	"github.com/fxamacker/cbor/v2"
	"github.com/hashicorp/go-hclog"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/codec"
	"github.com/sysreg/sysreg/internal/wire"
)

// The defaults of ServerOptions, exported so that a command line can offer
// them as its flags' defaults.
const (
	DefaultMaxFrame         = wire.DefaultMaxFrame // bytes
	DefaultMaxOwners        = 64
	DefaultMaxSubscriptions = 64
	DefaultMaxKeysPerOwner  = 100_000
	DefaultMaxInFlight      = 1024
	DefaultWriteTimeout     = 30 * time.Second
	DefaultServerName       = "sysregd"
)

// ServerOptions configures NewServer. The zero value is valid.
type ServerOptions struct {
	// Logger: nil means no logging.
	Logger hclog.Logger
	// MaxFrame limits the payload of a frame the server reads, in bytes.
	// Default 4 MiB. Replies and deliveries carrying the whole view are as
	// large as the view (clients accept up to wire.MaxReplyFrame).
	MaxFrame int
	// MaxOwners limits live owner sessions per connection. Default 64.
	MaxOwners int
	// MaxSubscriptions limits live subscriptions per connection. Default 64.
	MaxSubscriptions int
	// MaxFeeds limits live change feeds (R47) per connection. Default 64.
	MaxFeeds int
	// MaxKeysPerOwner limits the keys an owner attached over the socket may
	// hold. Default 100,000.
	MaxKeysPerOwner int
	// MaxInFlight limits the requests of one connection that wait for their
	// reply; a client pipelining more is not read until replies drain.
	// Default 1,024.
	MaxInFlight int
	// WriteTimeout: a client that does not read for this long is
	// disconnected (its owners die). Default 30 s.
	WriteTimeout time.Duration
	// Name is the server's name in the handshake. Default "sysregd".
	Name string
	// Grace is how long the keys of an owner attached over the socket
	// outlive its connection when it drops (R48): a session of the same
	// name and uid that attaches within Grace takes them over with no
	// change. At most core.MaxGrace (1 h). Default 0: the owner dies at
	// once (R13). Detach (Owner.Close) is always immediate.
	Grace time.Duration
}

func (o ServerOptions) withDefaults() ServerOptions {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.MaxFrame <= 0 {
		o.MaxFrame = DefaultMaxFrame
	}
	if o.MaxOwners <= 0 {
		o.MaxOwners = DefaultMaxOwners
	}
	if o.MaxSubscriptions <= 0 {
		o.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if o.MaxFeeds <= 0 {
		o.MaxFeeds = DefaultMaxSubscriptions
	}
	if o.MaxKeysPerOwner <= 0 {
		o.MaxKeysPerOwner = DefaultMaxKeysPerOwner
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.Name == "" {
		o.Name = DefaultServerName
	}
	return o
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("store: server closed")

// Server serves a Store over stream connections (a Unix socket) with the
// protocol of internal/wire (R31–R35). Each connection has a reader
// goroutine, a reply writer goroutine and one goroutine per subscription;
// Shutdown stops them all.
type Server struct {
	st   *Store
	opts ServerOptions
	log  hclog.Logger

	mu       sync.Mutex // guards the fields below
	lns      map[net.Listener]struct{}
	conns    map[*conn]struct{}
	shutting bool

	wg sync.WaitGroup // connection goroutines

	snapMu sync.Mutex // guards the fields below: one encoding per snapshot
	snap   snapCache

	stats struct {
		conns, requests, deliveries, badFrames atomic.Uint64
	}
	health serverHealth // R50, R51
}

// NewServer returns a server for st. It does not own st: close the store
// after Shutdown.
func NewServer(st *Store, opts ServerOptions) *Server {
	opts = opts.withDefaults()
	return &Server{
		st:    st,
		opts:  opts,
		log:   opts.Logger,
		lns:   map[net.Listener]struct{}{},
		conns: map[*conn]struct{}{},
	}
}

// Serve accepts connections on ln until Shutdown, then returns
// ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shutting {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.lns, ln)
		s.mu.Unlock()
	}()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			shutting := s.shutting
			s.mu.Unlock()
			if shutting {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) || isTemporary(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "error", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		c := s.newConn(nc)
		if c == nil {
			nc.Close()
			return ErrServerClosed
		}
		go c.serve()
	}
}

func isTemporary(err error) bool {
	// EMFILE and friends: back off instead of spinning or giving up.
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// Shutdown stops accepting, stops reading new requests, finishes the
// requests in flight and closes every connection WITHOUT owner deaths: a
// clean shutdown never deletes config (R27, R30); closing the store then
// ends the sessions.
//
// If ctx ends first, Shutdown closes every connection at once and returns
// ctx's error without waiting for the requests still in flight, as
// net/http's Shutdown does: a request held by a stalled fsync ends, and its
// goroutines with it, when the journal returns. Calling Shutdown again
// waits for them.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutting = true
	for ln := range s.lns {
		ln.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.stopReading()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, c := range conns {
			c.nc.Close()
		}
		return ctx.Err()
	}
}

func (s *Server) shuttingDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutting
}

// encodeSnapshot returns the Delivery/SnapshotOK body for snap, encoding
// each snapshot once however many subscribers it goes to.
func (s *Server) encodeSnapshot(snap core.Snapshot) ([]byte, error) {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	if body := s.snap.get(snap.Seq()); body != nil {
		return body, nil
	}
	data, err := codec.EncodeSnapshot(snap, 0)
	if err != nil {
		return nil, err
	}
	body, err := wire.EncodeBody(wire.TDelivery, wire.Delivery{Data: data})
	if err != nil {
		return nil, err
	}
	s.snap.put(snap.Seq(), body)
	return body, nil
}

// snapCache is the encoded body of the last snapshot served. A body of up
// to snapCacheStrong bytes is kept; a larger one only while a reply or
// push still holds it (a weak pointer): the pushes of one snapshot to many
// subscribers share one encoding, and an idle daemon does not keep the
// encoding of the big snapshot it served last (with 10,000 keys ~400 KB of
// its idle resident set, issue #14's appliance footprint).
type snapCache struct {
	seq    uint64
	strong []byte
	weak   weak.Pointer[byte] // the first byte of a larger body
	n      int                // its length
}

const snapCacheStrong = 64 << 10

// get returns the body of snapshot seq if it is cached and still held.
func (c *snapCache) get(seq uint64) []byte {
	if c.seq != seq {
		return nil
	}
	if c.strong != nil {
		return c.strong
	}
	if p := c.weak.Value(); p != nil {
		return unsafe.Slice(p, c.n)
	}
	return nil
}

// put caches body (not empty) as the body of snapshot seq.
func (c *snapCache) put(seq uint64, body []byte) {
	*c = snapCache{seq: seq}
	if len(body) <= snapCacheStrong {
		c.strong = body
		return
	}
	c.weak, c.n = weak.Make(&body[0]), len(body)
}

// ServerStats are the server's counters.
type ServerStats struct {
	Connections    int    `json:"connections"`      // open now
	ConnsTotal     uint64 `json:"connections_all"`  // accepted since start
	Requests       uint64 `json:"requests"`         // frames read
	Deliveries     uint64 `json:"deliveries"`       // snapshots pushed to remote subscribers
	BadFrames      uint64 `json:"bad_frames"`       // rejected frames: malformed, oversized or unknown (R34)
	BoundOwnerUIDs int    `json:"bound_owner_uids"` // owner names bound to a uid (R35)
	SlowClients    uint64 `json:"slow_clients"`     // clients disconnected for not reading (R51)
	LaggingPushes  uint64 `json:"lagging_pushes"`   // deliveries that waited past the subscriber's lag threshold (R51)
}

// Stats returns the server's counters.
func (s *Server) Stats() ServerStats {
	s.mu.Lock()
	n := len(s.conns)
	s.mu.Unlock()
	return ServerStats{
		Connections:    n,
		ConnsTotal:     s.stats.conns.Load(),
		Requests:       s.stats.requests.Load(),
		Deliveries:     s.stats.deliveries.Load(),
		BadFrames:      s.stats.badFrames.Load(),
		BoundOwnerUIDs: s.boundOwners(),
		SlowClients:    s.health.dropped.Load(),
		LaggingPushes:  s.health.lagging.Load(),
	}
}

// conn is one client connection.
type conn struct {
	srv  *Server
	nc   net.Conn
	log  hclog.Logger
	uid  uint32
	cred bool // uid is known (SO_PEERCRED)

	replies *replyQueue // to the reply writer, in request order
	out     []reply     // the reader's replies not yet handed to replies

	wmu sync.Mutex // guards bw; held for a frame write (and flush)
	bw  *bufio.Writer

	// Owned by the reader goroutine.
	owners     map[uint64]*core.Owner
	nextHandle uint64
	// Reused by every mutate and apply of the connection: core copies
	// what it keeps before CommitAsync and Apply return.
	mut  wire.Mutate
	app  wire.Apply
	cops []core.Op
	// State updates read but not yet applied (mutateFrame), and the maps
	// their values were decoded into, reused by the next batch:
	// UpdateBatch copies the values out (TestR7_BatchReusesValueMaps).
	batch    []core.BatchUpdate
	batchIDs []uint64
	maps     []core.Values

	smu   sync.Mutex // guards subs and feeds
	subs  map[uint64]*core.Subscription
	feeds map[uint64]chan struct{} // change feeds (R47): closing one stops it

	subWG   sync.WaitGroup // subscription pushers
	closing atomic.Bool    // reading stopped by Shutdown
}

// reply is one queued answer. wait, if set, is called by the reply writer
// (it waits for a mutation's outcome) and decides between OK and Error.
// flush says that the reader had no further request at hand when it
// queued this reply: the writer flushes after writing it (or once nothing
// is queued), so that the replies of pipelined requests read in one go
// leave in one write.
type reply struct {
	id    uint64
	typ   wire.Type
	body  any
	wait  func() error
	flush bool
}

func (s *Server) newConn(nc net.Conn) *conn {
	c := &conn{
		srv:     s,
		nc:      nc,
		replies: newReplyQueue(s.opts.MaxInFlight),
		bw:      bufio.NewWriterSize(nc, 64<<10),
		owners:  map[uint64]*core.Owner{},
		subs:    map[uint64]*core.Subscription{},
		feeds:   map[uint64]chan struct{}{},
	}
	c.uid, c.cred = peerUID(nc)
	if !c.cred {
		// Not a Unix socket: the peer acts as the daemon's own uid (R35).
		c.uid = processUID()
	}
	c.log = s.log.With("conn", fmt.Sprintf("%p", c), "uid", c.uid)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutting {
		return nil
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.stats.conns.Add(1)
	return c
}

func (c *conn) stopReading() {
	c.closing.Store(true)
	c.nc.SetReadDeadline(time.Now())
}

// serve runs the reader; the reply writer runs beside it.
func (c *conn) serve() {
	s := c.srv
	defer s.wg.Done()
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeReplies()
	}()
	c.log.Debug("connection opened")
	err := c.read()
	c.handOver()
	c.replies.close()
	<-writerDone
	// Subscriptions end with the connection.
	c.smu.Lock()
	for id, sub := range c.subs {
		sub.Close()
		delete(c.subs, id)
	}
	for id, stop := range c.feeds {
		close(stop)
		delete(c.feeds, id)
	}
	c.smu.Unlock()
	c.nc.Close()
	c.subWG.Wait()
	// R31: when a connection drops, its owners die — after their grace
	// (R48) — unless the daemon is shutting down cleanly, which never
	// deletes config (R27).
	if !c.closing.Load() && !s.shuttingDown() {
		for h, o := range c.owners {
			if err := o.Abandon(); err != nil {
				c.log.Warn("owner death failed", "owner", o.Name(), "error", err)
			}
			delete(c.owners, h)
		}
	}
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	// read never returns nil: EOF is the clean end.
	if !errors.Is(err, io.EOF) && !c.closing.Load() {
		c.log.Debug("connection closed", "error", err)
	} else {
		c.log.Debug("connection closed")
	}
}

// read handles requests until the connection ends.
func (c *conn) read() error {
	s := c.srv
	br := bufio.NewReaderSize(c.nc, 64<<10)
	var buf []byte
	hello := false
	for {
		f, b, err := wire.ReadFrame(br, s.opts.MaxFrame, buf)
		buf = b
		// Bodies may alias buf, which the next read reuses: handlers
		// decode synchronously, so none outlives this iteration.
		if err != nil || f.Type != wire.TMutate || f.ID == 0 || !hello {
			c.applyBatch(false) // whatever comes next, the batch goes first
		}
		switch {
		case errors.Is(err, wire.ErrMalformedBody) && hello && f.ID != 0:
			// The frame was read whole and the stream is in step: a bad
			// body is this request's error, not the connection's.
			s.stats.requests.Add(1)
			s.stats.badFrames.Add(1)
			c.queue(badRequest(f.ID, "%v", err), !wire.Buffered(br))
			continue
		case errors.Is(err, wire.ErrFrameTooLarge) || errors.Is(err, wire.ErrMalformed):
			return c.connError(err)
		case err != nil:
			return err
		}
		s.stats.requests.Add(1)
		if f.ID == 0 {
			return c.connError(fmt.Errorf("%w: request id 0 is reserved for errors about the connection", ErrProtocol))
		}
		if !hello {
			if err := c.hello(f); err != nil {
				return err
			}
			hello = true
			continue
		}
		last := !wire.Buffered(br)
		if f.Type == wire.TMutate {
			if r, batched := c.mutateFrame(f); !batched {
				c.applyBatch(false)
				c.queue(r, last)
			} else if last || len(c.batch) >= maxBatch {
				c.applyBatch(last)
			}
			continue
		}
		// Handled synchronously, it may take a while (an fsync): the
		// replies before it go to the writer first.
		c.handOver()
		c.queue(c.handle(f), last)
	}
}

// mutateFrame handles a mutate. One that is a single put into a state
// scope — the flapping producer's update — is added to c.batch and
// reported batched: the pipelined updates of a connection read in one go
// are applied together, with one acquisition of the registry's write lock
// (core.Registry.UpdateBatch, each as its Owner.Update would be). Anything
// else is handled on its own, after the batch (applyBatch).
func (c *conn) mutateFrame(f wire.Frame) (reply, bool) {
	if err := wire.DecodeMutateTo(f.Body, &c.mut); err != nil {
		return c.badBody(f, err), false
	}
	m := c.mut
	o := c.owners[m.Handle]
	if o == nil || len(m.Ops) != 1 || m.Ops[0].Kind != wire.OpPut || core.Bucket(m.Ops[0].Scope.Bucket) != core.State {
		return c.mutate(f.ID, m), false
	}
	i := len(c.batch)
	if i == len(c.maps) {
		c.maps = append(c.maps, nil)
	}
	vals, err := codec.DecodeValuesInto(m.Ops[0].Values, c.maps[i])
	if err != nil {
		return c.mutate(f.ID, m), false // its error, as for any mutate
	}
	c.maps[i] = vals
	c.batch = append(c.batch, core.BatchUpdate{Owner: o, Scope: coreScope(m.Ops[0].Scope), Values: vals})
	c.batchIDs = append(c.batchIDs, f.ID)
	return reply{}, true
}

// applyBatch applies the batched state updates and queues their replies,
// in order; last marks the final one as the last reply at hand.
func (c *conn) applyBatch(last bool) {
	if len(c.batch) == 0 {
		return
	}
	errs := c.srv.st.reg.UpdateBatch(context.Background(), c.batch)
	for i, id := range c.batchIDs {
		r := reply{id: id, typ: wire.TOK}
		if errs[i] != nil {
			r = errReply(id, errs[i])
		}
		c.queue(r, last && i == len(c.batchIDs)-1)
	}
	for i, m := range c.maps[:len(c.batch)] {
		if len(m) > 64 {
			c.maps[i] = nil // a large update: do not keep its map
		}
	}
	clear(c.batch)
	c.batch, c.batchIDs = c.batch[:0], c.batchIDs[:0]
}

// maxBatch bounds the replies the reader collects before it hands them to
// the writer.
const maxBatch = 64

// queue adds r to the reader's batch of replies. last says that no
// further request is at hand: the writer flushes after r, and the batch
// goes to it now (as it does when full).
func (c *conn) queue(r reply, last bool) {
	r.flush = last
	c.out = append(c.out, r)
	if last || len(c.out) >= min(maxBatch, c.srv.opts.MaxInFlight) {
		c.handOver()
	}
}

// handOver gives the reader's batch of replies to the writer.
func (c *conn) handOver() {
	c.replies.put(c.out)
	clear(c.out)
	c.out = c.out[:0]
}

// connError ends the connection for err, a broken frame or protocol: an
// Error with id 0 — reserved for this — and the connection closes.
func (c *conn) connError(err error) error {
	c.srv.stats.badFrames.Add(1)
	c.log.Warn("bad frame; closing connection", "error", err)
	c.queue(reply{typ: wire.TError, body: wire.Error{Code: wire.CodeBadRequest, Message: err.Error()}}, true)
	return err
}

// hello answers the first frame, which must be a hello of this version.
// HelloOK is written before the next frame is read, so that nothing — not
// the first delivery of a subscription pipelined behind hello — precedes it.
func (c *conn) hello(f wire.Frame) error {
	s := c.srv
	if f.Type != wire.THello {
		c.queue(badRequest(f.ID, "the first frame must be hello"), true)
		return fmt.Errorf("%w: first frame is %s", ErrProtocol, f.Type)
	}
	var h wire.Hello
	if err := wire.DecodeBody(f, &h); err != nil || h.Version != wire.Version {
		msg := fmt.Sprintf("protocol version %d is not supported; this daemon speaks version %d", h.Version, wire.Version)
		if err != nil {
			msg = err.Error()
		}
		c.queue(badRequest(f.ID, "%s", msg), true)
		return fmt.Errorf("%w: %s", ErrProtocol, msg)
	}
	// Nothing else is queued yet: writing here keeps the reply order.
	body, err := wire.EncodeBody(wire.THelloOK, wire.HelloOK{Version: wire.Version, Server: s.opts.Name, MaxFrame: uint64(s.opts.MaxFrame)})
	if err == nil {
		err = c.writeFrame(wire.THelloOK, f.ID, body, true)
	}
	return err
}

func errReply(id uint64, err error) reply {
	typ, body := errorBody(err)
	return reply{id: id, typ: typ, body: body}
}

func badRequest(id uint64, format string, args ...any) reply {
	return reply{id: id, typ: wire.TError, body: wire.Error{Code: wire.CodeBadRequest, Message: fmt.Sprintf(format, args...)}}
}

// handle answers one request. Mutations are sequenced here, in request
// order; their outcome is awaited by the reply writer, so many can be in
// flight and share fsyncs (R25).
func (c *conn) handle(f wire.Frame) reply {
	switch f.Type {
	case wire.TAttach:
		return withBody(c, f, (*conn).attach)
	case wire.TDetach:
		return withBody(c, f, (*conn).detach)
	case wire.TSubscribe:
		return withBody(c, f, (*conn).subscribe)
	case wire.TUnsubscribe:
		return withBody(c, f, (*conn).unsubscribe)
	case wire.TEvict:
		return withBody(c, f, (*conn).evict)
	case wire.TSnapshot:
		return c.snapshot(f.ID)
	case wire.TStats:
		return c.stats(f.ID)
	case wire.TOwners:
		return c.ownerList(f.ID)
	case wire.TPing:
		return reply{id: f.ID, typ: wire.TOK}
	case wire.TBackup:
		return c.backup(f.ID)
	case wire.TReset:
		return withBody(c, f, (*conn).reset)
	case wire.TResetKeys:
		return withBody(c, f, (*conn).resetKeys)
	case wire.TApply:
		if err := wire.DecodeApplyTo(f.Body, &c.app); err != nil {
			return c.badBody(f, err)
		}
		return c.apply(f.ID, c.app)
	case wire.TConfirm:
		return withBody(c, f, (*conn).confirm)
	case wire.TRollback:
		return withBody(c, f, (*conn).rollback)
	case wire.TPending:
		return c.pending(f.ID)
	case wire.TChanges:
		return withBody(c, f, (*conn).changes)
	case wire.TUnchanges:
		return withBody(c, f, (*conn).unchanges)
	case wire.THello:
		c.srv.stats.badFrames.Add(1)
		return badRequest(f.ID, "hello after the handshake")
	}
	c.srv.stats.badFrames.Add(1)
	return badRequest(f.ID, "unknown request type %s", f.Type)
}

// withBody decodes f's body as a T and hands it to h. A body that does not
// decode is a bad frame: counted, and answered with bad_request.
func withBody[T any](c *conn, f wire.Frame, h func(c *conn, id uint64, body T) reply) reply {
	var body T
	if err := wire.DecodeBody(f, &body); err != nil {
		return c.badBody(f, err)
	}
	return h(c, f.ID, body)
}

// badBody answers a request whose body does not decode: a bad frame,
// counted, and answered with bad_request; the connection stays.
func (c *conn) badBody(f wire.Frame, err error) reply {
	c.srv.stats.badFrames.Add(1)
	return badRequest(f.ID, "%v", err)
}

func noOwner(id, handle uint64) reply {
	return badRequest(id, "no owner session with handle %d on this connection", handle)
}

func (c *conn) mutate(id uint64, m wire.Mutate) reply {
	o := c.owners[m.Handle]
	if o == nil {
		return noOwner(id, m.Handle)
	}
	ops, bad := c.coreOps(id, m.Ops)
	if ops == nil {
		return bad
	}
	wait := o.CommitAsync(context.Background(), ops...)
	clear(ops) // hold no values until the next request
	return reply{id: id, wait: wait}
}

// apply is mutate with a confirm deadline (R44). Synchronous: the reply
// carries the id, and a confirm later in the pipeline must find it.
func (c *conn) apply(id uint64, a wire.Apply) reply {
	o := c.owners[a.Handle]
	if o == nil {
		return noOwner(id, a.Handle)
	}
	ops, bad := c.coreOps(id, a.Ops)
	if ops == nil {
		return bad
	}
	aid, err := o.Apply(context.Background(), time.Duration(a.Within), ops...)
	clear(ops)
	if err != nil {
		return errReply(id, err)
	}
	return reply{id: id, typ: wire.TApplyOK, body: wire.ApplyOK{ID: aid}}
}

// mayFinish says whether the peer may confirm or roll back apply aid
// (R44, R35): root, or the uid its owner is bound to. An id that is not
// pending is core.ErrNotPending whoever asks.
func (c *conn) mayFinish(aid uint64) error {
	var owner string
	for _, p := range c.srv.st.reg.Snapshot().Pending() {
		if p.ID == aid {
			owner = p.Owner
		}
	}
	switch {
	case owner == "":
		return fmt.Errorf("%w: %d", core.ErrNotPending, aid)
	case c.uid == 0: // a peer of unknown uid acts as the daemon's (R35), as attach does
		return nil
	}
	if err := c.srv.st.MayAct(c.uid, owner); err != nil {
		return fmt.Errorf("apply %d of %q: %w", aid, owner, err)
	}
	return nil
}

func (c *conn) confirm(id uint64, r wire.Confirm) reply {
	if err := c.mayFinish(r.ID); err != nil {
		return errReply(id, err)
	}
	if err := c.srv.st.Confirm(context.Background(), r.ID); err != nil {
		return errReply(id, err)
	}
	return reply{id: id, typ: wire.TOK}
}

func (c *conn) rollback(id uint64, r wire.Rollback) reply {
	if err := c.mayFinish(r.ID); err != nil {
		return errReply(id, err)
	}
	left, err := c.srv.st.Rollback(context.Background(), r.ID)
	if err != nil {
		return errReply(id, err)
	}
	wl, err := wireChanges(left)
	if err != nil {
		return errReply(id, err)
	}
	return reply{id: id, typ: wire.TRollbackOK, body: wire.RollbackOK{Left: wl}}
}

func (c *conn) pending(id uint64) reply {
	ps, err := wirePending(c.srv.st.reg.Snapshot().Pending())
	if err != nil {
		return errReply(id, err)
	}
	return reply{id: id, typ: wire.TPendingOK, body: wire.PendingOK{Applies: ps}}
}

// coreOps converts a request's ops into c.cops, which the next request
// reuses; on failure it returns nil and the reply. Values are decoded (and
// copied) here: they alias the frame buffer.
func (c *conn) coreOps(id uint64, wops []wire.Op) ([]core.Op, reply) {
	ops := c.cops[:0]
	if ops == nil || cap(ops) < len(wops) { // not nil: nil means failure
		ops = make([]core.Op, len(wops))
		c.cops = ops
	}
	ops = ops[:len(wops)]
	for i, op := range wops {
		sc := coreScope(op.Scope)
		switch op.Kind {
		case wire.OpPut:
			vals, err := codec.DecodeValues(op.Values)
			if err != nil {
				return nil, errReply(id, opError(i, len(wops), fmt.Errorf("%w: %v", core.ErrInvalidValue, err)))
			}
			ops[i] = core.Put(sc, vals)
		case wire.OpDel:
			ops[i] = core.Del(sc, op.Keys...)
		case wire.OpIfModSeq, wire.OpIfEqual:
			cond, err := condOp(op.Kind, sc, op.Values)
			if err != nil {
				return nil, errReply(id, opError(i, len(wops), err))
			}
			ops[i] = cond
		default:
			return nil, badRequest(id, "op %d: unknown kind %d", i, op.Kind)
		}
	}
	return ops, reply{}
}

func (c *conn) attach(id uint64, a wire.Attach) reply {
	s := c.srv
	if len(c.owners) >= s.opts.MaxOwners {
		return errReply(id, fmt.Errorf("%w: %d owner sessions on this connection", core.ErrLimit, s.opts.MaxOwners))
	}
	if a.Grace < 0 {
		return badRequest(id, "attach: negative grace %d", a.Grace)
	}
	grace := time.Duration(a.Grace)
	if grace == 0 {
		grace = s.opts.Grace // the daemon's default (R48)
	}
	// R35, R48: a name bound to another uid — also one in grace, whose
	// keys keep it bound — is refused here.
	o, err := s.st.reg.OwnerFor(context.Background(), a.Name, c.uid, core.OwnerOptions{KeepConfig: a.KeepConfig,
		Layer: core.Layer(a.Layer), Grace: grace, MaxKeys: s.opts.MaxKeysPerOwner})
	if err != nil {
		return errReply(id, err)
	}
	c.nextHandle++
	c.owners[c.nextHandle] = o
	return reply{id: id, typ: wire.TAttachOK, body: wire.AttachOK{Handle: c.nextHandle, Name: o.Name()}}
}

func (c *conn) detach(id uint64, d wire.Detach) reply {
	o := c.owners[d.Handle]
	if o == nil {
		return noOwner(id, d.Handle)
	}
	delete(c.owners, d.Handle)
	// Synchronous, so that a later attach of the same name in the
	// pipeline finds the session ended.
	if err := o.Close(); err != nil {
		return errReply(id, err)
	}
	return reply{id: id, typ: wire.TOK}
}

func (c *conn) unsubscribe(id uint64, u wire.Unsubscribe) reply {
	c.smu.Lock()
	sub := c.subs[u.Sub]
	delete(c.subs, u.Sub)
	c.smu.Unlock()
	if sub != nil {
		sub.Close()
	}
	return reply{id: id, typ: wire.TOK}
}

func (c *conn) evict(id uint64, e wire.Evict) reply {
	// Synchronous, like Detach: requests take effect in the order they
	// were sent, so a later attach or write of the name in the pipeline
	// must find the eviction done (not run it first).
	if err := c.srv.st.reg.EvictFor(context.Background(), e.Name, c.uid); err != nil {
		return errReply(id, err)
	}
	return reply{id: id, typ: wire.TOK}
}

func (c *conn) snapshot(id uint64) reply {
	body, err := c.srv.encodeSnapshot(c.srv.st.reg.Snapshot())
	if err != nil {
		return errReply(id, err)
	}
	// SnapshotOK and Delivery bodies have the same shape: [data].
	return reply{id: id, typ: wire.TSnapshotOK, body: cbor.RawMessage(body)}
}

func (c *conn) stats(id uint64) reply {
	data, err := c.srv.statsBody()
	if err != nil {
		return errReply(id, err)
	}
	return reply{id: id, typ: wire.TStatsOK, body: wire.StatsOK{Data: data}}
}

// ownerList answers owners (R52).
func (c *conn) ownerList(id uint64) reply {
	list := c.srv.st.owners()
	data, err := cbor.Marshal(list)
	if err != nil {
		return errReply(id, err)
	}
	return reply{id: id, typ: wire.TOwnersOK, body: wire.OwnersOK{Data: data}}
}

// mayAdmin says whether the peer may make a request that concerns every
// owner — backup (R45), reset (R46): only root and the daemon's own uid may.
// A peer whose uid is unknown (no SO_PEERCRED: not Linux, not a Unix
// socket) may not: this fails closed.
func (c *conn) mayAdmin(what string) error {
	if c.cred && (c.uid == 0 || c.uid == uint32(os.Getuid())) {
		return nil
	}
	if !c.cred {
		return fmt.Errorf("%w: %s needs root or the daemon's uid, and the peer's uid is unknown", ErrPermission, what)
	}
	return fmt.Errorf("%w: %s needs root or the daemon's uid %d, not uid %d", ErrPermission, what, os.Getuid(), c.uid)
}

func (c *conn) backup(id uint64) reply {
	if err := c.mayAdmin("backup"); err != nil {
		return errReply(id, err)
	}
	var buf bytes.Buffer
	if _, err := c.srv.st.Backup(context.Background(), &buf); err != nil {
		return errReply(id, err)
	}
	return reply{id: id, typ: wire.TBackupOK, body: wire.BackupOK{Data: buf.Bytes()}}
}

func (c *conn) reset(id uint64, r wire.Reset) reply {
	if err := c.mayAdmin("reset"); err != nil {
		return errReply(id, err)
	}
	layers, err := resetLayers(r.Layers)
	if err != nil {
		return errReply(id, err)
	}
	// Synchronous, like Evict: later requests of the pipeline see it done.
	if err := c.srv.st.Reset(context.Background(), corePattern(r.Pattern), layers...); err != nil {
		return errReply(id, err)
	}
	return reply{id: id, typ: wire.TOK}
}

// resetKeys is reset of named keys of one scope (R46).
func (c *conn) resetKeys(id uint64, r wire.ResetKeys) reply {
	if err := c.mayAdmin("reset"); err != nil {
		return errReply(id, err)
	}
	layers, err := resetLayers(r.Layers)
	if err != nil {
		return errReply(id, err)
	}
	if err := c.srv.st.ResetKeys(context.Background(), coreScope(r.Scope), r.Keys, layers...); err != nil {
		return errReply(id, err)
	}
	return reply{id: id, typ: wire.TOK}
}

// resetLayers converts a reset's layers.
func resetLayers(ls []uint64) ([]core.Layer, error) {
	layers := make([]core.Layer, len(ls))
	for i, l := range ls {
		if l > 255 {
			return nil, fmt.Errorf("%w: reset: layer %d", core.ErrInvalidLayer, l)
		}
		layers[i] = core.Layer(l)
	}
	return layers, nil
}

// boundOwners counts the owner names whose binding (R35) is journaled.
func (s *Server) boundOwners() int {
	binds, _ := s.st.reg.Snapshot().Bindings()
	return len(binds)
}

func (c *conn) subscribe(id uint64, sr wire.Subscribe) reply {
	s := c.srv
	if sr.MinInterval < 0 || sr.Hysteresis < 0 {
		return badRequest(id, "negative interval")
	}
	pat := corePattern(sr.Match)
	c.smu.Lock()
	defer c.smu.Unlock()
	if len(c.subs) >= s.opts.MaxSubscriptions {
		return errReply(id, fmt.Errorf("%w: %d subscriptions on this connection", core.ErrLimit, s.opts.MaxSubscriptions))
	}
	if _, dup := c.subs[id]; dup {
		return badRequest(id, "subscription id %d in use", id)
	}
	// The rate limit runs here in the daemon (R31): a slow client costs
	// one undelivered snapshot, never a queue.
	sub, err := s.st.reg.Subscribe(context.Background(), core.SubscribeOptions{
		MinInterval: time.Duration(sr.MinInterval),
		Hysteresis:  time.Duration(sr.Hysteresis),
		Match:       pat,
	})
	if err != nil {
		return errReply(id, err)
	}
	c.subs[id] = sub
	c.subWG.Add(1)
	go c.push(id, sub, c.srv.st.health.lagThreshold(time.Duration(sr.MinInterval)))
	// The subscription id is the request id, so deliveries that overtake
	// this reply still find their subscription at the client.
	return reply{id: id, typ: wire.TSubscribeOK, body: wire.SubscribeOK{Sub: id}}
}

// push writes the deliveries of one subscription. While a write blocks on a
// slow client, the subscription keeps coalescing (R19).
func (c *conn) push(id uint64, sub *core.Subscription, lag time.Duration) {
	defer c.subWG.Done()
	for snap := range sub.C() {
		body, err := c.srv.encodeSnapshot(snap)
		if err == nil {
			t := c.srv.health.watchLag(c.log, &c.srv.st.health.lagWarn, id, lag)
			err = c.writeFrame(wire.TDelivery, id, body, true)
			t.Stop()
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				c.srv.health.drop(c.log, c.srv.opts.WriteTimeout)
			}
			c.nc.Close()
			return
		}
		c.srv.stats.deliveries.Add(1)
	}
}

// writeFrame writes one frame with a raw body, flushing if asked. The
// write deadline is set whenever bufio is about to write to the
// connection: on a flush, and for a frame that does not fit the buffer.
func (c *conn) writeFrame(t wire.Type, id uint64, body []byte, flush bool) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	h := wire.AppendHeader(c.bw.AvailableBuffer(), t, id, len(body))
	if len(h)+len(body) > c.bw.Available() {
		c.nc.SetWriteDeadline(time.Now().Add(c.srv.opts.WriteTimeout))
	}
	c.bw.Write(h)
	if _, err := c.bw.Write(body); err != nil {
		return err
	}
	if flush {
		return c.flushLocked()
	}
	return nil
}

// flushLocked flushes bw under the write timeout; wmu is held. It returns
// the error of an earlier write too (bufio keeps it).
func (c *conn) flushLocked() error {
	if c.bw.Buffered() > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(c.srv.opts.WriteTimeout))
	}
	return c.bw.Flush()
}

// nullBody is the body of a reply without one.
var nullBody = []byte{0xf6}

// writeReplies writes replies in request order, batch by batch as the
// reader hands them over, waiting for each mutation's outcome. It flushes
// after a reply the reader marked (no further request was at hand) and at
// the end: the replies of pipelined requests read in one go leave in one
// write.
func (c *conn) writeReplies() {
	broken := false
	var batch []reply
	for {
		var ok bool
		if batch, ok = c.replies.take(batch); !ok {
			break
		}
		for _, r := range batch {
			broken = c.writeReply(r, broken)
		}
	}
	if !broken {
		c.wmu.Lock()
		c.flushLocked()
		c.wmu.Unlock()
	}
}

// writeReply writes r, once its mutation's outcome is known, and reports
// whether the connection is broken (it was, or the write failed).
func (c *conn) writeReply(r reply, broken bool) bool {
	if broken {
		if r.wait != nil {
			r.wait() // the mutation still completes; nobody hears of it
		}
		return true
	}
	if r.wait != nil {
		if err := r.wait(); err != nil {
			r.typ, r.body = errorBody(err)
		} else {
			r.typ, r.body = wire.TOK, nil
		}
	}
	body, err := nullBody, error(nil)
	if r.body != nil {
		body, err = wire.EncodeBody(r.typ, r.body)
	}
	if err == nil {
		err = c.writeFrame(r.typ, r.id, body, r.flush)
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.srv.health.drop(c.log, c.srv.opts.WriteTimeout)
		}
		c.nc.Close()
		return true
	}
	return false
}

// statsBody is the data of stats_ok: the store's Stats with the server's
// counters, as a CBOR map keyed by their JSON names.
func (s *Server) statsBody() ([]byte, error) {
	st := s.st.stats()
	srv := s.Stats()
	st.Server = &srv
	return cbor.Marshal(st)
}
