package journal

import (
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
	if j.isClosed() {
		return ErrClosed
	}
	type rec struct {
		key  uint64
		data []byte
	}
	var (
		ch      chain
		started bool
		from    []byte // key to resume from; nil: start
		recs    []rec
	)
	for {
		recs = recs[:0]
		finished := false
		err := guard(j.path, "replay", func() error {
			return j.db.View(func(tx *bolt.Tx) error {
				if !started {
					c, has, err := readCheckpoint(tx)
					if err != nil {
						return err
					}
					ch, started = newChain(c, has), true
				}
				cur, err := newLogCursor(tx)
				if err != nil {
					return err
				}
				k, v := cur.seek(from)
				scanned, size := 0, 0
				for ; k != nil; k, v = cur.next() {
					if scanned >= replayChunkRecords || size >= replayChunkBytes {
						from = append(from[:0], k...)
						break
					}
					key, data, err := decodeEntry(&ch, k, v)
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
			return corruptWrap(j.path, err)
		}
		for _, r := range recs {
			if err := fn(r.key, r.data); err != nil {
				return fmt.Errorf("journal: replay record %d: %w", r.key, err)
			}
		}
		if finished {
			return nil
		}
	}
}
