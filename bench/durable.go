package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

// DurableConfig configures RunDurable. The zero value measures 1, 8, 64
// and 256 writers for 2 s each, beside both raw-bbolt baselines.
type DurableConfig struct {
	// Writers: the concurrent writer counts to measure. Default 1, 8, 64,
	// 256.
	Writers []int
	// Duration of each measurement. Default 2 s. Ignored when Updates is
	// set.
	Duration time.Duration
	// Updates, if positive, makes each writer write exactly this many
	// updates instead of writing for Duration.
	Updates int
	// NoBaselines skips raw bbolt.
	NoBaselines bool
	// Dir is where the temporary data directories are made. Default
	// os.TempDir(). It should be on the disk that is to be measured (not a
	// tmpfs): fsync is real.
	Dir string
	// Progress receives a line per measurement. nil: none.
	Progress io.Writer
}

func (c DurableConfig) withDefaults() DurableConfig {
	if len(c.Writers) == 0 {
		c.Writers = []int{1, 8, 64, 256}
	}
	if c.Duration <= 0 {
		c.Duration = 2 * time.Second
	}
	return c
}

// DurableResult is what RunDurable measured, one row per writer count.
type DurableResult struct {
	DurationS float64      `json:"duration_s"` // configured; 0 with fixed Updates
	Updates   int          `json:"updates_per_writer,omitempty"`
	Rows      []DurableRow `json:"rows"`
}

// DurableRow compares one writer count.
type DurableRow struct {
	Writers int        `json:"writers"`
	Sysreg  DurableRun `json:"sysreg"`
	// Commit is raw bbolt with one DB.Update (one commit, one fsync pair)
	// per update; Batch is raw bbolt DB.Batch with its defaults. nil with
	// NoBaselines.
	Commit *DurableRun `json:"bbolt_commit,omitempty"`
	Batch  *DurableRun `json:"bbolt_batch,omitempty"`
	// Ratios of sysreg's updates/s to the baselines'.
	VsCommit float64 `json:"x_commit"`
	VsBatch  float64 `json:"x_batch"`
}

// DurableRun is one side of a row.
type DurableRun struct {
	Updates       uint64  `json:"updates"`
	Seconds       float64 `json:"seconds"`
	UpdatesPerSec float64 `json:"updates_per_s"`
	// Fsyncs is the number of bbolt commits (each syncs the data pages and
	// then the meta page); FsyncsPerUpdate divides it by Updates.
	Fsyncs          uint64  `json:"fsyncs"`
	FsyncsPerUpdate float64 `json:"fsyncs_per_update"`
	// LatencyUs: per update, from the call to its durable return.
	LatencyUs Latency `json:"latency_us"`
	// Storage writes during the run (flash wear): WriteBytes is what the
	// process wrote to storage (/proc/self/io write_bytes; 0 where that
	// does not exist), PageBytes the bbolt pages the commits wrote (see
	// journal.Stats.PageBytes); each also per update.
	WriteBytes         int64   `json:"write_bytes"`
	BytesPerUpdate     float64 `json:"bytes_per_update"`
	PageBytes          int64   `json:"page_bytes"`
	PageBytesPerUpdate float64 `json:"page_bytes_per_update"`
}

// wearOf fills in the storage-write fields of r from the counters' deltas.
func (r *DurableRun) wearOf(writeBytes, pageBytes int64) {
	r.WriteBytes, r.PageBytes = writeBytes, pageBytes
	r.BytesPerUpdate = ratio(float64(writeBytes), float64(r.Updates))
	r.PageBytesPerUpdate = ratio(float64(pageBytes), float64(r.Updates))
}

// RunDurable measures durable config updates: each writer is its own owner
// updating one key of its own config scope, each update a new value, on an
// embedded store with fsync; beside raw bbolt appending a record of the
// same size per update, with one commit per update and with DB.Batch.
func RunDurable(ctx context.Context, cfg DurableConfig) (DurableResult, error) {
	cfg = cfg.withDefaults()
	p := &progress{w: cfg.Progress}
	res := DurableResult{Updates: cfg.Updates}
	if cfg.Updates <= 0 {
		res.DurationS = cfg.Duration.Seconds()
	}
	for _, w := range cfg.Writers {
		if w <= 0 {
			return res, fmt.Errorf("durable: %d writers", w)
		}
		row := DurableRow{Writers: w}
		var err error
		p.printf("durable: %d writers: sysreg", w)
		if row.Sysreg, err = durableSysreg(ctx, cfg, w); err != nil {
			return res, fmt.Errorf("durable: %d writers: sysreg: %w", w, err)
		}
		if !cfg.NoBaselines {
			p.printf("durable: %d writers: bbolt, one commit per update", w)
			c, err := durableBolt(ctx, cfg, w, false)
			if err != nil {
				return res, fmt.Errorf("durable: %d writers: bbolt commit: %w", w, err)
			}
			p.printf("durable: %d writers: bbolt DB.Batch", w)
			b, err := durableBolt(ctx, cfg, w, true)
			if err != nil {
				return res, fmt.Errorf("durable: %d writers: bbolt batch: %w", w, err)
			}
			row.Commit, row.Batch = &c, &b
			row.VsCommit = ratio(row.Sysreg.UpdatesPerSec, c.UpdatesPerSec)
			row.VsBatch = ratio(row.Sysreg.UpdatesPerSec, b.UpdatesPerSec)
		}
		p.printf("durable: %d writers: sysreg %.0f updates/s (%.3f fsyncs/update), %.1fx one commit per update, %.1fx DB.Batch",
			w, row.Sysreg.UpdatesPerSec, row.Sysreg.FsyncsPerUpdate, row.VsCommit, row.VsBatch)
		res.Rows = append(res.Rows, row)
	}
	return res, nil
}

// runWriters runs w writers calling write(writer, i) until Duration passes
// or each made Updates, and returns the totals.
func runWriters(ctx context.Context, cfg DurableConfig, w int, write func(writer, i int) error) (DurableRun, error) {
	var stop atomic.Bool
	if cfg.Updates <= 0 {
		t := time.AfterFunc(cfg.Duration, func() { stop.Store(true) })
		defer t.Stop()
	}
	lat := make([][]time.Duration, w)
	errs := make([]error, w)
	var wg sync.WaitGroup
	start := time.Now()
	for g := range w {
		wg.Go(func() {
			for i := 0; ; i++ {
				if cfg.Updates > 0 && i >= cfg.Updates || cfg.Updates <= 0 && stop.Load() {
					return
				}
				if err := ctx.Err(); err != nil {
					errs[g] = err
					return
				}
				t0 := time.Now()
				if err := write(g, i); err != nil {
					errs[g] = fmt.Errorf("writer %d: %w", g, err)
					stop.Store(true)
					return
				}
				lat[g] = append(lat[g], time.Since(t0))
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	var all []time.Duration
	for g := range w {
		if errs[g] != nil {
			return DurableRun{}, errs[g]
		}
		all = append(all, lat[g]...)
	}
	n := uint64(len(all))
	return DurableRun{
		Updates:       n,
		Seconds:       took.Seconds(),
		UpdatesPerSec: float64(n) / took.Seconds(),
		LatencyUs:     latencyOf(all, time.Microsecond),
	}, nil
}

func durableSysreg(ctx context.Context, cfg DurableConfig, w int) (DurableRun, error) {
	dir, err := tempDir(cfg.Dir, "sysreg-durable-")
	if err != nil {
		return DurableRun{}, err
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(filepath.Join(dir, "data"), store.Options{})
	if err != nil {
		return DurableRun{}, err
	}
	defer st.Close()
	owners := make([]store.Owner, w)
	scopes := make([]core.Scope, w)
	for g := range owners {
		name := "writer-" + strconv.Itoa(g)
		if owners[g], err = st.Owner(ctx, name, core.OwnerOptions{KeepConfig: true}); err != nil {
			return DurableRun{}, err
		}
		scopes[g] = core.ConfigScope("durable", name)
	}
	// A first update per writer inserts its key and settles the journal
	// (the sequence reservation of Open), so the count below is the run's.
	for g, o := range owners {
		if err := o.Update(ctx, scopes[g], core.Values{"n": int64(-1)}); err != nil {
			return DurableRun{}, err
		}
	}
	before := storeStats(st).Journal
	io0 := writeBytes()
	run, err := runWriters(ctx, cfg, w, func(g, i int) error {
		return owners[g].Update(ctx, scopes[g], core.Values{"n": int64(i)})
	})
	if err != nil {
		return run, err
	}
	after := storeStats(st).Journal
	run.wearOf(writeBytes()-io0, after.PageBytes-before.PageBytes)
	run.Fsyncs = after.Commits - before.Commits
	run.FsyncsPerUpdate = ratio(float64(run.Fsyncs), float64(run.Updates))
	// Every writer's last value must be there.
	snap, err := st.Snapshot(ctx)
	if err != nil {
		return run, err
	}
	if got := snap.Len(core.Config); got != w {
		return run, fmt.Errorf("%w: %d config keys, want %d", ErrWrongState, got, w)
	}
	return run, nil
}

// boltRecordBytes is the size of a baseline record: about what the journal
// writes per update in this scenario (a CBOR mutation with its scope, key
// and owner, plus the record header).
const boltRecordBytes = 64

func durableBolt(ctx context.Context, cfg DurableConfig, w int, batch bool) (DurableRun, error) {
	dir, err := tempDir(cfg.Dir, "sysreg-bbolt-")
	if err != nil {
		return DurableRun{}, err
	}
	defer os.RemoveAll(dir)
	db, err := bolt.Open(filepath.Join(dir, "baseline.db"), 0o600, nil)
	if err != nil {
		return DurableRun{}, err
	}
	defer db.Close()
	bucket := []byte("records")
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket(bucket)
		return err
	}); err != nil {
		return DurableRun{}, err
	}
	var seq atomic.Uint64
	var commits atomic.Uint64
	// DB.Batch runs the functions of one batch in one transaction, one
	// after the other; a commit is counted once per transaction.
	var lastTx atomic.Pointer[bolt.Tx]
	put := func(tx *bolt.Tx) error {
		if lastTx.Swap(tx) != tx {
			tx.OnCommit(func() { commits.Add(1) })
		}
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], seq.Add(1))
		v := make([]byte, boltRecordBytes)
		copy(v, k[:])
		return tx.Bucket(bucket).Put(k[:], v)
	}
	pages0, io0 := boltPageBytes(db, 0), writeBytes()
	run, err := runWriters(ctx, cfg, w, func(int, int) error {
		if batch {
			return db.Batch(put)
		}
		return db.Update(put)
	})
	if err != nil {
		return run, err
	}
	run.Fsyncs = commits.Load()
	run.wearOf(writeBytes()-io0, boltPageBytes(db, run.Fsyncs)-pages0)
	run.FsyncsPerUpdate = ratio(float64(run.Fsyncs), float64(run.Updates))
	return run, nil
}
