package wire

import "github.com/fxamacker/cbor/v2"

// Hello opens a connection: the client's protocol version and name.
type Hello struct {
	_       struct{} `cbor:",toarray"`
	Version uint64
	Client  string
}

// HelloOK accepts it: the daemon's version and its limits.
type HelloOK struct {
	_        struct{} `cbor:",toarray"`
	Version  uint64
	Server   string
	MaxFrame uint64
}

// Scope is core.Scope on the wire: [bucket, type, subtype].
type Scope struct {
	_       struct{} `cbor:",toarray"`
	Bucket  uint8
	Type    string
	Subtype string
}

// Attach opens an owner session on this connection (R8, R31). KeepConfig,
// Layer and Grace are core.OwnerOptions' (R13, R39, R48): Layer 0 means
// saved with KeepConfig, runtime without; Grace is in nanoseconds.
type Attach struct {
	_          struct{} `cbor:",toarray"`
	Name       string   // "" for an anonymous owner
	KeepConfig bool
	Layer      uint8
	Grace      int64
}

// AttachOK names the session: a handle for later requests and the owner's
// name (generated for anonymous owners).
type AttachOK struct {
	_      struct{} `cbor:",toarray"`
	Handle uint64
	Name   string
}

// Detach ends an owner session: the owner dies (R13).
type Detach struct {
	_      struct{} `cbor:",toarray"`
	Handle uint64
}

// Op kinds.
const (
	OpPut uint8 = 1
	OpDel uint8 = 2
	// Conditions (R43): Values is a map of one key, the key the condition
	// is on, to the sequence number as a uint64 (IfModSeq) or to the value
	// (IfEqual); Keys is null.
	OpIfModSeq uint8 = 3
	OpIfEqual  uint8 = 4
)

// Op is one operation of a Mutate. Values is the CBOR of a values map as
// internal/codec encodes it (uint64 tagged), or null for OpDel.
type Op struct {
	_      struct{} `cbor:",toarray"`
	Kind   uint8
	Scope  Scope
	Values cbor.RawMessage
	Keys   []string
}

// Mutate applies ops for an owner atomically. One Put is Owner.Update, one
// Del is Owner.Delete, several are Owner.Commit.
type Mutate struct {
	_      struct{} `cbor:",toarray"`
	Handle uint64
	Ops    []Op
}

// SnapshotOK carries a whole view encoded by internal/codec.EncodeSnapshot.
type SnapshotOK struct {
	_    struct{} `cbor:",toarray"`
	Data []byte
}

// Subscribe asks for deliveries (R16–R21); durations in nanoseconds.
type Subscribe struct {
	_           struct{} `cbor:",toarray"`
	MinInterval int64
	Hysteresis  int64
	Match       Scope // zero fields match any
}

// SubscribeOK names the subscription; Delivery pushes carry this id.
type SubscribeOK struct {
	_   struct{} `cbor:",toarray"`
	Sub uint64
}

// Unsubscribe ends a subscription.
type Unsubscribe struct {
	_   struct{} `cbor:",toarray"`
	Sub uint64
}

// Evict deletes everything an owner name holds (R14).
type Evict struct {
	_    struct{} `cbor:",toarray"`
	Name string
}

// Delivery is a pushed snapshot (encoded by internal/codec.EncodeSnapshot).
type Delivery struct {
	_    struct{} `cbor:",toarray"`
	Data []byte
}

// StatsOK carries the daemon's counters as a CBOR map of values.
type StatsOK struct {
	_    struct{} `cbor:",toarray"`
	Data []byte   // internal/codec.EncodeValue of a map[string]any
}

// OwnersOK carries the owner names (R52) as a CBOR array of maps, each a
// store.OwnerInfo keyed by its JSON names.
type OwnersOK struct {
	_    struct{} `cbor:",toarray"`
	Data []byte
}

// BackupOK carries a consistent copy of the daemon's journal file (R45).
type BackupOK struct {
	_    struct{} `cbor:",toarray"`
	Data []byte
}

// Reset deletes every key of the named config layers in the config scopes
// the pattern matches (R46); no layers: saved and runtime.
type Reset struct {
	_       struct{} `cbor:",toarray"`
	Pattern Scope
	Layers  []uint64
}

// ResetKeys is Reset of the named keys of one config scope (R46); no
// layers: saved and runtime.
type ResetKeys struct {
	_      struct{} `cbor:",toarray"`
	Scope  Scope
	Keys   []string
	Layers []uint64
}

// Conflict is the reply to a mutate whose condition failed (R43), in place
// of an Error: core.ConflictError. Want and Got are values encoded as
// internal/codec encodes them (sequence numbers as uint64).
type Conflict struct {
	_       struct{} `cbor:",toarray"`
	Scope   Scope
	Key     string
	Want    cbor.RawMessage
	Got     cbor.RawMessage
	ModSeq  bool // an IfModSeq condition (else IfEqual)
	Present bool // the key was in the view
}

// Changes starts a change feed (R47) of the mutations after From.
type Changes struct {
	_    struct{} `cbor:",toarray"`
	From uint64
}

// ChangesOK names the feed; Change pushes carry this id (the request id).
type ChangesOK struct {
	_    struct{} `cbor:",toarray"`
	Feed uint64
}

// Compacted is core.CompactedError: the reply to a Changes whose From is
// below the retained history, in place of an Error.
type Compacted struct {
	_      struct{} `cbor:",toarray"`
	Oldest uint64
}

// Unchanges ends a feed.
type Unchanges struct {
	_    struct{} `cbor:",toarray"`
	Feed uint64
}

// Change is one core.Change of a feed item: Old and New are values
// encoded as internal/codec encodes them (null when absent).
type Change struct {
	_                  struct{} `cbor:",toarray"`
	Layer              uint8
	Scope              Scope
	Key                string
	Old, New           cbor.RawMessage
	Existed, Exists    bool
	OldOwner, NewOwner string
}

// FeedItem is a pushed feed item (store.FeedItem); Time in Unix
// nanoseconds (0: unknown).
type FeedItem struct {
	_       struct{} `cbor:",toarray"`
	Seq     uint64
	Time    int64
	Changes []Change
}

// ChangesEnd says why the daemon ended a feed: Oldest > 0 for a feed
// that fell behind the retained history (core.CompactedError), else an
// Error's code and message.
type ChangesEnd struct {
	_       struct{} `cbor:",toarray"`
	Oldest  uint64
	Code    string
	Message string
}

// Error codes: each maps to one sentinel error of core or store.
const (
	CodeInvalidScope  = "invalid_scope"
	CodeInvalidValue  = "invalid_value"
	CodeTooLarge      = "too_large"
	CodeReservedKeys  = "reserved_keys"
	CodeOwnerInUse    = "owner_in_use"
	CodeInvalidOwner  = "invalid_owner"
	CodeReadOnly      = "read_only_layer"
	CodeInvalidLayer  = "invalid_layer"
	CodeClosed        = "closed"
	CodeJournal       = "journal"
	CodeLimit         = "limit"
	CodePermission    = "permission"
	CodeBadRequest    = "bad_request"
	CodeNotPending    = "not_pending"    // core.ErrNotPending (R44)
	CodeInvalidWithin = "invalid_within" // core.ErrInvalidWithin (R44)
	CodeInternal      = "internal"
)

// Error is a failed request. Scope and Keys are set for reserved_keys.
type Error struct {
	_       struct{} `cbor:",toarray"`
	Code    string
	Message string
	Scope   Scope
	Keys    []string
}

// Apply is a Mutate with a confirm deadline (R44): Within in nanoseconds.
type Apply struct {
	_      struct{} `cbor:",toarray"`
	Handle uint64
	Within int64
	Ops    []Op
}

// ApplyOK names the apply: its sequence number (0: it changed nothing).
type ApplyOK struct {
	_  struct{} `cbor:",toarray"`
	ID uint64
}

// Confirm makes a pending apply permanent; Rollback undoes it (R44).
type Confirm struct {
	_  struct{} `cbor:",toarray"`
	ID uint64
}

// Rollback undoes a pending apply now (R44).
type Rollback struct {
	_  struct{} `cbor:",toarray"`
	ID uint64
}

// RollbackOK lists the keys the undo left alone: Old is the value the
// undo would have restored, New the current one.
type RollbackOK struct {
	_    struct{} `cbor:",toarray"`
	Left []Change
}

// Pending is one pending apply (core.PendingApply); each Undo change's
// Old is the key before the apply, New what the apply left. Deadline in
// Unix nanoseconds.
type Pending struct {
	_        struct{} `cbor:",toarray"`
	ID       uint64
	Owner    string
	Layer    uint8
	Deadline int64
	Undo     []Change
}

// PendingOK lists the pending applies, oldest first.
type PendingOK struct {
	_       struct{} `cbor:",toarray"`
	Applies []Pending
}
