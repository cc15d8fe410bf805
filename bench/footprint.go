package bench

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
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
	// The two parts of IdleRSSBytes (of the same start): anonymous memory
	// (the Go heap, stacks, the runtime's own) and file pages mapped (the
	// executable's and libraries' code and read-only data, journal.db).
	IdleAnonBytes uint64 `json:"idle_anon_bytes"`
	IdleFileBytes uint64 `json:"idle_file_bytes"`
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
		var rss []rssOf
		for i := range cfg.Starts {
			sock := filepath.Join(parent, "s"+strconv.Itoa(i)+".sock")
			ready, r, err := footprintStart(ctx, cfg, side.dir, sock, side.keys)
			if err != nil {
				return res, fmt.Errorf("footprint: %d keys: %w", side.keys, err)
			}
			readies = append(readies, ready)
			rss = append(rss, r)
		}
		side.run.ReadyMs = latencyOf(readies, time.Millisecond)
		slices.SortFunc(rss, func(a, b rssOf) int { return cmp.Compare(a.total, b.total) })
		m := rss[len(rss)/2]
		side.run.IdleRSSBytes, side.run.IdleAnonBytes, side.run.IdleFileBytes = m.total, m.anon, m.file
		p.printf("footprint: %d keys: ready in %.1f ms, idle RSS %.1f MiB (anonymous %.1f, file %.1f)", side.keys, side.run.ReadyMs.P50,
			mib(m.total), mib(m.anon), mib(m.file))
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
func footprintStart(ctx context.Context, cfg FootprintConfig, dir, sock string, keys int) (time.Duration, rssOf, error) {
	var stderr bytes.Buffer
	cmd := testexec.CommandContext(ctx, cfg.Exe, "serve", "--data-dir", dir, "--socket", sock, "--log-level", "error")
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, rssOf{}, err
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
			return 0, rssOf{}, fmt.Errorf("%s serve exited before it was ready (%v); stderr: %s", cfg.Exe, werr, stderr.String())
		default:
		}
		if time.Since(start) > 30*time.Second || ctx.Err() != nil {
			return 0, rssOf{}, fmt.Errorf("sysregd not ready after %v: %w", time.Since(start), err)
		}
		time.Sleep(200 * time.Microsecond)
	}
	ready := time.Since(start)
	snap, err := c.Snapshot(ctx)
	c.Close()
	if err != nil {
		return 0, rssOf{}, err
	}
	if got := snap.Len(core.Config); got != keys {
		return 0, rssOf{}, fmt.Errorf("%w: the daemon serves %d config keys, want %d", ErrWrongState, got, keys)
	}
	time.Sleep(cfg.Idle)
	rss, err := vmRSS(cmd.Process.Pid)
	return ready, rss, err
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// rssOf is a process's resident set in bytes: all of it (VmRSS),
// anonymous (RssAnon) and file-backed (RssFile).
type rssOf struct{ total, anon, file uint64 }

// vmRSS reads a process's resident set from /proc (Linux).
func vmRSS(pid int) (rssOf, error) {
	var r rssOf
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return r, fmt.Errorf("bench: RSS: %w", err)
	}
	defer f.Close()
	fields := map[string]*uint64{"VmRSS:": &r.total, "RssAnon:": &r.anon, "RssFile:": &r.file}
	found := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, _ := strings.Cut(sc.Text(), "\t")
		if p := fields[name]; p != nil {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return r, fmt.Errorf("bench: RSS: %s %q: %w", name, rest, err)
			}
			*p = kb << 10
			found++
		}
	}
	if found != len(fields) {
		return r, fmt.Errorf("bench: RSS: /proc/%d/status lacks VmRSS, RssAnon or RssFile", pid)
	}
	return r, nil
}
