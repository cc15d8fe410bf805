package journal_test

import (
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sysreg/sysreg/journal"
)

var errInjected = errors.New("injected fault")

// failing returns a hook that fails once armed.
func failing(armed *atomic.Bool) func() error {
	return func() error {
		if armed.Load() {
			return errInjected
		}
		return nil
	}
}

func TestFailedCommit(t *testing.T) {
	// R29: a failed commit fails every record of its batch, writes none of
	// them, and fails every later write until reopened.
	path := filepath.Join(t.TempDir(), "j.db")
	var armed atomic.Bool
	j, err := journal.Open(path, journal.WithHooks(journal.Options{}, journal.Hooks{BeforeCommit: failing(&armed)}))
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, j, 1, 10)

	armed.Store(true)
	// However they are batched, each of them fails.
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range 5 {
		wg.Add(1)
		j.Append(uint64(11+i), recordData(uint64(11+i)), func(err error) { errs[i] = err; wg.Done() })
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, journal.ErrFailed) || !errors.Is(err, errInjected) {
			t.Errorf("append %d in the failed batch = %v, want ErrFailed and the cause", 11+i, err)
		}
	}
	armed.Store(false) // the journal stays failed anyway
	if err := appendWait(j, 20, nil); !errors.Is(err, journal.ErrFailed) {
		t.Errorf("Append after a failed commit = %v, want ErrFailed", err)
	}
	if err := reserveWait(j, 100); !errors.Is(err, journal.ErrFailed) {
		t.Errorf("Reserve after a failed commit = %v, want ErrFailed", err)
	}
	if err := j.Checkpoint(30, nil); !errors.Is(err, journal.ErrFailed) {
		t.Errorf("Checkpoint after a failed commit = %v, want ErrFailed", err)
	}
	if got := j.LastKey(); got != 10 {
		t.Errorf("LastKey = %d, want 10 (the last durable record)", got)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	j = open(t, path, journal.Options{})
	if got := replay(t, j, 0); !equalRecs(got, wantRecords(1, 10)) {
		t.Errorf("after reopen: %v, want records 1..10 only", got)
	}
	if got := j.Mark(); got != 0 {
		t.Errorf("Mark = %d, want 0", got)
	}
	// Reopened, it works again, and the chain goes on from record 10.
	appendAll(t, j, 11, 12)
	if got := replay(t, j, 0); !equalRecs(got, wantRecords(1, 12)) {
		t.Errorf("after reopen and append: %v", got)
	}
}

func TestFailedFsync(t *testing.T) {
	// A failed fsync (AfterCommit) fails the call and poisons the journal;
	// the outcome on disk is unknown (with bbolt the commit is there).
	path := filepath.Join(t.TempDir(), "j.db")
	var armed atomic.Bool
	j, err := journal.Open(path, journal.WithHooks(journal.Options{}, journal.Hooks{AfterCommit: failing(&armed)}))
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, j, 1, 3)
	armed.Store(true)
	if err := appendWait(j, 4, recordData(4)); !errors.Is(err, journal.ErrFailed) || !errors.Is(err, errInjected) {
		t.Errorf("Append with a failed fsync = %v, want ErrFailed and the cause", err)
	}
	armed.Store(false)
	if err := appendWait(j, 5, recordData(5)); !errors.Is(err, journal.ErrFailed) {
		t.Errorf("Append after a failed fsync = %v, want ErrFailed", err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = open(t, path, journal.Options{})
	got := replay(t, j, 0)
	if !equalRecs(got, wantRecords(1, 3)) && !equalRecs(got, wantRecords(1, 4)) {
		t.Errorf("after reopen: %v, want records 1..3, maybe 4", got)
	}
}

func TestFailedCheckpoint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	var armed atomic.Bool
	j, err := journal.Open(path, journal.WithHooks(journal.Options{NoSync: true}, journal.Hooks{BeforeCommit: failing(&armed)}))
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, j, 1, 10)
	armed.Store(true)
	if err := j.Checkpoint(5, []byte("c")); !errors.Is(err, journal.ErrFailed) {
		t.Errorf("Checkpoint with a failed commit = %v, want ErrFailed", err)
	}
	if err := appendWait(j, 11, nil); !errors.Is(err, journal.ErrFailed) {
		t.Errorf("Append after a failed checkpoint = %v, want ErrFailed", err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = open(t, path, journal.Options{})
	if _, _, ok, err := j.ReadCheckpoint(); ok || err != nil {
		t.Errorf("ReadCheckpoint after a failed checkpoint: ok %v, err %v", ok, err)
	}
	if got := replay(t, j, 0); !equalRecs(got, wantRecords(1, 10)) {
		t.Errorf("records after a failed checkpoint: %v", got)
	}
}
