package store_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

// BenchmarkApplyVsCommit: Owner.Apply of one put (R44; the undo
// information and deadline journaled in the same record), and Apply
// followed by Confirm, against Commit of the same put, durable (real
// fsync), in alternating blocks of one run. Issue #10's target: Apply with
// confirm ≤ 1.5× Commit. Reports apply/commit and apply+confirm/commit.
func BenchmarkApplyVsCommit(b *testing.B) {
	ctx := context.Background()
	s, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	o, err := s.Owner(ctx, "w", core.OwnerOptions{KeepConfig: true})
	if err != nil {
		b.Fatal(err)
	}
	sc := core.ConfigScope("net", "eth0")
	const block = 16
	var commit, apply, confirmed time.Duration
	i := int64(0)
	for b.Loop() {
		for mode := range 2 {
			start := time.Now()
			for range block {
				i++
				put := core.Put(sc, core.Values{"n": i, "address": "10.0.0." + strconv.FormatInt(i%250, 10)})
				switch mode {
				case 0:
					err = o.Commit(ctx, put)
				default:
					var id uint64
					if id, err = o.Apply(ctx, time.Hour, put); err == nil {
						err = s.Confirm(ctx, id)
					}
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			d := time.Since(start)
			switch mode {
			case 0:
				commit += d
			case 1:
				confirmed += d
			}
		}
		// Apply alone: the confirms of these happen outside the clock.
		ids := make([]uint64, 0, block)
		start := time.Now()
		for range block {
			i++
			id, err := o.Apply(ctx, time.Hour, core.Put(sc, core.Values{"n": i, "address": "10.0.0." + strconv.FormatInt(i%250, 10)}))
			if err != nil {
				b.Fatal(err)
			}
			ids = append(ids, id)
		}
		apply += time.Since(start)
		for _, id := range ids {
			if err := s.Confirm(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	}
	n := float64(b.N * block)
	b.ReportMetric(float64(commit.Microseconds())/n, "us/commit")
	b.ReportMetric(float64(apply.Microseconds())/n, "us/apply")
	b.ReportMetric(float64(confirmed.Microseconds())/n, "us/apply+confirm")
	b.ReportMetric(float64(apply)/float64(commit), "apply/commit")
	b.ReportMetric(float64(confirmed)/float64(commit), "apply+confirm/commit")
}

// BenchmarkApplyRecovery: store.Open of a data dir of 10,000 config
// updates with 1,000 applies pending (R44: undone, in one record, before
// Open returns) against the same dir with them confirmed, copies of both
// opened alternately in one run. Issue #10's target: ≤ 0.5 s on top of
// normal recovery. Reports open-ms of each and extra-ms.
func BenchmarkApplyRecovery(b *testing.B) {
	const pending = 1000
	base := b.TempDir()
	dirs := map[bool]string{false: filepath.Join(base, "confirmed"), true: filepath.Join(base, "pending")}
	for withPending, dir := range dirs {
		buildRecoveryDir(b, dir, 10000, 10000)
		s, err := store.Open(dir, store.Options{NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		o, err := s.Owner(context.Background(), "ui", core.OwnerOptions{KeepConfig: true})
		if err != nil {
			b.Fatal(err)
		}
		for i := range pending {
			id, err := o.Apply(context.Background(), time.Hour, core.Put(core.ConfigScope("apply", "s"+strconv.Itoa(i%10)), core.Values{"k" + strconv.Itoa(i): int64(i)}))
			if err != nil {
				b.Fatal(err)
			}
			if !withPending {
				if err := s.Confirm(context.Background(), id); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	var took [2]time.Duration
	n := 0
	for b.Loop() {
		for k, withPending := range []bool{false, true} {
			b.StopTimer()
			dir := filepath.Join(base, "copy"+strconv.Itoa(n)+strconv.FormatBool(withPending))
			copyDir(b, dirs[withPending], dir)
			b.StartTimer()
			start := time.Now()
			s, err := store.Open(dir, store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			if withPending && len(s.UndoneAtOpen()) != pending {
				b.Fatalf("undid %d applies at Open, want %d", len(s.UndoneAtOpen()), pending)
			}
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
			took[k] += time.Since(start)
			b.StopTimer()
			os.RemoveAll(dir)
			b.StartTimer()
		}
		n++
	}
	b.ReportMetric(float64(took[0].Microseconds())/1000/float64(n), "open-ms/confirmed")
	b.ReportMetric(float64(took[1].Microseconds())/1000/float64(n), "open-ms/pending")
	b.ReportMetric(float64((took[1]-took[0]).Microseconds())/1000/float64(n), "extra-ms")
}

// copyDir copies the regular files of src into a new dst.
func copyDir(b *testing.B, src, dst string) {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		b.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		in, err := os.Open(filepath.Join(src, e.Name()))
		if err != nil {
			b.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dst, e.Name()))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			b.Fatal(err)
		}
		in.Close()
		if err := out.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
