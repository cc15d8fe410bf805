package journal_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sysreg/sysreg/journal"
)

// open opens a journal in t's temp dir (or at path) and closes it at cleanup.
func open(t testing.TB, path string, opts journal.Options) *journal.Journal {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "journal.db")
	}
	j, err := journal.Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := j.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return j
}

// appendWait appends one record and waits until it is durable.
func appendWait(j *journal.Journal, key uint64, data []byte) error {
	ch := make(chan error, 1)
	j.Append(key, data, func(err error) { ch <- err })
	return <-ch
}

func reserveWait(j *journal.Journal, mark uint64) error {
	ch := make(chan error, 1)
	j.Reserve(mark, func(err error) { ch <- err })
	return <-ch
}

// appendAll appends keys from..to (inclusive) with data "record-<key>",
// pipelined, and waits for all of them.
func appendAll(t testing.TB, j *journal.Journal, from, to uint64) {
	t.Helper()
	errs := make(chan error, to-from+1)
	for k := from; k <= to; k++ {
		j.Append(k, recordData(k), func(err error) { errs <- err })
	}
	for k := from; k <= to; k++ {
		if err := <-errs; err != nil {
			t.Fatalf("append: %v", err)
		}
	}
}

func recordData(k uint64) []byte { return fmt.Appendf(nil, "record-%d", k) }

type rec struct {
	Key  uint64
	Data string
}

// replay returns every record above after.
func replay(t testing.TB, j *journal.Journal, after uint64) []rec {
	t.Helper()
	var got []rec
	if err := j.Replay(after, func(k uint64, d []byte) error {
		got = append(got, rec{k, string(d)})
		return nil
	}); err != nil {
		t.Fatalf("Replay(%d): %v", after, err)
	}
	return got
}

// wantRecords returns the records from..to as appendAll writes them.
func wantRecords(from, to uint64) []rec {
	var want []rec
	for k := from; k <= to; k++ {
		want = append(want, rec{k, string(recordData(k))})
	}
	return want
}

func equalRecs(a, b []rec) bool { return slices.Equal(a, b) }

// read returns the records Read passes after after.
func read(t testing.TB, j *journal.Journal, after uint64) []rec {
	t.Helper()
	var got []rec
	if _, err := j.Read(after, func(k uint64, d []byte) error {
		got = append(got, rec{k, string(d)})
		return nil
	}); err != nil {
		t.Fatalf("Read(%d): %v", after, err)
	}
	return got
}
