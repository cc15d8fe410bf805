package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/codec"
	"github.com/sysreg/sysreg/internal/wire"
)

// ErrPermission: the peer may not act as that owner (R35).
// It is core.ErrPermission.
var ErrPermission = core.ErrPermission

// ErrProtocol: the peer broke the protocol (a malformed, oversized or
// unknown frame, a bad request).
var ErrProtocol = errors.New("store: protocol error")

// ErrSubscriptionEnded: the daemon ended a subscription (a sub_closed
// push); Subscription.Err reports it.
var ErrSubscriptionEnded = errors.New("store: the daemon ended the subscription")

// ErrConnLost: the connection to the daemon is gone; every call on the
// client fails with it, and owners do not re-attach by themselves.
var ErrConnLost = errors.New("store: connection to sysregd lost")

var codeErrs = []struct {
	code string
	err  error
}{
	{wire.CodeInvalidScope, core.ErrInvalidScope},
	{wire.CodeInvalidValue, core.ErrInvalidValue},
	{wire.CodeTooLarge, core.ErrTooLarge},
	{wire.CodeReservedKeys, core.ErrReservedKeys},
	{wire.CodeOwnerInUse, core.ErrOwnerInUse},
	{wire.CodeInvalidOwner, core.ErrInvalidOwner},
	{wire.CodeReadOnly, core.ErrReadOnlyLayer},
	{wire.CodeInvalidLayer, core.ErrInvalidLayer},
	{wire.CodeJournal, ErrJournal},
	{wire.CodeLimit, core.ErrLimit},
	{wire.CodePermission, ErrPermission},
	{wire.CodeBadRequest, ErrProtocol},
	{wire.CodeClosed, core.ErrClosed},
	{wire.CodeNotPending, core.ErrNotPending},
	{wire.CodeInvalidWithin, core.ErrInvalidWithin},
}

// opError names op i of a transaction of n ops in err, as core does: only
// when there are several, so that one op fails alike embedded and over the
// socket (R32).
func opError(i, n int, err error) error {
	if n == 1 {
		return err
	}
	return fmt.Errorf("op %d: %w", i, err)
}

func wireScope(s core.Scope) wire.Scope {
	return wire.Scope{Bucket: uint8(s.Bucket), Type: s.Type, Subtype: s.Subtype}
}

func coreScope(s wire.Scope) core.Scope {
	return core.Scope{Bucket: core.Bucket(s.Bucket), Type: s.Type, Subtype: s.Subtype}
}

func corePattern(s wire.Scope) core.Pattern {
	return core.Pattern{Bucket: core.Bucket(s.Bucket), Type: s.Type, Subtype: s.Subtype}
}

// errorBody is the reply to a request that failed with err: a Conflict for
// a failed condition (R43), else an Error.
func errorBody(err error) (wire.Type, any) {
	var ce *core.ConflictError
	if errors.As(err, &ce) {
		want, werr := codec.EncodeValue(ce.Want)
		got, gerr := codec.EncodeValue(ce.Got)
		if werr == nil && gerr == nil {
			return wire.TConflict, wire.Conflict{Scope: wireScope(ce.Scope), Key: ce.Key, Want: want, Got: got, ModSeq: ce.ModSeq, Present: ce.Present}
		}
	}
	return wire.TError, toWireError(err)
}

// fromConflict rebuilds the *core.ConflictError of a Conflict reply.
func fromConflict(c wire.Conflict) error {
	want, err := codec.DecodeValue(c.Want)
	if err != nil {
		return fmt.Errorf("%w: conflict reply: want: %v", ErrProtocol, err)
	}
	got, err := codec.DecodeValue(c.Got)
	if err != nil {
		return fmt.Errorf("%w: conflict reply: got: %v", ErrProtocol, err)
	}
	return &core.ConflictError{Scope: coreScope(c.Scope), Key: c.Key, Want: want, Got: got, ModSeq: c.ModSeq, Present: c.Present}
}

// condOp is the condition (R43) of a wire op of kind OpIfModSeq or
// OpIfEqual: values holds one key and the sequence number or the value.
func condOp(kind uint8, sc core.Scope, raw []byte) (core.Op, error) {
	vals, err := codec.DecodeValues(raw)
	if err != nil {
		return core.Op{}, fmt.Errorf("%w: %v", core.ErrInvalidValue, err)
	}
	if len(vals) != 1 {
		return core.Op{}, fmt.Errorf("%w: a condition holds one key, not %d", core.ErrInvalidValue, len(vals))
	}
	for k, v := range vals {
		if kind == wire.OpIfEqual {
			return core.IfEqual(sc, k, v), nil
		}
		seq, ok := v.(uint64)
		if !ok {
			return core.Op{}, fmt.Errorf("%w: the sequence number of if_mod_seq is a %T, not a uint64", core.ErrInvalidValue, v)
		}
		return core.IfModSeq(sc, k, seq), nil
	}
	panic("unreachable")
}

// toWireError turns an error from the registry into its wire form.
func toWireError(err error) wire.Error {
	var rk *core.ReservedKeysError
	if errors.As(err, &rk) {
		return wire.Error{Code: wire.CodeReservedKeys, Message: err.Error(), Scope: wireScope(rk.Scope), Keys: rk.Keys}
	}
	for _, ce := range codeErrs {
		if errors.Is(err, ce.err) {
			return wire.Error{Code: ce.code, Message: err.Error()}
		}
	}
	return wire.Error{Code: wire.CodeInternal, Message: err.Error()}
}

// remoteError is an error reported by the daemon: its message, matching the
// sentinel of its code under errors.Is.
type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

// fromWireError rebuilds the error the daemon reported, so that errors.Is
// and errors.As work as they do on an embedded store (R32).
func fromWireError(we wire.Error) error {
	if we.Code == wire.CodeReservedKeys {
		return &core.ReservedKeysError{Scope: coreScope(we.Scope), Keys: we.Keys}
	}
	for _, ce := range codeErrs {
		if ce.code == we.Code {
			return &remoteError{msg: we.Message, sentinel: ce.err}
		}
	}
	return fmt.Errorf("sysregd: %s: %s", we.Code, we.Message)
}

// wireFeedItem is a feed item on the wire (R47).
func wireFeedItem(it FeedItem) (wire.FeedItem, error) {
	w := wire.FeedItem{Seq: it.Seq}
	if !it.Time.IsZero() {
		w.Time = it.Time.UnixNano()
	}
	var err error
	w.Changes, err = wireChanges(it.Changes)
	return w, err
}

// wireChanges is changes on the wire (the change feed, R47; the keys a
// rollback left alone, R44).
func wireChanges(cs []core.Change) ([]wire.Change, error) {
	out := make([]wire.Change, len(cs))
	for i, c := range cs {
		wc := wire.Change{Layer: uint8(c.Layer), Scope: wireScope(c.Scope), Key: c.Key,
			Existed: c.Existed, Exists: c.Exists, OldOwner: c.OldOwner, NewOwner: c.NewOwner}
		var err error
		if c.Existed {
			if wc.Old, err = codec.EncodeValue(c.Old); err != nil {
				return nil, err
			}
		}
		if c.Exists {
			if wc.New, err = codec.EncodeValue(c.New); err != nil {
				return nil, err
			}
		}
		out[i] = wc
	}
	return out, nil
}

// fromWireFeedItem rebuilds a feed item from the wire.
func fromWireFeedItem(w wire.FeedItem) (FeedItem, error) {
	it := FeedItem{Seq: w.Seq}
	if w.Time != 0 {
		it.Time = time.Unix(0, w.Time)
	}
	var err error
	if it.Changes, err = coreChanges(w.Changes); err != nil {
		return FeedItem{}, err
	}
	return it, nil
}

// coreChanges rebuilds changes from the wire; every change is of a
// journaled layer.
func coreChanges(ws []wire.Change) ([]core.Change, error) {
	out := make([]core.Change, len(ws))
	for i, wc := range ws {
		c := core.Change{Layer: core.Layer(wc.Layer), Scope: coreScope(wc.Scope), Key: wc.Key,
			Existed: wc.Existed, Exists: wc.Exists, OldOwner: wc.OldOwner, NewOwner: wc.NewOwner}
		if !c.Layer.Journaled() {
			return nil, fmt.Errorf("change %d: layer %d", i, wc.Layer)
		}
		var err error
		if c.Existed {
			if c.Old, err = codec.DecodeValue(wc.Old); err != nil {
				return nil, fmt.Errorf("change %d: old: %w", i, err)
			}
		}
		if c.Exists {
			if c.New, err = codec.DecodeValue(wc.New); err != nil {
				return nil, fmt.Errorf("change %d: new: %w", i, err)
			}
		}
		out[i] = c
	}
	return out, nil
}

// wirePending is the pending applies on the wire (R44): each undo key as
// a change from the key before the apply (Old) to what it left (New).
func wirePending(ps []core.PendingApply) ([]wire.Pending, error) {
	out := make([]wire.Pending, len(ps))
	for i, p := range ps {
		cs := make([]core.Change, len(p.Undo))
		for j, u := range p.Undo {
			cs[j] = core.Change{Layer: p.Layer, Scope: u.Scope, Key: u.Key, Old: u.Value, Existed: u.Had, OldOwner: u.Owner,
				New: u.LeftValue, Exists: u.Left, NewOwner: u.LeftOwner}
		}
		undo, err := wireChanges(cs)
		if err != nil {
			return nil, err
		}
		out[i] = wire.Pending{ID: p.ID, Owner: p.Owner, Layer: uint8(p.Layer), Deadline: p.Deadline.UnixNano(), Undo: undo}
	}
	return out, nil
}

// corePending rebuilds what wirePending writes.
func corePending(ws []wire.Pending) ([]core.PendingApply, error) {
	out := make([]core.PendingApply, len(ws))
	for i, w := range ws {
		cs, err := coreChanges(w.Undo)
		if err != nil {
			return nil, fmt.Errorf("pending %d: %w", w.ID, err)
		}
		p := core.PendingApply{ID: w.ID, Owner: w.Owner, Layer: core.Layer(w.Layer), Deadline: time.Unix(0, w.Deadline), Undo: make([]core.UndoKey, len(cs))}
		for j, c := range cs {
			p.Undo[j] = core.UndoKey{Scope: c.Scope, Key: c.Key, Had: c.Existed, Value: c.Old, Owner: c.OldOwner,
				Left: c.Exists, LeftValue: c.New, LeftOwner: c.NewOwner}
		}
		out[i] = p
	}
	return out, nil
}
