package store

import (
	"time"

	"github.com/sysreg/sysreg/internal/faults"
)

// Hooks inject faults into the store's journal (R29); see internal/faults.
type Hooks = faults.Hooks

// OpenWithHooks opens a store whose journal runs the fault-injection hooks
// h (R29). The hooks travel in the unexported Options.hooks field, so only
// this package's tests can set them: production code cannot inject faults.
func OpenWithHooks(dir string, opts Options, h Hooks) (*Store, error) {
	opts.hooks = h
	return Open(dir, opts)
}

// Checkpoint writes a checkpoint now (R28), as the checkpointer would.
func (s *Store) Checkpoint() error {
	_, err := s.checkpoint()
	return err
}

// Knobs are the R51 thresholds a test may shrink (see healthKnobs); zero
// fields keep the defaults.
type Knobs struct {
	SlowAppend, MinLag, LagScan time.Duration
}

// OpenWithKnobs opens a store whose R51 warnings use the thresholds k.
func OpenWithKnobs(dir string, opts Options, k Knobs) (*Store, error) {
	opts.knobs = healthKnobs{slowAppend: k.SlowAppend, minLag: k.MinLag, lagScan: k.LagScan}
	return Open(dir, opts)
}
