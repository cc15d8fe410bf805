package journal

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package match one of them under
// errors.Is, or are a *CorruptError or a *VersionError (errors.As).
var (
	// ErrLocked: the file lock was not acquired within Options.LockTimeout,
	// because another Journal (in this or another process) has the file open.
	ErrLocked = errors.New("journal: file locked by another process")
	// ErrFailed: a commit or fsync failed earlier; the journal refuses every
	// later write until it is reopened. The error also matches the cause.
	ErrFailed = errors.New("journal: failed")
	// ErrClosed: the journal is closed.
	ErrClosed = errors.New("journal: closed")
	// ErrKeyOrder: an Append key that is not greater than every key appended
	// or checkpointed before, or a Checkpoint key below the last checkpoint.
	ErrKeyOrder = errors.New("journal: key out of order")
	// ErrTooLarge: a record larger than MaxRecordSize or a checkpoint
	// larger than MaxCheckpointSize; nothing is written.
	ErrTooLarge = errors.New("journal: record too large")
	// ErrCompacted: Read was asked for records after a key below Oldest:
	// a checkpoint has deleted some of them. The error is a
	// *CompactedError.
	ErrCompacted = errors.New("journal: records compacted")
)

// CompactedError is Read's error when records it should return were
// deleted by a checkpoint (Options.Retain kept fewer).
type CompactedError struct {
	Path   string
	After  uint64 // where Read stood: records above it were asked for
	Oldest uint64 // the lowest after Read accepts now (Journal.Oldest)
}

func (e *CompactedError) Error() string {
	return fmt.Sprintf("journal: %s: records after %d were deleted by a checkpoint; the oldest readable point is %d", e.Path, e.After, e.Oldest)
}

// Is makes a *CompactedError match ErrCompacted.
func (e *CompactedError) Is(target error) bool { return target == ErrCompacted }

// CorruptError reports a file that is not a readable sysreg journal: bytes
// that are not a bbolt file, a truncated or damaged bbolt file, a bbolt file
// of another application, a record or checkpoint whose CRC does not match, a
// broken record chain. Open never starts empty on such a file.
type CorruptError struct {
	Path   string // the journal file
	Reason string // what is wrong, e.g. "record 42: crc mismatch"
	Err    error  // the underlying error, if any (e.g. from bbolt); may be nil
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("journal: corrupt file %s: %s", e.Path, e.Reason)
}

// Unwrap returns the underlying error, if any.
func (e *CorruptError) Unwrap() error { return e.Err }

// VersionError reports a journal written in a format version this build does
// not know (a newer one).
type VersionError struct {
	Path      string
	Found     uint64 // the version in the file
	Supported uint64 // the newest version this build reads (FormatVersion)
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("journal: %s has format version %d, this build supports up to version %d",
		e.Path, e.Found, e.Supported)
}

// reason says what is wrong with the file's contents; corruptWrap turns it
// into a *CorruptError naming the file. Decoders return reasons.
type reason string

func (r reason) Error() string { return string(r) }

func reasonf(format string, args ...any) error { return reason(fmt.Sprintf(format, args...)) }

// corruptWrap turns a reason into a *CorruptError for path, gives a
// *CorruptError or *VersionError in err the path if it has none, and wraps
// any other error with the path.
func corruptWrap(path string, err error) error {
	if err == nil {
		return nil
	}
	var r reason
	if errors.As(err, &r) {
		return &CorruptError{Path: path, Reason: err.Error()}
	}
	var ce *CorruptError
	if errors.As(err, &ce) {
		if ce.Path == "" {
			ce.Path = path
		}
		return err
	}
	var ve *VersionError
	if errors.As(err, &ve) {
		if ve.Path == "" {
			ve.Path = path
		}
		return err
	}
	return fmt.Errorf("journal: %s: %w", path, err)
}
