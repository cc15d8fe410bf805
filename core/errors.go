package core

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Errors returned by this package match one of them under
// errors.Is; the message adds the identifiers that help (scope, key path, name).
var (
	// ErrInvalidScope: a scope or pattern that breaks R1.
	ErrInvalidScope = errors.New("core: invalid scope")
	// ErrInvalidValue: a value outside the value model of R2, or an empty or
	// non-UTF-8 top-level key. The message names the key path.
	ErrInvalidValue = errors.New("core: invalid value")
	// ErrTooLarge: one update or transaction whose encoding exceeds the limit.
	ErrTooLarge = errors.New("core: update too large")
	// ErrReservedKeys: the mutation touches keys owned by another owner (R10, R11).
	ErrReservedKeys = errors.New("core: keys reserved by another owner")
	// ErrOwnerInUse: a live session already has that name (R8, R14).
	ErrOwnerInUse = errors.New("core: owner in use")
	// ErrInvalidOwner: an owner name that breaks R8.
	ErrInvalidOwner = errors.New("core: invalid owner name")
	// ErrLimit: a per-owner or per-session limit would be exceeded (R35).
	ErrLimit = errors.New("core: limit exceeded")
	// ErrClosed: the registry, owner or subscription is closed.
	ErrClosed = errors.New("core: closed")
	// ErrReadOnlyLayer: an owner may not write the default or fleet layer
	// (R39); they are written by SetDefaults and SetFleet only.
	ErrReadOnlyLayer = errors.New("core: layer is read-only for owners")
	// ErrPermission: the uid may not act for that owner name (R35): the
	// name is bound to another uid.
	ErrPermission = errors.New("core: permission denied")
	// ErrInvalidLayer: a layer name or number that is not one of R37's five.
	ErrInvalidLayer = errors.New("core: invalid layer")
)

// ReservedKeysError reports the keys of one scope that a mutation may not touch
// because another owner holds them. It matches ErrReservedKeys under errors.Is.
type ReservedKeysError struct {
	Scope Scope
	Keys  []string // sorted
}

func (e *ReservedKeysError) Error() string {
	return fmt.Sprintf("core: keys reserved by another owner in %s: %s", e.Scope, strings.Join(e.Keys, ", "))
}

// Is reports whether target is ErrReservedKeys.
func (e *ReservedKeysError) Is(target error) bool { return target == ErrReservedKeys }

// ErrCompacted: a change feed (R47) was asked to resume from a sequence
// number older than the history kept; the error is a *CompactedError.
var ErrCompacted = errors.New("core: change history compacted")

// CompactedError is the error of a change feed asked for changes after a
// sequence number below the oldest one it still holds history for (R47).
// Oldest is the lowest from that would be accepted now. Resync: take a
// Snapshot and resume from its Seq. It matches ErrCompacted.
type CompactedError struct {
	Oldest uint64
}

func (e *CompactedError) Error() string {
	return fmt.Sprintf("core: change history compacted: resume from %d or later (resync from a snapshot)", e.Oldest)
}

// Is reports whether target is ErrCompacted.
func (e *CompactedError) Is(target error) bool { return target == ErrCompacted }
