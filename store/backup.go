package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/sysreg/sysreg/internal/fsync"
	"github.com/sysreg/sysreg/internal/wire"
)

// Backup writes a consistent copy of the store's journal to w while the
// store keeps serving (R45): the checkpoint and every record acknowledged
// before the call began, and none half. Placed as DIR/JournalFile, the copy
// makes DIR a data directory that Open (and sysregd serve --data-dir DIR)
// starts from and sysregd check accepts. It returns the bytes written.
//
// The copy is read in one read transaction of the journal; while it is
// being written, a commit that must grow the file waits, so give it a fast
// w (a file, not a slow network). See WriteBackup for a file written
// atomically.
func (s *Store) Backup(ctx context.Context, w io.Writer) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if s.closed.Load() {
		return 0, ErrClosed
	}
	n, err := s.j.Backup(w)
	if err != nil {
		return n, fmt.Errorf("store: backup: %w", err)
	}
	return n, nil
}

// Backup asks the daemon for a consistent copy of its journal (R45) and
// writes it to w; see Store.Backup. Over the socket only root and the
// daemon's own uid may ask (the copy holds the journal's history, values
// since overwritten included): others get ErrPermission. The copy travels
// in one reply frame, so it is limited to wire.MaxReplyFrame (2 GiB).
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	var ok wire.BackupOK
	if err := c.call(ctx, wire.TBackup, nil, wire.TBackupOK, &ok); err != nil {
		return 0, err
	}
	n, err := w.Write(ok.Data)
	if err != nil {
		return int64(n), fmt.Errorf("store: backup: %w", err)
	}
	return int64(n), nil
}

// Backuper is what WriteBackup copies from: a *Store or a *Client.
type Backuper interface {
	Backup(ctx context.Context, w io.Writer) (int64, error)
}

// WriteBackup writes b's backup to the file path atomically: into a
// temporary file beside it (mode 0600), fsynced, then renamed over path and
// the directory fsynced, so that path is either the old file or the whole
// new backup, also after a crash. It returns the bytes written.
func WriteBackup(ctx context.Context, b Backuper, path string) (n int64, err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return 0, fmt.Errorf("store: backup: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close() // already failed; a second Close only says so
			_ = os.Remove(tmp)
		}
	}()
	if n, err = b.Backup(ctx, f); err != nil {
		return n, err
	}
	if err = f.Sync(); err != nil {
		return n, fmt.Errorf("store: backup: sync %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return n, fmt.Errorf("store: backup: close %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return n, fmt.Errorf("store: backup: %w", err)
	}
	if err := fsync.Dir(dir); err != nil && !errors.Is(err, os.ErrPermission) {
		return n, fmt.Errorf("store: backup: sync directory %s: %w", dir, err)
	}
	return n, nil
}
