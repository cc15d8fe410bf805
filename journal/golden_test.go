package journal_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/sysreg/sysreg/journal"
)

var update = flag.Bool("update", false, "rewrite testdata/golden-v4.db (a format change needs a new version instead; golden-v1.db, golden-v2.db and golden-v3.db can no longer be written)")

const (
	goldenV1 = "testdata/golden-v1.db"
	goldenV2 = "testdata/golden-v2.db"
	goldenV3 = "testdata/golden-v3.db"
	goldenV4 = "testdata/golden-v4.db"
)

// The golden files hold: records 1..5, mark 100, a checkpoint at 6
// ("checkpoint-6", covering records 1..5, last 5), then records 7
// ("record-7"), 8 (empty), 9 (00 ff); with more, also records 10..20 of
// 100 bytes each ('a'+key-10 repeated), which make the tail overflow once.
// Version 3 was written with Retain 2: the checkpoint keeps records 4 and
// 5 (base 3). Version 4: see writeGoldenV4.

func goldenRecords(more bool) []rec {
	recs := []rec{{7, "record-7"}, {8, ""}, {9, "\x00\xff"}}
	if more {
		for k := uint64(10); k <= 20; k++ {
			recs = append(recs, rec{k, strings.Repeat(string(rune('a'+k-10)), 100)})
		}
	}
	return recs
}

// TestGoldenV1 checks that a version 1 file, written once and kept in
// testdata, still decodes, through the API and byte by byte as doc.go
// specified for version 1, and that Open upgrades it to version 2 by
// adding an empty tail bucket and changing nothing else. Never regenerate
// it: this build cannot write version 1.
func TestGoldenV1(t *testing.T) {
	golden, err := os.ReadFile(goldenV1)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "j.db") // Open writes: work on a copy
	writeFile(t, path, golden)
	untouched := filepath.Join(t.TempDir(), "v1.db")
	writeFile(t, untouched, golden)

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

	v1 := goldenBuckets(1, goldenRecords(false), nil)
	t.Run("bytes", func(t *testing.T) { checkBuckets(t, untouched, v1) })
	t.Run("upgrade", func(t *testing.T) {
		up := goldenBuckets(journal.FormatVersion, goldenRecords(false), nil)
		checkBuckets(t, path, up)
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

// goldenBuckets is what the golden file of version holds: records in the
// records bucket, tail in the tail bucket (version 2 and later).
func goldenBuckets(version uint64, records, tail []rec) map[string]map[string][]byte {
	return goldenBucketsBase(version, 5, records, tail)
}

// goldenBucketsBase is goldenBuckets with the checkpoint's base: the prev
// of the first record (5 when the checkpoint deleted every record it
// covers; version 3 stores it when it is not 5).
func goldenBucketsBase(version, base uint64, records, tail []rec) map[string]map[string][]byte {
	be := binary.BigEndian
	crc := func(b []byte) []byte {
		return be.AppendUint32(nil, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
	}
	u64 := func(v uint64) []byte { return be.AppendUint64(nil, v) }
	bucket := func(prev uint64, recs []rec) (map[string][]byte, uint64) {
		m := map[string][]byte{}
		for _, r := range recs {
			data := []byte(r.Data)
			m[string(u64(r.Key))] = append(append(u64(prev), crc(data)...), data...)
			prev = r.Key
		}
		return m, prev
	}
	want := map[string]map[string][]byte{
		"meta": {
			"format":  []byte("sysreg-journal"),
			"version": u64(version),
			"mark":    u64(100),
		},
		"checkpoint": {
			"key":  u64(6),
			"last": u64(5),
			"crc":  crc([]byte("checkpoint-6")),
			"data": []byte("checkpoint-6"),
		},
	}
	if base != 5 {
		want["checkpoint"]["base"] = u64(base)
	}
	var last uint64
	want["records"], last = bucket(base, records)
	if version >= 2 {
		want["tail"], _ = bucket(last, tail)
	}
	return want
}

// checkBuckets checks, byte by byte, that the bbolt file at path holds
// exactly the buckets and keys of want.
func checkBuckets(t *testing.T, path string, want map[string]map[string][]byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }() // read-only
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
}

// TestGoldenV2 checks that the version 2 file kept in testdata decodes,
// through the API, byte by byte as doc.go specifies (records 7..15 moved
// from the tail to the records bucket when record 16 did not fit in the
// tail's quarter page, 16..20 in the tail) and through Inspect. Never
// regenerate it to make this test pass: a format change needs a new
// version (and this file must still be read).
func TestGoldenV2(t *testing.T) {
	golden, err := os.ReadFile(goldenV2)
	if err != nil {
		t.Fatal(err)
	}
	recs := goldenRecords(true)
	t.Run("bytes", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "j.db")
		writeFile(t, path, golden)
		checkBuckets(t, path, goldenBuckets(2, recs[:9], recs[9:]))
	})
	t.Run("api", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "j.db")
		writeFile(t, path, golden)
		j := open(t, path, journal.Options{})
		key, data, ok, err := j.ReadCheckpoint()
		if err != nil || !ok || key != 6 || string(data) != "checkpoint-6" {
			t.Errorf("ReadCheckpoint = %d, %q, %v, %v", key, data, ok, err)
		}
		if got := replay(t, j, key); !equalRecs(got, recs) {
			t.Errorf("Replay = %+v, want %+v", got, recs)
		}
		if j.Mark() != 100 || j.LastKey() != 20 {
			t.Errorf("Mark %d, LastKey %d; want 100, 20", j.Mark(), j.LastKey())
		}
	})
	t.Run("inspect", func(t *testing.T) {
		rep, err := journal.Inspect(goldenV2)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Version != 2 || rep.Mark != 100 || len(rep.Records) != len(recs) {
			t.Errorf("report: version %d, mark %d, %d records", rep.Version, rep.Mark, len(rep.Records))
		}
		for i, r := range rep.Records {
			if r.Err != nil || i < len(recs) && (r.Key != recs[i].Key || string(r.Data) != recs[i].Data) {
				t.Errorf("record %d: %+v", i, r)
			}
		}
	})
	t.Run("upgrade", func(t *testing.T) {
		// Open raises the version (to 4 since R47's base data) and
		// changes nothing else: a checkpoint without "base" deleted
		// every record it covered.
		path := filepath.Join(t.TempDir(), "j.db")
		writeFile(t, path, golden)
		j := open(t, path, journal.Options{})
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		checkBuckets(t, path, goldenBuckets(journal.FormatVersion, recs[:9], recs[9:]))
	})
}

// retainedRecs are the records 4 and 5 that golden-v3.db's checkpoint keeps.
var retainedRecs = []rec{{4, "record-4"}, {5, "record-5"}}

// TestGoldenV3 checks the version 3 file kept in testdata, written with
// Retain 2: the checkpoint at 6 deleted records 1..3 (base 3) and kept 4
// and 5, which moved with 7..15 from the tail to the records bucket.
// Replay from the checkpoint yields 7..20, Read from 3 yields 4..20, and
// Read from below 3 is a *CompactedError. Never regenerate it: this
// build writes version 4 (base data beside the checkpoint).
func TestGoldenV3(t *testing.T) {
	golden, err := os.ReadFile(goldenV3)
	if err != nil {
		t.Fatal(err)
	}
	recs := goldenRecords(true)
	all := append(slices.Clone(retainedRecs), recs...)
	t.Run("bytes", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "j.db")
		writeFile(t, path, golden)
		checkBuckets(t, path, goldenBucketsBase(3, 3, all[:11], all[11:]))
	})
	t.Run("api", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "j.db")
		writeFile(t, path, golden)
		j := open(t, path, journal.Options{Retain: 2})
		key, data, ok, err := j.ReadCheckpoint()
		if err != nil || !ok || key != 6 || string(data) != "checkpoint-6" {
			t.Errorf("ReadCheckpoint = %d, %q, %v, %v", key, data, ok, err)
		}
		if got := replay(t, j, key); !equalRecs(got, recs) {
			t.Errorf("Replay = %+v, want %+v", got, recs)
		}
		if got := read(t, j, 3); !equalRecs(got, all) {
			t.Errorf("Read(3) = %+v, want %+v", got, all)
		}
		if _, err := j.Read(2, func(uint64, []byte) error { return nil }); !errors.Is(err, journal.ErrCompacted) {
			t.Errorf("Read(2) = %v, want ErrCompacted", err)
		}
		if st := j.Stats(); j.Oldest() != 3 || st.Oldest != 3 || st.Retained != 2 || st.Records != len(recs) {
			t.Errorf("Oldest %d, stats %+v", j.Oldest(), st)
		}
	})
	t.Run("inspect", func(t *testing.T) {
		rep, err := journal.Inspect(goldenV3)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Version != 3 || rep.Checkpoint == nil || rep.Checkpoint.Base != 3 || len(rep.Records) != len(all) || len(rep.Problems) != 0 {
			t.Errorf("report: %+v", rep)
		}
		for i, r := range rep.Records {
			if r.Err != nil || i < len(all) && (r.Key != all[i].Key || string(r.Data) != all[i].Data) {
				t.Errorf("record %d: %+v", i, r)
			}
		}
	})
}

// writeGoldenV4 writes writeGolden's journal, with the checkpoint written
// by CheckpointBase(6, "checkpoint-6", 3, "base-3"): records 4 and 5 are
// kept, and "base-3" is the base data.
func writeGoldenV4(t *testing.T, path string) {
	j, err := journal.Open(path, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, j, 1, 5)
	if err := reserveWait(j, 100); err != nil {
		t.Fatal(err)
	}
	if err := j.CheckpointBase(6, []byte("checkpoint-6"), 3, []byte("base-3")); err != nil {
		t.Fatal(err)
	}
	for _, r := range goldenRecords(true) {
		if err := appendWait(j, r.Key, []byte(r.Data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestGoldenV4 checks the version 4 file byte by byte as doc.go specifies
// it (the base data beside the checkpoint, for the change feed, R47) and
// through the API. -update rewrites it; a format change needs a new
// version instead.
func TestGoldenV4(t *testing.T) {
	if *update {
		tmp := filepath.Join(t.TempDir(), "golden.db")
		writeGoldenV4(t, tmp)
		if err := os.WriteFile(goldenV4, readFile(t, tmp), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s", goldenV4)
	}
	golden, err := os.ReadFile(goldenV4)
	if err != nil {
		t.Fatalf("%v (create it once with go test -run TestGoldenV4 -update)", err)
	}
	recs := goldenRecords(true)
	all := append(slices.Clone(retainedRecs), recs...)
	t.Run("bytes", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "j.db")
		writeFile(t, path, golden)
		want := goldenBucketsBase(4, 3, all[:11], all[11:])
		be := binary.BigEndian
		want["checkpoint"]["basekey"] = be.AppendUint64(nil, 3)
		want["checkpoint"]["basecrc"] = be.AppendUint32(nil, crc32.Checksum([]byte("base-3"), crc32.MakeTable(crc32.Castagnoli)))
		want["checkpoint"]["basedata"] = []byte("base-3")
		checkBuckets(t, path, want)
	})
	t.Run("api", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "j.db")
		writeFile(t, path, golden)
		j := open(t, path, journal.Options{})
		base, data, ok, err := j.ReadBase()
		if err != nil || !ok || base != 3 || string(data) != "base-3" {
			t.Errorf("ReadBase = %d, %q, %v, %v", base, data, ok, err)
		}
		if got := read(t, j, 3); !equalRecs(got, all) {
			t.Errorf("Read(3) = %+v, want %+v", got, all)
		}
		if j.Oldest() != 3 {
			t.Errorf("Oldest = %d, want 3", j.Oldest())
		}
		// A checkpoint without a base removes the base data.
		if err := j.Checkpoint(20, []byte("c20")); err != nil {
			t.Fatal(err)
		}
		if _, _, ok, err := j.ReadBase(); ok || err != nil {
			t.Errorf("ReadBase after Checkpoint: ok %v, err %v", ok, err)
		}
	})
}

// TestCheckpointBase checks that CheckpointBase deletes exactly the
// records up to its base and refuses a base above the key or below
// Oldest (R47's history).
func TestCheckpointBase(t *testing.T) {
	j := open(t, filepath.Join(t.TempDir(), "j.db"), journal.Options{Retain: 100})
	appendAll(t, j, 1, 10)
	if err := j.CheckpointBase(8, []byte("c8"), 4, []byte("b4")); err != nil {
		t.Fatal(err)
	}
	if j.Oldest() != 4 {
		t.Errorf("Oldest = %d, want 4", j.Oldest())
	}
	if got := read(t, j, 4); len(got) != 6 || got[0].Key != 5 {
		t.Errorf("Read(4) = %+v", got)
	}
	if err := j.CheckpointBase(9, []byte("c9"), 10, nil); !errors.Is(err, journal.ErrKeyOrder) {
		t.Errorf("base above key: %v", err)
	}
	if err := j.CheckpointBase(9, []byte("c9"), 2, nil); !errors.Is(err, journal.ErrKeyOrder) {
		t.Errorf("base below Oldest: %v", err)
	}
}
