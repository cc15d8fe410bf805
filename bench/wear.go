package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

// WearConfig configures RunWear. The zero value gives the figures the
// README quotes.
type WearConfig struct {
	// Updates: durable updates of each per-update row, spread evenly over
	// its writers. Default 2,000.
	Updates int
	// Writers: the writer counts of the per-update rows. Default 1 and 64.
	Writers []int
	// CheckpointRecords: the checkpoint interval of the checkpoint cycle,
	// in records. Default 10,000 (the store's default, R28).
	CheckpointRecords int
	// CheckpointKeys: config keys the store holds during the cycle (what
	// the checkpoint stores). Default 1,000.
	CheckpointKeys int
	// Day is the typical appliance day; zero fields take its defaults.
	Day DayMix
	// Dir is where the temporary data directories are made. Default
	// os.TempDir(). It must be on the storage to be measured (not a tmpfs:
	// a tmpfs writes nothing to storage).
	Dir string
	// Progress receives a line per measurement. nil: none.
	Progress io.Writer
}

// DayMix is the typical appliance day of RunWear, run as fast as it goes
// (the figures do not depend on the pace: every config update is its own
// durable commit, as it would be at a few a minute) and scaled to 24 h:
//
//   - ConfigPerMinute config updates a minute, each setting one of
//     ConfigKeys keys of the scope config/settings/app (owner "settings",
//     KeepConfig: saved config);
//   - StatePerSecond state updates a second, toggling the key "up" of
//     state/link/eth0 (owner "link"): flapping state, which never touches
//     the disk (R26) but consumes sequence numbers (R7);
//   - SessionsPerHour owners a hour that come and go: each attaches,
//     writes 5 runtime config keys to config/session/<n> and one state
//     key, and closes, which deletes its runtime config (R13).
type DayMix struct {
	// Hours simulated; the result is scaled to 24 h. Default 24.
	Hours float64 `json:"hours"`
	// ConfigPerMinute: config updates a minute. Default 3.
	ConfigPerMinute int `json:"config_per_minute"`
	// ConfigKeys: the keys the config updates cycle over. Default 200.
	ConfigKeys int `json:"config_keys"`
	// StatePerSecond: state updates a second. Default 10.
	StatePerSecond int `json:"state_per_second"`
	// SessionsPerHour: owners that come and go, a hour. Default 6.
	SessionsPerHour int `json:"sessions_per_hour"`
}

func (c WearConfig) withDefaults() WearConfig {
	if c.Updates <= 0 {
		c.Updates = 2000
	}
	if len(c.Writers) == 0 {
		c.Writers = []int{1, 64}
	}
	if c.CheckpointRecords <= 0 {
		c.CheckpointRecords = 10000
	}
	if c.CheckpointKeys <= 0 {
		c.CheckpointKeys = 1000
	}
	d := &c.Day
	if d.Hours <= 0 {
		d.Hours = 24
	}
	if d.ConfigPerMinute <= 0 {
		d.ConfigPerMinute = 3
	}
	if d.ConfigKeys <= 0 {
		d.ConfigKeys = 200
	}
	if d.StatePerSecond <= 0 {
		d.StatePerSecond = 10
	}
	if d.SessionsPerHour <= 0 {
		d.SessionsPerHour = 6
	}
	return c
}

// WearResult is what RunWear measured. Each figure has two sides: sysreg
// and raw bbolt appending a 64-byte record in a transaction of its own
// (one DB.Update per record, bbolt's default options), measured one after
// the other in the same process.
type WearResult struct {
	// Supported is false where /proc/self/io does not exist (not Linux);
	// Reason then says why, and every WriteBytes figure is 0 (PageBytes
	// still hold).
	Supported  bool           `json:"supported"`
	Reason     string         `json:"reason,omitempty"`
	Rows       []WearRow      `json:"rows"`
	Checkpoint WearCheckpoint `json:"checkpoint"`
	Day        WearDay        `json:"day"`
}

// WearRow is one writer count: the same updates as RunDurable's, a fixed
// number of them.
type WearRow struct {
	Writers int        `json:"writers"`
	Sysreg  DurableRun `json:"sysreg"`
	Bolt    DurableRun `json:"bbolt_commit"`
	// Ratio of sysreg's bytes per update to bbolt's (write_bytes, or page
	// bytes where /proc/self/io does not exist).
	Ratio float64 `json:"x_bbolt"`
}

// WearCheckpoint is one checkpoint cycle: CheckpointRecords updates by 64
// writers over CheckpointKeys keys, the last of which makes the checkpoint
// due, and the checkpoint. Raw bbolt's cycle appends as many records and
// then, in one DB.Update, deletes them and puts a value as large as
// sysreg's checkpoint.
type WearCheckpoint struct {
	Records   int       `json:"records"`
	Keys      int       `json:"keys"`
	DataBytes int64     `json:"data_bytes"` // the checkpoint's data
	Sysreg    WearCycle `json:"sysreg"`
	Bolt      WearCycle `json:"bbolt"`
}

// WearCycle is one side of a checkpoint cycle.
type WearCycle struct {
	// The whole cycle.
	WriteBytes int64 `json:"write_bytes"`
	PageBytes  int64 `json:"page_bytes"`
	// The checkpoint: from the update that made it due (included) until
	// it was durable.
	CheckpointWriteBytes int64 `json:"checkpoint_write_bytes"`
	CheckpointPageBytes  int64 `json:"checkpoint_page_bytes"`
	// The cycle amortised over its records.
	BytesPerUpdate     float64 `json:"bytes_per_update"`
	PageBytesPerUpdate float64 `json:"page_bytes_per_update"`
}

// WearDay is the typical day, scaled to 24 h.
type WearDay struct {
	Mix DayMix `json:"mix"`
	// Per day: what the mix makes, and the journal records it wrote
	// (config updates and owner deaths; sequence reservations are
	// commits without a record).
	ConfigUpdates int `json:"config_updates"`
	StateUpdates  int `json:"state_updates"`
	Sessions      int `json:"sessions"`
	Records       int `json:"records"`
	Commits       int `json:"commits"`
	// Sysreg: bytes per day. WithCheckpoint adds the day's share of
	// checkpoints (Records/CheckpointRecords of one checkpoint of the
	// day's config, measured by reopening the store with a checkpoint
	// due; Open's own writes included).
	Sysreg                   WearDaySide `json:"sysreg"`
	CheckpointWriteBytes     int64       `json:"checkpoint_write_bytes"`
	CheckpointPageBytes      int64       `json:"checkpoint_page_bytes"`
	WithCheckpointWriteBytes int64       `json:"with_checkpoint_write_bytes"`
	// Bolt: raw bbolt appending the day's Records, one DB.Update each.
	Bolt WearDaySide `json:"bbolt"`
}

// WearDaySide is one side of the day, per 24 h.
type WearDaySide struct {
	WriteBytes int64 `json:"write_bytes"`
	PageBytes  int64 `json:"page_bytes"`
}

// RunWear measures flash wear: the bytes written to storage per durable
// config update, from /proc/self/io (write_bytes: every page the process
// dirtied in the page cache, counted in the page cache's units) and from
// the bbolt pages the commits wrote, for each writer count, per checkpoint
// cycle and per typical day, beside raw bbolt.
func RunWear(ctx context.Context, cfg WearConfig) (WearResult, error) {
	cfg = cfg.withDefaults()
	p := &progress{w: cfg.Progress}
	var res WearResult
	if _, err := readWriteBytes(); err != nil {
		res.Reason = err.Error()
	} else {
		res.Supported = true
	}
	for _, w := range cfg.Writers {
		if w <= 0 {
			return res, fmt.Errorf("wear: %d writers", w)
		}
		d := DurableConfig{Updates: max(1, cfg.Updates/w), Dir: cfg.Dir}
		row := WearRow{Writers: w}
		var err error
		p.printf("wear: %d writers: sysreg", w)
		if row.Sysreg, err = durableSysreg(ctx, d, w); err != nil {
			return res, fmt.Errorf("wear: %d writers: sysreg: %w", w, err)
		}
		p.printf("wear: %d writers: bbolt, one commit per update", w)
		if row.Bolt, err = durableBolt(ctx, d, w, false); err != nil {
			return res, fmt.Errorf("wear: %d writers: bbolt: %w", w, err)
		}
		if res.Supported {
			row.Ratio = ratio(row.Sysreg.BytesPerUpdate, row.Bolt.BytesPerUpdate)
		} else {
			row.Ratio = ratio(row.Sysreg.PageBytesPerUpdate, row.Bolt.PageBytesPerUpdate)
		}
		p.printf("wear: %d writers: sysreg %.0f B/update (%.0f page B), bbolt %.0f B/update (%.0f page B)", w,
			row.Sysreg.BytesPerUpdate, row.Sysreg.PageBytesPerUpdate, row.Bolt.BytesPerUpdate, row.Bolt.PageBytesPerUpdate)
		res.Rows = append(res.Rows, row)
	}
	var err error
	p.printf("wear: checkpoint cycle of %d records", cfg.CheckpointRecords)
	if res.Checkpoint, err = wearCheckpoint(ctx, cfg); err != nil {
		return res, fmt.Errorf("wear: checkpoint: %w", err)
	}
	p.printf("wear: typical day (%.4g h)", cfg.Day.Hours)
	if res.Day, err = wearDay(ctx, cfg); err != nil {
		return res, fmt.Errorf("wear: day: %w", err)
	}
	return res, nil
}

// readWriteBytes returns write_bytes of /proc/self/io.
func readWriteBytes() (int64, error) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, fmt.Errorf("no storage write counter on %s: %w", runtime.GOOS, err)
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("write_bytes:")); ok {
			return strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
		}
	}
	return 0, fmt.Errorf("no write_bytes in /proc/self/io")
}

// writeBytes is readWriteBytes, 0 where unsupported.
func writeBytes() int64 {
	n, _ := readWriteBytes()
	return n
}

// boltPageBytes is what bbolt's commits wrote to db: the pages they
// allocated, plus a meta page for each of commits.
func boltPageBytes(db *bolt.DB, commits uint64) int64 {
	st := db.Stats()
	return st.TxStats.GetPageAlloc() + int64(commits)*int64(db.Info().PageSize)
}

// wearMark is a reading of both counters.
type wearMark struct{ io, pages int64 }

func (a wearMark) to(b wearMark) wearMark { return wearMark{b.io - a.io, b.pages - a.pages} }

// parallel runs n calls of write, spread over w goroutines.
func parallel(ctx context.Context, w, n int, write func(g, i int) error) error {
	var left atomic.Int64
	left.Store(int64(n))
	errs := make([]error, w)
	var wg sync.WaitGroup
	for g := range w {
		wg.Go(func() {
			for {
				i := left.Add(-1)
				if i < 0 || ctx.Err() != nil {
					errs[g] = ctx.Err()
					return
				}
				if err := write(g, int(i)); err != nil {
					errs[g] = fmt.Errorf("writer %d: %w", g, err)
					left.Store(0)
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
	return nil
}

const cycleWriters = 64

func wearCheckpoint(ctx context.Context, cfg WearConfig) (WearCheckpoint, error) {
	res := WearCheckpoint{Records: cfg.CheckpointRecords, Keys: cfg.CheckpointKeys}
	dir, err := tempDir(cfg.Dir, "sysreg-wear-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(filepath.Join(dir, "data"), store.Options{CheckpointRecords: cfg.CheckpointRecords})
	if err != nil {
		return res, err
	}
	defer st.Close()
	owners := make([]store.Owner, cycleWriters)
	for g := range owners {
		if owners[g], err = st.Owner(ctx, "writer-"+strconv.Itoa(g), core.OwnerOptions{KeepConfig: true}); err != nil {
			return res, err
		}
	}
	perWriter := (cfg.CheckpointKeys + cycleWriters - 1) / cycleWriters
	update := func(g, i int) error {
		scope := core.ConfigScope("wear", "writer-"+strconv.Itoa(g))
		return owners[g].Update(ctx, scope, core.Values{"k" + strconv.Itoa(i%perWriter): int64(i)})
	}
	mark := func() wearMark { return wearMark{writeBytes(), storeStats(st).Journal.PageBytes} }
	js := storeStats(st).Journal
	fill := cfg.CheckpointRecords - js.Records - 1
	if fill < 0 {
		return res, fmt.Errorf("%w: %d records before the cycle", ErrWrongState, js.Records)
	}
	start := mark()
	if err := parallel(ctx, cycleWriters, fill, update); err != nil {
		return res, err
	}
	before := mark()
	if err := update(0, fill); err != nil {
		return res, err
	}
	if err := waitFor(ctx, 30*time.Second, func() bool { return storeStats(st).Journal.Checkpoints > js.Checkpoints }); err != nil {
		return res, fmt.Errorf("checkpoint: %w", err)
	}
	end := mark()
	res.DataBytes = storeStats(st).Journal.CheckpointBytes
	res.Sysreg = cycleOf(start.to(end), before.to(end), cfg.CheckpointRecords)

	res.Bolt, err = boltCycle(ctx, cfg, res.DataBytes)
	return res, err
}

func cycleOf(cycle, ckpt wearMark, records int) WearCycle {
	return WearCycle{
		WriteBytes: cycle.io, PageBytes: cycle.pages,
		CheckpointWriteBytes: ckpt.io, CheckpointPageBytes: ckpt.pages,
		BytesPerUpdate:     ratio(float64(cycle.io), float64(records)),
		PageBytesPerUpdate: ratio(float64(cycle.pages), float64(records)),
	}
}

// waitFor polls cond until it holds, ctx ends or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: not within %v", ErrWrongState, timeout)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// boltLog is the raw-bbolt baseline: one DB.Update per 64-byte record,
// bbolt's default options.
type boltLog struct {
	db      *bolt.DB
	next    atomic.Uint64
	commits atomic.Uint64
}

var boltBucket = []byte("records")

func openBoltLog(dir string) (*boltLog, error) {
	db, err := bolt.Open(filepath.Join(dir, "baseline.db"), 0o600, nil)
	if err != nil {
		return nil, err
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket(boltBucket)
		return err
	}); err != nil {
		_ = db.Close() // the error to report is the one above
		return nil, err
	}
	return &boltLog{db: db}, nil
}

func (l *boltLog) update(fn func(tx *bolt.Tx) error) error {
	err := l.db.Update(fn)
	if err == nil {
		l.commits.Add(1)
	}
	return err
}

func (l *boltLog) append() error {
	return l.update(func(tx *bolt.Tx) error {
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], l.next.Add(1))
		v := make([]byte, boltRecordBytes)
		copy(v, k[:])
		return tx.Bucket(boltBucket).Put(k[:], v)
	})
}

func (l *boltLog) mark() wearMark {
	return wearMark{writeBytes(), boltPageBytes(l.db, l.commits.Load())}
}

func boltCycle(ctx context.Context, cfg WearConfig, dataBytes int64) (WearCycle, error) {
	dir, err := tempDir(cfg.Dir, "sysreg-wear-bbolt-")
	if err != nil {
		return WearCycle{}, err
	}
	defer os.RemoveAll(dir)
	l, err := openBoltLog(dir)
	if err != nil {
		return WearCycle{}, err
	}
	defer l.db.Close()
	start := l.mark()
	if err := parallel(ctx, cycleWriters, cfg.CheckpointRecords-1, func(int, int) error { return l.append() }); err != nil {
		return WearCycle{}, err
	}
	before := l.mark()
	if err := l.append(); err != nil {
		return WearCycle{}, err
	}
	// The checkpoint: the snapshot in, the records out, one transaction.
	err = l.update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(boltBucket); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(boltBucket); err != nil {
			return err
		}
		snap, err := tx.CreateBucketIfNotExists([]byte("checkpoint"))
		if err != nil {
			return err
		}
		return snap.Put([]byte("data"), make([]byte, dataBytes))
	})
	if err != nil {
		return WearCycle{}, err
	}
	end := l.mark()
	return cycleOf(start.to(end), before.to(end), cfg.CheckpointRecords), nil
}

// dayCounts is what a mix makes in its Hours.
func (d DayMix) counts() (config, state, sessions int) {
	minutes := int(d.Hours * 60)
	return minutes * d.ConfigPerMinute, minutes * 60 * d.StatePerSecond, int(d.Hours * float64(d.SessionsPerHour))
}

func wearDay(ctx context.Context, cfg WearConfig) (WearDay, error) {
	mix := cfg.Day
	res := WearDay{Mix: mix}
	dir, err := tempDir(cfg.Dir, "sysreg-wear-day-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	data := filepath.Join(dir, "data")
	st, err := store.Open(data, store.Options{CheckpointRecords: cfg.CheckpointRecords})
	if err != nil {
		return res, err
	}
	defer func() { _ = st.Close() }() // closed below; a second Close is a no-op
	settings, err := st.Owner(ctx, "settings", core.OwnerOptions{KeepConfig: true})
	if err != nil {
		return res, err
	}
	link, err := st.Owner(ctx, "link", core.OwnerOptions{})
	if err != nil {
		return res, err
	}
	app := core.ConfigScope("settings", "app")
	all := core.Values{}
	for k := range mix.ConfigKeys {
		all["k"+strconv.Itoa(k)] = "initial value " + strconv.Itoa(k)
	}
	if err := settings.Update(ctx, app, all); err != nil {
		return res, err
	}
	eth0 := core.StateScope("link", "eth0")
	config, state, sessions := mix.counts()
	minutes := int(mix.Hours * 60)
	js0 := storeStats(st).Journal
	m0 := wearMark{writeBytes(), js0.PageBytes}
	n, s, sess := 0, 0, 0
	for m := range minutes {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		for range mix.ConfigPerMinute {
			v := core.Values{"k" + strconv.Itoa(n%mix.ConfigKeys): "value " + strconv.Itoa(n)}
			if err := settings.Update(ctx, app, v); err != nil {
				return res, err
			}
			n++
		}
		for range 60 * mix.StatePerSecond {
			if err := link.Update(ctx, eth0, core.Values{"up": s%2 == 0}); err != nil {
				return res, err
			}
			s++
		}
		for ; sess < sessions && sess*minutes <= m*sessions; sess++ {
			if err := daySession(ctx, st, sess); err != nil {
				return res, err
			}
		}
	}
	js := storeStats(st).Journal
	day := m0.to(wearMark{writeBytes(), js.PageBytes})
	scale := 24 / mix.Hours
	per := func(v int) int { return int(float64(v)*scale + 0.5) }
	res.ConfigUpdates, res.StateUpdates, res.Sessions = per(config), per(state), per(sessions)
	records := int(js.Appends - js0.Appends)
	res.Records, res.Commits = per(records), per(int(js.Commits-js0.Commits))
	res.Sysreg = WearDaySide{int64(float64(day.io) * scale), int64(float64(day.pages) * scale)}

	// One checkpoint of the day's config: reopen with a checkpoint due.
	if err := st.Close(); err != nil {
		return res, err
	}
	before := writeBytes()
	st2, err := store.Open(data, store.Options{CheckpointRecords: 1})
	if err != nil {
		return res, err
	}
	err = waitFor(ctx, 30*time.Second, func() bool { return storeStats(st2).Journal.Checkpoints > 0 })
	js2 := storeStats(st2).Journal
	res.CheckpointWriteBytes, res.CheckpointPageBytes = writeBytes()-before, js2.PageBytes
	if cerr := st2.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return res, err
	}
	share := float64(res.Records) / float64(cfg.CheckpointRecords)
	res.WithCheckpointWriteBytes = res.Sysreg.WriteBytes + int64(share*float64(res.CheckpointWriteBytes))

	// Raw bbolt: the same records, one commit each.
	bdir, err := tempDir(cfg.Dir, "sysreg-wear-day-bbolt-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(bdir)
	l, err := openBoltLog(bdir)
	if err != nil {
		return res, err
	}
	defer l.db.Close()
	b0 := l.mark()
	for range records {
		if err := l.append(); err != nil {
			return res, err
		}
	}
	b := b0.to(l.mark())
	res.Bolt = WearDaySide{int64(float64(b.io) * scale), int64(float64(b.pages) * scale)}
	return res, nil
}

// daySession is an owner that comes, writes runtime config and state, and
// goes: its runtime config and state are deleted (R13).
func daySession(ctx context.Context, st *store.Store, n int) error {
	name := "session-" + strconv.Itoa(n)
	o, err := st.Owner(ctx, name, core.OwnerOptions{})
	if err != nil {
		return err
	}
	v := core.Values{}
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		v[k] = name + "-" + k
	}
	err = o.Update(ctx, core.ConfigScope("session", name), v)
	if err == nil {
		err = o.Update(ctx, core.StateScope("session", name), core.Values{"busy": true})
	}
	if cerr := o.Close(); err == nil {
		err = cerr
	}
	return err
}
