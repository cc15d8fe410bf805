package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

// DaemonConfig configures RunDaemon. The zero value gives the published
// figures.
type DaemonConfig struct {
	// Pipeline: goroutines sharing one connection (one store.Client),
	// each its own owner, each with one update in flight. Default 64.
	Pipeline int
	// Conns: connections of the multi-connection figure, each with
	// Pipeline goroutines. Default 8.
	Conns int
	// Duration of each throughput figure. Default 2 s. Ignored when
	// Updates is set.
	Duration time.Duration
	// Updates, if positive, makes each throughput goroutine write exactly
	// this many updates instead of writing for Duration.
	Updates int
	// RoundTrips: synchronous updates timed one at a time. Default 10,000.
	RoundTrips int
	// Subscribers: remote subscriptions on a flapping key. Default 1,000.
	Subscribers int
	// SubConns: client connections carrying them. Default 20.
	SubConns int
	// Interval is the subscribers' MinInterval. Default 100 ms.
	Interval time.Duration
	// FlapDuration: how long the key flaps before the final state.
	// Default 1 s.
	FlapDuration time.Duration
	// Timeout bounds the remote subscribers' convergence. Default 30 s.
	Timeout time.Duration
	// Dir is where the temporary directory with the data directory and the
	// socket is made; keep it short (a Unix socket path has ~108 bytes).
	// Default os.TempDir().
	Dir string
	// Progress receives a line per phase. nil: none.
	Progress io.Writer
}

func (c DaemonConfig) withDefaults() DaemonConfig {
	if c.Pipeline <= 0 {
		c.Pipeline = 64
	}
	if c.Conns <= 0 {
		c.Conns = 8
	}
	if c.Duration <= 0 {
		c.Duration = 2 * time.Second
	}
	if c.RoundTrips <= 0 {
		c.RoundTrips = 10_000
	}
	if c.Subscribers <= 0 {
		c.Subscribers = 1000
	}
	if c.SubConns <= 0 {
		c.SubConns = 20
	}
	c.SubConns = min(c.SubConns, c.Subscribers)
	if c.Interval <= 0 {
		c.Interval = 100 * time.Millisecond
	}
	if c.FlapDuration <= 0 {
		c.FlapDuration = time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	return c
}

// DaemonResult is what RunDaemon measured.
type DaemonResult struct {
	OneConn   Throughput `json:"one_conn"`
	ManyConns Throughput `json:"many_conns"`
	// RoundTripUs: one synchronous state update at a time over one
	// connection, from the call to its return.
	RoundTripUs Latency       `json:"round_trip_us"`
	RoundTrips  int           `json:"round_trips"`
	Subscribers DaemonSubsRun `json:"remote_subscribers"`
}

// Throughput is a pipelined update rate over the socket.
type Throughput struct {
	Conns         int     `json:"conns"`
	Goroutines    int     `json:"goroutines_per_conn"`
	Updates       uint64  `json:"updates"`
	Seconds       float64 `json:"seconds"`
	UpdatesPerSec float64 `json:"updates_per_s"`
	// CPUSeconds is the process's CPU time (user + system, clients and
	// server together: they share the process) while the updates ran;
	// UpdatesPerCPUSec is the rate per CPU-second, the figure that noise
	// from other processes on the machine disturbs least.
	CPUSeconds       float64 `json:"cpu_s"`
	UpdatesPerCPUSec float64 `json:"updates_per_cpu_s"`
	// SyscallsPerUpdate: read and write system calls of the process
	// (/proc/self/io syscr + syscw; 0 where that does not exist) per
	// update, client and server sides together.
	SyscallsPerUpdate float64 `json:"syscalls_per_update"`
}

// DaemonSubsRun is the remote subscribers' figure: one remote owner
// flapping one key (Pipeline goroutines) while Subscribers remote
// subscriptions at Interval consume.
type DaemonSubsRun struct {
	Subscribers   int     `json:"subscribers"`
	Conns         int     `json:"conns"`
	IntervalMs    float64 `json:"interval_ms"`
	Updates       uint64  `json:"updates"`
	UpdatesPerSec float64 `json:"updates_per_s"`
	Deliveries    Spread  `json:"deliveries_per_sub"`
	// Windows: as in FlapRun, no subscriber may have had more than
	// Windows+1 deliveries.
	Windows    float64 `json:"windows"`
	ConvergeMs Latency `json:"converge_ms"`
}

// RunDaemon serves an embedded store (fsync on; only state is written)
// with store.Server on a Unix socket in a fresh temporary directory and
// measures it through store.Dial clients in the same process.
func RunDaemon(ctx context.Context, cfg DaemonConfig) (DaemonResult, error) {
	cfg = cfg.withDefaults()
	p := &progress{w: cfg.Progress}
	var res DaemonResult
	dir, err := tempDir(cfg.Dir, "sr")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(filepath.Join(dir, "data"), store.Options{})
	if err != nil {
		return res, err
	}
	defer st.Close()
	sock := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return res, fmt.Errorf("daemon: listen: %w", err)
	}
	srv := store.NewServer(st, store.ServerOptions{
		MaxOwners:        max(64, cfg.Pipeline+1),
		MaxSubscriptions: max(64, (cfg.Subscribers+cfg.SubConns-1)/cfg.SubConns),
	})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		<-served
	}()

	p.printf("daemon: pipelined state updates, 1 connection × %d goroutines", cfg.Pipeline)
	if res.OneConn, err = daemonThroughput(ctx, cfg, sock, 1, "a"); err != nil {
		return res, fmt.Errorf("daemon: 1 connection: %w", err)
	}
	p.printf("daemon: 1 connection: %.0f updates/s", res.OneConn.UpdatesPerSec)
	p.printf("daemon: pipelined state updates, %d connections × %d goroutines", cfg.Conns, cfg.Pipeline)
	if res.ManyConns, err = daemonThroughput(ctx, cfg, sock, cfg.Conns, "b"); err != nil {
		return res, fmt.Errorf("daemon: %d connections: %w", cfg.Conns, err)
	}
	p.printf("daemon: %d connections: %.0f updates/s", cfg.Conns, res.ManyConns.UpdatesPerSec)
	p.printf("daemon: %d synchronous round trips", cfg.RoundTrips)
	if res.RoundTripUs, err = daemonRoundTrips(ctx, cfg, sock); err != nil {
		return res, fmt.Errorf("daemon: round trips: %w", err)
	}
	res.RoundTrips = cfg.RoundTrips
	p.printf("daemon: round trip median %.1f µs, p99 %.1f µs", res.RoundTripUs.P50, res.RoundTripUs.P99)
	p.printf("daemon: %d remote subscribers on %d connections, interval %v", cfg.Subscribers, cfg.SubConns, cfg.Interval)
	if res.Subscribers, err = daemonSubscribers(ctx, cfg, st, sock); err != nil {
		return res, fmt.Errorf("daemon: subscribers: %w", err)
	}
	p.printf("daemon: subscribers converged within %.1f ms (p99 %.1f ms)", res.Subscribers.ConvergeMs.Max, res.Subscribers.ConvergeMs.P99)
	return res, nil
}

// dialAll dials n clients; on error it closes those it made.
func dialAll(ctx context.Context, sock string, n int) ([]*store.Client, error) {
	cs := make([]*store.Client, 0, n)
	for range n {
		c, err := store.Dial(ctx, sock)
		if err != nil {
			closeAll(cs)
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

func closeAll(cs []*store.Client) {
	for _, c := range cs {
		c.Close()
	}
}

// daemonThroughput runs conns × Pipeline goroutines, each its own owner
// toggling one key of its own state scope.
func daemonThroughput(ctx context.Context, cfg DaemonConfig, sock string, conns int, tag string) (Throughput, error) {
	cs, err := dialAll(ctx, sock, conns)
	if err != nil {
		return Throughput{}, err
	}
	defer closeAll(cs)
	n := conns * cfg.Pipeline
	owners := make([]store.Owner, n)
	scopes := make([]core.Scope, n)
	for i := range owners {
		name := tag + strconv.Itoa(i)
		if owners[i], err = cs[i%conns].Owner(ctx, name, core.OwnerOptions{}); err != nil {
			return Throughput{}, err
		}
		scopes[i] = core.StateScope("daemon", name)
		if err := owners[i].Update(ctx, scopes[i], core.Values{"ready": true}); err != nil {
			return Throughput{}, err
		}
	}
	on, off := core.Values{"up": true}, core.Values{"up": false}
	counts := make([]counter, n)
	errs := make([]error, n)
	var stop atomic.Bool
	if cfg.Updates <= 0 {
		t := time.AfterFunc(cfg.Duration, func() { stop.Store(true) })
		defer t.Stop()
	}
	var wg sync.WaitGroup
	sys0, cpu0 := syscalls(), cpuTime()
	start := time.Now()
	for i := range owners {
		wg.Go(func() {
			for j := 0; ; j++ {
				if cfg.Updates > 0 && j >= cfg.Updates || cfg.Updates <= 0 && stop.Load() {
					return
				}
				v := on
				if j&1 == 1 {
					v = off
				}
				if err := owners[i].Update(ctx, scopes[i], v); err != nil {
					errs[i] = err
					stop.Store(true)
					return
				}
				counts[i].n.Add(1)
			}
		})
	}
	wg.Wait()
	took, cpu, sys := time.Since(start), (cpuTime() - cpu0).Seconds(), syscalls()-sys0
	if err := errors.Join(errs...); err != nil {
		return Throughput{}, err
	}
	total := sum(counts)
	t := Throughput{
		Conns:         conns,
		Goroutines:    cfg.Pipeline,
		Updates:       total,
		Seconds:       took.Seconds(),
		UpdatesPerSec: float64(total) / took.Seconds(),
		CPUSeconds:    cpu,
	}
	if cpu > 0 {
		t.UpdatesPerCPUSec = float64(total) / cpu
	}
	if total > 0 {
		t.SyscallsPerUpdate = float64(sys) / float64(total)
	}
	return t, nil
}

// syscalls is the number of read and write system calls the process has
// made (/proc/self/io syscr + syscw), 0 where that does not exist.
func syscalls() uint64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	var n uint64
	for line := range bytes.Lines(b) {
		for _, p := range [][]byte{[]byte("syscr:"), []byte("syscw:")} {
			if v, ok := bytes.CutPrefix(line, p); ok {
				c, _ := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
				n += c
			}
		}
	}
	return n
}

func daemonRoundTrips(ctx context.Context, cfg DaemonConfig, sock string) (Latency, error) {
	c, err := store.Dial(ctx, sock)
	if err != nil {
		return Latency{}, err
	}
	defer c.Close()
	o, err := c.Owner(ctx, "roundtrip", core.OwnerOptions{})
	if err != nil {
		return Latency{}, err
	}
	sc := core.StateScope("daemon", "roundtrip")
	on, off := core.Values{"up": true}, core.Values{"up": false}
	warm := min(cfg.RoundTrips/10, 1000)
	lat := make([]time.Duration, 0, cfg.RoundTrips)
	for i := range warm + cfg.RoundTrips {
		v := on
		if i&1 == 1 {
			v = off
		}
		t0 := time.Now()
		if err := o.Update(ctx, sc, v); err != nil {
			return Latency{}, err
		}
		if i >= warm {
			lat = append(lat, time.Since(t0))
		}
	}
	return latencyOf(lat, time.Microsecond), nil
}

// daemonSubscribers: one remote owner flaps one key with Pipeline
// goroutines while the remote subscribers consume; then the time until
// every subscriber holds the final state.
func daemonSubscribers(ctx context.Context, cfg DaemonConfig, st *store.Store, sock string) (DaemonSubsRun, error) {
	run := DaemonSubsRun{Subscribers: cfg.Subscribers, Conns: cfg.SubConns, IntervalMs: ms(cfg.Interval)}
	cs, err := dialAll(ctx, sock, cfg.SubConns)
	if err != nil {
		return run, err
	}
	defer closeAll(cs)
	pc, err := store.Dial(ctx, sock)
	if err != nil {
		return run, err
	}
	defer pc.Close()
	o, err := pc.Owner(ctx, "flapper", core.OwnerOptions{})
	if err != nil {
		return run, err
	}
	sc := core.StateScope("daemon", "flap")
	if err := o.Update(ctx, sc, core.Values{"up": true, "n": int64(0)}); err != nil {
		return run, err
	}

	subStart := time.Now()
	subs := make([]store.Subscription, cfg.Subscribers)
	for i := range subs {
		stagger(subStart, i, len(subs), cfg.Interval)
		if subs[i], err = cs[i%len(cs)].Subscribe(ctx, core.SubscribeOptions{MinInterval: cfg.Interval}); err != nil {
			return run, err
		}
	}
	var finalSeq atomic.Uint64
	got := make([]flapSub, cfg.Subscribers)
	dcount := make([]counter, cfg.Subscribers)
	var wg sync.WaitGroup
	defer func() { // on errors: closing the clients closes C
		closeAll(cs)
		wg.Wait()
	}()
	for i, s := range subs {
		wg.Go(func() { consumeSnapshots(s, &got[i], &dcount[i], &finalSeq, 0) })
	}

	var n atomic.Uint64
	var stop atomic.Bool
	t := time.AfterFunc(cfg.FlapDuration, func() { stop.Store(true) })
	defer t.Stop()
	lasts := make([]time.Time, cfg.Pipeline)
	errs := make([]error, cfg.Pipeline)
	var pw sync.WaitGroup
	start := time.Now()
	for g := range cfg.Pipeline {
		pw.Go(func() {
			for !stop.Load() {
				i := n.Add(1)
				if err := o.Update(ctx, sc, core.Values{"up": i%2 == 0, "n": int64(i)}); err != nil {
					errs[g] = err
					stop.Store(true)
					return
				}
			}
			lasts[g] = time.Now()
		})
	}
	pw.Wait()
	took := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return run, err
	}
	var last time.Time
	for _, l := range lasts {
		if l.After(last) {
			last = l
		}
	}
	final, err := st.Snapshot(ctx)
	if err != nil {
		return run, err
	}
	finalSeq.Store(final.Seq())
	endHolders(subs, got, final.Seq())
	run.Updates = n.Load()
	run.UpdatesPerSec = float64(run.Updates) / took.Seconds()
	if err := waitGroup(ctx, &wg, cfg.Timeout); err != nil {
		return run, fmt.Errorf("%w after %v: %d of %d remote subscribers hold seq %d", err, cfg.Timeout, countConverged(got), len(got), final.Seq())
	}
	want, _ := final.Get(sc, "n")
	dels := make([]uint64, len(got))
	conv := make([]time.Duration, len(got))
	var end time.Time
	for i := range got {
		g := &got[i]
		if v, _ := g.snap.Get(sc, "n"); v != want {
			return run, fmt.Errorf("%w: remote subscriber %d holds n=%v, want %v", ErrWrongState, i, v, want)
		}
		dels[i] = g.deliveries
		conv[i] = max(0, g.at.Sub(last))
		if g.at.After(end) {
			end = g.at
		}
	}
	run.Deliveries = spreadOf(dels)
	run.ConvergeMs = latencyOf(conv, time.Millisecond)
	run.Windows = float64(end.Sub(subStart)) / float64(cfg.Interval)
	return run, nil
}
