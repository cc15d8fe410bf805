package store

import (
	"errors"
	"fmt"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/wire"
)

// ErrPermission: the peer may not act as that owner (R35).
var ErrPermission = errors.New("store: permission denied")

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
