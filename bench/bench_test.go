package bench_test

import (
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/sysreg/sysreg/bench"
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
			if base := r.Baseline; base != nil {
				b.ReportMetric(r.ThroughputRatio, "x-baseline")
				b.ReportMetric(base.UpdatesPerSec, "baseline-updates/s")
				b.ReportMetric(base.ConvergeMs.Max, "baseline-converge-ms")
				b.ReportMetric(base.HeapPerSub, "baseline-B/sub")
			}
		})
	}
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
		b.ReportMetric(r.RoundTripUs.P50, "rtt-us")
		b.ReportMetric(r.RoundTripUs.P99, "rtt-p99-us")
		b.ReportMetric(r.Subscribers.ConvergeMs.Max, "converge-ms")
		b.ReportMetric(r.Subscribers.Deliveries.Mean, "deliveries/sub")
	})
}
