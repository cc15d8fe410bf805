package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeRecord: the record value decoder never panics, accepts exactly
// the values whose CRC matches, and decodes what encodeRecord encodes.
// Seeds: testdata/fuzz/FuzzDecodeRecord.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(uint64(7), encodeRecord(nil, 5, []byte("record-7")))
	f.Fuzz(func(t *testing.T, key uint64, v []byte) {
		prev, data, err := decodeRecord(key, v)
		if err != nil {
			var r reason
			if !errors.As(err, &r) {
				t.Fatalf("error %v is not a reason for a CorruptError", err)
			}
			if len(v) >= recordHeaderSize && crc(v[recordHeaderSize:]) == binary.BigEndian.Uint32(v[8:12]) {
				t.Fatalf("sound value rejected: %v", err)
			}
			return
		}
		if got := encodeRecord(nil, prev, data); !bytes.Equal(got, v) {
			t.Fatalf("re-encoded %x, decoded from %x", got, v)
		}
	})
}

// FuzzDecodeCheckpoint: the checkpoint decoder never panics and decodes
// only fields it could have written.
func FuzzDecodeCheckpoint(f *testing.F) {
	data := []byte("checkpoint-6")
	f.Add(u64(6), u64(5), binary.BigEndian.AppendUint32(nil, crc(data)), data, []byte(nil))
	f.Add(u64(6), u64(5), binary.BigEndian.AppendUint32(nil, crc(data)), data, u64(3))
	f.Add([]byte{1}, u64(5), []byte{1, 2, 3, 4}, data, u64(9))
	f.Fuzz(func(t *testing.T, key, last, crcField, dataField, base []byte) {
		c, ok, err := decodeCheckpoint(key, last, crcField, dataField, base)
		if err != nil || !ok {
			return
		}
		wantBase := base
		if base == nil {
			wantBase = last
		}
		if !bytes.Equal(u64(c.key), key) || !bytes.Equal(u64(c.last), last) || c.last > c.key ||
			!bytes.Equal(u64(c.base), wantBase) || c.base > c.last ||
			!bytes.Equal(binary.BigEndian.AppendUint32(nil, crc(c.data)), crcField) || !bytes.Equal(c.data, dataField) {
			t.Fatalf("decoded %+v from %x %x %x %x %x", c, key, last, crcField, dataField, base)
		}
	})
}

// FuzzBoltFile: the bbolt structure checker never panics or hangs on any
// bytes, and whatever it passes, bbolt can open for writing without
// panicking in its own goroutines (which would kill the process) and the
// journal reads without panicking.
func FuzzBoltFile(f *testing.F) {
	for _, name := range []string{"testdata/golden-v1.db", "testdata/golden-v2.db"} {
		if golden, err := os.ReadFile(name); err == nil {
			f.Add(golden)
		}
	}
	f.Add([]byte("hello, world"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if checkBoltFile(bytes.NewReader(b), int64(len(b))) != nil {
			return
		}
		path := filepath.Join(t.TempDir(), "j.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		j, err := Open(path, Options{NoSync: true, LockTimeout: -1})
		if err != nil {
			var ce *CorruptError
			var ve *VersionError
			if !errors.As(err, &ce) && !errors.As(err, &ve) {
				t.Fatalf("Open = %v, want *CorruptError or *VersionError", err)
			}
			return
		}
		_ = j.Replay(0, func(uint64, []byte) error { return nil })
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	})
}
