package store

import "github.com/sysreg/sysreg/journal"

// OpenWithHooks opens a store whose journal runs the fault-injection hooks
// h (R29). The hooks travel in the unexported Options.hooks field, so only
// this package's tests can set them: production code cannot inject faults.
func OpenWithHooks(dir string, opts Options, h journal.Hooks) (*Store, error) {
	opts.hooks = h
	return Open(dir, opts)
}
