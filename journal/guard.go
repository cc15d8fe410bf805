package journal

import (
	"fmt"
	"runtime/debug"
)

// guard runs fn, which reads the bbolt file through its mmap, and turns a
// panic into a *CorruptError: bbolt panics on some damaged pages, and a
// read of a page the file no longer has faults (SIGBUS), which
// debug.SetPanicOnFault turns into a panic of this goroutine. The previous
// SetPanicOnFault setting is restored.
func guard(path, what string, fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			e, _ := r.(error)
			err = &CorruptError{Path: path, Reason: fmt.Sprintf("%s: panic reading the file: %v", what, r), Err: e}
		}
	}()
	return fn()
}
