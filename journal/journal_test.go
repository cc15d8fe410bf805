package journal_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sysreg/sysreg/journal"
)

func TestAppendReplayRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	j, err := journal.Open(path, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := j.LastKey(); got != 0 {
		t.Fatalf("LastKey of a new journal = %d, want 0", got)
	}
	appendAll(t, j, 1, 100)
	if err := appendWait(j, 101, nil); err != nil { // empty data is a record too
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{0xAB}, 100_000) // spans overflow pages
	if err := appendWait(j, 200, big); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("file mode %o, want 600", perm)
	}

	j = open(t, path, journal.Options{})
	if got := j.LastKey(); got != 200 {
		t.Errorf("LastKey after reopen = %d, want 200", got)
	}
	want := append(wantRecords(1, 100), rec{101, ""}, rec{200, string(big)})
	if got := replay(t, j, 0); !equalRecs(got, want) {
		t.Errorf("Replay(0): %d records, want %d", len(got), len(want))
	}
	if got := replay(t, j, 50); !equalRecs(got, want[50:]) {
		t.Errorf("Replay(50): %d records, want %d", len(got), len(want[50:]))
	}
	if s := j.Stats(); s.Records != 102 || s.Bytes != int64(len(big))+int64(len("record-1")*9+len("record-10")*90+len("record-100")) {
		t.Errorf("Stats = %+v", s)
	}
	if _, _, ok, err := j.ReadCheckpoint(); ok || err != nil {
		t.Errorf("ReadCheckpoint of a journal without one = ok %v, err %v", ok, err)
	}
}

func TestReplayManyChunks(t *testing.T) {
	// More records than one read transaction of Replay holds, and a Replay
	// callback that appends and waits: it must not run inside a read tx.
	j := open(t, "", journal.Options{NoSync: true})
	const n = 10_000
	appendAll(t, j, 1, n)
	next := uint64(n + 1)
	var got []rec
	err := j.Replay(0, func(k uint64, d []byte) error {
		got = append(got, rec{k, string(d)})
		if k%3000 == 0 {
			if err := appendWait(j, next, []byte("x")); err != nil {
				return err
			}
			next++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := wantRecords(1, n); !equalRecs(got[:n], want) {
		t.Fatalf("Replay returned %d records, want the %d appended first", len(got), n)
	}
	stop := errors.New("stop")
	if err := j.Replay(0, func(uint64, []byte) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Replay with a failing fn = %v, want it wrapped", err)
	}
}

func TestKeysMustIncrease(t *testing.T) {
	j := open(t, "", journal.Options{NoSync: true})
	if err := appendWait(j, 0, nil); !errors.Is(err, journal.ErrKeyOrder) {
		t.Errorf("Append(0) = %v, want ErrKeyOrder", err)
	}
	if err := appendWait(j, 5, nil); err != nil {
		t.Fatal(err)
	}
	for _, k := range []uint64{5, 4, 1} {
		if err := appendWait(j, k, nil); !errors.Is(err, journal.ErrKeyOrder) {
			t.Errorf("Append(%d) after 5 = %v, want ErrKeyOrder", k, err)
		}
	}
	// A rejected key does not poison the journal.
	if err := appendWait(j, 6, nil); err != nil {
		t.Errorf("Append(6) = %v", err)
	}
	// Checkpoint keys bound later appends, and may not go back.
	if err := j.Checkpoint(10, []byte("c")); err != nil {
		t.Fatal(err)
	}
	if err := appendWait(j, 9, nil); !errors.Is(err, journal.ErrKeyOrder) {
		t.Errorf("Append(9) after Checkpoint(10) = %v, want ErrKeyOrder", err)
	}
	if err := j.Checkpoint(8, nil); !errors.Is(err, journal.ErrKeyOrder) {
		t.Errorf("Checkpoint(8) after Checkpoint(10) = %v, want ErrKeyOrder", err)
	}
	if err := appendWait(j, 11, nil); err != nil {
		t.Errorf("Append(11) = %v", err)
	}
	if got := j.LastKey(); got != 11 {
		t.Errorf("LastKey = %d, want 11", got)
	}
}

func TestDoneOrder(t *testing.T) {
	// done callbacks come in call order, failures (bad keys) included, with
	// Reserve calls interleaved.
	j := open(t, "", journal.Options{NoSync: true})
	var (
		order []int // written by the committer only
		errs  []error
		wg    sync.WaitGroup
	)
	key := uint64(0)
	for i := range 3000 {
		wg.Add(1)
		done := func(err error) {
			order = append(order, i)
			errs = append(errs, err)
			wg.Done()
		}
		switch i % 10 {
		case 3:
			j.Reserve(uint64(i), done)
		case 7:
			j.Append(key, nil, done) // a repeated key: fails
		default:
			key++
			j.Append(key, recordData(key), done)
		}
	}
	wg.Wait()
	for i, got := range order {
		if got != i {
			t.Fatalf("done call %d was for call %d", i, got)
		}
		if wantErr := i%10 == 7; (errs[i] != nil) != wantErr {
			t.Fatalf("call %d: err %v", i, errs[i])
		}
	}
	if got := j.Mark(); got != 2993 {
		t.Errorf("Mark = %d, want 2993", got)
	}
}

func TestGroupCommitBatches(t *testing.T) {
	// Deterministic: the first commit is held in BeforeCommit while 63 more
	// appends are queued; they must all go into the next, single commit.
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	j := open(t, "", journal.WithHooks(journal.Options{NoSync: true}, journal.Hooks{BeforeCommit: func() error {
		once.Do(func() { close(entered); <-release })
		return nil
	}}))
	var mu sync.Mutex // the caller's lock: keys are handed out under it
	next := uint64(0)
	add := func(done func(error)) {
		mu.Lock()
		next++
		j.Append(next, recordData(next), done)
		mu.Unlock()
	}
	var durable sync.WaitGroup
	durable.Add(64)
	add(func(error) { durable.Done() })
	<-entered
	var queued sync.WaitGroup
	for range 63 {
		queued.Go(func() { add(func(error) { durable.Done() }) })
	}
	queued.Wait() // Append returned: all 63 are queued
	close(release)
	durable.Wait()
	s := j.Stats()
	if s.Commits != 2 || s.Batches != 2 || s.MaxBatch != 63 || s.Appends != 64 {
		t.Errorf("Stats = %+v, want 2 commits, 2 batches, max batch 63, 64 appends", s)
	}
	if got := replay(t, j, 0); !equalRecs(got, wantRecords(1, 64)) {
		t.Errorf("replayed %d records, want 64", len(got))
	}
}

func TestGroupCommitConcurrentWriters(t *testing.T) {
	// 64 writers, each waiting for its own append, with real fsync: they
	// share commits.
	j := open(t, "", journal.Options{})
	const writers, each = 64, 20
	var mu sync.Mutex
	next := uint64(0)
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for range writers {
		wg.Go(func() {
			done := make(chan error, 1)
			for range each {
				mu.Lock()
				next++
				j.Append(next, recordData(next), func(err error) { done <- err })
				mu.Unlock()
				if err := <-done; err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s := j.Stats()
	t.Logf("appends %d, commits %d, max batch %d", s.Appends, s.Commits, s.MaxBatch)
	if s.Commits >= s.Appends {
		t.Errorf("%d commits for %d appends: no group commit", s.Commits, s.Appends)
	}
	if got := replay(t, j, 0); !equalRecs(got, wantRecords(1, writers*each)) {
		t.Errorf("replayed %d records, want %d", len(got), writers*each)
	}
}

func TestReserveMark(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	j, err := journal.Open(path, journal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []uint64{10, 1000, 500} { // marks only grow; a lower one is a no-op
		if err := reserveWait(j, m); err != nil {
			t.Fatal(err)
		}
	}
	if got := j.Mark(); got != 1000 {
		t.Errorf("Mark = %d, want 1000", got)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = open(t, path, journal.Options{})
	if got := j.Mark(); got != 1000 {
		t.Errorf("Mark after reopen = %d, want 1000", got)
	}
}

func TestCheckpoint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	j, err := journal.Open(path, journal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, j, 1, 10)
	if err := j.Checkpoint(4, []byte("state@4")); err != nil {
		t.Fatal(err)
	}
	if s := j.Stats(); s.Records != 6 || s.Checkpoints != 1 {
		t.Errorf("after Checkpoint(4): %+v, want 6 records", s)
	}
	// A checkpoint above every record key (sequence numbers not journaled).
	if err := j.Checkpoint(15, []byte("state@15")); err != nil {
		t.Fatal(err)
	}
	if s := j.Stats(); s.Records != 0 {
		t.Errorf("after Checkpoint(15): %d records, want 0", s.Records)
	}
	appendAll(t, j, 16, 20)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	j = open(t, path, journal.Options{})
	key, data, ok, err := j.ReadCheckpoint()
	if err != nil || !ok || key != 15 || string(data) != "state@15" {
		t.Fatalf("ReadCheckpoint = %d, %q, %v, %v; want 15, state@15", key, data, ok, err)
	}
	if got := replay(t, j, key); !equalRecs(got, wantRecords(16, 20)) {
		t.Errorf("Replay(15) = %v", got)
	}
	if got := j.LastKey(); got != 20 {
		t.Errorf("LastKey = %d, want 20", got)
	}
	// Records queued before a checkpoint with higher keys survive it, in the
	// same batch or not.
	appendAll(t, j, 21, 30)
	if err := j.Checkpoint(25, []byte("state@25")); err != nil {
		t.Fatal(err)
	}
	if got := replay(t, j, 0); !equalRecs(got, wantRecords(26, 30)) {
		t.Errorf("after Checkpoint(25): Replay = %v", got)
	}
}

func TestCheckpointBoundsFileSize(t *testing.T) {
	if testing.Short() {
		t.Skip("200k appends")
	}
	// 200k appends with a checkpoint every 10k: the file stays small.
	j := open(t, "", journal.Options{NoSync: true})
	total, every := uint64(200_000), uint64(10_000)
	if raceEnabled {
		total, every = 50_000, 2_500
	}
	data := bytes.Repeat([]byte("v"), 100)
	ckpt := bytes.Repeat([]byte("c"), 256<<10)
	var failed atomic.Value
	done := func(err error) {
		if err != nil {
			failed.CompareAndSwap(nil, err)
		}
	}
	for k := uint64(1); k <= total; k++ {
		j.Append(k, data, done)
		if k%every == 0 {
			// Checkpoint runs after the queued appends and their callbacks.
			if err := j.Checkpoint(k, ckpt); err != nil {
				t.Fatal(err)
			}
			if err := failed.Load(); err != nil {
				t.Fatal(err)
			}
		}
	}
	s := j.Stats()
	t.Logf("stats after %d appends: %+v", total, s)
	if s.FileSize >= 64<<20 {
		t.Errorf("file is %d bytes after %d appends with checkpoints, want < 64 MiB", s.FileSize, total)
	}
	if s.Records != 0 || s.Checkpoints != total/every {
		t.Errorf("Stats = %+v", s)
	}
}

func TestDue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	opts := journal.Options{NoSync: true, CheckpointRecords: 10, CheckpointBytes: 1 << 20}
	j, err := journal.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, j, 1, 9)
	select {
	case <-j.Due():
		t.Fatal("Due fired after 9 of 10 records")
	default:
	}
	appendAll(t, j, 10, 10)
	select {
	case <-j.Due():
	default:
		t.Fatal("Due did not fire after 10 records")
	}
	if err := j.Checkpoint(10, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-j.Due():
		t.Fatal("Due fired right after a checkpoint")
	default:
	}
	// Bytes count too.
	if err := appendWait(j, 11, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-j.Due():
	default:
		t.Fatal("Due did not fire after 1 MiB")
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	// A journal reopened past the threshold is due at once.
	j = open(t, path, opts)
	select {
	case <-j.Due():
	default:
		t.Fatal("Due did not fire after reopening a journal past its threshold")
	}
}

func TestClose(t *testing.T) {
	j, err := journal.Open(filepath.Join(t.TempDir(), "j.db"), journal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	// Appends queued before Close are committed, not dropped.
	errs := make(chan error, 100)
	for k := uint64(1); k <= 100; k++ {
		j.Append(k, nil, func(err error) { errs <- err })
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if err := <-errs; err != nil {
			t.Errorf("append queued before Close: %v", err)
		}
	}
	if err := j.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if err := appendWait(j, 101, nil); !errors.Is(err, journal.ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
	if err := reserveWait(j, 1); !errors.Is(err, journal.ErrClosed) {
		t.Errorf("Reserve after Close = %v, want ErrClosed", err)
	}
	if err := j.Checkpoint(200, nil); !errors.Is(err, journal.ErrClosed) {
		t.Errorf("Checkpoint after Close = %v, want ErrClosed", err)
	}
	if err := j.Replay(0, func(uint64, []byte) error { return nil }); !errors.Is(err, journal.ErrClosed) {
		t.Errorf("Replay after Close = %v, want ErrClosed", err)
	}
	if _, _, _, err := j.ReadCheckpoint(); !errors.Is(err, journal.ErrClosed) {
		t.Errorf("ReadCheckpoint after Close = %v, want ErrClosed", err)
	}
}

func TestCloseConcurrent(t *testing.T) {
	j, err := journal.Open(filepath.Join(t.TempDir(), "j.db"), journal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := uint64(0)
	for range 8 {
		wg.Go(func() {
			for range 200 {
				mu.Lock()
				next++
				k := next
				mu.Unlock()
				_ = appendWait(j, k, nil) // nil or ErrClosed, or ErrKeyOrder (keys raced past)
			}
		})
	}
	for range 3 {
		wg.Go(func() { _ = j.Close() })
	}
	wg.Wait()
}

func TestLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	j := open(t, path, journal.Options{})
	start := time.Now()
	_, err := journal.Open(path, journal.Options{})
	elapsed := time.Since(start)
	if !errors.Is(err, journal.ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if elapsed > 2*time.Second {
		t.Errorf("second Open took %v, want about 1s", elapsed)
	}
	t.Logf("ErrLocked after %v", elapsed)
	// Inspect does not wait for a live writer: it reads and says so.
	rep, err := journal.Inspect(path)
	if err != nil || !rep.Live {
		t.Errorf("Inspect of a live journal: live %v, err %v", rep.Live, err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j2, err := journal.Open(path, journal.Options{LockTimeout: -1})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	if err := j2.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := journal.Open(filepath.Join(dir, "missing", "j.db"), journal.Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open in a missing directory = %v, want ErrNotExist", err)
	}
	if _, err := journal.Open(dir, journal.Options{}); err == nil {
		t.Error("Open of a directory succeeded")
	}
}

func TestStatsAndPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	j := open(t, path, journal.Options{NoSync: true})
	if j.Path() != path {
		t.Errorf("Path = %q, want %q", j.Path(), path)
	}
	appendAll(t, j, 1, 5)
	if err := reserveWait(j, 9); err != nil {
		t.Fatal(err)
	}
	s := j.Stats()
	if s.Appends != 5 || s.Reserves != 1 || s.Records != 5 || s.FileSize == 0 || s.Commits == 0 || s.Commits > s.Batches {
		t.Errorf("Stats = %+v", s)
	}
	keys := []uint64{}
	if err := j.Replay(2, func(k uint64, _ []byte) error { keys = append(keys, k); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []uint64{3, 4, 5}) {
		t.Errorf("Replay(2) keys = %v", keys)
	}
}

// TestOneWriterPageBytes: a lone durable append rewrites the leaf of the
// top-level buckets (where the inline tail lives) and the meta page, and
// now and then the records bucket's path when the tail moves there; on
// average well under three 4 KiB pages (issue 17, flash wear; R24 holds:
// every append is its own commit).
func TestOneWriterPageBytes(t *testing.T) {
	j := open(t, "", journal.Options{NoSync: true})
	data := bytes.Repeat([]byte("v"), 60)
	appendN := func(from, n int) {
		for k := from; k < from+n; k++ {
			if err := appendWait(j, uint64(k), data); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendN(1, 2000) // the records bucket has a branch level by now
	before := j.Stats()
	appendN(2001, 1000)
	after := j.Stats()
	commits := after.Commits - before.Commits
	perAppend := float64(after.PageBytes-before.PageBytes) / 1000
	if commits != 1000 || perAppend > 3*4096 {
		t.Errorf("%d commits, %.0f page bytes per append, want 1000 and at most 12 KiB", commits, perAppend)
	}
	t.Logf("%.0f page bytes per append", perAppend)
}
