package core_test

import (
	"time"

	"github.com/sysreg/sysreg/internal/cputime"
)

// cpuTime is the user + system CPU time of the process so far (0 where
// unsupported).
func cpuTime() time.Duration { return cputime.Process() }
