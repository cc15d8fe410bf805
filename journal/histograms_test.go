package journal_test

import (
	"errors"
	"testing"

	"github.com/sysreg/sysreg/journal"
)

// TestStatsHistograms: the fsync, batch and checkpoint histograms that the
// metrics exporter reads (R50) count every commit, every batch with its
// operations, and every successful checkpoint; a failed commit adds no
// fsync time.
func TestStatsHistograms(t *testing.T) {
	fail := false
	j := open(t, "", journal.WithHooks(journal.Options{}, journal.Hooks{
		BeforeCommit: func() error {
			if fail {
				return errors.New("injected")
			}
			return nil
		},
	}))
	appendAll(t, j, 1, 50)
	if err := j.Checkpoint(50, []byte("ckpt")); err != nil {
		t.Fatal(err)
	}
	st := j.Stats()
	if st.Fsync.Count != st.Commits || st.Fsync.Count == 0 {
		t.Errorf("fsync observations %d, commits %d", st.Fsync.Count, st.Commits)
	}
	if st.Batch.Count != st.Batches {
		t.Errorf("batch observations %d, batches %d", st.Batch.Count, st.Batches)
	}
	// 50 appends, the checkpoint, and the reservations if any.
	if want := float64(50 + 1 + st.Reserves); st.Batch.Sum != want {
		t.Errorf("operations in batches %v, want %v", st.Batch.Sum, want)
	}
	if st.CheckpointTime.Count != 1 || st.CheckpointTime.Sum <= 0 {
		t.Errorf("checkpoint time %+v", st.CheckpointTime)
	}
	if len(st.Fsync.Counts) != len(journal.LatencyBuckets)+1 || len(st.Batch.Counts) != len(journal.BatchBuckets)+1 {
		t.Errorf("bucket counts %d, %d", len(st.Fsync.Counts), len(st.Batch.Counts))
	}

	fail = true // the committer reads it after Append's queueing: ordered by the queue's mutex
	if err := appendWait(j, 51, recordData(51)); err == nil {
		t.Fatal("append with a failing commit succeeded")
	}
	after := j.Stats()
	if after.Fsync.Count != st.Fsync.Count || after.Commits != st.Commits {
		t.Errorf("a failed commit counted: fsync %d→%d, commits %d→%d", st.Fsync.Count, after.Fsync.Count, st.Commits, after.Commits)
	}
}
