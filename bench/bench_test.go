package bench_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sysreg/sysreg/bench"
	"github.com/sysreg/sysreg/internal/testexec"
)

// -full runs the scenarios at the sizes the README quotes (recovery up to
// 10^6 updates, 2 s measurements) instead of the quicker defaults below,
// which keep "go test ./bench -run '^$' -bench . -benchtime 1x" under
// three minutes.
var full = flag.Bool("full", false, "run the benchmark scenarios at full size")

func measure(short, long time.Duration) time.Duration {
	if *full {
		return long
	}
	return short
}

// BenchmarkFlap is the headline (R36): 4 producers flap state keys while
// 1,000 subscribers at MinInterval 100 ms consume, beside the naive
// channel fan-out in the same run.
func BenchmarkFlap(b *testing.B) {
	for _, c := range []struct{ producers, subs int }{{4, 1000}} {
		interval := 100 * time.Millisecond
		b.Run(fmt.Sprintf("producers=%d/subscribers=%d/interval=%v", c.producers, c.subs, interval), func(b *testing.B) {
			cfg := bench.FlapConfig{
				Producers:   c.producers,
				Subscribers: c.subs,
				Interval:    interval,
				Duration:    measure(time.Second, 2*time.Second),
			}
			b.ReportAllocs()
			var r bench.FlapResult
			for b.Loop() {
				var err error
				if r, err = bench.RunFlap(b.Context(), cfg); err != nil {
					b.Fatal(err)
				}
			}
			s := r.Sysreg
			b.ReportMetric(s.UpdatesPerSec, "updates/s")
			b.ReportMetric(s.Deliveries.Mean, "deliveries/sub")
			b.ReportMetric(s.Windows, "windows")
			b.ReportMetric(s.CoalescedFraction, "coalesced/op")
			b.ReportMetric(s.ConvergeMs.Max, "converge-ms")
			b.ReportMetric(s.ConvergeMs.P99, "converge-p99-ms")
			b.ReportMetric(s.HeapPerSub, "B/sub")
			b.ReportMetric(s.CPUSeconds, "cpu-s")
			b.ReportMetric(s.UpdatesPerCPUSec, "updates/cpu-s")
			b.ReportMetric(s.GCPerSec, "gc/s")
			b.ReportMetric(s.AllocPerUpdate, "alloc-B/update")
			if base := r.Baseline; base != nil {
				b.ReportMetric(r.ThroughputRatio, "x-baseline")
				b.ReportMetric(base.UpdatesPerSec, "baseline-updates/s")
				b.ReportMetric(base.ConvergeMs.Max, "baseline-converge-ms")
				b.ReportMetric(base.HeapPerSub, "baseline-B/sub")
			}
		})
	}
}

// BenchmarkFlapMetrics: the headline flap with and without a metrics
// scrape every 100 ms (R50; Prometheus scrapes every 15 s by default), side
// by side in one run: compare the two with
// benchstat -col /metrics. The target is within 5 % (issue #12).
func BenchmarkFlapMetrics(b *testing.B) {
	for _, scrape := range []time.Duration{0, 100 * time.Millisecond} {
		name := "metrics=off" // the same name shape for both, so that benchstat -col /metrics pairs them
		if scrape > 0 {
			name = "metrics=on"
		}
		b.Run(name, func(b *testing.B) {
			cfg := bench.FlapConfig{
				Producers:   4,
				Subscribers: 1000,
				Interval:    100 * time.Millisecond,
				Duration:    measure(time.Second, 2*time.Second),
				NoBaseline:  true,
				Scrape:      scrape,
			}
			var r bench.FlapResult
			for b.Loop() {
				var err error
				if r, err = bench.RunFlap(b.Context(), cfg); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(r.Sysreg.UpdatesPerSec, "updates/s")
			b.ReportMetric(r.Sysreg.UpdatesPerCPUSec, "updates/cpu-s")
			b.ReportMetric(r.Sysreg.ConvergeMs.Max, "converge-ms")
		})
	}
}

// BenchmarkFlapSweep: the flap scenario against the number of subscribers
// (issue #14's curve), each point beside the same producers without
// subscribers in the same run: x-bare is the throughput ratio,
// x-bare-cpu the same per CPU second. 100,000 subscribers only with -full.
func BenchmarkFlapSweep(b *testing.B) {
	counts := []int{10, 100, 1000, 10_000}
	if *full {
		counts = append(counts, 100_000)
	}
	for _, n := range counts {
		b.Run(fmt.Sprintf("subscribers=%d/interval=%v", n, bench.SweepInterval(n)), func(b *testing.B) {
			cfg := bench.FlapSweepConfig{Flap: bench.FlapConfig{Duration: measure(time.Second, 2*time.Second)}, Subscribers: []int{n}}
			b.ReportAllocs()
			var r bench.FlapSweepResult
			for b.Loop() {
				var err error
				if r, err = bench.RunFlapSweep(b.Context(), cfg); err != nil {
					b.Fatal(err)
				}
			}
			pt := r.Points[0]
			b.ReportMetric(pt.Subs.UpdatesPerSec, "updates/s")
			b.ReportMetric(pt.Bare.UpdatesPerSec, "bare-updates/s")
			b.ReportMetric(pt.VsBare, "x-bare")
			b.ReportMetric(pt.VsBareCPU, "x-bare-cpu")
			b.ReportMetric(pt.Subs.ConvergeMs.Max, "converge-ms")
			b.ReportMetric(pt.LateMs, "late-ms")
			b.ReportMetric(pt.Subs.Deliveries.Max, "deliveries/sub")
			b.ReportMetric(pt.Subs.Windows, "windows")
			b.ReportMetric(pt.Subs.HeapPerSub, "B/sub")
		})
	}
}

// BenchmarkFootprint: sysregd serve's time from exec until a client
// connects with 10,000 saved config keys, and its idle RSS, beside the same
// daemon on an empty data dir (issue #14 targets: ≤ 100 ms, ≤ 10 MiB).
func BenchmarkFootprint(b *testing.B) {
	exe := filepath.Join(b.TempDir(), "sysregd")
	if err := testexec.Build(exe, "../cmd/sysregd"); err != nil {
		b.Fatal(err)
	}
	var r bench.FootprintResult
	for b.Loop() {
		var err error
		if r, err = bench.RunFootprint(b.Context(), bench.FootprintConfig{Exe: exe, Dir: b.TempDir()}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(r.Loaded.ReadyMs.P50, "ready-ms")
	b.ReportMetric(float64(r.Loaded.IdleRSSBytes)/(1<<20), "idle-rss-MiB")
	b.ReportMetric(r.Empty.ReadyMs.P50, "empty-ready-ms")
	b.ReportMetric(float64(r.Empty.IdleRSSBytes)/(1<<20), "empty-idle-rss-MiB")
	b.ReportMetric(float64(r.Loaded.IdleAnonBytes)/(1<<20), "idle-anon-MiB")
	b.ReportMetric(float64(r.Loaded.IdleFileBytes)/(1<<20), "idle-file-MiB")
}

// BenchmarkDurable: durable config updates with group commit against raw
// bbolt, one commit per update and DB.Batch, in the same run (R25).
// x-baseline is the ratio to DB.Batch, x-commit to one commit per update.
func BenchmarkDurable(b *testing.B) {
	for _, w := range []int{1, 8, 64, 256} {
		b.Run(fmt.Sprintf("writers=%d", w), func(b *testing.B) {
			cfg := bench.DurableConfig{Writers: []int{w}, Duration: measure(time.Second, 2*time.Second), Dir: b.TempDir()}
			b.ReportAllocs()
			var r bench.DurableResult
			for b.Loop() {
				var err error
				if r, err = bench.RunDurable(b.Context(), cfg); err != nil {
					b.Fatal(err)
				}
			}
			row := r.Rows[0]
			b.ReportMetric(row.Sysreg.UpdatesPerSec, "updates/s")
			b.ReportMetric(row.Sysreg.FsyncsPerUpdate, "fsyncs/op")
			b.ReportMetric(row.Sysreg.LatencyUs.P99, "p99-us")
			b.ReportMetric(row.VsBatch, "x-baseline")
			b.ReportMetric(row.VsCommit, "x-commit")
			b.ReportMetric(row.Batch.UpdatesPerSec, "batch-updates/s")
			b.ReportMetric(row.Commit.UpdatesPerSec, "commit-updates/s")
		})
	}
}

// BenchmarkRecovery: store.Open time after N config updates over 10,000
// keys. 10^6 only with -full.
func BenchmarkRecovery(b *testing.B) {
	sizes := []int{10_000, 100_000}
	if *full {
		sizes = append(sizes, 1_000_000)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("updates=%d/keys=10000", n), func(b *testing.B) {
			cfg := bench.RecoveryConfig{Sizes: []int{n}, Dir: b.TempDir()}
			var r bench.RecoveryResult
			for b.Loop() {
				var err error
				if r, err = bench.RunRecovery(b.Context(), cfg); err != nil {
					b.Fatal(err)
				}
			}
			row := r.Rows[0]
			b.ReportMetric(row.OpenMs.P50, "open-ms")
			b.ReportMetric(float64(row.Replayed), "replayed")
			b.ReportMetric(float64(row.DirBytes)/(1<<20), "dir-MiB")
		})
	}
}

// BenchmarkDaemon: the socket. updates/s over one pipelined connection,
// updates/s-8conns over eight, the round trip of one synchronous update,
// and 1,000 remote subscribers' convergence on a flapping key.
func BenchmarkDaemon(b *testing.B) {
	b.Run("conns=8/subscribers=1000/interval=100ms", func(b *testing.B) {
		cfg := bench.DaemonConfig{Conns: 8, Subscribers: 1000, Interval: 100 * time.Millisecond, Duration: measure(time.Second, 2*time.Second)}
		b.ReportAllocs()
		var r bench.DaemonResult
		for b.Loop() {
			var err error
			if r, err = bench.RunDaemon(b.Context(), cfg); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(r.OneConn.UpdatesPerSec, "updates/s")
		b.ReportMetric(r.ManyConns.UpdatesPerSec, "updates/s-8conns")
		b.ReportMetric(r.OneConn.UpdatesPerCPUSec, "updates/cpu-s")
		b.ReportMetric(r.ManyConns.UpdatesPerCPUSec, "updates/cpu-s-8conns")
		b.ReportMetric(r.OneConn.SyscallsPerUpdate, "syscalls/update")
		b.ReportMetric(r.ManyConns.SyscallsPerUpdate, "syscalls/update-8conns")
		b.ReportMetric(r.RoundTripUs.P50, "rtt-us")
		b.ReportMetric(r.RoundTripUs.P99, "rtt-p99-us")
		b.ReportMetric(r.Subscribers.ConvergeMs.Max, "converge-ms")
		b.ReportMetric(r.Subscribers.Deliveries.Mean, "deliveries/sub")
	})
}

// BenchmarkWear: flash wear (issue 17), bytes written to storage per
// durable config update, beside raw bbolt appending a 64-byte record in a
// transaction of its own, in the same run. B/update is /proc/self/io
// write_bytes (the benchmark is skipped where that does not exist),
// page-B/update the bbolt pages the commits wrote. The checkpoint cycle
// is 10,000 records by 64 writers, amortised; the typical day (see
// bench.DayMix) runs 2 simulated hours, 24 with -full, scaled to a day.
func BenchmarkWear(b *testing.B) {
	if _, err := os.Stat("/proc/self/io"); err != nil {
		b.Skipf("no /proc/self/io (write_bytes) here: %v", err)
	}
	cfg := bench.WearConfig{Dir: b.TempDir(), Day: bench.DayMix{Hours: 2}}
	if *full {
		cfg.Day.Hours = 24
	}
	var r bench.WearResult
	for b.Loop() {
		var err error
		if r, err = bench.RunWear(b.Context(), cfg); err != nil {
			b.Fatal(err)
		}
	}
	for _, row := range r.Rows {
		w := fmt.Sprintf("w%d-", row.Writers)
		b.ReportMetric(row.Sysreg.BytesPerUpdate, w+"B/update")
		b.ReportMetric(row.Bolt.BytesPerUpdate, w+"bbolt-B/update")
		b.ReportMetric(row.Sysreg.PageBytesPerUpdate, w+"page-B/update")
		b.ReportMetric(row.Bolt.PageBytesPerUpdate, w+"bbolt-page-B/update")
	}
	c := r.Checkpoint
	b.ReportMetric(c.Sysreg.BytesPerUpdate, "cycle-B/update")
	b.ReportMetric(c.Bolt.BytesPerUpdate, "cycle-bbolt-B/update")
	b.ReportMetric(float64(c.Sysreg.CheckpointWriteBytes), "B/checkpoint")
	b.ReportMetric(float64(c.Bolt.CheckpointWriteBytes), "bbolt-B/checkpoint")
	d := r.Day
	b.ReportMetric(float64(d.WithCheckpointWriteBytes)/(1<<20), "MiB/day")
	b.ReportMetric(float64(d.Bolt.WriteBytes)/(1<<20), "bbolt-MiB/day")
}

// BenchmarkFleet (R54): 1,000 in-process devices on one NATS server: the
// time from a fleet-wide push until every device applied it, reported
// writes per device per second while every device flaps a state key, and
// one device's flapping throughput with its bridge on and off.
func BenchmarkFleet(b *testing.B) {
	devices := 1000
	if !*full {
		devices = 200
	}
	b.Run(fmt.Sprintf("devices=%d/interval=1s", devices), func(b *testing.B) {
		cfg := bench.FleetConfig{Devices: devices, FlapFor: measure(2*time.Second, 5*time.Second), URL: natsURL(b)}
		var r bench.FleetResult
		for b.Loop() {
			var err error
			if r, err = bench.RunFleet(b.Context(), cfg); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(r.PushMs.P50, "push-p50-ms")
		b.ReportMetric(r.PushMs.P99, "push-p99-ms")
		b.ReportMetric(r.PushMs.Max, "push-max-ms")
		b.ReportMetric(r.ReportedWritesPerDeviceSec, "reported-writes/device/s")
		b.ReportMetric(r.FlapUpdatesPerDeviceSec, "flap-updates/device/s")
		b.ReportMetric(r.LocalRatio, "x-local-bridge-off")
		b.ReportMetric(r.LocalCPURatio, "x-local-bridge-off-cpu")
		b.ReportMetric(r.StartSeconds, "start-s")
	})
}
