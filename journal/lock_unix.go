//go:build unix

package journal

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// lockPoll is how often lockFile retries a held lock.
const lockPoll = 20 * time.Millisecond

// lockFile takes a flock on f (exclusive or shared), retrying until timeout
// (a timeout <= 0 tries once). The lock belongs to f's open file
// description: bbolt, handed the same *os.File, locks it again at no cost,
// and closing f releases it. A lock still held at the deadline is ErrLocked.
func lockFile(f *os.File, exclusive bool, timeout time.Duration) error {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case !errors.Is(err, syscall.EWOULDBLOCK):
			return err
		case !time.Now().Before(deadline):
			return ErrLocked
		}
		time.Sleep(min(lockPoll, time.Until(deadline)))
	}
}
