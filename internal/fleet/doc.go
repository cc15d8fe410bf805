// Package fleet is sysreg's bridge to a fleet over NATS JetStream (R53):
// desired config pushed from the fleet comes in through a KV bucket into the
// registry's fleet layer (R37), and the device's effective view goes out to
// another KV bucket as its reported state — the model of AWS IoT device
// shadows and Azure device twins. sysreg grows no replication of its own:
// the wire, the buckets, their history and watches are JetStream's, spoken
// with the official client (github.com/nats-io/nats.go and its jetstream
// package).
//
// The bridge declares what it consumes from the registry, Target: an
// ordinary subscription to the effective view, the fleet layer as journaled
// (FleetState) and one call that replaces scopes of the fleet layer as one
// journaled mutation (ApplyFleet). The store implements it and starts the
// bridge when its Options.Fleet is set, so core and the journal never see
// NATS.
//
// # Buckets and keys
//
//	sysreg_desired    <device>.<type>.<subtype>          desired config of one device
//	                  all.<type>.<subtype>               desired config of every device
//	sysreg_reported   <device>.<bucket>.<type>.<subtype> a device's effective view
//
// A value is the CBOR map of a scope's values in the encoding of
// internal/codec (R2 types round-trip exactly: a uint64 stays a uint64). The
// device ID "all" is reserved (AllDevices). A missing bucket is created with
// JetStream's defaults (file storage, history 1); an operator who wants
// replicas or history creates the buckets first.
//
// NATS KV keys may hold only [-/_=.a-zA-Z0-9], and '.' separates tokens, so
// each part (device ID, type, subtype) is encoded on its own (EncodeToken):
// the bytes [-/_a-zA-Z0-9] stand for themselves and every other byte,
// '.' and '=' included, becomes '=' and two upper-case hex digits; a
// multi-byte UTF-8 character becomes one escape per byte. "eth0" stays
// "eth0", "a.b" is "a=2Eb", "x=1" is "x=3D1", "é" is "=C3=A9". The encoding
// is canonical (DecodeToken accepts only what EncodeToken writes), so two
// keys never name the same scope.
//
// # Desired: bucket → fleet layer
//
// The bridge watches its own keys and the "all" keys. Per config scope the
// fleet layer holds exactly the device's own values deep-merged over all's
// (R4): a top-level key gone from both values, or a KV key deleted, leaves
// the layer; a scope with neither key is not in the layer. On every
// (re)connection the bridge reads the current value of every watched key
// (the buckets' latest revisions) and applies the difference to the fleet
// layer as one mutation (resync); then it applies each burst of watched
// changes as one mutation, with the highest revision it has seen, which the
// target journals with the layer. A KV value is a whole scope, so a device
// holds either the previous or the new value of a scope, never a mix.
//
// The store journals the revision with the layer, in the same mutation, as
// the fleet-layer scope config/sysreg/fleet {"revision": N} (RevisionScope,
// a uint64): it survives reboots, shows in the view and is reported back,
// so the reported bucket says which desired revision each device holds.
// Desired keys for that scope are refused.
//
// A desired value that is not a CBOR map of valid values (R2), that is over
// Options.MaxValueBytes, or whose key names no scope is refused: logged at
// WARN and listed in Status.Refused. The scope then keeps the fleet values
// it has until its keys are valid again or deleted — a bad push never takes
// config away and is never applied in part, also on a resync after a reboot.
// A scope whose own and all values are each fine but whose merge is too
// large is refused the same way.
//
// # Reported: view → bucket
//
// An ordinary subscription with MinInterval = Options.Interval (default 1 s)
// drives the reported bucket, so however fast the device changes, it writes
// at most one value per changed scope per interval (R17, R53). Each delivery
// is compared with the view last written (core.Diff) and only the scopes
// that changed are written; a scope that disappeared is deleted from the
// bucket. After every (re)connection the bridge reads the device's keys in
// the bucket and writes what differs from the view, deleting what is gone.
//
// # Offline first
//
// No local call ever waits for NATS. Start returns at once, connects in the
// background and retries forever; writes to the registry never touch the
// bridge (it reads through a subscription, which never slows producers,
// R19). While disconnected the device keeps the fleet layer it has — it is
// journaled, so it survives a reboot — and its reported state is written
// when the connection returns. Publishes are not buffered while
// disconnected: the resync on reconnect makes them unnecessary.
//
// # Concurrency
//
// Start starts one goroutine that owns the NATS connection and two workers
// (desired and reported); Close cancels them, stops their watchers, closes
// the connection and waits for them. Status may be called from any
// goroutine. The bridge calls its Target from the workers only, without
// holding any lock.
package fleet
