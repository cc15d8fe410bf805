package store

import (
	"errors"
	"fmt"

	"github.com/sysreg/sysreg/core"
)

var (
	// ErrJournal: the journal failed (a commit or fsync error). Config
	// writes fail with it until the store is reopened; state keeps working
	// (R29). It is core.ErrLog, so errors from the registry match it too.
	ErrJournal = core.ErrLog
	// ErrLocked: the data directory is open in another Store or daemon
	// (R29); Open gives up after Options.LockTimeout (default 1 s).
	ErrLocked = errors.New("store: data directory is locked by another process")
	// ErrClosed: the store or client is closed. It is core.ErrClosed.
	ErrClosed = core.ErrClosed
)

// CorruptError reports a damaged or foreign data file: Open refuses to start
// on it rather than start empty (R29). Path names the file, Reason what is
// wrong with it.
type CorruptError struct {
	Path, Reason string
	Err          error // the cause (the journal's *CorruptError, and through it bbolt's error); may be nil
}

// Unwrap returns the cause, so that errors.Is and errors.As reach the
// journal's error and bbolt's below it.
func (e *CorruptError) Unwrap() error { return e.Err }

func (e *CorruptError) Error() string {
	return fmt.Sprintf("store: corrupt data file %s: %s", e.Path, e.Reason)
}
