package journal_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/sysreg/sysreg/journal"
)

// TestRetain: checkpoints keep the newest Options.Retain records (counting
// those above the checkpoint) and no more than Retain + CheckpointRecords,
// across checkpoints and reopening; Read returns every record above any
// after >= Oldest, and a *CompactedError below it (the history behind the
// change feed, R47).
func TestRetain(t *testing.T) {
	const retain = 50
	seed := rand.Uint64()
	rnd := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)
	path := filepath.Join(t.TempDir(), "j.db")
	opts := journal.Options{NoSync: true, Retain: retain}
	j, err := journal.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { j.Close() }()
	var key uint64
	var keys []uint64 // every key appended
	for round := range 30 {
		n := 1 + rnd.IntN(80)
		for range n {
			key += 1 + uint64(rnd.IntN(3)) // keys with gaps, like sequence numbers
			if err := appendWait(j, key, recordData(key)); err != nil {
				t.Fatal(err)
			}
			keys = append(keys, key)
		}
		ckpt := key + uint64(rnd.IntN(2)) // at or above the last record
		if err := j.Checkpoint(ckpt, fmt.Appendf(nil, "ckpt-%d", ckpt)); err != nil {
			t.Fatal(err)
		}
		if round%7 == 3 { // reopen: retention is kept across restarts
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			if j, err = journal.Open(path, opts); err != nil {
				t.Fatal(err)
			}
		}
		key = max(key, ckpt)
		st := j.Stats()
		held := st.Records + st.Retained
		if want := min(len(keys), retain); held != want {
			t.Fatalf("round %d: %d records held after a checkpoint, want %d (stats %+v)", round, held, want, st)
		}
		oldest := j.Oldest()
		first := len(keys) - held // index of the oldest record held
		if first > 0 && oldest != keys[first-1] || first == 0 && oldest != 0 {
			t.Fatalf("round %d: Oldest %d, want the key before %d", round, oldest, keys[first])
		}
		for _, after := range []uint64{oldest, oldest + 1, key, keys[len(keys)-1-rnd.IntN(held)]} {
			got := read(t, j, after)
			var want []rec
			for _, k := range keys {
				if k > after {
					want = append(want, rec{k, string(recordData(k))})
				}
			}
			if !equalRecs(got, want) {
				t.Fatalf("round %d: Read(%d) = %d records, want %d", round, after, len(got), len(want))
			}
		}
		if oldest > 0 {
			_, err := j.Read(oldest-1, func(uint64, []byte) error { t.Fatal("fn called below Oldest"); return nil })
			var ce *journal.CompactedError
			if !errors.As(err, &ce) || !errors.Is(err, journal.ErrCompacted) || ce.Oldest != oldest {
				t.Fatalf("Read(%d) below Oldest %d = %v, want *CompactedError", oldest-1, oldest, err)
			}
		}
		// Replay (recovery) still sees only the records after the checkpoint.
		ck, _, _, err := j.ReadCheckpoint()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range replay(t, j, ck) {
			if r.Key <= ck {
				t.Fatalf("Replay(%d) returned record %d", ck, r.Key)
			}
		}
	}
}

// TestReadDuringCheckpoint: a Read that a checkpoint overtakes — it deletes
// records Read has not reached yet — fails with a *CompactedError after
// returning only records before the gap, never skipping one.
func TestReadDuringCheckpoint(t *testing.T) {
	j := open(t, "", journal.Options{NoSync: true, Retain: 10})
	const n = 20000 // several read chunks
	appendAll(t, j, 1, n)
	var got uint64
	var ckptErr error
	_, err := j.Read(0, func(k uint64, _ []byte) error {
		if k != got+1 {
			return fmt.Errorf("record %d after %d", k, got)
		}
		got = k
		if k == 1 {
			ckptErr = j.Checkpoint(n, nil) // deletes 1..n-10 while Read holds its first chunk
		}
		return nil
	})
	if ckptErr != nil {
		t.Fatal(ckptErr)
	}
	if !errors.Is(err, journal.ErrCompacted) || got >= n-10 {
		t.Fatalf("Read = %v after record %d; want ErrCompacted before record %d", err, got, n-9)
	}
	if got := read(t, j, n-10); len(got) != 10 {
		t.Fatalf("Read(%d) after the checkpoint: %d records, want 10", n-10, len(got))
	}
}

// BenchmarkRead measures catching up from the journal (the change feed's
// history, R47): records/s read back with Read, 100-byte records.
func BenchmarkRead(b *testing.B) {
	const n = 50000
	j := open(b, filepath.Join(b.TempDir(), "j.db"), journal.Options{NoSync: true, Retain: n})
	data := make([]byte, 100)
	errs := make(chan error, n)
	for k := uint64(1); k <= n; k++ {
		j.Append(k, data, func(err error) { errs <- err })
	}
	for range n {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	if err := j.Checkpoint(n, nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	total := 0
	for b.Loop() {
		last, err := j.Read(0, func(uint64, []byte) error { total++; return nil })
		if err != nil || last != n {
			b.Fatal(last, err)
		}
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "records/s")
}
