package journal

import (
	"encoding/binary"
	"hash/crc32"
	"math/bits"

	bolt "go.etcd.io/bbolt"
)

// FormatVersion is the on-disk format version this build writes and the
// newest it reads. See the package documentation, "On-disk format".
// Version 1 files (no tail bucket) and version 2 files (no checkpoint
// "base") and version 3 files (no base snapshot) are read, and upgraded
// by Open.
const FormatVersion uint64 = 4

// formatName is the value of meta/"format": it tells a sysreg journal from
// any other bbolt file.
const formatName = "sysreg-journal"

// recordHeaderSize is the size of a record value before its data:
// 8 bytes of previous key and 4 bytes of CRC-32C.
const recordHeaderSize = 12

// maxValueSize is the largest bbolt value the journal writes. Besides its
// value limit (bolt.MaxValueSize), bbolt reads a value through an array of
// at most MaxAllocSize bytes counted from the start of its page, and panics
// past it: 256 MiB - 1 on 32-bit platforms, 2 GiB - 1 on 64-bit ones (its
// internal/common). 64 KiB leave room for the page header, the elements
// and the keys before the value.
const maxValueSize = min(bolt.MaxValueSize, 1<<(28+3*(bits.UintSize/64))-1) - 64<<10

// MaxRecordSize is the largest data an Append accepts: bbolt's limit on
// one value less the record header. About 256 MiB on 32-bit platforms,
// 2 GiB on 64-bit ones.
const MaxRecordSize = maxValueSize - recordHeaderSize

// MaxCheckpointSize is the largest data a Checkpoint accepts: bbolt's limit
// on one value. About 256 MiB on 32-bit platforms, 2 GiB on 64-bit ones.
const MaxCheckpointSize = maxValueSize

var (
	bucketMeta       = []byte("meta")
	bucketRecords    = []byte("records")
	bucketCheckpoint = []byte("checkpoint")
	bucketTail       = []byte("tail") // format version 2

	keyFormat  = []byte("format")
	keyVersion = []byte("version")
	keyMark    = []byte("mark")

	keyCkptKey  = []byte("key")
	keyCkptLast = []byte("last")
	keyCkptCRC  = []byte("crc")
	keyCkptData = []byte("data")
	keyCkptBase = []byte("base") // format version 3

	keyCkptBaseKey  = []byte("basekey")  // format version 4
	keyCkptBaseCRC  = []byte("basecrc")  // format version 4
	keyCkptBaseData = []byte("basedata") // format version 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(data []byte) uint32 { return crc32.Checksum(data, castagnoli) }

// u64 encodes v as 8 bytes big-endian (the byte order of every integer in
// the journal's own keys and values).
func u64(v uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v)
}

// decodeU64 decodes an 8-byte big-endian integer; what names the field in
// the error.
func decodeU64(what string, b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, reasonf("%s: %d bytes, want 8", what, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// encodeRecord appends the record value [prev][crc][data] to dst.
func encodeRecord(dst []byte, prev uint64, data []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, prev)
	dst = binary.BigEndian.AppendUint32(dst, crc(data))
	return append(dst, data...)
}

// decodeRecord splits the value of record key into the key of the record
// before it and its data (a sub-slice of v), checking length and CRC. The
// error is a reason for a *CorruptError ("record 42: crc mismatch ...").
func decodeRecord(key uint64, v []byte) (prev uint64, data []byte, err error) {
	if len(v) < recordHeaderSize {
		return 0, nil, reasonf("record %d: short value of %d bytes, want at least %d", key, len(v), recordHeaderSize)
	}
	prev = binary.BigEndian.Uint64(v[0:8])
	want := binary.BigEndian.Uint32(v[8:12])
	data = v[recordHeaderSize:]
	if got := crc(data); got != want {
		return 0, nil, reasonf("record %d: crc mismatch (stored %08x, computed %08x)", key, want, got)
	}
	return prev, data, nil
}

// decodeRecordKey decodes a key of the records bucket.
func decodeRecordKey(k []byte) (uint64, error) {
	if len(k) != 8 {
		return 0, reasonf("record key of %d bytes (%x), want 8", len(k), k)
	}
	return binary.BigEndian.Uint64(k), nil
}

// The tail bucket is kept small enough for bbolt to store it inline, in
// the leaf of the top-level buckets (bbolt inlines a bucket whose leaf,
// page header and elements included, is at most a quarter page): a commit
// that only adds to the tail then rewrites that one leaf and the meta
// page, not the path down the records bucket's tree.
const (
	boltPageHeaderSize = 16 // bbolt's page header
	boltLeafElemSize   = 16 // bbolt's leaf element header
)

// tailEntrySize is what one record adds to the tail's inline leaf.
func tailEntrySize(data int) int { return boltLeafElemSize + 8 + recordHeaderSize + data }

// logCursor walks the records of both record buckets in key order:
// "records", then "tail", whose keys are all higher (a version 1 file,
// before Open upgrades it, has no tail).
type logCursor struct {
	cs []*bolt.Cursor
	i  int
}

func newLogCursor(tx *bolt.Tx) (*logCursor, error) {
	rb := tx.Bucket(bucketRecords)
	if rb == nil {
		return nil, reasonf("bucket records missing")
	}
	c := &logCursor{cs: []*bolt.Cursor{rb.Cursor()}}
	if tb := tx.Bucket(bucketTail); tb != nil {
		c.cs = append(c.cs, tb.Cursor())
	}
	return c, nil
}

// seek moves to the first record with a key >= from (nil: the first
// record) and returns it; k is nil when there is none.
func (c *logCursor) seek(from []byte) (k, v []byte) {
	for c.i = 0; c.i < len(c.cs); c.i++ {
		if from == nil {
			k, v = c.cs[c.i].First()
		} else {
			k, v = c.cs[c.i].Seek(from)
		}
		if k != nil {
			return k, v
		}
	}
	c.i = len(c.cs) - 1
	return nil, nil
}

// next moves to the record after the current one.
func (c *logCursor) next() (k, v []byte) {
	k, v = c.cs[c.i].Next()
	for k == nil && c.i+1 < len(c.cs) {
		c.i++
		k, v = c.cs[c.i].First()
	}
	return k, v
}

// checkpoint is the decoded checkpoint bucket.
type checkpoint struct {
	key  uint64 // every record with a key <= key is covered
	last uint64 // key of the last record covered (the chain goes on from it); 0: none ever
	// base is the key of the last record deleted (the prev of the first
	// record in the file), 0 if none ever was; base <= last. Records
	// between base and last are covered but retained (Options.Retain).
	base uint64
	data []byte
}

// decodeCheckpoint decodes the fields of the checkpoint bucket (nil for
// an absent field). ok is false when the bucket holds no checkpoint at all.
// data is a sub-slice of dataField. An absent base (a file of version 2 or
// older, or upgraded from one) is last: every covered record was deleted.
func decodeCheckpoint(keyField, lastField, crcField, dataField, baseField []byte) (c checkpoint, ok bool, err error) {
	if keyField == nil && lastField == nil && crcField == nil && dataField == nil && baseField == nil {
		return checkpoint{}, false, nil
	}
	if keyField == nil || lastField == nil || crcField == nil || dataField == nil {
		return checkpoint{}, false, reasonf("checkpoint: incomplete (key, last, crc and data must all be present)")
	}
	if c.key, err = decodeU64("checkpoint key", keyField); err != nil {
		return checkpoint{}, false, err
	}
	if c.last, err = decodeU64("checkpoint last", lastField); err != nil {
		return checkpoint{}, false, err
	}
	if c.last > c.key {
		return checkpoint{}, false, reasonf("checkpoint %d: last covered record %d is above its key", c.key, c.last)
	}
	c.base = c.last
	if baseField != nil {
		if c.base, err = decodeU64("checkpoint base", baseField); err != nil {
			return checkpoint{}, false, err
		}
		if c.base > c.last {
			return checkpoint{}, false, reasonf("checkpoint %d: base %d is above its last covered record %d", c.key, c.base, c.last)
		}
	}
	if len(crcField) != 4 {
		return checkpoint{}, false, reasonf("checkpoint %d: crc of %d bytes, want 4", c.key, len(crcField))
	}
	want := binary.BigEndian.Uint32(crcField)
	if got := crc(dataField); got != want {
		return checkpoint{}, false, reasonf("checkpoint %d: crc mismatch (stored %08x, computed %08x)", c.key, want, got)
	}
	c.data = dataField
	return c, true, nil
}

// chain checks that records, met in key order, form an unbroken chain from
// the checkpoint's base: each record names the record before it, and the
// records at or below the checkpoint key (retained history) end at the
// checkpoint's last covered record.
type chain struct {
	ckptKey  uint64 // records above it are replayed at startup
	ckptLast uint64 // the last record at or below ckptKey (or the base)
	want     uint64 // the prev the next record must carry
	last     uint64 // the last key seen (0: none)
	crossed  bool   // a record above ckptKey was met (or there is no checkpoint)
}

func newChain(c checkpoint, hasCkpt bool) chain {
	if !hasCkpt {
		return chain{crossed: true}
	}
	return chain{ckptKey: c.key, ckptLast: c.last, want: c.base}
}

func (c *chain) next(key, prev uint64) error {
	switch {
	case key == 0:
		return reasonf("record 0: key 0 is never written")
	case key <= c.last:
		return reasonf("record %d: key not above the record before it (%d)", key, c.last)
	}
	if !c.crossed && key > c.ckptKey {
		if err := c.cross(); err != nil {
			return err
		}
	}
	if prev != c.want {
		return reasonf("record %d: chain broken: previous record is %d, record names %d", key, c.want, prev)
	}
	c.want, c.last = key, key
	return nil
}

// cross checks, where the records pass the checkpoint key, that the
// retained records at or below it end with the checkpoint's last one.
func (c *chain) cross() error {
	c.crossed = true
	if c.want != c.ckptLast {
		if c.want < c.ckptLast {
			return reasonf("checkpoint %d: last covered record %d missing (the records at or below it end at %d)", c.ckptKey, c.ckptLast, c.want)
		}
		return reasonf("record %d: covered by checkpoint %d whose last covered record is %d", c.want, c.ckptKey, c.ckptLast)
	}
	return nil
}

// end checks the chain after the last record.
func (c *chain) end() error {
	if !c.crossed {
		return c.cross()
	}
	return nil
}

func putU32(b []byte, v uint32) { binary.BigEndian.PutUint32(b, v) }
