//go:build 386 || arm || mips || mipsle

package powerfail

import (
	"fmt"
	"runtime"
)

// mountFUSE: go-fuse v2.12.1 does not build on 32-bit targets (its splice
// package takes syscall.Splice's count as int64), so neither does the
// filesystem; the power-loss tests skip there, saying so.
func mountFUSE(*FS) (fuseServer, error) {
	return nil, fmt.Errorf("%w: go-fuse does not build for GOARCH=%s", ErrUnavailable, runtime.GOARCH)
}
