package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/sysreg/sysreg/bench"
)

var benchScenarios = []string{"flap", "durable", "recovery", "daemon", "wear", "fleet", "footprint"}

// benchReport is the JSON that "sysregd bench --json" prints: the machine,
// then one object per scenario that ran.
type benchReport struct {
	Machine   benchMachine           `json:"machine"`
	Flap      *bench.FlapResult      `json:"flap,omitempty"`
	Sweep     *bench.FlapSweepResult `json:"flap_sweep,omitempty"`
	Durable   *bench.DurableResult   `json:"durable,omitempty"`
	Recovery  *bench.RecoveryResult  `json:"recovery,omitempty"`
	Daemon    *bench.DaemonResult    `json:"daemon,omitempty"`
	Wear      *bench.WearResult      `json:"wear,omitempty"`
	Fleet     *bench.FleetResult     `json:"fleet,omitempty"`
	Footprint *bench.FootprintResult `json:"footprint,omitempty"`
}

type benchMachine struct {
	GOOS   string `json:"goos"`
	GOARCH string `json:"goarch"`
	CPUs   int    `json:"cpus"`
	Go     string `json:"go"`
	Start  string `json:"start"`
}

func benchCmd() *cobra.Command {
	cmd := command("bench [flap|durable|recovery|daemon|wear|fleet|footprint|all] [flags]",
		"run the benchmark scenarios",
		strings.TrimSpace(`
Runs the benchmark scenarios of package bench (default: all) and prints a
table per scenario on stdout, progress on stderr. Each headline figure is
measured beside its baseline in the same run (R36).

  flap      producers toggle state keys as fast as they can while subscribers
            with a MinInterval consume; beside a naive event-per-change
            channel fan-out on the same workload
  durable   durable config updates with 1…256 writers (group commit, real
            fsync) beside raw bbolt, one commit per update and DB.Batch
  recovery  store.Open time after 10^4…10^6 config updates
  daemon    updates/s and round trips over the Unix socket, remote
            subscribers' convergence
  wear      bytes written to storage per config update (flash wear) with 1
            and 64 writers, per checkpoint cycle and per typical appliance
            day, beside raw bbolt appending a 64-byte record per commit
  fleet     devices on one NATS server with JetStream (--nats URL, a
            scratch server; an in-process one only in a binary built with
            -tags fleetbench): time from a fleet-wide push until every
            device applied it, reported writes per device per second while
            all flap a state key, one device's flapping throughput with its
            bridge on and off; "all" skips it when there is no server
  footprint "sysregd serve" as an appliance runs it: time from exec until
            a client connects with 10,000 saved config keys, and the idle
            resident set; beside the same daemon on an empty data dir`), nil)
	cmd.ValidArgs = append([]cobra.Completion{"all"}, benchScenarios...)
	fs := cmd.Flags()
	asJSON := fs.Bool("json", false, "print the results as JSON on stdout instead of tables")
	svg := fs.String("svg", "", "draw the flap scenario (deliveries per subscriber over time, sysreg vs baseline) as an SVG `file`")
	quiet := fs.Bool("quiet", false, "no progress on stderr")
	dir := fs.String("dir", "", "where temporary data directories and the socket go (default: the system temp dir; use a real disk, fsync is measured)")
	// flap
	producers := fs.Int("producers", 4, "flap: producers, each an owner toggling keys of its own state scope")
	keys := fs.Int("keys", 1, "flap: keys each producer toggles")
	subscribers := fs.Int("subscribers", 1000, "flap and daemon: subscribers")
	interval := durationFlag(fs, "interval", 100*time.Millisecond, "flap and daemon: the subscribers' MinInterval (flap: 0 means none)")
	duration := durationFlag(fs, "duration", 2*time.Second, "flap: how long the producers write; durable and daemon: each measurement")
	rate := fs.Float64("rate", 0, "flap: updates/s per producer (0: as fast as possible)")
	work := durationFlag(fs, "work", 0, "flap: CPU time each subscriber spends per delivery (per event in the baseline)")
	useCore := fs.Bool("core", false, "flap: run on a bare core.Registry instead of an embedded store")
	noBaseline := fs.Bool("no-baseline", false, "flap and durable: skip the baselines")
	reuseValues := fs.Bool("reuse-values", false, "flap: producers pass one of two maps built once per key instead of a fresh map per update (not the headline: shows sysreg's cost without the callers' allocations)")
	buffer := fs.Int("buffer", 1024, "flap: channel capacity of each baseline consumer")
	sweep := fs.String("sweep", "", "flap: subs runs the scenario for each of --sweep-subs subscribers beside the same producers without subscribers (no naive baseline); --svg then draws that curve")
	sweepSubs := fs.String("sweep-subs", "10,100,1000,10000,100000", "flap --sweep subs: comma-separated subscriber counts (MinInterval 100 ms, 1 s from 100,000, unless --interval is given)")
	fpKeys := fs.Int("footprint-keys", 10000, "footprint: saved config keys in the data dir")
	// durable
	writers := fs.String("writers", "1,8,64,256", "durable: comma-separated concurrent writer counts")
	// recovery
	sizes := fs.String("sizes", "10000,100000,1000000", "recovery: comma-separated update counts")
	recKeys := fs.Int("recovery-keys", 10000, "recovery: keys the updates cycle over")
	opens := fs.Int("opens", 3, "recovery: timed opens per size (median reported)")
	// wear
	wearUpdates := fs.Int("wear-updates", 2000, "wear: durable updates per writer-count row")
	wearWriters := fs.String("wear-writers", "1,64", "wear: comma-separated writer counts")
	ckptRecords := fs.Int("checkpoint-records", 10000, "wear: the checkpoint cycle's interval in records")
	ckptKeys := fs.Int("checkpoint-keys", 1000, "wear: config keys the checkpoint holds")
	dayHours := fs.Float64("day-hours", 24, "wear: hours of the typical day simulated (scaled to 24 h)")
	// daemon
	pipeline := fs.Int("pipeline", 64, "daemon: goroutines sharing one connection")
	conns := fs.Int("conns", 8, "daemon: connections of the multi-connection figure")
	roundTrips := fs.Int("round-trips", 10000, "daemon: synchronous round trips timed")
	subConns := fs.Int("sub-conns", 20, "daemon: connections carrying the remote subscribers")
	flapFor := durationFlag(fs, "flap-duration", time.Second, "daemon: how long the key flaps under the remote subscribers")
	// fleet
	natsURL := fs.String("nats", "", "fleet: `URL` of a scratch NATS server with JetStream (default: an in-process server, only with -tags fleetbench)")
	devices := fs.Int("devices", 1000, "fleet: in-process devices, each a registry with its own bridge and connection")
	pushes := fs.Int("pushes", 5, "fleet: fleet-wide pushes timed")
	fleetInterval := durationFlag(fs, "fleet-interval", time.Second, "fleet: every device's reported-state interval")
	fleetFlap := durationFlag(fs, "fleet-flap", 5*time.Second, "fleet: how long every device flaps a state key while reported writes are counted")
	fleetNoSync := fs.Bool("fleet-no-sync", false, "fleet: UNSAFE: the devices' stores skip fsync (separates the bridge's cost from the disk's)")

	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, stdout, stderr := cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr()
		// The scenario may come before, between or after the flags.
		if len(args) > 1 {
			return usagef("bench: unexpected arguments %q", args[1:])
		}
		scenario := ""
		if len(args) == 1 {
			scenario = args[0]
		}
		if scenario == "" {
			scenario = "all"
		}
		run := map[string]bool{}
		switch scenario {
		case "all":
			for _, s := range benchScenarios {
				run[s] = true
			}
		case "flap", "durable", "recovery", "daemon", "wear", "fleet", "footprint":
			run[scenario] = true
		default:
			return usagef("bench: unknown scenario %q (want flap, durable, recovery, daemon, wear, fleet, footprint or all)", scenario)
		}
		if run["fleet"] && *natsURL == "" && !bench.InProcessNATS {
			if scenario == "fleet" {
				return usagef("bench: fleet needs --nats URL of a NATS server with JetStream (this sysregd has no in-process server; go run -tags fleetbench ./cmd/sysregd bench fleet has one)")
			}
			delete(run, "fleet")
			if !*quiet {
				fmt.Fprintln(stderr, "bench: fleet: skipped: no --nats URL and no in-process NATS server in this build (-tags fleetbench)")
			}
		}
		if *svg != "" && !run["flap"] {
			return usagef("bench: --svg draws the flap scenario, which %q does not run", scenario)
		}
		writerList, err := intList("writers", *writers)
		if err != nil {
			return err
		}
		sizeList, err := intList("sizes", *sizes)
		if err != nil {
			return err
		}
		wearWriterList, err := intList("wear-writers", *wearWriters)
		if err != nil {
			return err
		}
		sweepList, err := intList("sweep-subs", *sweepSubs)
		if err != nil {
			return err
		}
		switch {
		case *sweep != "" && *sweep != "subs":
			return usagef("bench: --sweep %q: the only sweep is subs", *sweep)
		case *sweep != "" && !run["flap"]:
			return usagef("bench: --sweep sweeps the flap scenario, which %q does not run", scenario)
		}
		var progress io.Writer = stderr
		if *quiet {
			progress = nil
		}
		positive := map[string]int{"producers": *producers, "keys": *keys, "subscribers": *subscribers, "buffer": *buffer,
			"recovery-keys": *recKeys, "footprint-keys": *fpKeys, "opens": *opens, "pipeline": *pipeline, "conns": *conns, "round-trips": *roundTrips, "sub-conns": *subConns,
			"wear-updates": *wearUpdates, "checkpoint-records": *ckptRecords, "checkpoint-keys": *ckptKeys,
			"devices": *devices, "pushes": *pushes}
		for name, v := range positive {
			if v <= 0 {
				return usagef("bench: --%s must be positive, got %d", name, v)
			}
		}
		if *dayHours <= 0 {
			return usagef("bench: --day-hours must be positive, got %g", *dayHours)
		}
		if *duration <= 0 || *interval < 0 || *flapFor <= 0 || *rate < 0 || *work < 0 || *fleetInterval <= 0 || *fleetFlap <= 0 {
			return usagef("bench: durations and rates must not be negative (and --duration, --flap-duration, --fleet-interval, --fleet-flap positive)")
		}

		rep := benchReport{Machine: benchMachine{
			GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, CPUs: runtime.NumCPU(), Go: runtime.Version(),
			Start: time.Now().UTC().Format(time.RFC3339),
		}}
		var tables strings.Builder
		if run["flap"] && *sweep != "" {
			var iv time.Duration // per point
			if cmd.Flags().Changed("interval") {
				iv = *interval
				if iv == 0 {
					iv = -1
				}
			}
			r, err := bench.RunFlapSweep(ctx, bench.FlapSweepConfig{
				Flap: bench.FlapConfig{
					Producers: *producers, Keys: *keys, Duration: *duration, Rate: *rate, Work: *work,
					Core: *useCore, ReuseValues: *reuseValues, Dir: *dir, Progress: progress,
				},
				Subscribers: sweepList,
				Interval:    iv,
			})
			if err != nil {
				return err
			}
			rep.Sweep = &r
			writeSweepTable(&tables, r)
			if *svg != "" {
				if err := writeSVGFile(*svg, r); err != nil {
					return err
				}
			}
		} else if run["flap"] {
			iv := *interval
			if iv == 0 {
				iv = -1 // FlapConfig: negative is none, zero the default
			}
			r, err := bench.RunFlap(ctx, bench.FlapConfig{
				Producers: *producers, Keys: *keys, Subscribers: *subscribers, Interval: iv,
				Duration: *duration, Rate: *rate, Work: *work, Core: *useCore, NoBaseline: *noBaseline, ReuseValues: *reuseValues,
				Buffer: *buffer, Dir: *dir, Progress: progress,
			})
			if err != nil {
				return err
			}
			rep.Flap = &r
			writeFlapTable(&tables, r)
			if *svg != "" {
				if err := writeSVGFile(*svg, r); err != nil {
					return err
				}
			}
		}
		if run["durable"] {
			r, err := bench.RunDurable(ctx, bench.DurableConfig{
				Writers: writerList, Duration: *duration, NoBaselines: *noBaseline, Dir: *dir, Progress: progress,
			})
			if err != nil {
				return err
			}
			rep.Durable = &r
			writeDurableTable(&tables, r)
		}
		if run["recovery"] {
			r, err := bench.RunRecovery(ctx, bench.RecoveryConfig{
				Sizes: sizeList, Keys: *recKeys, Opens: *opens, Dir: *dir, Progress: progress,
			})
			if err != nil {
				return err
			}
			rep.Recovery = &r
			writeRecoveryTable(&tables, r)
		}
		if run["daemon"] {
			r, err := bench.RunDaemon(ctx, bench.DaemonConfig{
				Pipeline: *pipeline, Conns: *conns, Duration: *duration, RoundTrips: *roundTrips,
				Subscribers: *subscribers, SubConns: *subConns, Interval: *interval, FlapDuration: *flapFor,
				Dir: *dir, Progress: progress,
			})
			if err != nil {
				return err
			}
			rep.Daemon = &r
			writeDaemonTable(&tables, r)
		}
		if run["wear"] {
			r, err := bench.RunWear(ctx, bench.WearConfig{
				Updates: *wearUpdates, Writers: wearWriterList, CheckpointRecords: *ckptRecords, CheckpointKeys: *ckptKeys,
				Day: bench.DayMix{Hours: *dayHours}, Dir: *dir, Progress: progress,
			})
			if err != nil {
				return err
			}
			rep.Wear = &r
			writeWearTable(&tables, r)
		}
		if run["fleet"] {
			r, err := bench.RunFleet(ctx, bench.FleetConfig{
				URL: *natsURL, Devices: *devices, Pushes: *pushes, Interval: *fleetInterval, FlapFor: *fleetFlap, NoSync: *fleetNoSync,
				Dir: *dir, Progress: progress,
			})
			if err != nil {
				return err
			}
			rep.Fleet = &r
			writeFleetTable(&tables, r)
		}
		if run["footprint"] {
			exe, err := sysregdExe()
			if err != nil {
				return fmt.Errorf("bench: footprint: %w", err)
			}
			r, err := bench.RunFootprint(ctx, bench.FootprintConfig{Exe: exe, Keys: *fpKeys, Dir: *dir, Progress: progress})
			if err != nil {
				return err
			}
			rep.Footprint = &r
			writeFootprintTable(&tables, r)
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(rep)
		}
		fmt.Fprintf(stdout, "machine: %s/%s, %d CPUs, %s\n", rep.Machine.GOOS, rep.Machine.GOARCH, rep.Machine.CPUs, rep.Machine.Go)
		_, err = io.WriteString(stdout, tables.String())
		return err
	}
	return cmd
}

func intList(name, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, usagef("bench: --%s: %q is not a positive integer", name, f)
		}
		out = append(out, n)
	}
	return out, nil
}

func writeSVGFile(path string, r interface{ WriteSVG(io.Writer) error }) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: --svg: %w", err)
	}
	err = r.WriteSVG(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("bench: --svg %s: %w", path, err)
	}
	return nil
}

// table collects rows and prints them aligned: the first column to the
// left, the others to the right.
type table struct{ rows [][]string }

func (t *table) row(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(w io.Writer) {
	var width []int
	for _, r := range t.rows {
		for i, c := range r {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range t.rows {
		var b strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if i == 0 {
				b.WriteString("  " + c + pad)
			} else {
				b.WriteString("  " + pad + c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

func writeSweepTable(w io.Writer, r bench.FlapSweepResult) {
	fmt.Fprintf(w, "\nflap sweep: %d producers, %.3g s per run, on %s%s; each point beside the same producers without subscribers\n",
		r.Producers, r.DurationS, r.Target, bench.ReuseNote(r.ReuseValues))
	var t table
	t.row("subscribers", "MinInterval", "updates/s", "bare updates/s", "vs bare", "vs bare per CPU-s", "converge worst (ms)", "beyond MinInterval (ms)", "deliveries/sub max", "windows", "heap/sub (B)")
	for _, pt := range r.Points {
		t.row(num(float64(pt.Subscribers)), msStr(pt.IntervalMs), num(pt.Subs.UpdatesPerSec), num(pt.Bare.UpdatesPerSec),
			fmt.Sprintf("%.2fx", pt.VsBare), fmt.Sprintf("%.2fx", pt.VsBareCPU),
			fmt.Sprintf("%.1f", pt.Subs.ConvergeMs.Max), fmt.Sprintf("%.1f", pt.LateMs),
			count(pt.Subs.Deliveries.Max), fmt.Sprintf("%.1f", pt.Subs.Windows), num(pt.Subs.HeapPerSub))
	}
	t.write(w)
}

func writeFlapTable(w io.Writer, r bench.FlapResult) {
	what := fmt.Sprintf("%.3g s", r.DurationS)
	if r.Updates > 0 {
		what = fmt.Sprintf("%d updates each", r.Updates)
	}
	fmt.Fprintf(w, "\nflap: %d producers × %d key(s), %d subscribers, MinInterval %s, %s, work %s, on %s%s\n",
		r.Producers, r.Keys, r.Subscribers, msStr(r.IntervalMs), what, usStr(r.WorkUs), r.Target, bench.ReuseNote(r.ReuseValues))
	s, b := r.Sysreg, r.Baseline
	var t table
	t.row("", "sysreg", "naive fan-out", "sysreg/naive")
	if b == nil {
		b = &bench.FlapRun{}
	}
	ratio := ""
	if r.Baseline != nil {
		ratio = fmt.Sprintf("%.1fx", r.ThroughputRatio)
	}
	t.row("producer updates/s", num(s.UpdatesPerSec), num(b.UpdatesPerSec), ratio)
	t.row("updates", num(float64(s.Updates)), num(float64(b.Updates)))
	t.row("deliveries/sub mean", count(s.Deliveries.Mean), count(b.Deliveries.Mean))
	t.row("deliveries/sub min–max", count(s.Deliveries.Min)+"–"+count(s.Deliveries.Max), count(b.Deliveries.Min)+"–"+count(b.Deliveries.Max))
	t.row("windows (limit: windows+1)", fmt.Sprintf("%.1f", s.Windows))
	t.row("changes coalesced", fmt.Sprintf("%.4f%%", 100*s.CoalescedFraction), "0%")
	t.row("converge p50 (ms)", fmt.Sprintf("%.1f", s.ConvergeMs.P50), fmt.Sprintf("%.1f", b.ConvergeMs.P50))
	t.row("converge p99 (ms)", fmt.Sprintf("%.1f", s.ConvergeMs.P99), fmt.Sprintf("%.1f", b.ConvergeMs.P99))
	t.row("converge worst (ms)", fmt.Sprintf("%.1f", s.ConvergeMs.Max), fmt.Sprintf("%.1f", b.ConvergeMs.Max))
	t.row("peak heap (MiB)", fmt.Sprintf("%.1f", mib(s.PeakHeapBytes)), fmt.Sprintf("%.1f", mib(b.PeakHeapBytes)))
	t.row("live heap per subscriber (B)", num(s.HeapPerSub), num(b.HeapPerSub))
	t.row("CPU seconds", fmt.Sprintf("%.2f", s.CPUSeconds), fmt.Sprintf("%.2f", b.CPUSeconds))
	t.row("updates per CPU second", num(s.UpdatesPerCPUSec), num(b.UpdatesPerCPUSec))
	t.row("GC cycles per second", num(s.GCPerSec), num(b.GCPerSec))
	t.row("bytes allocated per update", num(s.AllocPerUpdate), num(b.AllocPerUpdate))
	t.write(w)
}

func writeDurableTable(w io.Writer, r bench.DurableResult) {
	what := fmt.Sprintf("%.3g s per measurement", r.DurationS)
	if r.Updates > 0 {
		what = fmt.Sprintf("%d updates per writer", r.Updates)
	}
	fmt.Fprintf(w, "\ndurable: config updates with fsync, %s\n", what)
	var t table
	t.row("writers", "sysreg/s", "fsyncs/update", "p99 ms", "bbolt commit/s", "bbolt Batch/s", "x commit", "x Batch")
	for _, row := range r.Rows {
		c, b := "", ""
		if row.Commit != nil {
			c = num(row.Commit.UpdatesPerSec)
		}
		if row.Batch != nil {
			b = num(row.Batch.UpdatesPerSec)
		}
		t.row(strconv.Itoa(row.Writers), num(row.Sysreg.UpdatesPerSec), fmt.Sprintf("%.4f", row.Sysreg.FsyncsPerUpdate),
			fmt.Sprintf("%.1f", row.Sysreg.LatencyUs.P99/1000), c, b, fmt.Sprintf("%.1fx", row.VsCommit), fmt.Sprintf("%.1fx", row.VsBatch))
	}
	t.write(w)
}

// sysregdExe is the binary the footprint scenario starts: this one (tests
// point it at the sysregd they built).
var sysregdExe = os.Executable

func writeFootprintTable(w io.Writer, r bench.FootprintResult) {
	fmt.Fprintf(w, "\nfootprint: sysregd serve, %d saved config keys beside an empty data dir (median of %s)\n", r.Keys, "3 starts")
	var t table
	t.row("", fmt.Sprintf("%d keys", r.Keys), "empty", "issue #14's target")
	t.row("exec → client connected (ms)", fmt.Sprintf("%.1f", r.Loaded.ReadyMs.P50), fmt.Sprintf("%.1f", r.Empty.ReadyMs.P50), "≤ 100 with 10,000 keys")
	mib := func(b uint64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }
	t.row("idle RSS (MiB)", mib(r.Loaded.IdleRSSBytes), mib(r.Empty.IdleRSSBytes), "≤ 10")
	t.row("  anonymous: heap, stacks, runtime", mib(r.Loaded.IdleAnonBytes), mib(r.Empty.IdleAnonBytes))
	t.row("  file: code, read-only data", mib(r.Loaded.IdleFileBytes), mib(r.Empty.IdleFileBytes))
	t.write(w)
}

func writeFleetTable(w io.Writer, r bench.FleetResult) {
	sync := "fsync on"
	if r.NoSync {
		sync = "no fsync (UNSAFE)"
	}
	fmt.Fprintf(w, "\nfleet: %d devices (stores, %s) on one NATS server, reported interval %v, all up in %.1f s\n", r.Devices, sync, r.Interval, r.StartSeconds)
	var t table
	t.row("push applied by every device (ms)", "p50", "p99", "worst")
	t.row("", fmt.Sprintf("%.0f", r.PushMs.P50), fmt.Sprintf("%.0f", r.PushMs.P99), fmt.Sprintf("%.0f", r.PushMs.Max))
	t.write(w)
	var u table
	u.row("flap updates per device per second", num(r.FlapUpdatesPerDeviceSec))
	u.row("reported writes per device per second", fmt.Sprintf("%.2f", r.ReportedWritesPerDeviceSec))
	u.row("one device flapping, bridge on (updates/s)", num(r.LocalOn))
	u.row("same, no bridge (updates/s)", num(r.LocalOff))
	u.row("bridge on / off", fmt.Sprintf("%.2fx", r.LocalRatio))
	u.row("bridge on / off, per CPU second", fmt.Sprintf("%.2fx", r.LocalCPURatio))
	u.write(w)
}

func writeWearTable(w io.Writer, r bench.WearResult) {
	fmt.Fprintln(w, "\nwear: bytes written to storage (B: /proc/self/io write_bytes; page B: bbolt pages written)")
	if !r.Supported {
		fmt.Fprintf(w, "write_bytes unavailable: %s\n", r.Reason)
	}
	var t table
	t.row("", "sysreg B", "sysreg page B", "bbolt B", "bbolt page B", "x bbolt")
	for _, row := range r.Rows {
		t.row(fmt.Sprintf("per update, %d writers", row.Writers), num(row.Sysreg.BytesPerUpdate), num(row.Sysreg.PageBytesPerUpdate),
			num(row.Bolt.BytesPerUpdate), num(row.Bolt.PageBytesPerUpdate), fmt.Sprintf("%.2fx", row.Ratio))
	}
	c := r.Checkpoint
	t.row(fmt.Sprintf("per update, cycle of %s records", num(float64(c.Records))), num(c.Sysreg.BytesPerUpdate), num(c.Sysreg.PageBytesPerUpdate),
		num(c.Bolt.BytesPerUpdate), num(c.Bolt.PageBytesPerUpdate), "")
	t.row(fmt.Sprintf("per checkpoint (%s B of data)", num(float64(c.DataBytes))), num(float64(c.Sysreg.CheckpointWriteBytes)), num(float64(c.Sysreg.CheckpointPageBytes)),
		num(float64(c.Bolt.CheckpointWriteBytes)), num(float64(c.Bolt.CheckpointPageBytes)), "")
	d := r.Day
	t.row(fmt.Sprintf("per day (%d records)", d.Records), num(float64(d.WithCheckpointWriteBytes)), num(float64(d.Sysreg.PageBytes)),
		num(float64(d.Bolt.WriteBytes)), num(float64(d.Bolt.PageBytes)), "")
	t.write(w)
}

func writeRecoveryTable(w io.Writer, r bench.RecoveryResult) {
	fmt.Fprintf(w, "\nrecovery: store.Open after N config updates over %d keys (page cache warm)\n", r.Keys)
	var t table
	t.row("updates", "open ms (median)", "open ms (max)", "replayed", "checkpoint keys", "keys", "dir MiB")
	for _, row := range r.Rows {
		t.row(num(float64(row.Updates)), fmt.Sprintf("%.1f", row.OpenMs.P50), fmt.Sprintf("%.1f", row.OpenMs.Max),
			num(float64(row.Replayed)), num(float64(row.CheckpointKeys)), num(float64(row.RestoredKeys)), fmt.Sprintf("%.1f", mib(uint64(row.DirBytes))))
	}
	t.write(w)
}

func writeDaemonTable(w io.Writer, r bench.DaemonResult) {
	fmt.Fprintln(w, "\ndaemon: in-process server on a Unix socket, state updates")
	var t table
	t.row(fmt.Sprintf("1 connection × %d goroutines (updates/s)", r.OneConn.Goroutines), num(r.OneConn.UpdatesPerSec))
	t.row(fmt.Sprintf("%d connections × %d goroutines (updates/s)", r.ManyConns.Conns, r.ManyConns.Goroutines), num(r.ManyConns.UpdatesPerSec))
	t.row("  per CPU-second, 1 / many connections", num(r.OneConn.UpdatesPerCPUSec)+" / "+num(r.ManyConns.UpdatesPerCPUSec))
	t.row("  read+write syscalls per update, 1 / many", fmt.Sprintf("%.2f / %.2f", r.OneConn.SyscallsPerUpdate, r.ManyConns.SyscallsPerUpdate))
	t.row("round trip median (µs)", fmt.Sprintf("%.1f", r.RoundTripUs.P50))
	t.row("round trip p99 (µs)", fmt.Sprintf("%.1f", r.RoundTripUs.P99))
	s := r.Subscribers
	t.row(fmt.Sprintf("%d remote subscribers on %d connections, MinInterval %s:", s.Subscribers, s.Conns, msStr(s.IntervalMs)))
	t.row("  flapping updates/s", num(s.UpdatesPerSec))
	t.row("  deliveries/sub mean (windows)", fmt.Sprintf("%.1f (%.1f)", s.Deliveries.Mean, s.Windows))
	t.row("  converge p99 (ms)", fmt.Sprintf("%.1f", s.ConvergeMs.P99))
	t.row("  converge worst (ms)", fmt.Sprintf("%.1f", s.ConvergeMs.Max))
	t.write(w)
}

// count formats a count or a mean of counts.
func count(v float64) string {
	if v >= 1000 {
		return num(v)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// num formats a number with thousands separators, no decimals.
func num(v float64) string {
	s := strconv.FormatFloat(v, 'f', 0, 64)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func msStr(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) + " ms" }

func usStr(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) + " µs" }
