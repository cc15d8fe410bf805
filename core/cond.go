package core

import (
	"errors"
	"fmt"
)

// Conditions (R43): ops of a transaction that change nothing and fail the
// whole transaction unless the effective view, as the transaction has
// changed it so far, holds what they say.

// ErrConflict: a condition of a transaction (IfModSeq, IfEqual) did not
// hold; nothing was applied (R43). The error is a *ConflictError.
var ErrConflict = errors.New("core: conflict")

// ConflictError is the condition that failed (R43): at Key of Scope, Want
// is what the condition asked for and Got what the view held — for
// IfModSeq both are uint64 sequence numbers (0: absent), for IfEqual
// values (Got is nil when the key is absent; Present says whether it was
// there). It matches ErrConflict under errors.Is.
type ConflictError struct {
	Scope     Scope
	Key       string
	Want, Got any
	// ModSeq is true for an IfModSeq condition, false for IfEqual.
	ModSeq bool
	// Present says whether the key was in the view.
	Present bool
}

func (e *ConflictError) Error() string {
	if e.ModSeq {
		if e.Want == uint64(0) {
			return fmt.Sprintf("core: conflict: %s key %q exists (mod seq %v); it had to be absent", e.Scope, e.Key, e.Got)
		}
		if !e.Present {
			return fmt.Sprintf("core: conflict: %s key %q is absent; wanted mod seq %v", e.Scope, e.Key, e.Want)
		}
		return fmt.Sprintf("core: conflict: %s key %q has mod seq %v, wanted %v", e.Scope, e.Key, e.Got, e.Want)
	}
	if !e.Present {
		return fmt.Sprintf("core: conflict: %s key %q is absent; wanted %s", e.Scope, e.Key, ValueJSON(e.Want))
	}
	return fmt.Sprintf("core: conflict: %s key %q is %s, wanted %s", e.Scope, e.Key, ValueJSON(e.Got), ValueJSON(e.Want))
}

// Is reports whether target is ErrConflict.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// IfModSeq is a condition for Commit (R43): key of scope must have the
// mod sequence number seq (KeyMeta.ModSeq, R42) in the effective view as
// the transaction has changed it so far; seq 0 means the key must be
// absent. A key changed earlier in the same transaction has the
// transaction's own (future) sequence number, which no caller knows:
// put the condition first.
func IfModSeq(scope Scope, key string, seq uint64) Op {
	return Op{kind: opIfModSeq, scope: scope, key: key, seq: seq}
}

// IfEqual is a condition for Commit (R43): key of scope must be present
// with a value equal to value (compared as R2 values: types included,
// floats bit for bit) in the effective view as the transaction has changed it
// so far.
func IfEqual(scope Scope, key string, value any) Op {
	return Op{kind: opIfEqual, scope: scope, key: key, value: value}
}

// OpKind says what an Op does.
type OpKind uint8

// The kinds of Op.
const (
	OpPut      OpKind = OpKind(opPut)
	OpDel      OpKind = OpKind(opDel)
	OpIfModSeq OpKind = OpKind(opIfModSeq)
	OpIfEqual  OpKind = OpKind(opIfEqual)
)

// Kind returns what op does; 0 for the zero Op.
func (op Op) Kind() OpKind { return OpKind(op.kind) }

// Cond returns what a condition (IfModSeq, IfEqual) holds: its scope, key,
// sequence number (IfModSeq) and value (IfEqual). Clients that send ops
// elsewhere use it.
func (op Op) Cond() (scope Scope, key string, seq uint64, value any) {
	return op.scope, op.key, op.seq, op.value
}

// checkCond checks condition op against the working copy t (R43).
func checkCond(t *txn, op Op) error {
	key := op.key
	e, ok := t.st.scope(op.scope).get(key)
	switch op.kind {
	case opIfModSeq:
		var got uint64
		if ok {
			got = e.meta.mod
		}
		if got != op.seq || (op.seq == 0 && ok) {
			return &ConflictError{Scope: op.scope, Key: key, Want: op.seq, Got: got, ModSeq: true, Present: ok}
		}
	case opIfEqual:
		if !ok || !equalValue(e.val, op.value) {
			var got any
			if ok {
				got = copyValue(e.val)
			}
			return &ConflictError{Scope: op.scope, Key: key, Want: op.value, Got: got, Present: ok}
		}
	}
	return nil
}
