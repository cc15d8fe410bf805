package journal_test

import (
	"bytes"
	"encoding/binary"
	"flag"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/sysreg/sysreg/journal"
)

var update = flag.Bool("update", false, "rewrite testdata/golden-v1.db (a format change needs a new version instead)")

const goldenV1 = "testdata/golden-v1.db"

// writeGoldenV1 writes the journal that testdata/golden-v1.db holds:
// records 1..5, mark 100, a checkpoint at 6 ("checkpoint-6", covering
// records 1..5, last 5), then records 7 ("record-7"), 8 (empty), 9 (00 ff).
func writeGoldenV1(t *testing.T, path string) {
	j, err := journal.Open(path, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, j, 1, 5)
	if err := reserveWait(j, 100); err != nil {
		t.Fatal(err)
	}
	if err := j.Checkpoint(6, []byte("checkpoint-6")); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		key  uint64
		data []byte
	}{{7, []byte("record-7")}, {8, nil}, {9, []byte{0x00, 0xff}}} {
		if err := appendWait(j, r.key, r.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestGoldenV1 checks that a version 1 file, written once and kept in
// testdata, still decodes, through the API and byte by byte as doc.go
// specifies. Never regenerate it to make this test pass: a format change
// needs a new version (and this file must still be read).
func TestGoldenV1(t *testing.T) {
	if *update {
		tmp := filepath.Join(t.TempDir(), "golden.db")
		writeGoldenV1(t, tmp)
		if err := os.WriteFile(goldenV1, readFile(t, tmp), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s", goldenV1)
	}
	golden, err := os.ReadFile(goldenV1)
	if err != nil {
		t.Fatalf("%v (create it once with go test -run TestGoldenV1 -update)", err)
	}
	path := filepath.Join(t.TempDir(), "j.db") // Open writes: work on a copy
	writeFile(t, path, golden)

	t.Run("api", func(t *testing.T) {
		j := open(t, path, journal.Options{})
		key, data, ok, err := j.ReadCheckpoint()
		if err != nil || !ok || key != 6 || string(data) != "checkpoint-6" {
			t.Errorf("ReadCheckpoint = %d, %q, %v, %v", key, data, ok, err)
		}
		want := []rec{{7, "record-7"}, {8, ""}, {9, "\x00\xff"}}
		if got := replay(t, j, key); !equalRecs(got, want) {
			t.Errorf("Replay = %+v, want %+v", got, want)
		}
		if j.Mark() != 100 || j.LastKey() != 9 {
			t.Errorf("Mark %d, LastKey %d; want 100, 9", j.Mark(), j.LastKey())
		}
	})

	t.Run("bytes", func(t *testing.T) {
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = db.Close() }() // read-only
		be := binary.BigEndian
		crc := func(b []byte) []byte {
			return be.AppendUint32(nil, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
		}
		u64 := func(v uint64) []byte { return be.AppendUint64(nil, v) }
		record := func(prev uint64, data []byte) []byte {
			return append(append(u64(prev), crc(data)...), data...)
		}
		want := map[string]map[string][]byte{
			"meta": {
				"format":  []byte("sysreg-journal"),
				"version": {0, 0, 0, 0, 0, 0, 0, 1},
				"mark":    u64(100),
			},
			"checkpoint": {
				"key":  u64(6),
				"last": u64(5),
				"crc":  crc([]byte("checkpoint-6")),
				"data": []byte("checkpoint-6"),
			},
			"records": {
				string(u64(7)): record(5, []byte("record-7")),
				string(u64(8)): record(7, nil),
				string(u64(9)): record(8, []byte{0x00, 0xff}),
			},
		}
		err = db.View(func(tx *bolt.Tx) error {
			n := 0
			_ = tx.ForEach(func(name []byte, b *bolt.Bucket) error {
				n++
				w, ok := want[string(name)]
				if !ok {
					t.Errorf("unexpected bucket %q", name)
					return nil
				}
				got := map[string][]byte{}
				_ = b.ForEach(func(k, v []byte) error { got[string(k)] = bytes.Clone(v); return nil })
				if len(got) != len(w) {
					t.Errorf("bucket %s: %d keys, want %d", name, len(got), len(w))
				}
				for k, wv := range w {
					if !bytes.Equal(got[k], wv) {
						t.Errorf("bucket %s, key %x: %x, want %x", name, k, got[k], wv)
					}
				}
				return nil
			})
			if n != len(want) {
				t.Errorf("%d buckets, want %d", n, len(want))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("inspect", func(t *testing.T) {
		rep, err := journal.Inspect(goldenV1) // read-only: the file itself
		if err != nil {
			t.Fatal(err)
		}
		if rep.Format != "sysreg-journal" || rep.Version != 1 || rep.Mark != 100 || rep.Live {
			t.Errorf("report %+v", rep)
		}
		if c := rep.Checkpoint; c == nil || c.Key != 6 || c.Last != 5 || string(c.Data) != "checkpoint-6" || c.Err != nil {
			t.Errorf("checkpoint %+v", c)
		}
		var prevs []uint64
		for _, r := range rep.Records {
			if r.Err != nil {
				t.Errorf("record %d: %v", r.Key, r.Err)
			}
			prevs = append(prevs, r.Key, r.Prev)
		}
		if want := []uint64{7, 5, 8, 7, 9, 8}; !slices.Equal(prevs, want) {
			t.Errorf("records (key, prev) = %v, want %v", prevs, want)
		}
	})
}
