package journal_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/sysreg/sysreg/journal"
)

// makeBase writes a journal with a checkpoint at 100, records 101..300 of
// 500 bytes (several pages) and mark 1000.
func makeBase(t testing.TB, path string) {
	t.Helper()
	j, err := journal.Open(path, journal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 300)
	for k := uint64(1); k <= 300; k++ {
		j.Append(k, bigRecord(k), func(err error) { errs <- err })
	}
	for range 300 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Checkpoint(100, []byte("checkpoint-100")); err != nil {
		t.Fatal(err)
	}
	if err := reserveWait(j, 1000); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

func bigRecord(k uint64) []byte {
	return append(recordData(k), bytes.Repeat([]byte{byte(k)}, 490)...)
}

// boltUpdate changes the file with bbolt directly.
func boltUpdate(t testing.TB, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func key8(k uint64) []byte { return binary.BigEndian.AppendUint64(nil, k) }

// usedSize is the size bbolt's meta page says the file needs.
func usedSize(t testing.TB, path string) int64 {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }() // read-only
	var size int64
	_ = db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil })
	return size
}

func TestCorruptFiles(t *testing.T) {
	tests := []struct {
		name   string
		base   bool                                       // start from makeBase
		damage func(t *testing.T, path string)            // make the file
		want   func(t *testing.T, path string, err error) // check Open's error
	}{
		{name: "garbage", damage: func(t *testing.T, path string) {
			b := make([]byte, 64<<10)
			r := rand.New(rand.NewPCG(1, 2))
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			writeFile(t, path, b)
		}, want: wantCorrupt},
		{name: "short garbage", damage: func(t *testing.T, path string) {
			writeFile(t, path, []byte("hello, world\n"))
		}, want: wantCorrupt},
		{name: "zero-length", damage: func(t *testing.T, path string) {
			writeFile(t, path, nil) // a new file: initialised (crash before bbolt's first sync)
		}, want: wantOK},
		{name: "bbolt file without buckets", damage: func(t *testing.T, path string) {
			boltUpdate(t, path, func(*bolt.Tx) error { return nil }) // crash before our initialisation
		}, want: wantOK},
		{name: "truncated in half", base: true, damage: func(t *testing.T, path string) {
			if err := os.Truncate(path, usedSize(t, path)/2); err != nil {
				t.Fatal(err)
			}
		}, want: wantCorrupt},
		{name: "truncated to one page", base: true, damage: func(t *testing.T, path string) {
			if err := os.Truncate(path, 4096); err != nil {
				t.Fatal(err)
			}
		}, want: wantCorrupt},
		{name: "foreign bbolt file", damage: func(t *testing.T, path string) {
			boltUpdate(t, path, func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket([]byte("widgets"))
				if err != nil {
					return err
				}
				return b.Put([]byte("foo"), []byte("bar"))
			})
		}, want: wantCorrupt},
		{name: "foreign format", base: true, damage: func(t *testing.T, path string) {
			boltUpdate(t, path, func(tx *bolt.Tx) error {
				return tx.Bucket([]byte("meta")).Put([]byte("format"), []byte("other-journal"))
			})
		}, want: wantCorrupt},
		{name: "newer version", base: true, damage: func(t *testing.T, path string) {
			boltUpdate(t, path, func(tx *bolt.Tx) error {
				return tx.Bucket([]byte("meta")).Put([]byte("version"), key8(journal.FormatVersion+1))
			})
		}, want: func(t *testing.T, path string, err error) {
			var ve *journal.VersionError
			newer, cur := journal.FormatVersion+1, journal.FormatVersion
			if !errors.As(err, &ve) || ve.Found != newer || ve.Supported != cur || ve.Path != path {
				t.Fatalf("Open = %v, want *VersionError{Found: %d, Supported: %d}", err, newer, cur)
			}
			// The message names both versions (the contract of R29).
			if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("version %d", newer)) || !strings.Contains(msg, fmt.Sprintf("version %d", cur)) {
				t.Errorf("message %q does not name both versions", msg)
			}
		}},
		{name: "version missing", base: true, damage: func(t *testing.T, path string) {
			boltUpdate(t, path, func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Delete([]byte("version")) })
		}, want: wantCorrupt},
		{name: "records bucket missing", base: true, damage: func(t *testing.T, path string) {
			boltUpdate(t, path, func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("records")) })
		}, want: wantCorrupt},
		{name: "crc flipped", base: true, damage: func(t *testing.T, path string) {
			boltUpdate(t, path, func(tx *bolt.Tx) error {
				b := tx.Bucket([]byte("records"))
				v := bytes.Clone(b.Get(key8(150)))
				v[len(v)-1] ^= 0x01
				return b.Put(key8(150), v)
			})
		}, want: wantCorrupt},
		{name: "chain gap", base: true, damage: func(t *testing.T, path string) {
			boltUpdate(t, path, func(tx *bolt.Tx) error { return tx.Bucket([]byte("records")).Delete(key8(200)) })
		}, want: wantCorrupt},
		{name: "first record after checkpoint deleted", base: true, damage: func(t *testing.T, path string) {
			boltUpdate(t, path, func(tx *bolt.Tx) error { return tx.Bucket([]byte("records")).Delete(key8(101)) })
		}, want: wantCorrupt},
		{name: "short value", base: true, damage: func(t *testing.T, path string) {
			boltUpdate(t, path, func(tx *bolt.Tx) error { return tx.Bucket([]byte("records")).Put(key8(400), []byte{1, 2, 3}) })
		}, want: wantCorrupt},
		{name: "bad key length", base: true, damage: func(t *testing.T, path string) {
			boltUpdate(t, path, func(tx *bolt.Tx) error {
				return tx.Bucket([]byte("records")).Put([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, make([]byte, 20))
			})
		}, want: wantCorrupt},
		{name: "record covered by checkpoint", base: true, damage: func(t *testing.T, path string) {
			boltUpdate(t, path, func(tx *bolt.Tx) error {
				v := binary.BigEndian.AppendUint64(nil, 0)
				v = binary.BigEndian.AppendUint32(v, 0) // CRC-32C of no data
				return tx.Bucket([]byte("records")).Put(key8(50), v)
			})
		}, want: wantCorrupt},
		{name: "checkpoint crc mismatch", base: true, damage: func(t *testing.T, path string) {
			boltUpdate(t, path, func(tx *bolt.Tx) error {
				return tx.Bucket([]byte("checkpoint")).Put([]byte("data"), []byte("checkpoint-999"))
			})
		}, want: wantCorrupt},
		{name: "checkpoint incomplete", base: true, damage: func(t *testing.T, path string) {
			boltUpdate(t, path, func(tx *bolt.Tx) error { return tx.Bucket([]byte("checkpoint")).Delete([]byte("crc")) })
		}, want: wantCorrupt},
		{name: "pages overwritten", base: true, damage: func(t *testing.T, path string) {
			b := readFile(t, path)
			for i := 2 * 4096; i < len(b); i++ {
				b[i] = 0xAB
			}
			writeFile(t, path, b)
		}, want: wantCorrupt},
		{name: "both meta pages damaged", base: true, damage: func(t *testing.T, path string) {
			b := readFile(t, path)
			for _, off := range []int{16 + 20, 4096 + 16 + 20} { // inside each meta, before its checksum
				b[off] ^= 0xFF
			}
			writeFile(t, path, b)
		}, want: wantCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "j.db")
			if tt.base {
				makeBase(t, path)
			}
			tt.damage(t, path)
			before := readFile(t, path)

			rep, ierr := journal.Inspect(path) // never panics, and reports the damage too
			if rep == nil {
				t.Fatal("Inspect returned a nil report")
			}
			t.Logf("Inspect: %d records, problems: %v", len(rep.Records), ierr)

			j, err := journal.Open(path, journal.Options{LockTimeout: -1})
			if err == nil {
				// Replay too: a damaged file must not get past both.
				_, _, _, err = j.ReadCheckpoint()
				if err == nil {
					err = j.Replay(0, func(uint64, []byte) error { return nil })
				}
				if cerr := j.Close(); cerr != nil {
					t.Fatal(cerr)
				}
			} else if after := readFile(t, path); !bytes.Equal(before, after) {
				t.Error("a failed Open changed the file")
			}
			t.Logf("Open: %v", err)
			tt.want(t, path, err)
			if err != nil && ierr == nil {
				t.Errorf("Open failed (%v) but Inspect found nothing", err)
			}
		})
	}
}

func wantCorrupt(t *testing.T, path string, err error) {
	t.Helper()
	var ce *journal.CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a *CorruptError", err)
	}
	if ce.Path != path || ce.Reason == "" {
		t.Errorf("CorruptError %+v: want Path %q and a reason", ce, path)
	}
}

func wantOK(t *testing.T, path string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("got %v, want a journal initialised", err)
	}
	j := open(t, path, journal.Options{})
	if err := appendWait(j, 1, []byte("x")); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRandomDamage flips random bytes of a sound journal many times: Open,
// Replay and Inspect must never panic or crash the process (bbolt's own
// goroutines panic on some damage; Open must not let bbolt meet it).
func TestRandomDamage(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.db")
	makeBase(t, base)
	sound := readFile(t, base)
	seed := uint64(rand.Uint32())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	iterations := 400
	if raceEnabled || testing.Short() {
		iterations = 100
	}
	path := filepath.Join(dir, "j.db")
	outcomes := map[string]int{}
	for range iterations {
		b := bytes.Clone(sound)
		for range 1 + r.IntN(8) {
			switch r.IntN(3) {
			case 0: // a byte anywhere
				b[r.IntN(len(b))] = byte(r.Uint32())
			case 1: // a page header or element header: the structure
				page := r.IntN(len(b) / 4096)
				off := page*4096 + r.IntN(64)
				b[off] = byte(r.Uint32())
			default: // one bit
				i := r.IntN(len(b))
				b[i] ^= 1 << r.IntN(8)
			}
		}
		writeFile(t, path, b)
		if _, err := journal.Inspect(path); err != nil {
			outcomes["inspect error"]++
		}
		j, err := journal.Open(path, journal.Options{NoSync: true, LockTimeout: -1})
		if err != nil {
			var ce *journal.CorruptError
			var ve *journal.VersionError
			if !errors.As(err, &ce) && !errors.As(err, &ve) {
				t.Fatalf("Open of a damaged file = %v, want *CorruptError or *VersionError", err)
			}
			outcomes["open corrupt"]++
			continue
		}
		if err := j.Replay(0, func(uint64, []byte) error { return nil }); err != nil {
			outcomes["replay error"]++
		} else {
			outcomes["sound"]++
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("outcomes: %v", outcomes)
}
