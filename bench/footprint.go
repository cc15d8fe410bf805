package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/testexec"
	"github.com/sysreg/sysreg/store"
)

// FootprintConfig configures RunFootprint.
type FootprintConfig struct {
	// Exe is the sysregd binary to start (required; sysregd bench passes
	// itself).
	Exe string
	// Keys of saved config in the data directory. Default 10,000, in
	// scopes of 100 keys.
	Keys int
	// Starts per side, the median reported. Default 3.
	Starts int
	// Idle is how long the daemon sits idle before its RSS is read.
	// Default 1 s.
	Idle time.Duration
	// Dir is where the data directories and sockets go. Default
	// os.TempDir().
	Dir      string
	Progress io.Writer
}

// FootprintResult is the appliance footprint of "sysregd serve": the time
// from exec until a client's Dial succeeds (the store is open and
// serving), and the resident set once idle, with Keys of config beside the
// same daemon on an empty data directory.
type FootprintResult struct {
	Keys   int          `json:"keys"`
	Loaded FootprintRun `json:"loaded"`
	Empty  FootprintRun `json:"empty"`
}

// FootprintRun is one side of a footprint measurement.
type FootprintRun struct {
	ReadyMs      Latency `json:"ready_ms"`       // exec → first successful Dial
	IdleRSSBytes uint64  `json:"idle_rss_bytes"` // VmRSS after Idle, median over starts
}

func (c FootprintConfig) withDefaults() FootprintConfig {
	if c.Keys <= 0 {
		c.Keys = 10_000
	}
	if c.Starts <= 0 {
		c.Starts = 3
	}
	if c.Idle <= 0 {
		c.Idle = time.Second
	}
	return c
}

// RunFootprint measures sysregd serve's start-up and idle memory.
func RunFootprint(ctx context.Context, cfg FootprintConfig) (FootprintResult, error) {
	cfg = cfg.withDefaults()
	p := &progress{w: cfg.Progress}
	res := FootprintResult{Keys: cfg.Keys}
	if cfg.Exe == "" {
		return res, errors.New("bench: footprint: no sysregd binary given")
	}
	parent, err := tempDir(cfg.Dir, "sysreg-footprint-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(parent)
	loaded, empty := filepath.Join(parent, "loaded"), filepath.Join(parent, "empty")
	p.printf("footprint: writing %d config keys", cfg.Keys)
	if err := footprintBuild(ctx, loaded, cfg.Keys); err != nil {
		return res, fmt.Errorf("footprint: build: %w", err)
	}
	for _, side := range []struct {
		dir  string
		keys int
		run  *FootprintRun
	}{{empty, 0, &res.Empty}, {loaded, cfg.Keys, &res.Loaded}} {
		var readies []time.Duration
		var rss []time.Duration // RSS in bytes, sorted as durations for latencyOf's median
		for i := range cfg.Starts {
			sock := filepath.Join(parent, "s"+strconv.Itoa(i)+".sock")
			ready, r, err := footprintStart(ctx, cfg, side.dir, sock, side.keys)
			if err != nil {
				return res, fmt.Errorf("footprint: %d keys: %w", side.keys, err)
			}
			readies = append(readies, ready)
			rss = append(rss, time.Duration(r))
		}
		side.run.ReadyMs = latencyOf(readies, time.Millisecond)
		side.run.IdleRSSBytes = uint64(latencyOf(rss, 1).P50)
		p.printf("footprint: %d keys: ready in %.1f ms, idle RSS %.1f MiB", side.keys, side.run.ReadyMs.P50, float64(side.run.IdleRSSBytes)/(1<<20))
	}
	return res, nil
}

// footprintBuild writes keys saved config keys into a new data directory.
func footprintBuild(ctx context.Context, dir string, keys int) error {
	st, err := store.Open(dir, store.Options{NoSync: true})
	if err != nil {
		return err
	}
	defer st.Close()
	o, err := st.Owner(ctx, "footprint", core.OwnerOptions{KeepConfig: true})
	if err != nil {
		return err
	}
	for s := 0; s*100 < keys; s++ {
		vals := core.Values{}
		for k := s * 100; k < min(keys, (s+1)*100); k++ {
			vals["k"+strconv.Itoa(k)] = int64(k)
		}
		if err := o.Update(ctx, core.ConfigScope("footprint", "s"+strconv.Itoa(s)), vals); err != nil {
			return err
		}
	}
	return st.Close()
}

// footprintStart starts the daemon on dir, times it until a Dial succeeds,
// checks that it serves the keys, lets it idle, reads its RSS and stops it
// with SIGTERM.
func footprintStart(ctx context.Context, cfg FootprintConfig, dir, sock string, keys int) (time.Duration, uint64, error) {
	var stderr bytes.Buffer
	cmd := testexec.CommandContext(ctx, cfg.Exe, "serve", "--data-dir", dir, "--socket", sock, "--log-level", "error")
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-exited
	}()
	var c *store.Client
	for {
		var err error
		if c, err = store.Dial(ctx, sock); err == nil {
			break
		}
		select {
		case werr := <-exited:
			exited <- werr // for the deferred wait
			return 0, 0, fmt.Errorf("%s serve exited before it was ready (%v); stderr: %s", cfg.Exe, werr, stderr.String())
		default:
		}
		if time.Since(start) > 30*time.Second || ctx.Err() != nil {
			return 0, 0, fmt.Errorf("sysregd not ready after %v: %w", time.Since(start), err)
		}
		time.Sleep(200 * time.Microsecond)
	}
	ready := time.Since(start)
	snap, err := c.Snapshot(ctx)
	c.Close()
	if err != nil {
		return 0, 0, err
	}
	if got := snap.Len(core.Config); got != keys {
		return 0, 0, fmt.Errorf("%w: the daemon serves %d config keys, want %d", ErrWrongState, got, keys)
	}
	time.Sleep(cfg.Idle)
	rss, err := vmRSS(cmd.Process.Pid)
	return ready, rss, err
}

// vmRSS reads a process's resident set from /proc (Linux).
func vmRSS(pid int) (uint64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("bench: RSS: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("bench: RSS: no VmRSS in /proc/%d/status", pid)
}
