package journal

import "github.com/sysreg/sysreg/internal/faults"

// Hooks inject faults into the committer (R29); see internal/faults.
type Hooks = faults.Hooks

// WithHooks returns opts with the fault-injection hooks h: only tests can
// set them.
func WithHooks(opts Options, h Hooks) Options {
	opts.hooks = h
	return opts
}

// LastKey returns the highest durable record key (see lastKey).
func (j *Journal) LastKey() uint64 { return j.lastKey() }
