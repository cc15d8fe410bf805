// Package wire is sysreg's socket protocol, version 2 (Version): the framing
// and the message types that sysregd (store.Server) and its clients
// (store.Dial) exchange over a Unix socket (R31–R35). PROTOCOL.md in this
// directory specifies it byte by byte, for implementers in other languages;
// its example frames are checked against this package by the tests.
//
// A frame is a 4-byte big-endian payload length and the CBOR array
// [type, id, body]. ReadFrame checks the length against a limit before it
// allocates anything, DecodeFrame checks that the payload is exactly one
// well-formed, definite-length item of that shape (leaving the bodies of
// mutate and apply to their decoders, which check them), and DecodeBody decodes a
// body strictly into its message struct (the types in messages.go, one per
// message type). Mutate and Apply, every write a client makes, have their
// own decoders, DecodeMutate and DecodeApply, written by hand without
// reflection and checked against DecodeBody as their oracle (ops.go,
// FuzzMutateBody); AppendFrame encodes them by hand too. Whatever fails is ErrFrameTooLarge or ErrMalformed, never
// a panic (fuzzed: FuzzReadFrame, FuzzDecodeFrame). Values and snapshots
// inside bodies are opaque CBOR here; internal/codec encodes and checks
// them.
//
// The package knows the bytes, not the semantics: which requests a daemon
// accepts when, sessions, subscriptions and errors are store's business, as
// PROTOCOL.md describes.
//
// # Concurrency
//
// Everything is safe for concurrent use: the encoder and decoder modes are
// built once at init and never change, and no function keeps state between
// calls. A Frame returned by ReadFrame aliases the buffer it was read into:
// its Body is valid until that buffer is passed to ReadFrame again. Writing
// frames to a connection from several goroutines needs the caller's lock
// around each whole frame.
package wire
