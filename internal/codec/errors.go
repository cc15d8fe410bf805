package codec

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error a decoder returns matches ErrMalformed or
// ErrVersion under errors.Is; the message adds what is wrong and where (the
// op or scope, the byte offset).
var (
	// ErrMalformed: the bytes are not a well-formed encoding of this
	// package's schema (truncated, trailing bytes, wrong CBOR types, a value
	// outside the value model of R2, an invalid scope, an unknown op kind…).
	ErrMalformed = errors.New("codec: malformed data")

	// ErrVersion: the envelope carries a format version this build cannot
	// read. The error is a *VersionError that names both versions.
	ErrVersion = errors.New("codec: unsupported format version")

	// ErrInvalidMutation: EncodeMutation was given an op of an unknown kind
	// or with a bad shape (invalid scope, empty owner, empty key). Invalid
	// values are reported with core's own errors (core.ErrInvalidValue).
	ErrInvalidMutation = errors.New("codec: invalid mutation")
)

// VersionError reports an envelope whose format version is 0 (never valid) or
// newer than this build supports (R29). It matches ErrVersion.
type VersionError struct {
	Format    string // "record" or "snapshot"
	Found     uint64 // the version in the data
	Supported uint64 // the newest version this build reads
}

func (e *VersionError) Error() string {
	if e.Found == 0 {
		return fmt.Sprintf("codec: %s format version 0 is not a valid version (this build reads versions 1 to %d)",
			e.Format, e.Supported)
	}
	return fmt.Sprintf("codec: %s format version %d is newer than this build supports (version %d)",
		e.Format, e.Found, e.Supported)
}

// Is reports whether target is ErrVersion.
func (e *VersionError) Is(target error) bool { return target == ErrVersion }

// malformed wraps a decoding failure once, at the exported boundary: err is a
// plain error built by the decoder (with context prefixes added on the way
// out); a *VersionError passes through unchanged.
func malformed(what string, err error) error {
	var ve *VersionError
	if errors.As(err, &ve) {
		return ve
	}
	return fmt.Errorf("%w: %s: %v", ErrMalformed, what, err)
}
