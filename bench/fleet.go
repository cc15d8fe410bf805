package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/codec"
	"github.com/sysreg/sysreg/internal/fleet"
	"github.com/sysreg/sysreg/store"
)

// FleetConfig configures RunFleet. The zero value gives the defaults of
// the published figures.
type FleetConfig struct {
	// Devices on the one server. Default 1,000.
	Devices int
	// Pushes: fleet-wide pushes timed, one after the other. Default 5.
	Pushes int
	// Interval is every device's reported-state interval. Default 1 s.
	Interval time.Duration
	// FlapFor: how long every device flaps a state key while the reported
	// writes are counted. Default 5 s.
	FlapFor time.Duration
	// LocalFor: each side of one round of the local flapping throughput
	// comparison (bridge on, bridge off). Default 500 ms.
	LocalFor time.Duration
	// Rounds of that comparison (each measures both sides). Default 5.
	Rounds int
	// Timeout bounds every wait (all devices started, a push applied by
	// all). Default 2 min.
	Timeout time.Duration
	// NoSync opens the devices' stores without fsync (UNSAFE, to separate
	// the bridge's cost from the disk's).
	NoSync bool
	// URL of the NATS server with JetStream the devices connect to
	// ("nats://127.0.0.1:4222"; several, comma separated). Use a scratch
	// server: the scenario writes the buckets sysreg_desired and
	// sysreg_reported. Empty: an in-process server in Dir, which only a
	// binary built with the fleetbench tag has (InProcessNATS); other
	// builds return ErrNoNATS, so that sysregd as appliances run it does
	// not link the NATS server.
	URL string
	// Dir is where the devices' data directories (and the in-process
	// server's JetStream directory) go (default: the system temp dir).
	Dir string
	// Progress receives a line per phase. nil: none.
	Progress io.Writer
}

func (c FleetConfig) withDefaults() FleetConfig {
	if c.Devices <= 0 {
		c.Devices = 1000
	}
	if c.Pushes <= 0 {
		c.Pushes = 5
	}
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.FlapFor <= 0 {
		c.FlapFor = 5 * time.Second
	}
	if c.LocalFor <= 0 {
		c.LocalFor = 500 * time.Millisecond
	}
	if c.Rounds <= 0 {
		c.Rounds = 10
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Minute
	}
	return c
}

// FleetResult is what RunFleet measured.
type FleetResult struct {
	Devices  int           `json:"devices"`
	Interval time.Duration `json:"interval_ns"`
	NoSync   bool          `json:"no_sync"`
	// StartSeconds: from starting the devices until every one had applied
	// a first push (connected, watching, resynced).
	StartSeconds float64 `json:"start_s"`
	// PushMs: per device and push, from just before the fleet-wide put to
	// the device's view holding the pushed value.
	PushMs Latency `json:"push_ms"`
	// ReportedWritesPerDeviceSec: writes to sysreg_reported (the stream's
	// sequence numbers) per device per second while every device flaps one
	// state key; FlapUpdatesPerDeviceSec is how fast each one flapped.
	ReportedWritesPerDeviceSec float64 `json:"reported_writes_per_device_s"`
	FlapUpdatesPerDeviceSec    float64 `json:"flap_updates_per_device_s"`
	// LocalOn and LocalOff: one device's flapping throughput (updates/s,
	// the median of Rounds) with its bridge connected and without a bridge,
	// alternating; LocalRatio = LocalOn / LocalOff.
	LocalOn    float64 `json:"local_on_updates_s"`
	LocalOff   float64 `json:"local_off_updates_s"`
	LocalRatio float64 `json:"local_ratio"`
	// LocalCPURatio is the same comparison per CPU second of the whole
	// process (getrusage), which other load on the machine disturbs less.
	LocalCPURatio float64 `json:"local_cpu_ratio"`
}

// fleetDevice is one in-process device: a store in a data directory of
// its own, with its fleet bridge (nil URL: none).
type fleetDevice struct {
	st *store.Store
}

func (d *fleetDevice) close() { d.st.Close() }

func startFleetDevice(dir, url, id string, interval time.Duration, noSync bool) (*fleetDevice, error) {
	opts := store.Options{NoSync: noSync}
	if url != "" {
		opts.Fleet = &store.FleetOptions{URL: url, Device: id, Interval: interval, ReconnectWait: 100 * time.Millisecond}
	}
	st, err := store.Open(filepath.Join(dir, id), opts)
	if err != nil {
		return nil, err
	}
	return &fleetDevice{st: st}, nil
}

func (d *fleetDevice) fleetStatus() store.FleetStatus {
	st, _ := d.st.Stats(context.Background()) // its error is only ctx's
	if st.Fleet == nil {
		return store.FleetStatus{}
	}
	return *st.Fleet
}

// RunFleet runs the fleet scenario (R54) on the NATS server at cfg.URL
// (or an in-process one, see FleetConfig.URL): Devices devices, each a
// store.Open of its own data directory (fsync on) with its bridge and
// connection.
func RunFleet(ctx context.Context, cfg FleetConfig) (res FleetResult, err error) {
	cfg = cfg.withDefaults()
	res.Devices, res.Interval, res.NoSync = cfg.Devices, cfg.Interval, cfg.NoSync
	p := &progress{w: cfg.Progress}
	dir, err := tempDir(cfg.Dir, "sysreg-bench-fleet-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	url := cfg.URL
	if url == "" {
		var stop func()
		if url, stop, err = inProcessNATS(filepath.Join(dir, "nats")); err != nil {
			return res, err
		}
		defer stop()
	}
	nc, err := nats.Connect(url)
	if err != nil {
		return res, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return res, err
	}
	desired, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: fleet.DesiredBucket})
	if err != nil {
		return res, err
	}
	reported, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: fleet.ReportedBucket})
	if err != nil {
		return res, err
	}

	devs := make([]*fleetDevice, 0, cfg.Devices)
	defer func() {
		var wg sync.WaitGroup
		for _, d := range devs {
			wg.Go(d.close)
		}
		wg.Wait()
	}()
	p.printf("fleet: starting %d devices", cfg.Devices)
	start := time.Now()
	for i := range cfg.Devices {
		d, err := startFleetDevice(dir, url, fmt.Sprintf("dev-%d", i), cfg.Interval, cfg.NoSync)
		if err != nil {
			return res, err
		}
		devs = append(devs, d)
	}
	// Push 0 tells when every device is up; pushes 1… are timed.
	var lat []time.Duration
	for gen := 0; gen <= cfg.Pushes; gen++ {
		ds, err := pushAndWait(ctx, desired, devs, int64(gen), cfg.Timeout)
		if err != nil {
			return res, err
		}
		if gen == 0 {
			res.StartSeconds = time.Since(start).Seconds()
			p.printf("fleet: %d devices up in %.1f s", cfg.Devices, res.StartSeconds)
		} else {
			lat = append(lat, ds...)
		}
	}
	res.PushMs = latencyOf(lat, time.Millisecond)
	p.printf("fleet: %d pushes: p50 %.0f ms, p99 %.0f ms, worst %.0f ms", cfg.Pushes, res.PushMs.P50, res.PushMs.P99, res.PushMs.Max)

	if err := fleetFlap(ctx, cfg, devs, js, reported, &res); err != nil {
		return res, err
	}
	// The local comparison runs alone: the other devices go first.
	var wg sync.WaitGroup
	for _, d := range devs {
		wg.Go(d.close)
	}
	wg.Wait()
	devs = devs[:0]
	p.printf("fleet: flapping: %.2f reported writes per device per second", res.ReportedWritesPerDeviceSec)
	return res, fleetLocal(ctx, cfg, dir, url, &res)
}

var pushScope = core.ConfigScope("bench", "push")

// pushAndWait puts all.bench.push = {gen: gen} and returns, per device, the
// time until its view held it.
func pushAndWait(ctx context.Context, desired jetstream.KeyValue, devs []*fleetDevice, gen int64, timeout time.Duration) ([]time.Duration, error) {
	want := core.Values{"gen": gen}
	subs := make([]store.Subscription, len(devs))
	for i, d := range devs {
		s, err := d.st.Subscribe(ctx, core.SubscribeOptions{Match: core.Pattern{Bucket: core.Config, Type: "bench"}})
		if err != nil {
			for _, s := range subs[:i] {
				s.Close()
			}
			return nil, err
		}
		subs[i] = s
	}
	defer func() {
		for _, s := range subs {
			s.Close()
		}
	}()
	data, err := codec.EncodeValues(want)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	if _, err := desired.Put(ctx, fleet.DesiredKey(fleet.AllDevices, pushScope.Type, pushScope.Subtype), data); err != nil {
		return nil, err
	}
	out := make([]time.Duration, len(devs))
	var failed atomic.Int64
	var wg sync.WaitGroup
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	done := make(chan struct{})
	for i, s := range subs {
		wg.Go(func() {
			for {
				select {
				case snap := <-s.C():
					if v, ok := snap.Get(pushScope, "gen"); ok && v == any(gen) {
						out[i] = time.Since(t0)
						return
					}
				case <-done:
					failed.Add(1)
					return
				}
			}
		})
	}
	waitErr := make(chan struct{})
	go func() { wg.Wait(); close(waitErr) }()
	select {
	case <-waitErr:
	case <-deadline.C:
		close(done)
		<-waitErr
		return nil, fmt.Errorf("bench: push %d: %d of %d devices did not apply it within %v", gen, failed.Load(), len(devs), timeout)
	case <-ctx.Done():
		close(done)
		<-waitErr
		return nil, ctx.Err()
	}
	return out, nil
}

var flapScope = core.StateScope("bench", "flap")

// fleetFlap has every device flap one state key for FlapFor and counts the
// writes to the reported bucket meanwhile.
func fleetFlap(ctx context.Context, cfg FleetConfig, devs []*fleetDevice, js jetstream.JetStream, reported jetstream.KeyValue, res *FleetResult) error {
	owners := make([]store.Owner, len(devs))
	for i, d := range devs {
		o, err := d.st.Owner(ctx, "flapper", core.OwnerOptions{})
		if err != nil {
			return err
		}
		owners[i] = o
	}
	defer func() {
		for _, o := range owners {
			o.Close()
		}
	}()
	stream, err := js.Stream(ctx, "KV_"+reported.Bucket())
	if err != nil {
		return err
	}
	lastSeq := func() (uint64, error) {
		info, err := stream.Info(ctx)
		if err != nil {
			return 0, err
		}
		return info.State.LastSeq, nil
	}
	// The last push's reported writes land within one interval: wait them
	// out so that only the flapping is counted.
	select {
	case <-time.After(cfg.Interval + cfg.Interval/2):
	case <-ctx.Done():
		return ctx.Err()
	}
	before, err := lastSeq()
	if err != nil {
		return err
	}
	var updates atomic.Uint64
	var stop atomic.Bool
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	errc := make(chan error, workers)
	t0 := time.Now()
	for w := range workers {
		wg.Go(func() {
			var n uint64
			for i := int64(0); !stop.Load(); i++ {
				for j := w; j < len(owners); j += workers {
					if err := owners[j].Update(ctx, flapScope, core.Values{"v": i}); err != nil {
						errc <- err
						return
					}
					n++
				}
			}
			updates.Add(n)
		})
	}
	select {
	case <-time.After(cfg.FlapFor):
	case <-ctx.Done():
	}
	stop.Store(true)
	wg.Wait()
	took := time.Since(t0)
	select {
	case err := <-errc:
		return err
	default:
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Writes still due from the flapping land within one interval.
	select {
	case <-time.After(cfg.Interval + cfg.Interval/2):
	case <-ctx.Done():
		return ctx.Err()
	}
	after, err := lastSeq()
	if err != nil {
		return err
	}
	secs := took.Seconds()
	res.ReportedWritesPerDeviceSec = float64(after-before) / float64(len(devs)) / secs
	res.FlapUpdatesPerDeviceSec = float64(updates.Load()) / float64(len(devs)) / secs
	return nil
}

// fleetLocal measures one device's flapping throughput with its bridge on
// and with no bridge: both devices exist for the whole comparison, the
// bridge has connected and reported before it starts, and the rounds
// alternate on, off, off, on… so that drifts of the machine hit both alike.
func fleetLocal(ctx context.Context, cfg FleetConfig, dir, url string, res *FleetResult) error {
	on, err := startFleetDevice(dir, url, "local-on", cfg.Interval, cfg.NoSync)
	if err != nil {
		return err
	}
	defer on.close()
	off, err := startFleetDevice(dir, "", "local-off", cfg.Interval, cfg.NoSync)
	if err != nil {
		return err
	}
	defer off.close()
	deadline := time.Now().Add(cfg.Timeout)
	for st := on.fleetStatus(); !st.Connected || st.ReportedSeq == 0; st = on.fleetStatus() {
		if time.Now().After(deadline) {
			return errors.New("bench: local device never connected and reported")
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	runtime.GC()
	var rOn, rOff []float64
	var cpuOn, cpuOff [2]float64 // updates, CPU seconds
	for i := range 2 * cfg.Rounds {
		withBridge := i%4 == 0 || i%4 == 3
		d := off
		if withBridge {
			d = on
		}
		c0 := cpuTime()
		n, rate, err := localFlap(ctx, d, cfg.LocalFor)
		cpu := (cpuTime() - c0).Seconds()
		if err != nil {
			return err
		}
		if withBridge {
			rOn = append(rOn, rate)
			cpuOn[0] += float64(n)
			cpuOn[1] += cpu
		} else {
			rOff = append(rOff, rate)
			cpuOff[0] += float64(n)
			cpuOff[1] += cpu
		}
	}
	res.LocalOn, res.LocalOff = median(rOn), median(rOff)
	if res.LocalOff > 0 {
		res.LocalRatio = res.LocalOn / res.LocalOff
	}
	if cpuOn[1] > 0 && cpuOff[1] > 0 && cpuOff[0] > 0 {
		res.LocalCPURatio = (cpuOn[0] / cpuOn[1]) / (cpuOff[0] / cpuOff[1])
	}
	return nil
}

func localFlap(ctx context.Context, d *fleetDevice, dur time.Duration) (n int64, rate float64, err error) {
	o, err := d.st.Owner(ctx, "flapper", core.OwnerOptions{})
	if err != nil {
		return 0, 0, err
	}
	defer o.Close()
	t0 := time.Now()
	for time.Since(t0) < dur {
		if err := o.Update(ctx, flapScope, core.Values{"v": n}); err != nil {
			return 0, 0, err
		}
		n++
	}
	return n, float64(n) / time.Since(t0).Seconds(), nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	return xs[len(xs)/2]
}
