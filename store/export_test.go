package store

import "github.com/sysreg/sysreg/internal/faults"

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
