package store_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sysreg/sysreg/journal"
	"github.com/sysreg/sysreg/store"
)

// TestR29_CorruptErrorKeepsCause: *store.CorruptError unwraps to what the
// journal found, and that to its own cause (bbolt's error or the check
// that failed), so errors.Is and errors.As reach them (issue #8 item 10).
func TestR29_CorruptErrorKeepsCause(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, store.JournalFile), make([]byte, 64<<10), 0o600))
	_, err := store.Open(dir, store.Options{})
	var ce *store.CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("Open on zeros: %v, want *CorruptError", err)
	}
	var jce *journal.CorruptError
	if !errors.As(err, &jce) {
		t.Fatalf("%v does not unwrap to the journal's *CorruptError", err)
	}
	if jce.Err != nil && !errors.Is(err, jce.Err) {
		t.Fatalf("%v does not unwrap to the journal's cause %v", err, jce.Err)
	}
	if ce.Path != jce.Path || ce.Reason != jce.Reason {
		t.Fatalf("store %+v and journal %+v disagree", ce, jce)
	}
}
