package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

// RecoveryConfig configures RunRecovery. The zero value measures data
// directories that saw 10^4, 10^5 and 10^6 config updates over 10,000
// keys.
type RecoveryConfig struct {
	// Sizes: the numbers of updates after which the open is timed, built
	// up in one directory in increasing order. Default 10^4, 10^5, 10^6.
	Sizes []int
	// Keys the updates cycle over. Default 10,000 (in scopes of 100).
	Keys int
	// Opens: how many times each size is opened; the median is reported.
	// Default 3.
	Opens int
	// Writers building the directory concurrently (NoSync): more writers,
	// bigger group commits. Default 100.
	Writers int
	// Dir is where the temporary data directory is made. Default
	// os.TempDir().
	Dir string
	// Progress receives a line per size. nil: none.
	Progress io.Writer
}

func (c RecoveryConfig) withDefaults() RecoveryConfig {
	if len(c.Sizes) == 0 {
		c.Sizes = []int{10_000, 100_000, 1_000_000}
	}
	c.Sizes = slices.Sorted(slices.Values(c.Sizes))
	if c.Keys <= 0 {
		c.Keys = 10_000
	}
	if c.Opens <= 0 {
		c.Opens = 3
	}
	if c.Writers <= 0 {
		c.Writers = 100
	}
	// A key is written by one writer only, so its final value is known.
	c.Writers = gcd(c.Writers, c.Keys)
	return c
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// RecoveryResult is what RunRecovery measured, one row per size.
type RecoveryResult struct {
	Keys int           `json:"keys"`
	Rows []RecoveryRow `json:"rows"`
}

// RecoveryRow is one size.
type RecoveryRow struct {
	Updates int `json:"updates"` // config updates the directory saw
	// OpenMs: wall time of store.Open (page cache warm), over Opens runs.
	OpenMs Latency `json:"open_ms"`
	// RecoveryMs is the recovery's own Elapsed (median run).
	RecoveryMs     float64 `json:"recovery_ms"`
	Replayed       int     `json:"records_replayed"` // journal records after the checkpoint
	CheckpointKeys int     `json:"checkpoint_keys"`
	RestoredKeys   int     `json:"restored_keys"`
	DirBytes       int64   `json:"dir_bytes"`
	BuildS         float64 `json:"build_s"` // writing the updates since the previous size (NoSync)
}

// RunRecovery writes config updates into one data directory (NoSync, for
// speed: a clean Close leaves the same files) and, at each size, closes it
// and times store.Open, checking that every key holds its last value.
func RunRecovery(ctx context.Context, cfg RecoveryConfig) (RecoveryResult, error) {
	cfg = cfg.withDefaults()
	p := &progress{w: cfg.Progress}
	res := RecoveryResult{Keys: cfg.Keys}
	parent, err := tempDir(cfg.Dir, "sysreg-recovery-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(parent)
	dir := filepath.Join(parent, "data")
	scopes := make([]core.Scope, (cfg.Keys+99)/100)
	for i := range scopes {
		scopes[i] = core.ConfigScope("recovery", "s"+strconv.Itoa(i))
	}
	keyNames := make([]string, cfg.Keys)
	for j := range keyNames {
		keyNames[j] = "k" + strconv.Itoa(j)
	}
	done := 0 // updates written so far
	for _, size := range cfg.Sizes {
		p.printf("recovery: writing updates %d…%d", done, size)
		start := time.Now()
		if err := recoveryBuild(ctx, cfg, dir, scopes, keyNames, done, size); err != nil {
			return res, fmt.Errorf("recovery: build %d: %w", size, err)
		}
		row := RecoveryRow{Updates: size, BuildS: time.Since(start).Seconds(), DirBytes: dirBytes(dir)}
		done = size
		var opens []time.Duration
		var reports []float64
		for range cfg.Opens {
			t0 := time.Now()
			st, err := store.Open(dir, store.Options{})
			took := time.Since(t0)
			if err != nil {
				return res, fmt.Errorf("recovery: open %d: %w", size, err)
			}
			rep := st.Recovery()
			row.Replayed, row.CheckpointKeys, row.RestoredKeys = rep.Records, rep.CheckpointKeys, rep.Keys
			opens = append(opens, took)
			reports = append(reports, ms(rep.Elapsed))
			err = recoveryCheck(ctx, st, cfg, scopes, keyNames, size)
			if cerr := st.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return res, fmt.Errorf("recovery: %d: %w", size, err)
			}
		}
		row.OpenMs = latencyOf(opens, time.Millisecond)
		slices.Sort(reports)
		row.RecoveryMs = reports[len(reports)/2]
		p.printf("recovery: %d updates: open %.1f ms, %d records replayed, %d keys, %.1f MiB",
			size, row.OpenMs.P50, row.Replayed, row.RestoredKeys, float64(row.DirBytes)/(1<<20))
		res.Rows = append(res.Rows, row)
	}
	return res, nil
}

// recoveryBuild writes updates from..to-1: update i sets key i mod Keys to
// i. Writer w writes the keys j with j mod Writers == w, in order.
func recoveryBuild(ctx context.Context, cfg RecoveryConfig, dir string, scopes []core.Scope, keys []string, from, to int) error {
	st, err := store.Open(dir, store.Options{NoSync: true})
	if err != nil {
		return err
	}
	defer st.Close()
	errs := make([]error, cfg.Writers)
	var wg sync.WaitGroup
	for w := range cfg.Writers {
		wg.Go(func() {
			o, err := st.Owner(ctx, "builder-"+strconv.Itoa(w), core.OwnerOptions{KeepConfig: true})
			if err != nil {
				errs[w] = err
				return
			}
			first := from + (w-from%cfg.Writers+cfg.Writers)%cfg.Writers
			for i := first; i < to; i += cfg.Writers {
				j := i % cfg.Keys
				if err := o.Update(ctx, scopes[j/100], core.Values{keys[j]: int64(i)}); err != nil {
					errs[w] = fmt.Errorf("update %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return st.Close()
}

// recoveryCheck verifies every key of a reopened store.
func recoveryCheck(ctx context.Context, st *store.Store, cfg RecoveryConfig, scopes []core.Scope, keys []string, n int) error {
	snap, err := st.Snapshot(ctx)
	if err != nil {
		return err
	}
	want := min(n, cfg.Keys)
	if got := snap.Len(core.Config); got != want {
		return fmt.Errorf("%w: %d config keys restored, want %d", ErrWrongState, got, want)
	}
	for j := range want {
		last := j + cfg.Keys*((n-1-j)/cfg.Keys)
		v, ok := snap.Get(scopes[j/100], keys[j])
		if !ok || v != int64(last) {
			return fmt.Errorf("%w: key %s is %v, want %d", ErrWrongState, keys[j], v, last)
		}
	}
	return nil
}
