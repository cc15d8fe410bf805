package core

// TEMPORARY stub so that dependants compile while the tree lands.

type Snapshot struct{ s *state }
type state struct{ seq uint64 }

func (s Snapshot) Seq() uint64 {
	if s.s == nil {
		return 0
	}
	return s.s.seq
}

// Walk calls fn for every key of bucket b (0: both buckets), scopes in text
// order and keys sorted within a scope. value is shared with the snapshot and
// must not be modified (copy it to keep it). fn's error stops the walk and is
// returned.
func (s Snapshot) Walk(b Bucket, fn func(scope Scope, key, owner string, value any) error) error {
	panic("todo")
}

// Apply returns the snapshot with m applied, without permission checks, and
// sequence number m.Seq: how recovery replays the journal and how a client
// rebuilds a snapshot from the wire. Ops are checked for shape (valid scope,
// kind, non-empty owner where one is needed, normalised values) and an error
// matching ErrInvalidScope or ErrInvalidValue names the first bad op; s is
// never modified.
func (s Snapshot) Apply(m *Mutation) (Snapshot, error) {
	panic("todo")
}
