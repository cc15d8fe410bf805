package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
)

// InspectReport is what Inspect read from a journal file.
type InspectReport struct {
	Path     string
	FileSize int64 // bytes
	// Live is set when another process held the file's write lock (a running
	// daemon): the file was read without a lock, and a write during the read
	// can show as a problem that is not really there (Inspect retries a few
	// times when it sees the file change).
	Live       bool
	PageSize   int    // bbolt page size
	TxID       uint64 // bbolt transaction id of the meta page read
	Format     string // meta "format"
	Version    uint64 // meta "version"
	Mark       uint64 // meta "mark"
	Checkpoint *InspectCheckpoint
	Records    []InspectRecord // every record found, in key order, damaged ones included
	Problems   []error         // everything found wrong, in the order met
}

// InspectCheckpoint is the checkpoint as Inspect read it.
type InspectCheckpoint struct {
	Key, Last uint64
	Base      uint64 // the last record deleted; records above it are in the file
	CRC       uint32 // as stored
	Data      []byte
	Err       error // what is wrong with it, nil if sound
}

// InspectRecord is one record as Inspect read it.
type InspectRecord struct {
	Key, Prev uint64
	CRC       uint32 // as stored
	Data      []byte
	Err       error // what is wrong with it (short value, CRC, chain), nil if sound
}

// inspectTries is how often Inspect reads a live file that changes under it.
const inspectTries = 3

// Inspect reads the journal file at path without opening it for writing and
// without bbolt: it never blocks a running daemon for longer than the read,
// never panics and never changes the file. It takes a shared lock when it
// can; if a daemon holds the write lock it reads anyway and sets Live. It is
// best effort on a damaged file: the report holds what could be read and
// every problem met, and the error joins those problems (nil when the file
// is sound). The report is never nil.
func Inspect(path string) (*InspectReport, error) {
	rep := &InspectReport{Path: path}
	f, err := os.Open(path)
	if err != nil {
		err = fmt.Errorf("journal: inspect %s: %w", path, err)
		rep.Problems = append(rep.Problems, err)
		return rep, err
	}
	defer func() { _ = f.Close() }() // read-only

	switch err := lockFile(f, false, -1); {
	case errors.Is(err, ErrLocked):
		rep.Live = true
	case err != nil:
		err = fmt.Errorf("journal: inspect %s: lock: %w", path, err)
		rep.Problems = append(rep.Problems, err)
		return rep, err
	}
	for try := 1; ; try++ {
		rep = inspectOnce(f, path, rep.Live)
		if !rep.Live || try == inspectTries {
			break
		}
		if bf, err := openBoltFile(f, rep.FileSize); err == nil && bf.meta.txid == rep.TxID {
			break // the file did not change during the read
		}
	}
	return rep, errors.Join(rep.Problems...)
}

func inspectOnce(f *os.File, path string, live bool) *InspectReport {
	rep := &InspectReport{Path: path, Live: live}
	problem := func(err error) { rep.Problems = append(rep.Problems, corruptWrap(path, err)) }
	fi, err := f.Stat()
	if err != nil {
		rep.Problems = append(rep.Problems, fmt.Errorf("journal: inspect %s: %w", path, err))
		return rep
	}
	rep.FileSize = fi.Size()
	bf, err := openBoltFile(f, rep.FileSize)
	if err != nil {
		problem(reason(err.Error()))
		return rep
	}
	rep.PageSize, rep.TxID = int(bf.meta.pageSize), bf.meta.txid
	bf.checkFreelist()

	top := bf.buckets()
	read := func(name []byte) map[string][]byte {
		v, ok := top[string(name)]
		if !ok {
			bf.problem("no %s bucket", name)
			return nil
		}
		m := make(map[string][]byte)
		bf.walkBucket(string(name), v, func(e boltEntry) {
			if e.bucket {
				bf.problem("bucket %s: unexpected sub-bucket %q", name, e.key)
				return
			}
			m[string(e.key)] = e.value
		})
		return m
	}
	names := make([]string, 0, len(top))
	for name := range top {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if name != string(bucketMeta) && name != string(bucketRecords) && name != string(bucketCheckpoint) && name != string(bucketTail) {
			bf.problem("unexpected bucket %q", name)
		}
	}

	if meta := read(bucketMeta); meta != nil {
		rep.Format = string(meta[string(keyFormat)])
		if rep.Format != formatName {
			bf.problem("not a sysreg journal: meta format is %q, want %q", rep.Format, formatName)
		}
		var err error
		if rep.Version, err = decodeU64("meta version", meta[string(keyVersion)]); err != nil {
			bf.errs = append(bf.errs, err)
		} else if rep.Version > FormatVersion {
			rep.Problems = append(rep.Problems, &VersionError{Path: path, Found: rep.Version, Supported: FormatVersion})
		}
		if rep.Mark, err = decodeU64("meta mark", meta[string(keyMark)]); err != nil {
			bf.errs = append(bf.errs, err)
		}
	}

	var ckpt checkpoint
	var hasCkpt bool
	if cb := read(bucketCheckpoint); len(cb) > 0 {
		fields := [5][]byte{cb[string(keyCkptKey)], cb[string(keyCkptLast)], cb[string(keyCkptCRC)], cb[string(keyCkptData)], cb[string(keyCkptBase)]}
		ic := &InspectCheckpoint{Data: fields[3]}
		if len(fields[0]) == 8 {
			ic.Key = binary.BigEndian.Uint64(fields[0])
		}
		if len(fields[1]) == 8 {
			ic.Last = binary.BigEndian.Uint64(fields[1])
		}
		if len(fields[2]) == 4 {
			ic.CRC = binary.BigEndian.Uint32(fields[2])
		}
		ckpt, hasCkpt, ic.Err = decodeCheckpoint(fields[0], fields[1], fields[2], fields[3], fields[4])
		ic.Base = ckpt.base
		if ic.Err != nil {
			bf.errs = append(bf.errs, ic.Err)
			ckpt, hasCkpt = checkpoint{key: ic.Key, last: ic.Last, base: ic.Last}, true // best effort, for the chain
			if len(fields[4]) == 8 {
				ckpt.base = binary.BigEndian.Uint64(fields[4])
			}
			ic.Base = ckpt.base
		}
		rep.Checkpoint = ic
	}

	if _, ok := top[string(bucketRecords)]; !ok {
		bf.problem("no %s bucket", bucketRecords)
	}
	if _, ok := top[string(bucketTail)]; !ok && rep.Version >= 2 {
		bf.problem("no %s bucket", bucketTail)
	}
	ch := newChain(ckpt, hasCkpt)
	for _, name := range [][]byte{bucketRecords, bucketTail} { // in key order
		v, ok := top[string(name)]
		if !ok {
			continue
		}
		bf.walkBucket(string(name), v, func(e boltEntry) {
			key, err := decodeRecordKey(e.key)
			if err != nil {
				bf.errs = append(bf.errs, err)
				return
			}
			r := InspectRecord{Key: key}
			switch {
			case e.bucket:
				r.Err = reasonf("record %d: a bucket, not a record", key)
			case len(e.value) < recordHeaderSize:
				_, _, r.Err = decodeRecord(key, e.value)
			default:
				r.Prev = binary.BigEndian.Uint64(e.value[0:8])
				r.CRC = binary.BigEndian.Uint32(e.value[8:12])
				r.Data = e.value[recordHeaderSize:]
				_, _, r.Err = decodeRecord(key, e.value)
				if err := ch.next(key, r.Prev); err != nil && r.Err == nil {
					r.Err = err
				}
				ch.want, ch.last = key, key // go on after a break
			}
			if r.Err != nil {
				bf.errs = append(bf.errs, r.Err)
			}
			rep.Records = append(rep.Records, r)
		})
	}
	if err := ch.end(); err != nil {
		bf.errs = append(bf.errs, err)
	}
	for _, err := range bf.errs {
		problem(err)
	}
	return rep
}
