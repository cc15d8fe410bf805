// Package faults carries fault-injection hooks from tests to the journal's
// committer (R29). It is internal to the module: no program outside it can
// inject faults, and neither journal's nor store's exported API carries test
// plumbing.
//
// Tests of package journal set hooks through journal's export_test.go;
// tests of package store through store's export_test.go (OpenWithHooks),
// which hands them to the journal it opens with SetJournal.
package faults

// Hooks inject faults into the journal's committer. Both run on the
// committer goroutine. The zero value injects none.
type Hooks struct {
	// BeforeCommit is called before each bbolt commit; an error rolls the
	// transaction back: a failed commit, nothing of the batch is written.
	// A hook that blocks holds the commit (and the fsync after it).
	BeforeCommit func() error
	// AfterCommit is called after each successful bbolt commit; an error is
	// treated as a failed fsync: the batch fails although its outcome on
	// disk is unknown (with bbolt it is in fact written).
	AfterCommit func() error
}

// SetJournal sets h on opts, which must be a *journal.Options (anything else
// is a broken internal invariant and panics). Package journal assigns it in
// its init: journal imports this package for Hooks, so this package cannot
// name journal.Options.
var SetJournal func(opts any, h Hooks)
