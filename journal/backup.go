package journal

import (
	"errors"
	"fmt"
	"io"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Backup writes a consistent copy of the whole file to w, as it stands
// after the last commit before the call, and returns the bytes written. The
// copy is a journal file of the same format: Open accepts it (it holds the
// checkpoint, every record after it and the mark, R45). It reads in one
// bbolt read transaction (bbolt's Tx.WriteTo) while appends go on; a
// commit that must grow the file waits until the copy is written, so a slow
// w delays writers. A damaged page met during the copy is a *CorruptError;
// an error of w is returned wrapped.
func (j *Journal) Backup(w io.Writer) (int64, error) {
	if j.isClosed() {
		return 0, ErrClosed
	}
	var n int64
	err := guard(j.path, "backup", func() error {
		return j.db.View(func(tx *bolt.Tx) error {
			var err error
			n, err = tx.WriteTo(w)
			return err
		})
	})
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return n, ErrClosed // closed during the call
	}
	if err != nil {
		return n, fmt.Errorf("journal: backup %s: %w", j.path, err)
	}
	return n, nil
}
