package journal_test

import (
	"bytes"
	"errors"
	"math/bits"
	"path/filepath"
	"testing"

	"github.com/sysreg/sysreg/journal"
)

// TestSizesFitAddressSpace: a journal the size its defaults let it reach
// (CheckpointBytes of records after a checkpoint) and a checkpoint far
// larger than an appliance's configuration write, reopen and read back
// whole, also on 32-bit targets, where bbolt maps the file into at most
// 2 GiB of address space and grows the mapping by doubling (R24, R27).
// The checkpoint is written twice so that the file holds both while the
// second commits, as it does in use. The README's 32-bit limits cite this
// test.
func TestSizesFitAddressSpace(t *testing.T) {
	ckptSize := 64 << 20
	if testing.Short() || raceEnabled { // the race detector makes each MiB slow; 32-bit runs have none
		ckptSize = 16 << 20
	}
	path := filepath.Join(t.TempDir(), "j.db")
	j, err := journal.Open(path, journal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	ckpt := make([]byte, ckptSize)
	for i := range ckpt {
		ckpt[i] = byte(i*7 + i>>13)
	}
	for round := uint64(1); round <= 2; round++ {
		ckpt[0] = byte(round)
		if err := j.Checkpoint(round, ckpt); err != nil {
			t.Fatalf("checkpoint %d of %d MiB on %d-bit: %v", round, ckptSize>>20, bits.UintSize, err)
		}
	}
	// 16 MiB of 4 KiB records after it: what DefaultCheckpointBytes lets
	// accumulate before the store writes the next checkpoint.
	rec := bytes.Repeat([]byte("r"), 4<<10)
	n := uint64(journal.DefaultCheckpointBytes / len(rec))
	errs := make(chan error, n)
	for k := uint64(3); k < 3+n; k++ {
		j.Append(k, rec, func(err error) { errs <- err })
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("append on %d-bit: %v", bits.UintSize, err)
		}
	}
	size := j.Stats().FileSize
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	j = open(t, path, journal.Options{})
	key, data, ok, err := j.ReadCheckpoint()
	if err != nil || !ok || key != 2 || !bytes.Equal(data, ckpt) {
		t.Fatalf("ReadCheckpoint = %d, %d bytes (equal %v), %v, %v; want 2 and the %d bytes written",
			key, len(data), bytes.Equal(data, ckpt), ok, err, len(ckpt))
	}
	var got uint64
	if err := j.Replay(key, func(k uint64, d []byte) error {
		if k != 3+got || !bytes.Equal(d, rec) {
			t.Fatalf("record %d: key %d, %d bytes", got, k, len(d))
		}
		got++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got != n {
		t.Fatalf("replayed %d records, want %d", got, n)
	}
	t.Logf("%d-bit: checkpoint %d MiB + %d records of %d KiB: file %d MiB", bits.UintSize, ckptSize>>20, n, len(rec)>>10, size>>20)
}

// TestCheckpointTooLarge: a checkpoint above MaxCheckpointSize (bbolt's
// limit on one value, 256 MiB on 32-bit targets) is refused with
// ErrTooLarge before anything is written, and the journal goes on working.
func TestCheckpointTooLarge(t *testing.T) {
	j := open(t, "", journal.Options{NoSync: true})
	appendAll(t, j, 1, 3)
	// Never written to: the pages stay untouched, nothing is committed.
	big := make([]byte, journal.MaxCheckpointSize+1)
	if err := j.Checkpoint(2, big); !errors.Is(err, journal.ErrTooLarge) {
		t.Fatalf("Checkpoint of %d bytes: %v, want ErrTooLarge", len(big), err)
	}
	appendAll(t, j, 4, 5)
	if err := j.Checkpoint(2, []byte("small")); err != nil {
		t.Fatalf("Checkpoint after the refused one: %v", err)
	}
	if got := replay(t, j, 2); !equalRecs(got, wantRecords(3, 5)) {
		t.Fatalf("Replay(2) = %v", got)
	}
}
