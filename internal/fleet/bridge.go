package fleet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sysreg/sysreg/core"
)

// Default bucket names (R53).
const (
	DesiredBucket  = "sysreg_desired"
	ReportedBucket = "sysreg_reported"
)

// Subscription is a subscription to the effective view, as core.Subscription
// and store.Subscription are: C delivers snapshots (R16–R21) and is closed
// when the subscription ends.
type Subscription interface {
	C() <-chan core.Snapshot
	Close() error
}

// ScopeValues is one config scope of the fleet layer with its whole values.
type ScopeValues struct {
	Scope  core.Scope
	Values core.Values // empty or nil: the scope leaves the fleet layer
}

// State is the fleet layer as the target holds it (journaled): its scopes
// and the revision of the desired bucket they were applied at.
type State struct {
	Revision uint64
	Scopes   []ScopeValues
}

// Target is what the bridge drives: a registry with a fleet config layer
// (R37). *store.Store implements it. Its methods are local calls; the bridge
// calls them from its own goroutines, never while holding a lock, and
// several may run at once.
type Target interface {
	// Subscribe subscribes to the effective view (R16–R21). The bridge
	// takes every delivery and closes the subscription when it stops.
	Subscribe(ctx context.Context, opts core.SubscribeOptions) (Subscription, error)
	// FleetState returns the fleet layer's scopes and the revision recorded
	// with the last ApplyFleet, as recovered from the journal after a
	// restart. The result is the caller's.
	FleetState(ctx context.Context) (State, error)
	// ApplyFleet sets each named config scope of the fleet layer to exactly
	// its Values (replacing, not merging; empty: the scope leaves the
	// layer), leaves other scopes alone, and records rev, all as one
	// mutation that is durable before it returns and before anyone sees it
	// (R24): all or nothing. Values that break R2 fail the whole call with
	// an error matching core.ErrInvalidValue or core.ErrTooLarge. The
	// slices and maps stay the caller's; the target copies what it keeps.
	ApplyFleet(ctx context.Context, rev uint64, scopes []ScopeValues) error
}

// Options configures Start. URL and Device are required.
type Options struct {
	// URL of the NATS server(s), comma separated ("nats://host:4222").
	URL string
	// Device is this device's ID: any non-empty UTF-8 string without NUL
	// except "all" (AllDevices), which names the whole fleet.
	Device string
	// Interval is the reported-state interval: the MinInterval of the
	// subscription that drives sysreg_reported. 0: 1 s.
	Interval time.Duration
	// CredsFile is a NATS credentials file (user JWT and seed). "": none.
	CredsFile string
	// ReconnectWait is the pause between reconnect attempts. 0: 2 s.
	ReconnectWait time.Duration
	// Timeout bounds each NATS request and dial. 0: 5 s.
	Timeout time.Duration
	// DesiredBucket and ReportedBucket name the KV buckets. "":
	// sysreg_desired and sysreg_reported. A missing bucket is created
	// (file storage, history 1); create them yourself for other settings.
	DesiredBucket, ReportedBucket string
	// MaxValueBytes limits the CBOR size of one scope's desired values
	// (R2). 0: 1 MiB, the registry's default update limit.
	MaxValueBytes int
	// Logger: nil means no logging.
	Logger hclog.Logger
}

// Refusal is a desired value the bridge did not apply (R2).
type Refusal struct {
	Key      string // the key in the desired bucket
	Revision uint64 // its revision
	Reason   string
}

// Status is the bridge's state for stats and metrics.
type Status struct {
	Device    string
	Connected bool
	// Connects counts successful connections, the first one included.
	Connects uint64
	// LastSync is when the fleet layer last matched the desired bucket
	// (a resync or an applied change); zero until the first one.
	LastSync time.Time
	// DesiredRevision is the revision of the desired bucket that the fleet
	// layer reflects; after a restart, the one journaled with it.
	DesiredRevision uint64
	// Applied counts fleet-layer mutations made by this bridge.
	Applied uint64
	// ReportedSeq is the sequence number of the view last written in full
	// to the reported bucket; ReportedLag how long the bucket has been
	// behind the view this bridge was handed (0: in sync).
	ReportedSeq uint64
	ReportedLag time.Duration
	// ReportedWrites counts puts and deletes in the reported bucket.
	ReportedWrites uint64
	// Refused lists the desired keys whose current value is refused, by key.
	Refused []Refusal
	// LastError is the last error talking to NATS or applying, "" if none.
	LastError string
}

// Bridge links a Target to a NATS JetStream fleet. Start starts it; Close
// stops it. All methods are safe for concurrent use.
type Bridge struct {
	t      Target
	opts   Options
	dev    string // EncodeToken(opts.Device)
	logger hclog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	connMu    sync.Mutex // guards the four fields below
	warned    bool       // a failed attempt was logged since the last change
	connected bool
	gen       uint64        // bumped on every (re)connection
	changed   chan struct{} // closed (and replaced) on every change

	mu         sync.Mutex // guards st, refused and dirtySince
	st         Status
	refused    map[string]Refusal
	dirtySince time.Time // when the reported bucket fell behind; zero: in sync
}

// Start validates opts, reads the fleet layer's journaled revision and
// starts the bridge in the background. It never waits for NATS: a server
// that is down or unreachable only delays the fleet, never the device
// (offline first, R53). Close stops it.
func Start(t Target, opts Options) (*Bridge, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Bridge{
		t:       t,
		opts:    opts,
		dev:     EncodeToken(opts.Device),
		logger:  opts.Logger.With("device", opts.Device),
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
		changed: make(chan struct{}),
		refused: map[string]Refusal{},
	}
	fs, err := t.FleetState(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("fleet: read fleet layer: %w", err)
	}
	b.st.Device = opts.Device
	b.st.DesiredRevision = fs.Revision
	b.logger.Info("fleet bridge started", "url", opts.URL, "interval", opts.Interval,
		"revision", fs.Revision, "scopes", len(fs.Scopes))
	go b.run(fs)
	return b, nil
}

func (o *Options) fill() error {
	switch {
	case strings.TrimSpace(o.URL) == "":
		return fmt.Errorf("%w: no NATS URL", ErrInvalidOptions)
	case o.Device == "":
		return fmt.Errorf("%w: no device ID", ErrInvalidOptions)
	case o.Device == AllDevices:
		return fmt.Errorf("%w: device ID %q is reserved for the whole fleet", ErrInvalidOptions, AllDevices)
	case o.Interval < 0 || o.ReconnectWait < 0 || o.Timeout < 0 || o.MaxValueBytes < 0:
		return fmt.Errorf("%w: negative interval, wait, timeout or size", ErrInvalidOptions)
	}
	for _, u := range strings.Split(o.URL, ",") {
		u = strings.TrimSpace(u)
		if !strings.Contains(u, "://") {
			u = "nats://" + u // nats.go accepts host:port
		}
		pu, err := url.Parse(u)
		if err != nil || pu.Host == "" {
			return fmt.Errorf("%w: NATS URL %q", ErrInvalidOptions, u)
		}
	}
	if o.CredsFile != "" {
		if _, err := os.Stat(o.CredsFile); err != nil {
			return fmt.Errorf("%w: credentials file: %v", ErrInvalidOptions, err)
		}
	}
	if err := (core.Scope{Bucket: core.Config, Type: "device", Subtype: o.Device}).Validate(); err != nil {
		return fmt.Errorf("%w: device ID %q is not UTF-8 without NUL", ErrInvalidOptions, o.Device)
	}
	if o.Interval == 0 {
		o.Interval = time.Second
	}
	if o.ReconnectWait == 0 {
		o.ReconnectWait = 2 * time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	if o.DesiredBucket == "" {
		o.DesiredBucket = DesiredBucket
	}
	if o.ReportedBucket == "" {
		o.ReportedBucket = ReportedBucket
	}
	if o.MaxValueBytes == 0 {
		o.MaxValueBytes = core.DefaultMaxUpdateBytes
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	return nil
}

// Close stops the bridge: it closes its subscription and its NATS
// connection and waits for its goroutines. What was applied stays in the
// fleet layer. Idempotent; it returns nil.
func (b *Bridge) Close() error {
	b.cancel()
	<-b.done
	return nil
}

// Status returns the bridge's current status.
func (b *Bridge) Status() Status {
	b.connMu.Lock()
	connected := b.connected
	b.connMu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.st
	st.Connected = connected
	if !b.dirtySince.IsZero() {
		st.ReportedLag = time.Since(b.dirtySince)
	}
	st.Refused = make([]Refusal, 0, len(b.refused))
	for _, r := range b.refused {
		st.Refused = append(st.Refused, r)
	}
	slices.SortFunc(st.Refused, func(a, c Refusal) int { return strings.Compare(a.Key, c.Key) })
	if len(st.Refused) == 0 {
		st.Refused = nil
	}
	return st
}

// conn returns the connection state and a channel closed on its next change.
func (b *Bridge) conn() (gen uint64, connected bool, changed <-chan struct{}) {
	b.connMu.Lock()
	defer b.connMu.Unlock()
	return b.gen, b.connected, b.changed
}

func (b *Bridge) setConn(up bool) {
	b.connMu.Lock()
	if up {
		b.gen++
	} else if !b.connected {
		b.connMu.Unlock()
		return
	}
	b.connected = up
	b.warned = false
	close(b.changed)
	b.changed = make(chan struct{})
	b.connMu.Unlock()
	if up {
		b.mu.Lock()
		b.st.Connects++
		b.mu.Unlock()
		b.logger.Info("connected")
	} else {
		b.logger.Info("disconnected")
	}
}

// attemptFailed logs the first failed connection attempt after a change of
// the connection state at WARN, the others at DEBUG: a device offline for a
// week logs one line, not one per attempt.
func (b *Bridge) attemptFailed(err error) {
	b.connMu.Lock()
	first := !b.warned
	b.warned = true
	b.connMu.Unlock()
	if err == nil {
		return
	}
	b.setError(err)
	if first {
		b.logger.Warn("cannot reach NATS, retrying", "url", b.opts.URL, "error", err)
	} else {
		b.logger.Debug("cannot reach NATS", "error", err)
	}
}

func (b *Bridge) setError(err error) {
	b.mu.Lock()
	b.st.LastError = err.Error()
	b.mu.Unlock()
}

// dialer dials NATS under the bridge's context, so that Close never waits
// for a dial.
type dialer struct {
	ctx     context.Context
	timeout time.Duration
}

func (d dialer) Dial(network, address string) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.timeout}
	return nd.DialContext(d.ctx, network, address)
}

// run owns the NATS connection and the two workers.
func (b *Bridge) run(fs State) {
	defer close(b.done)
	opts := []nats.Option{
		nats.Name("sysreg " + b.opts.Device),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(b.opts.ReconnectWait),
		// Fail publishes at once while disconnected instead of buffering
		// them: the bridge resyncs on reconnect anyway.
		nats.ReconnectBufSize(-1),
		nats.Timeout(b.opts.Timeout),
		nats.SetCustomDialer(dialer{b.ctx, b.opts.Timeout}),
		nats.ConnectHandler(func(*nats.Conn) { b.setConn(true) }),
		nats.ReconnectHandler(func(*nats.Conn) { b.setConn(true) }),
		nats.DisconnectErrHandler(func(*nats.Conn, error) { b.setConn(false) }),
		nats.ClosedHandler(func(*nats.Conn) { b.setConn(false) }),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) { b.attemptFailed(err) }),
	}
	if b.opts.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(b.opts.CredsFile))
	}
	nc, err := nats.Connect(b.opts.URL, opts...)
	if err != nil {
		// Only bad options get here (a malformed URL, an unreadable
		// credentials file): a server that is down is retried.
		b.setError(err)
		b.logger.Error("fleet bridge not started", "error", err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.setError(err)
		b.logger.Error("fleet bridge not started", "error", err)
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { b.desiredLoop(js, fs) })
	wg.Go(func() { b.reportLoop(js) })
	wg.Wait()
}

// bucket opens the KV bucket name, creating it if it does not exist.
func (b *Bridge) bucket(js jetstream.JetStream, name string) (jetstream.KeyValue, error) {
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.Timeout)
	defer cancel()
	kv, err := js.KeyValue(ctx, name)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: name})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("fleet: bucket %s: %w", name, err)
	}
	return kv, nil
}

// stopWatcher stops w and drains its channel until the client closes it, so
// that no delivery goroutine stays blocked on it.
func stopWatcher(w jetstream.KeyWatcher) {
	w.Stop()
	for range w.Updates() {
	}
}

// backoff waits d, or until the connection changes or the bridge stops. It
// reports false when the bridge stops.
func (b *Bridge) backoff(d time.Duration, changed <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-b.ctx.Done():
		return false
	case <-changed:
	case <-t.C:
	}
	return true
}
