//go:build !unix

package journal

import (
	"os"
	"time"
)

// lockFile does nothing here: bbolt takes its own lock on the file it is
// handed (with Options.LockTimeout), and its timeout maps to ErrLocked.
func lockFile(f *os.File, exclusive bool, timeout time.Duration) error { return nil }
