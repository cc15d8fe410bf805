package journal

import (
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Replay reads the file in chunks of at most this many records or bytes per
// read transaction, and calls fn outside any transaction.
const (
	replayChunkRecords = 4096
	replayChunkBytes   = 4 << 20
)

// ReadCheckpoint returns the latest checkpoint: its key (every record up to
// it is covered) and its data (a copy the caller owns); ok is false when
// there is none. A CRC mismatch is a *CorruptError. It is meant for startup,
// before the first Append.
func (j *Journal) ReadCheckpoint() (key uint64, data []byte, ok bool, err error) {
	if j.isClosed() {
		return 0, nil, false, ErrClosed
	}
	err = guard(j.path, "read checkpoint", func() error {
		return j.db.View(func(tx *bolt.Tx) error {
			c, has, err := readCheckpoint(tx)
			if err != nil || !has {
				return err
			}
			key, data, ok = c.key, append([]byte{}, c.data...), true
			return nil
		})
	})
	if err != nil {
		return 0, nil, false, corruptWrap(j.path, err)
	}
	return key, data, ok, nil
}

// Replay calls fn for each record with a key above after, in key order,
// with data the caller owns. It checks every record of the file (after or
// not): its CRC, and that the records form an unbroken chain from the
// checkpoint; a failed check is a *CorruptError. fn runs outside any read
// transaction (the file is read in chunks), so it may block on the journal's
// writes; an error from fn stops Replay and is returned wrapped. Replay is
// meant for startup, before the first Append or Checkpoint: a checkpoint
// taken between two chunks would show as a broken chain.
func (j *Journal) Replay(after uint64, fn func(key uint64, data []byte) error) error {
	var (
		ch      chain
		started bool
	)
	begin := func(tx *bolt.Tx, _ uint64) error {
		if started {
			return nil
		}
		c, has, err := readCheckpoint(tx)
		if err != nil {
			return err
		}
		ch, started = newChain(c, has), true
		return nil
	}
	decode := func(k, v []byte) (uint64, []byte, error) { return decodeEntry(&ch, k, v) }
	_, err := j.chunks(nil, after, begin, decode, fn)
	if err == nil {
		err = j.guardedEnd(&ch)
	}
	return err
}

func (j *Journal) guardedEnd(ch *chain) error {
	if err := ch.end(); err != nil {
		return corruptWrap(j.path, err)
	}
	return nil
}

// Read calls fn for each record with a key above after, in key order, with
// data the caller owns, up to the newest durable record (records committed
// while Read runs are included until it catches up), and returns the key
// of the last record it passed to fn (after if none). It is the history
// behind a change feed: it may run at any time, beside appends and
// checkpoints. If a checkpoint has deleted a record above after — after
// is below Oldest, now or by the time Read gets there — it fails with a
// *CompactedError (matching ErrCompacted) and calls fn for no record past
// the gap. Each record's CRC is checked (a mismatch is a *CorruptError);
// the chain was checked by Open. fn runs outside any read transaction, so
// a slow fn holds no lock and no pages of the file; its error stops Read
// and is returned wrapped.
func (j *Journal) Read(after uint64, fn func(key uint64, data []byte) error) (last uint64, err error) {
	begin := func(tx *bolt.Tx, pos uint64) error {
		c, has, err := readCheckpoint(tx)
		if err != nil {
			return err
		}
		if has && c.base > pos {
			return &CompactedError{Path: j.path, After: pos, Oldest: c.base}
		}
		return nil
	}
	decode := func(k, v []byte) (uint64, []byte, error) {
		key, err := decodeRecordKey(k)
		if err != nil {
			return 0, nil, err
		}
		if v == nil {
			return 0, nil, reasonf("record %d: a bucket, not a record", key)
		}
		_, data, err := decodeRecord(key, v)
		return key, data, err
	}
	return j.chunks(u64(after+1), after, begin, decode, fn)
}

// Oldest returns the lowest after that Read accepts: the key of the last
// record a checkpoint deleted (0 if none ever was). Every record with a
// key above it is in the file.
func (j *Journal) Oldest() uint64 { return j.pubBase.Load() }

// chunks reads the records from the key from (nil: the first) in chunks
// of at most replayChunkRecords records or replayChunkBytes bytes, one
// read transaction each, and calls fn outside them for those with a key
// above after. begin runs first in each transaction with the key of the
// last record passed to fn (after at first); decode checks and splits a
// record. It returns the key of the last record passed to fn.
func (j *Journal) chunks(from []byte, after uint64, begin func(tx *bolt.Tx, pos uint64) error,
	decode func(k, v []byte) (uint64, []byte, error), fn func(key uint64, data []byte) error) (uint64, error) {
	if j.isClosed() {
		return after, ErrClosed
	}
	type rec struct {
		key  uint64
		data []byte
	}
	var recs []rec
	pos := after
	for {
		recs = recs[:0]
		finished := false
		err := guard(j.path, "read", func() error {
			return j.db.View(func(tx *bolt.Tx) error {
				if err := begin(tx, pos); err != nil {
					return err
				}
				cur, err := newLogCursor(tx)
				if err != nil {
					return err
				}
				k, v := cur.seek(from)
				scanned, size := 0, 0
				for ; k != nil; k, v = cur.next() {
					if scanned >= replayChunkRecords || size >= replayChunkBytes {
						from = append(from[:0:0], k...)
						break
					}
					key, data, err := decode(k, v)
					if err != nil {
						return err
					}
					scanned++
					if key > after {
						recs = append(recs, rec{key, data})
						size += len(data)
					}
				}
				finished = k == nil
				// Copy out of the transaction's memory: one allocation per chunk.
				arena := make([]byte, 0, size)
				for i := range recs {
					off := len(arena)
					arena = append(arena, recs[i].data...)
					recs[i].data = arena[off:len(arena):len(arena)]
				}
				return nil
			})
		})
		if err != nil {
			var ce *CompactedError
			if errors.As(err, &ce) {
				return pos, err
			}
			return pos, corruptWrap(j.path, err)
		}
		for _, r := range recs {
			if err := fn(r.key, r.data); err != nil {
				return pos, fmt.Errorf("journal: record %d: %w", r.key, err)
			}
			pos = r.key
		}
		if finished {
			return pos, nil
		}
	}
}

// ReadBase returns the base data that the latest checkpoint stored with
// CheckpointBase, and the base it was given (a copy the caller owns); ok
// is false when there is none (no checkpoint, one written by Checkpoint,
// or a file of format version 3 or older). A CRC mismatch is a
// *CorruptError. The base data describes the log up to base; every
// record above base that a checkpoint covers is still in the file (Read
// returns it) as long as no later checkpoint replaced the base.
func (j *Journal) ReadBase() (base uint64, data []byte, ok bool, err error) {
	if j.isClosed() {
		return 0, nil, false, ErrClosed
	}
	err = guard(j.path, "read checkpoint base", func() error {
		return j.db.View(func(tx *bolt.Tx) error {
			cb := tx.Bucket(bucketCheckpoint)
			if cb == nil {
				return reasonf("bucket checkpoint missing")
			}
			keyField, crcField, dataField := cb.Get(keyCkptBaseKey), cb.Get(keyCkptBaseCRC), cb.Get(keyCkptBaseData)
			if keyField == nil && crcField == nil && dataField == nil {
				return nil
			}
			if keyField == nil || crcField == nil || dataField == nil {
				return reasonf("checkpoint base: incomplete (basekey, basecrc and basedata must all be present)")
			}
			k, err := decodeU64("checkpoint basekey", keyField)
			if err != nil {
				return err
			}
			if len(crcField) != 4 {
				return reasonf("checkpoint base %d: crc of %d bytes, want 4", k, len(crcField))
			}
			if want, got := binary.BigEndian.Uint32(crcField), crc(dataField); want != got {
				return reasonf("checkpoint base %d: crc mismatch (stored %08x, computed %08x)", k, want, got)
			}
			base, data, ok = k, append([]byte{}, dataField...), true
			return nil
		})
	})
	if err != nil {
		return 0, nil, false, corruptWrap(j.path, err)
	}
	return base, data, ok, nil
}
