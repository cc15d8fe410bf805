package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/sysreg/sysreg/internal/faults"
	"github.com/sysreg/sysreg/internal/fsync"
	"github.com/sysreg/sysreg/internal/histogram"
)

// Defaults of Options.
const (
	DefaultLockTimeout       = time.Second
	DefaultCheckpointRecords = 10000
	DefaultCheckpointBytes   = 16 << 20
)

// Options configure Open. The zero value is valid.
type Options struct {
	// NoSync skips every fsync. UNSAFE: a crash or power loss can lose
	// acknowledged records or damage the file. For tests and benchmarks only.
	NoSync bool
	// Logger receives lifecycle messages; nil means hclog.NewNullLogger().
	Logger hclog.Logger
	// LockTimeout is how long Open waits for the file lock held by another
	// Journal before it fails with ErrLocked. Zero means 1s
	// (DefaultLockTimeout); a negative value tries once.
	LockTimeout time.Duration
	// CheckpointRecords: Due fires once this many records were appended
	// since the last checkpoint. Zero means 10000.
	CheckpointRecords int
	// CheckpointBytes: Due fires once the data of the records appended since
	// the last checkpoint reaches this many bytes. Zero means 16 MiB.
	CheckpointBytes int64
	// Retain is how many of the newest records a checkpoint keeps in the
	// file although it covers them: history for Read (a change feed),
	// counting the records above the checkpoint too, so that at least
	// the newest Retain records are always there, and at most Retain +
	// CheckpointRecords (older ones go with the next checkpoint). Zero:
	// a checkpoint deletes every record it covers.
	Retain int

	hooks faults.Hooks // fault injection, set by tests (internal/faults)
}

func init() {
	faults.SetJournal = func(opts any, h faults.Hooks) { opts.(*Options).hooks = h }
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.CheckpointRecords <= 0 {
		o.CheckpointRecords = DefaultCheckpointRecords
	}
	if o.CheckpointBytes <= 0 {
		o.CheckpointBytes = DefaultCheckpointBytes
	}
	return o
}

// Stats are counters of a Journal, kept in memory (reading them touches no
// transaction).
type Stats struct {
	Records     int    `json:"records"`     // records in the file after the last checkpoint (durable)
	Bytes       int64  `json:"bytes"`       // data bytes of those records
	Retained    int    `json:"retained"`    // records at or below the last checkpoint kept for Read (Options.Retain)
	Oldest      uint64 `json:"oldest"`      // Read accepts an after of at least this (see Oldest)
	LastRecord  uint64 `json:"last_record"` // the key of the newest durable record ever appended, 0 if none
	Appends     uint64 `json:"appends"`     // Append calls since Open, failed ones included
	Reserves    uint64 `json:"reserves"`    // Reserve calls since Open, failed ones included
	Checkpoints uint64 `json:"checkpoints"` // checkpoints written since Open
	Commits     uint64 `json:"commits"`     // bbolt commits since Open: one fsync pair each (none with NoSync)
	Batches     uint64 `json:"batches"`     // batches the committer took from its queue (one commit each unless all failed)
	MaxBatch    int    `json:"max_batch"`   // most operations in one batch
	FileSize    int64  `json:"file_size"`   // size of the file in bytes (os.Stat), 0 if unknown
	// PageBytes is what the commits since Open wrote to the file, in
	// bytes: the bbolt pages each commit allocated (every dirty page is
	// written to a fresh page) plus one meta page per commit. It is the
	// journal's write volume before the filesystem: what a flash medium
	// has to take at least (flash wear, see the package documentation).
	PageBytes int64 `json:"page_bytes"`
	// CheckpointBytes is the size of the data of the newest durable
	// checkpoint, 0 if none (in this file since Open or before).
	CheckpointBytes int64 `json:"checkpoint_bytes"`

	// Fsync is the disk time of each successful commit, in seconds:
	// bbolt's write of the dirty pages, an fdatasync, the meta page and a
	// second fdatasync (bbolt times them together; the transaction's
	// in-memory work is not in it). With NoSync it is the writes alone.
	Fsync Histogram `json:"fsync"`
	// Batch is the number of operations (appends, reservations,
	// checkpoints) in each group-commit batch (R25).
	Batch Histogram `json:"batch"`
	// CheckpointTime is the time of each successful Checkpoint call, in
	// seconds: queueing behind the batch before it, the transaction
	// (deleting the records it covers) and its fsyncs (R28).
	CheckpointTime Histogram `json:"checkpoint_time"`
}

// Histogram is a snapshot of one of the journal's histograms, in
// Prometheus' shape (R50); the journal keeps them without locks and never
// imports a metrics library.
type Histogram = histogram.Snapshot

// LatencyBuckets are the upper bounds, in seconds, of the journal's time
// histograms: from a page-cache commit to a stalled disk.
var LatencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// BatchBuckets are the upper bounds of Stats.Batch: operations per batch.
var BatchBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}

type opKind uint8

const (
	opAppend opKind = iota + 1
	opReserve
	opCheckpoint
)

// op is one queued Append, Reserve or Checkpoint.
type op struct {
	kind   opKind
	key    uint64 // record key, mark or checkpoint key
	data   []byte
	err    error       // set when queued: the op fails without touching the file
	done   func(error) // Append, Reserve
	result chan error  // Checkpoint (buffered, 1)
	// CheckpointBase: delete only the records up to base, and store
	// baseData as the base data.
	hasBase  bool
	base     uint64
	baseData []byte
}

// durable is what the file holds, as the committer knows it.
type durable struct {
	prev     uint64 // key of the last record ever appended (the next record's prev)
	mark     uint64
	ckptKey  uint64
	ckptLast uint64
	ckptSize int64  // bytes of the checkpoint's data
	base     uint64 // key of the last record deleted (checkpoint "base")
	records  int    // records above the checkpoint key
	bytes    int64
	retained int   // records at or below the checkpoint key (kept history)
	retBytes int64 // their data bytes
	tail     int   // size of the tail bucket's inline leaf (tailEntrySize of each record + a page header)
}

// emptyTail is the inline size of an empty tail bucket.
const emptyTail = boltPageHeaderSize

// Journal is a durable, ordered log of opaque records in one bbolt file,
// with group commit. See the package documentation.
//
// Open starts one committer goroutine; Close stops it and waits for it.
type Journal struct {
	path   string
	db     *bolt.DB
	file   *os.File // bbolt's file (bbolt closes it)
	pageSz int      // bbolt's page size (DB.Info races with a remap: read once at Open)
	log    hclog.Logger
	hooks  faults.Hooks
	maxRec int
	maxB   int64
	retain int

	mu           sync.Mutex // guards the fields below
	queue        []op       // ops waiting for the committer, in call order
	accepted     uint64     // highest record or checkpoint key queued: Append keys must exceed it
	ckptAccepted uint64     // highest checkpoint key queued
	closed       bool
	failedErr    error // copy of failed, for Checkpoint's early return

	wake      chan struct{} // 1 slot: the queue has work or the journal closes
	stopped   chan struct{} // closed when the committer returns
	due       chan struct{} // 1 slot: a checkpoint is due
	closeOnce sync.Once

	// Owned by the committer goroutine.
	cold   bool // drop the page cache before the next commit (dropCache)
	st     durable
	failed error // non-nil: every later op fails with it
	spare  []op  // the other queue buffer

	// Published by the committer (and Append), read by anyone.
	pubMark, pubLastKey, pubPrev   atomic.Uint64
	pubRecords                     atomic.Int64
	pubBytes                       atomic.Int64
	pubCkptSize                    atomic.Int64
	pubBase                        atomic.Uint64
	pubRetained                    atomic.Int64
	allocBase                      int64 // bbolt's PageAlloc counter at the end of Open
	appends, reserves, checkpoints atomic.Uint64
	commits, batches               atomic.Uint64
	maxBatch                       atomic.Int64
	fsyncTime, batchSize, ckptTime *histogram.Recorder
}

// Open opens the journal file at path, creating and initialising it (mode
// 0600) if it does not exist or is empty; the directory must exist. It takes
// an exclusive lock on the file (ErrLocked when another Journal holds it
// beyond Options.LockTimeout), checks the whole file (bbolt structure, meta,
// checkpoint, every record's CRC and the chain) and fails with a
// *CorruptError or *VersionError rather than start on a file it cannot
// trust. It never panics on a damaged file.
func Open(path string, opts Options) (*Journal, error) {
	start := time.Now()
	opts = opts.withDefaults()

	f, _, err := openFile(path)
	if err != nil {
		return nil, fmt.Errorf("journal: open %s: %w", path, err)
	}
	if err := lockFile(f, true, opts.LockTimeout); err != nil {
		_ = f.Close() // read-only so far: nothing to lose
		if errors.Is(err, ErrLocked) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, path)
		}
		return nil, fmt.Errorf("journal: lock %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("journal: open %s: %w", path, err)
	}
	if fi.Size() > 0 {
		// Before bbolt maps the file: see boltfile.go.
		if err := checkBoltFile(f, fi.Size()); err != nil {
			_ = f.Close()
			return nil, &CorruptError{Path: path, Reason: err.Error(), Err: err}
		}
	}
	db, err := openBolt(path, f, opts)
	if err != nil {
		return nil, err
	}

	j := &Journal{
		path:    path,
		db:      db,
		file:    f,
		pageSz:  db.Info().PageSize,
		cold:    true,
		log:     opts.Logger,
		hooks:   opts.hooks,
		maxRec:  opts.CheckpointRecords,
		maxB:    opts.CheckpointBytes,
		retain:  max(opts.Retain, 0),
		wake:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
		due:     make(chan struct{}, 1),

		fsyncTime: histogram.NewDurations(LatencyBuckets),
		batchSize: histogram.New(BatchBuckets, 1),
		ckptTime:  histogram.NewDurations(LatencyBuckets),
	}
	fresh, err := j.load()
	if err != nil {
		_ = db.Close() // nothing written: the load error is the one to report
		return nil, err
	}
	// Always, not only when this Open created the file: a process killed
	// between creating it and this fsync leaves a file that the page cache
	// shows but a power cut takes away, with every record appended to it
	// since (found by TestR24_PowerLossAfterKillInDirSync/journal-file).
	if err := fsync.Dir(filepath.Dir(path)); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("journal: sync directory of %s: %w", path, err)
	}
	j.allocBase = pageAlloc(j.db)
	j.publish()
	j.signalDue()
	if fresh {
		j.log.Info("journal created", "path", path)
	}
	j.log.Info("journal opened", "path", path, "records", j.st.records, "mark", j.st.mark,
		"checkpoint", j.st.ckptKey, "elapsed", time.Since(start))
	go j.run() // from here on, j.st belongs to the committer
	return j, nil
}

// openFile opens path read-write, creating it with mode 0600 if it does not
// exist; created reports whether it did.
func openFile(path string) (f *os.File, created bool, err error) {
	f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		return f, true, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return nil, false, err
	}
	f, err = os.OpenFile(path, os.O_RDWR, 0)
	return f, false, err
}

// openBolt opens the bbolt DB on f (already open and locked). On error f is
// closed.
func openBolt(path string, f *os.File, opts Options) (*bolt.DB, error) {
	bopts := &bolt.Options{
		Timeout: opts.LockTimeout,
		NoSync:  opts.NoSync,
		// With bbolt's default array freelist and synced freelist, reads held
		// during writes grew a file to 2.4 GB; with these it stays linear.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		OpenFile:       func(string, int, os.FileMode) (*os.File, error) { return f, nil },
	}
	var db *bolt.DB
	err := guard(path, "open", func() error {
		var err error
		db, err = bolt.Open(path, 0o600, bopts)
		return err
	})
	if err == nil {
		return db, nil
	}
	// bbolt closes f on its error paths but not after a panic; a second
	// Close only returns os.ErrClosed.
	_ = f.Close()
	var ce *CorruptError
	switch {
	case errors.As(err, &ce):
		return nil, err
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("%w: %s", ErrLocked, path)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrVersionMismatch), errors.Is(err, bolterrors.ErrChecksum):
		return nil, &CorruptError{Path: path, Reason: "bbolt: " + err.Error(), Err: err}
	}
	return nil, fmt.Errorf("journal: open %s: %w", path, err)
}

// load reads and checks the whole file into j.st, initialising a file that
// holds no bucket at all (new, or created by a crash between bbolt's own
// initialisation and ours). fresh reports that it did.
func (j *Journal) load() (fresh bool, err error) {
	var s scanned
	err = guard(j.path, "open", func() error {
		return j.db.View(func(tx *bolt.Tx) error {
			var err error
			s, err = scan(tx)
			return err
		})
	})
	if err != nil {
		return false, corruptWrap(j.path, err)
	}
	if s.fresh || s.version < FormatVersion {
		if err := j.db.Update(func(tx *bolt.Tx) error { return initialise(tx, s.fresh, s.version) }); err != nil {
			return false, fmt.Errorf("journal: initialise %s: %w", j.path, err)
		}
		if !s.fresh {
			j.log.Info("journal upgraded", "path", j.path, "from", s.version, "to", FormatVersion)
		}
	}
	j.st = durable{
		prev:     s.lastRecord,
		mark:     s.mark,
		ckptKey:  s.ckpt.key,
		ckptLast: s.ckpt.last,
		ckptSize: int64(len(s.ckpt.data)),
		base:     s.ckpt.base,
		records:  s.records,
		bytes:    s.bytes,
		retained: s.retained,
		retBytes: s.retBytes,
		tail:     s.tail,
	}
	if s.lastRecord == 0 {
		j.st.prev = s.ckpt.last
	}
	j.accepted = max(s.lastRecord, s.ckpt.key)
	j.ckptAccepted = s.ckpt.key
	return s.fresh, nil
}

// initialise makes a fresh file a journal of FormatVersion, or upgrades a
// file of version from to it, in tx: version 1 gets the empty tail bucket;
// versions 1 and 2 only change their number (a checkpoint without "base"
// deleted every record it covers, which version 3 reads as base == last).
func initialise(tx *bolt.Tx, fresh bool, from uint64) error {
	var names [][]byte
	switch {
	case fresh:
		names = [][]byte{bucketMeta, bucketRecords, bucketCheckpoint, bucketTail}
	case from < 2:
		names = [][]byte{bucketTail}
	}
	for _, name := range names {
		if _, err := tx.CreateBucket(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	kvs := [][2][]byte{{keyVersion, u64(FormatVersion)}}
	if fresh {
		kvs = append(kvs, [2][]byte{keyFormat, []byte(formatName)}, [2][]byte{keyMark, u64(0)})
	}
	meta := tx.Bucket(bucketMeta)
	for _, kv := range kvs {
		if err := meta.Put(kv[0], kv[1]); err != nil {
			return fmt.Errorf("put meta %s: %w", kv[0], err)
		}
	}
	return nil
}

// scanned is what scan found.
type scanned struct {
	fresh      bool // no bucket at all
	version    uint64
	tail       int // the tail bucket's inline size (emptyTail without one)
	mark       uint64
	ckpt       checkpoint
	hasCkpt    bool
	records    int   // records above the checkpoint key
	bytes      int64 // their data bytes
	retained   int   // records at or below it
	retBytes   int64
	lastRecord uint64 // 0: no record
}

var errStop = errors.New("stop")

// scan checks the meta bucket, the checkpoint and every record (CRC and
// chain). Errors are reasons for a *CorruptError, or a *VersionError.
func scan(tx *bolt.Tx) (s scanned, err error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		empty := true
		_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return errStop })
		if empty {
			return scanned{fresh: true}, nil
		}
		return s, reasonf("not a sysreg journal: no meta bucket")
	}
	if f := meta.Get(keyFormat); !bytes.Equal(f, []byte(formatName)) {
		return s, reasonf("not a sysreg journal: meta format is %q, want %q", f, formatName)
	}
	version, err := decodeU64("meta version", meta.Get(keyVersion))
	switch {
	case err != nil:
		return s, err
	case version == 0:
		return s, reasonf("meta version 0")
	case version > FormatVersion:
		return s, &VersionError{Found: version, Supported: FormatVersion}
	}
	s.version = version
	if s.mark, err = decodeU64("meta mark", meta.Get(keyMark)); err != nil {
		return s, err
	}
	if s.ckpt, s.hasCkpt, err = readCheckpoint(tx); err != nil {
		return s, err
	}
	tb := tx.Bucket(bucketTail)
	switch {
	case version >= 2 && tb == nil:
		return s, reasonf("bucket tail missing")
	case version < 2 && tb != nil:
		return s, reasonf("version %d file with a tail bucket", version)
	}
	c, err := newLogCursor(tx)
	if err != nil {
		return s, err
	}
	ch := newChain(s.ckpt, s.hasCkpt)
	s.tail = emptyTail
	for k, v := c.seek(nil); k != nil; k, v = c.next() {
		key, data, err := decodeEntry(&ch, k, v)
		if err != nil {
			return s, err
		}
		if s.hasCkpt && key <= s.ckpt.key {
			s.retained++
			s.retBytes += int64(len(data))
		} else {
			s.records++
			s.bytes += int64(len(data))
		}
		if c.i == 1 {
			s.tail += tailEntrySize(len(data))
		}
	}
	if err := ch.end(); err != nil {
		return s, err
	}
	s.lastRecord = ch.last
	return s, nil
}

// decodeEntry decodes the records bucket entry k, v and checks it against
// the chain.
func decodeEntry(ch *chain, k, v []byte) (key uint64, data []byte, err error) {
	if key, err = decodeRecordKey(k); err != nil {
		return 0, nil, err
	}
	if v == nil {
		return 0, nil, reasonf("record %d: a bucket, not a record", key)
	}
	prev, data, err := decodeRecord(key, v)
	if err != nil {
		return 0, nil, err
	}
	if err := ch.next(key, prev); err != nil {
		return 0, nil, err
	}
	return key, data, nil
}

// readCheckpoint decodes the checkpoint bucket (data points into the tx).
func readCheckpoint(tx *bolt.Tx) (checkpoint, bool, error) {
	cb := tx.Bucket(bucketCheckpoint)
	if cb == nil {
		return checkpoint{}, false, reasonf("bucket checkpoint missing")
	}
	return decodeCheckpoint(cb.Get(keyCkptKey), cb.Get(keyCkptLast), cb.Get(keyCkptCRC), cb.Get(keyCkptData), cb.Get(keyCkptBase))
}

// Path returns the file's path.
func (j *Journal) Path() string { return j.path }

// Mark returns the durable mark: the value read at Open, raised by every
// Reserve once durable.
func (j *Journal) Mark() uint64 { return j.pubMark.Load() }

// lastKey returns the highest durable record key, or the checkpoint key if
// that is higher (0 for an empty journal).
func (j *Journal) lastKey() uint64 { return j.pubLastKey.Load() }

// Due returns a channel that receives a value (without blocking the
// journal: it holds one) when the records or their bytes since the last
// checkpoint reach Options.CheckpointRecords or CheckpointBytes. It is
// signalled after Open and after each commit while that holds; it is never
// closed.
func (j *Journal) Due() <-chan struct{} { return j.due }

// Stats returns the journal's counters.
func (j *Journal) Stats() Stats {
	s := Stats{
		Records:     int(j.pubRecords.Load()),
		Bytes:       j.pubBytes.Load(),
		Appends:     j.appends.Load(),
		Reserves:    j.reserves.Load(),
		Checkpoints: j.checkpoints.Load(),
		Commits:     j.commits.Load(),
		Batches:     j.batches.Load(),
		MaxBatch:    int(j.maxBatch.Load()),
		// Read after the commits: a commit's PageAlloc is merged into
		// bbolt's counters before the journal counts the commit.
		CheckpointBytes: j.pubCkptSize.Load(),
		Retained:        int(j.pubRetained.Load()),
		Oldest:          j.pubBase.Load(),
		LastRecord:      j.pubPrev.Load(),
		Fsync:           j.fsyncTime.Snapshot(),
		Batch:           j.batchSize.Snapshot(),
		CheckpointTime:  j.ckptTime.Snapshot(),
	}
	s.PageBytes = pageAlloc(j.db) - j.allocBase + int64(s.Commits)*int64(j.pageSz)
	if fi, err := os.Stat(j.path); err == nil {
		s.FileSize = fi.Size()
	}
	return s
}

// flushTail moves every record of the tail bucket to the records bucket,
// in the committer's transaction.
func flushTail(records, tail *bolt.Bucket) error {
	var kvs [][]byte // key, value, key, value...: copies, the tail is emptied below
	if err := tail.ForEach(func(k, v []byte) error {
		kvs = append(kvs, bytes.Clone(k), bytes.Clone(v))
		return nil
	}); err != nil {
		return fmt.Errorf("read tail: %w", err)
	}
	for i := 0; i < len(kvs); i += 2 {
		if err := records.Put(kvs[i], kvs[i+1]); err != nil {
			return fmt.Errorf("move record %x: %w", kvs[i], err)
		}
		if err := tail.Delete(kvs[i]); err != nil {
			return fmt.Errorf("move record %x: %w", kvs[i], err)
		}
	}
	return nil
}

// pageAlloc is bbolt's count of bytes of pages allocated by write
// transactions: each commit writes every page it allocated.
func pageAlloc(db *bolt.DB) int64 {
	st := db.Stats()
	return st.TxStats.GetPageAlloc()
}

// Append queues the record key with data for the next batch. key must be
// greater than every key appended or checkpointed before, else done gets an
// error matching ErrKeyOrder; data larger than MaxRecordSize gets
// ErrTooLarge. Append never blocks on I/O: it may be called under the
// caller's lock. The journal keeps data until done is called: the caller must
// not modify it before.
//
// done is called exactly once, on the committer goroutine, holding no lock of
// the journal, in the order of the Append and Reserve calls: with nil once
// the record is durable (the bbolt commit and its fsync returned), else with
// the error. After a failed commit or fsync the error matches ErrFailed, for
// this batch and every later call. After Close, done is called with
// ErrClosed on a goroutine of its own (the committer is gone). done must not
// call back into the journal's Append, Reserve, Checkpoint or Close.
func (j *Journal) Append(key uint64, data []byte, done func(error)) {
	j.appends.Add(1)
	o := op{kind: opAppend, key: key, data: data, done: done}
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		go callDone(done, ErrClosed)
		return
	}
	switch {
	case key <= j.accepted:
		o.err = fmt.Errorf("%w: append key %d, want above %d", ErrKeyOrder, key, j.accepted)
	case len(data) > MaxRecordSize:
		o.err = fmt.Errorf("%w: record %d of %d bytes, limit %d", ErrTooLarge, key, len(data), MaxRecordSize)
	default:
		j.accepted = key
	}
	j.queue = append(j.queue, o)
	j.mu.Unlock()
	j.signal()
}

// Reserve queues mark, a high-water mark stored in the meta bucket with the
// next batch, with the same done contract as Append. Marks only grow: a
// mark at or below the current one succeeds and changes nothing.
func (j *Journal) Reserve(mark uint64, done func(error)) {
	j.reserves.Add(1)
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		go callDone(done, ErrClosed)
		return
	}
	j.queue = append(j.queue, op{kind: opReserve, key: mark, done: done})
	j.mu.Unlock()
	j.signal()
}

func callDone(done func(error), err error) {
	if done != nil {
		done(err)
	}
}

// Checkpoint writes data as the checkpoint covering every record with a key
// up to key, and deletes those records, in one bbolt transaction that the
// committer runs in order with the queued appends; it returns once that is
// durable. key must not be below the previous checkpoint's (ErrKeyOrder);
// it may be above every record key (later Appends must then exceed it).
// data is kept until Checkpoint returns. A failed commit puts the journal in
// the failed state like a failed Append.
func (j *Journal) Checkpoint(key uint64, data []byte) error {
	return j.checkpoint(op{kind: opCheckpoint, key: key, data: data})
}

// CheckpointBase is Checkpoint, but the caller says which history to
// keep instead of Options.Retain: it deletes exactly the covered records
// with a key up to base (base <= key, and not below Oldest), and stores
// baseData beside the checkpoint as the base data (ReadBase): the
// caller's own description of the log up to base (for a change feed, its
// state there, from which the retained records can be replayed). A later
// Checkpoint without a base removes the base data.
func (j *Journal) CheckpointBase(key uint64, data []byte, base uint64, baseData []byte) error {
	switch {
	case base > key:
		return fmt.Errorf("%w: checkpoint %d with base %d above it", ErrKeyOrder, key, base)
	case base < j.Oldest():
		return fmt.Errorf("%w: checkpoint base %d below the oldest retained key %d", ErrKeyOrder, base, j.Oldest())
	case len(baseData) > MaxCheckpointSize:
		return fmt.Errorf("%w: checkpoint base %d of %d bytes, limit %d", ErrTooLarge, base, len(baseData), MaxCheckpointSize)
	}
	return j.checkpoint(op{kind: opCheckpoint, key: key, data: data, hasBase: true, base: base, baseData: baseData})
}

func (j *Journal) checkpoint(o op) error {
	key, data := o.key, o.data
	if len(data) > MaxCheckpointSize {
		return fmt.Errorf("%w: checkpoint %d of %d bytes, limit %d", ErrTooLarge, key, len(data), MaxCheckpointSize)
	}
	start := time.Now()
	res := make(chan error, 1)
	o.result = res
	j.mu.Lock()
	switch {
	case j.closed:
		j.mu.Unlock()
		return ErrClosed
	case j.failedErr != nil:
		err := j.failedErr
		j.mu.Unlock()
		return err
	case key < j.ckptAccepted:
		j.mu.Unlock()
		return fmt.Errorf("%w: checkpoint %d below checkpoint %d", ErrKeyOrder, key, j.ckptAccepted)
	}
	j.ckptAccepted = key
	j.accepted = max(j.accepted, key)
	j.queue = append(j.queue, o)
	j.mu.Unlock()
	j.signal()
	err := <-res
	if err == nil {
		j.ckptTime.ObserveDuration(time.Since(start))
	}
	return err
}

// Close commits what is queued (pending appends are committed, not
// dropped: their done gets the outcome), stops the committer and closes the
// file. Calls made after Close has begun get ErrClosed. Close is
// idempotent: later calls wait for the first one and return nil.
func (j *Journal) Close() error {
	var err error
	j.closeOnce.Do(func() {
		j.mu.Lock()
		j.closed = true
		j.mu.Unlock()
		j.signal()
		<-j.stopped
		if cerr := j.db.Close(); cerr != nil {
			err = fmt.Errorf("journal: close %s: %w", j.path, cerr)
		}
		j.log.Info("journal closed", "path", j.path)
	})
	return err
}

func (j *Journal) isClosed() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.closed
}

// signal wakes the committer without blocking.
func (j *Journal) signal() {
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

// signalDue signals Due, without blocking, when a checkpoint is due.
func (j *Journal) signalDue() {
	if j.st.records >= j.maxRec || j.st.bytes >= j.maxB {
		select {
		case j.due <- struct{}{}:
		default:
		}
	}
}

// publish makes the committer's view of the file visible to readers.
func (j *Journal) publish() {
	j.pubMark.Store(j.st.mark)
	j.pubLastKey.Store(max(j.st.prev, j.st.ckptKey))
	j.pubPrev.Store(j.st.prev)
	j.pubRecords.Store(int64(j.st.records))
	j.pubBytes.Store(j.st.bytes)
	j.pubCkptSize.Store(j.st.ckptSize)
	j.pubRetained.Store(int64(j.st.retained))
	j.pubBase.Store(j.st.base)
}

// run is the committer: it takes everything queued and writes it as one
// batch, one bbolt transaction, until the journal is closed and the queue
// is empty.
func (j *Journal) run() {
	defer close(j.stopped)
	for {
		j.mu.Lock()
		batch, closed := j.queue, j.closed
		if len(batch) > 0 {
			// Double buffering: the queue gets the other buffer.
			j.queue, j.spare = j.spare[:0], nil
		}
		j.mu.Unlock()
		if len(batch) == 0 {
			if closed {
				return
			}
			<-j.wake
			// Yield once before taking the batch: with one processor
			// (GOMAXPROCS=1, a single-core appliance) the writer that
			// woke the committer made it run next, ahead of the other
			// writers already runnable, so every batch held one record
			// and concurrent writers shared no fsync (R25). A writer
			// alone costs one yield with nothing else to run.
			runtime.Gosched()
			continue
		}
		j.process(batch)
		n := len(batch)
		clear(batch) // drop data and callbacks
		j.spare = batch[:0]
		if n > 1 {
			// The writers just acknowledged usually write again at once.
			// Yield once so that they can queue before the next batch is
			// taken; otherwise batches settle into two alternating halves
			// (measured: ~31 records per fsync with 64 writers, not 64).
			runtime.Gosched()
		}
	}
}

// process writes one batch and reports each op's outcome in queue order.
func (j *Journal) process(batch []op) {
	j.batches.Add(1)
	j.batchSize.Observe(uint64(len(batch)))
	if n := int64(len(batch)); n > j.maxBatch.Load() {
		j.maxBatch.Store(n) // only the committer stores
	}
	err := j.failed
	if err == nil && hasWork(batch) {
		var start time.Time
		if j.log.IsTrace() {
			start = time.Now()
		}
		if werr := j.write(batch); werr != nil {
			err = fmt.Errorf("%w: %s: %w", ErrFailed, j.path, werr)
			j.failed = err
			j.mu.Lock()
			j.failedErr = err
			j.mu.Unlock()
		} else if j.log.IsTrace() {
			j.log.Trace("batch committed", "ops", len(batch), "elapsed", time.Since(start))
		}
	}
	if err == nil {
		j.signalDue() // before the callbacks: a caller that saw done(nil) sees Due
	}
	for i := range batch {
		o := &batch[i]
		e := err
		if o.err != nil {
			e = o.err
		}
		if o.kind == opCheckpoint {
			o.result <- e
		} else {
			callDone(o.done, e)
		}
	}
}

func hasWork(batch []op) bool {
	for i := range batch {
		if batch[i].err == nil {
			return true
		}
	}
	return false
}

// write runs batch as one bbolt write transaction. On success it updates
// j.st and publishes it; on error nothing of j.st changes.
func (j *Journal) write(batch []op) error {
	st := j.st
	var (
		markDirty bool
		ckpts     uint64
		appended  int
		arena     []byte
	)
	size := 0
	for i := range batch {
		if o := &batch[i]; o.err == nil && o.kind == opAppend {
			size += 8 + recordHeaderSize + len(o.data)
		}
	}
	arena = make([]byte, 0, size) // keys and values of the batch's records: one allocation
	if j.cold {
		j.dropCache()
		j.cold = false
	}

	err := guard(j.path, "commit", func() error {
		tx, err := j.db.Begin(true)
		if err != nil {
			return fmt.Errorf("begin transaction: %w", err)
		}
		// After a successful Commit, Rollback only returns bolt.ErrTxClosed;
		// on every other path rolling back is what we want.
		defer func() { _ = tx.Rollback() }()
		records, tail := tx.Bucket(bucketRecords), tx.Bucket(bucketTail)
		if records == nil || tail == nil {
			return reasonf("bucket records or tail missing")
		}
		// Keys only grow: fill the records bucket's pages completely
		// rather than split them in half (bbolt's default).
		records.FillPercent = 1.0
		tailLimit := j.pageSz / 4
		for i := range batch {
			o := &batch[i]
			if o.err != nil {
				continue
			}
			switch o.kind {
			case opAppend:
				// Into the tail while it stays inline; else the tail
				// moves to the records bucket first (see doc.go).
				entry := tailEntrySize(len(o.data))
				if st.tail+entry > tailLimit && st.tail > emptyTail {
					if err := flushTail(records, tail); err != nil {
						return err
					}
					st.tail = emptyTail
				}
				dst := records
				if st.tail+entry <= tailLimit {
					dst, st.tail = tail, st.tail+entry
				}
				off := len(arena)
				arena = append(arena, u64(o.key)...)
				arena = encodeRecord(arena, st.prev, o.data)
				if err := dst.Put(arena[off:off+8], arena[off+8:]); err != nil {
					return fmt.Errorf("put record %d: %w", o.key, err)
				}
				st.prev = o.key
				appended++
				st.records++
				st.bytes += int64(len(o.data))
			case opReserve:
				if o.key > st.mark {
					st.mark = o.key
					markDirty = true
				}
			case opCheckpoint:
				cb := tx.Bucket(bucketCheckpoint)
				if cb == nil {
					return reasonf("bucket checkpoint missing")
				}
				if err := j.putCheckpoint([]*bolt.Bucket{records, tail}, cb, o, &st); err != nil {
					return err
				}
				ckpts++
			}
		}
		if markDirty {
			meta := tx.Bucket(bucketMeta)
			if meta == nil {
				return reasonf("bucket meta missing")
			}
			if err := meta.Put(keyMark, u64(st.mark)); err != nil {
				return fmt.Errorf("put mark: %w", err)
			}
		}
		if h := j.hooks.BeforeCommit; h != nil {
			if err := h(); err != nil {
				return fmt.Errorf("before commit: %w", err)
			}
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		j.commits.Add(1)
		ts := tx.Stats() // after Commit: this transaction's own figures
		j.fsyncTime.ObserveDuration(ts.GetWriteTime())
		if h := j.hooks.AfterCommit; h != nil {
			if err := h(); err != nil {
				return fmt.Errorf("sync: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if ckpts > 0 {
		j.log.Debug("checkpoint written", "key", st.ckptKey, "deleted", j.st.records+j.st.retained+appended-st.records-st.retained)
	}
	j.st = st
	j.checkpoints.Add(ckpts)
	// A checkpoint's data is written as one run of pages: see dropCache.
	j.cold = j.cold || ckpts > 0
	j.publish()
	return nil
}

// putCheckpoint stores the checkpoint and deletes the records up to key
// from buckets (records, tail) but the newest ones that Options.Retain
// keeps (with a base: but those above o.base), in the committer's
// transaction.
func (j *Journal) putCheckpoint(buckets []*bolt.Bucket, cb *bolt.Bucket, o *op, st *durable) error {
	key, data := o.key, o.data
	type covered struct {
		key  []byte
		size int64
		tail bool
	}
	var cov []covered // in key order
	var covBytes int64
	for bi, b := range buckets {
		// Collect the covered keys with a cursor, then delete them: bbolt's
		// Cursor.Next after Cursor.Delete skips an entry when the leaf is
		// already in memory (records put in this transaction), and First
		// after each Delete rescans the emptied leaves.
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			rk, err := decodeRecordKey(k)
			if err != nil {
				return err
			}
			if rk > key {
				break
			}
			size := int64(len(v) - recordHeaderSize)
			cov = append(cov, covered{key: k, size: size, tail: bi == 1})
			covBytes += size
		}
	}
	last, base := st.ckptLast, st.base
	if len(cov) > 0 {
		last = binary.BigEndian.Uint64(cov[len(cov)-1].key)
	}
	// Keep the newest Retain records, counting those above key.
	above := st.records + st.retained - len(cov)
	keep := min(len(cov), max(0, j.retain-above))
	if o.hasBase {
		keep = len(cov) - sort.Search(len(cov), func(i int) bool { return binary.BigEndian.Uint64(cov[i].key) > o.base })
	}
	var keptBytes int64
	for i, r := range cov {
		if i >= len(cov)-keep {
			keptBytes += r.size
			continue
		}
		if r.tail {
			st.tail -= tailEntrySize(int(r.size))
		}
		b := buckets[0]
		if r.tail {
			b = buckets[1]
		}
		if err := b.Delete(r.key); err != nil {
			return fmt.Errorf("delete record %d: %w", binary.BigEndian.Uint64(r.key), err)
		}
		base = binary.BigEndian.Uint64(r.key)
	}
	crcField := make([]byte, 4)
	putU32(crcField, crc(data))
	for _, kv := range [][2][]byte{{keyCkptKey, u64(key)}, {keyCkptLast, u64(last)}, {keyCkptBase, u64(base)}, {keyCkptCRC, crcField}, {keyCkptData, data}} {
		if err := cb.Put(kv[0], kv[1]); err != nil {
			return fmt.Errorf("put checkpoint %s: %w", kv[0], err)
		}
	}
	if o.hasBase {
		baseCRC := make([]byte, 4)
		putU32(baseCRC, crc(o.baseData))
		for _, kv := range [][2][]byte{{keyCkptBaseKey, u64(o.base)}, {keyCkptBaseCRC, baseCRC}, {keyCkptBaseData, o.baseData}} {
			if err := cb.Put(kv[0], kv[1]); err != nil {
				return fmt.Errorf("put checkpoint %s: %w", kv[0], err)
			}
		}
	} else {
		for _, k := range [][]byte{keyCkptBaseKey, keyCkptBaseCRC, keyCkptBaseData} {
			if err := cb.Delete(k); err != nil {
				return fmt.Errorf("delete checkpoint %s: %w", k, err)
			}
		}
	}
	st.ckptKey, st.ckptLast, st.ckptSize, st.base = key, last, int64(len(data)), base
	st.bytes = st.bytes + st.retBytes - covBytes
	st.records, st.retained, st.retBytes = above, keep, keptBytes
	return nil
}
