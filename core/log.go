package core

import "time"

// Log is the durability that core needs for config mutations (R24, R25). The
// store package implements it on top of the journal; core never sees files.
//
// Contract:
//   - Append and Reserve are called with the registry's write lock held, in
//     sequence order, and must not block on I/O: they queue the record and
//     return. A Log batches whatever is queued into one durable write
//     (group commit). Append encodes m before it returns (m's maps are only
//     valid during the call); if it cannot, it returns the error, queues
//     nothing and never calls done, and the mutation fails unapplied.
//   - done is called exactly once per call, with nil once the record (or the
//     mark) is durable, or with the error that lost it. Calls to done happen in
//     the order of the Append/Reserve calls, from a goroutine that holds no lock
//     of the Log and that the Log owns. done must not call back into the Log.
//   - After one failure, every later Append and Reserve fails too, until the
//     Log is reopened: the registry then refuses config writes (ErrJournal in
//     the store) while state keeps working.
//   - The Log must not retain or modify m after done is called.
type Log interface {
	Append(m *Mutation, done func(error)) error
	// Reserve durably records that sequence numbers up to seq may be in use,
	// so that none is handed out twice across a crash (R7).
	Reserve(seq uint64, done func(error))
}

// MutationKind says what a MutationOp does.
type MutationKind uint8

const (
	// MutMerge deep-merges Values into Scope (R4); keys that are new belong to Owner.
	MutMerge MutationKind = iota + 1
	// MutDelete removes Keys from Scope; missing keys are ignored.
	MutDelete
	// MutDrop removes every key in bucket Scope.Bucket (in config: in
	// Layer) owned by Owner (Scope.Type and Scope.Subtype are empty): an
	// owner's death or eviction.
	MutDrop
	// MutSet stores Values in Scope exactly as given (no merge), all owned by
	// Owner: how checkpoints and wire snapshots are rebuilt, and how the
	// fleet layer is written (Owner "" in Default and Fleet).
	MutSet
	// MutMeta sets the metadata (R42) of keys the view of Scope holds, as
	// recorded in Meta (CreateSeq, ModSeq, Version, Modified; Layer and
	// Owner follow from the layers and are ignored); Keys lists keys whose recorded value depended on a
	// layer that is not journaled (their metadata is stale after a
	// restart). Only checkpoints and wire snapshots use it; Layer is 0.
	MutMeta
)

// String names the kind: "merge", "delete", "drop", "set".
func (k MutationKind) String() string {
	switch k {
	case MutMerge:
		return "merge"
	case MutDelete:
		return "delete"
	case MutDrop:
		return "drop"
	case MutSet:
		return "set"
	case MutMeta:
		return "meta"
	}
	return "invalid"
}

// MutationOp is one resolved step of a Mutation. Ops are the outcome of
// validation, not requests: permission checks are already done, and a delete
// lists exactly the keys it removes.
type MutationOp struct {
	Kind   MutationKind
	Layer  Layer // config: the layer written (R37); state and MutMeta: 0
	Scope  Scope
	Owner  string   // MutMerge, MutSet: owner of new keys; MutDrop: whose keys go
	Values Values   // MutMerge, MutSet (normalised; shared, never modified)
	Keys   []string // MutDelete; MutMeta: stale keys
	// Meta: MutMeta only, by key.
	Meta map[string]KeyMeta
}

// Mutation is the durable description of one effective mutation: its
// sequence number, its wall-clock time (R42) and its config ops of
// journaled layers (R41), in order. Replaying the mutations of a journal
// onto the checkpoint they follow with Snapshot.Apply rebuilds the
// journaled layers and the metadata exactly.
type Mutation struct {
	Seq  uint64
	Time time.Time // zero: unknown (records of format version 1)
	Ops  []MutationOp
	// Binds are the owner-uid binding changes (R35) that the mutation
	// makes, sorted by name, each name once: the journal carries a binding
	// in the same record as the ops that make it matter. A mutation that
	// gives a name its first key in a journaled layer carries a Bind of
	// that name (to the uid it is bound to), one that leaves it none an
	// Unbind; a Bind also rebinds a name that holds journaled keys (the
	// migration of bindings written before they were journaled).
	Binds []Bind
	// Applies are the applies (R44) that the mutation starts: at most
	// one, whose ID is Seq, in a journal record; a checkpoint's are every
	// apply pending at its sequence number. Finish lists, sorted, the
	// pending applies it ends: confirmed, or undone by its Ops.
	Applies []PendingApply
	Finish  []uint64
}

// Bind is one change of an owner name's uid binding (R35).
type Bind struct {
	Name   string
	UID    uint32 // the uid Name is bound to (not for Unbind)
	Unbind bool   // Name holds no journaled key any more: its journaled binding ends
}
