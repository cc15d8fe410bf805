package core_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/sysreg/sysreg/core"
)

// TestR2_UpdateAndCommitSameErrors: Update(scope, values) is
// Commit(Put(scope, values)) — the same checks, in the same order, with the
// same error, message included — so a program sees the same thing whichever
// it calls, embedded or over the socket (R2, R15, R32).
func TestR2_UpdateAndCommitSameErrors(t *testing.T) {
	const limit = 64
	r := rtRegistry(t, core.Options{MaxUpdateBytes: limit})
	o := rtOwner(t, r, "a", core.OwnerOptions{})
	for _, tc := range []struct {
		name   string
		scope  core.Scope
		values core.Values
		want   error
	}{
		{"scope=bad", core.Scope{Bucket: core.Config, Type: "", Subtype: "x"}, core.Values{"k": 1}, core.ErrInvalidScope},
		{"value=func", rtC0, core.Values{"k": func() {}}, core.ErrInvalidValue},
		{"value=nested-chan", rtC0, core.Values{"k": map[string]any{"c": make(chan int)}}, core.ErrInvalidValue},
		{"key=empty", rtC0, core.Values{"": 1}, core.ErrInvalidValue},
		{"key=not-utf8", rtS0, core.Values{"\xff": 1}, core.ErrInvalidValue},
		{"size=too-large", rtS0, core.Values{"k": strings.Repeat("x", limit)}, core.ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errU := o.Update(t.Context(), tc.scope, tc.values)
			errC := o.Commit(t.Context(), core.Put(tc.scope, tc.values))
			if !errors.Is(errU, tc.want) || !errors.Is(errC, tc.want) {
				t.Fatalf("Update: %v; Commit(Put): %v; want both %v", errU, errC, tc.want)
			}
			if errU.Error() != errC.Error() {
				t.Errorf("Update and Commit(Put) differ:\n  Update: %v\n  Commit: %v", errU, errC)
			}
		})
	}
}
