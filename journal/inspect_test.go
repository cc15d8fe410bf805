package journal_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/sysreg/sysreg/journal"
)

func TestInspectSound(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	makeBase(t, path)
	rep, err := journal.Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Path != path || rep.FileSize == 0 || rep.PageSize == 0 || rep.Live || rep.Mark != 1000 || rep.Version != journal.FormatVersion {
		t.Errorf("report %+v", rep)
	}
	if c := rep.Checkpoint; c == nil || c.Key != 100 || c.Last != 100 || string(c.Data) != "checkpoint-100" {
		t.Errorf("checkpoint %+v", rep.Checkpoint)
	}
	if len(rep.Records) != 200 || rep.Records[0].Key != 101 || rep.Records[0].Prev != 100 {
		t.Fatalf("%d records, first %+v", len(rep.Records), rep.Records[0])
	}
	for _, r := range rep.Records {
		if !bytes.Equal(r.Data, bigRecord(r.Key)) || r.Err != nil {
			t.Fatalf("record %+v", r)
		}
	}
	// Inspect agrees with Replay.
	j := open(t, path, journal.Options{})
	got := replay(t, j, 0)
	if len(got) != len(rep.Records) {
		t.Errorf("Replay %d records, Inspect %d", len(got), len(rep.Records))
	}
}

func TestInspectDamaged(t *testing.T) {
	// Best effort: a bad record is reported, and the records around it are
	// still read.
	path := filepath.Join(t.TempDir(), "j.db")
	makeBase(t, path)
	boltUpdate(t, path, func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("records"))
		v := bytes.Clone(b.Get(key8(150)))
		v[20] ^= 0xFF
		if err := b.Put(key8(150), v); err != nil {
			return err
		}
		return b.Delete(key8(250))
	})
	rep, err := journal.Inspect(path)
	var ce *journal.CorruptError
	if !errors.As(err, &ce) || len(rep.Problems) != 2 {
		t.Fatalf("Inspect = %v, problems %v; want 2 *CorruptError", err, rep.Problems)
	}
	if len(rep.Records) != 199 {
		t.Errorf("%d records read, want 199", len(rep.Records))
	}
	bad := map[uint64]bool{}
	for _, r := range rep.Records {
		if r.Err != nil {
			bad[r.Key] = true
		}
	}
	if !bad[150] || !bad[251] || len(bad) != 2 {
		t.Errorf("records with errors: %v, want 150 (crc) and 251 (chain)", bad)
	}
}

func TestInspectMissing(t *testing.T) {
	rep, err := journal.Inspect(filepath.Join(t.TempDir(), "none.db"))
	if !errors.Is(err, os.ErrNotExist) || rep == nil || len(rep.Problems) != 1 {
		t.Errorf("Inspect of a missing file = %+v, %v", rep, err)
	}
}
