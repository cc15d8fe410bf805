package core

import (
	"errors"
)

// Replay applies journal records in order to a snapshot, as successive
// Snapshot.Apply calls do, for a reader that wants only the last result:
// recovery. Each Apply changes in place the nodes of the owner index that
// earlier records of the same Replay created, where Snapshot.Apply copies
// a path per record: replaying 100 records of 100 keys of one owner
// allocates half as much (issue #14's startup) and leaves less garbage
// behind in the heap of a daemon that just started.
//
// So the snapshots between records are not kept: only Snapshot's result is
// valid, and only until the next Apply. The starting snapshot is never
// changed. After an error, the Replay is spent: the failed record may have
// changed some of its nodes, so Apply returns that error again and
// Snapshot returns the zero Snapshot. A Replay is not safe for concurrent
// use.
type Replay struct {
	s   Snapshot
	idx edits
	err error
}

// NewReplay returns a Replay that starts from s.
func NewReplay(s Snapshot) *Replay { return &Replay{s: s, idx: newEdits()} }

// Apply applies m as Snapshot.Apply does (same checks, same errors).
func (r *Replay) Apply(m *Mutation) error {
	if r.err != nil {
		return r.err
	}
	next, err := r.s.applyIdx(m, false, r.idx)
	if err != nil {
		r.s, r.err = Snapshot{}, err
		return err
	}
	r.s = next
	return nil
}

// Snapshot returns the snapshot after the records applied so far (the
// starting one if none), or the zero Snapshot after an error.
func (r *Replay) Snapshot() Snapshot { return r.s }

// Finish returns Snapshot after giving back the spare capacity that
// changing nodes in place left in the owner index (leaves grow by
// doubling). The Replay must not be used after it.
func (r *Replay) Finish() Snapshot {
	s := r.s
	if r.err == nil && s.s != nil {
		s.s.owners.each(func(l *hleaf[ownerInfo]) bool {
			clipNodes(l.val.keys.root, r.idx)
			return true
		})
		clipNodes(s.s.owners.root, r.idx)
	}
	r.s, r.idx, r.err = Snapshot{}, nil, errReplayFinished
	return s
}

var errReplayFinished = errors.New("core: Replay used after Finish")

// clipNodes reallocates, at their length, the leaves of the nodes under n
// that ed holds and that have spare capacity. (A node that ed does not hold
// may have some below it: a delete copies the path above a node.)
func clipNodes[V any](n *hnode[V], ed edits) {
	if n == nil {
		return
	}
	// Leaves of up to 4 share the node's allocation (allocNode): moving
	// them out would only add one.
	if cap(n.leaves) > max(len(n.leaves), 4) && mine(ed, n) {
		n.leaves = append(make([]hleaf[V], 0, len(n.leaves)), n.leaves...)
	}
	for _, c := range n.nodes() {
		clipNodes(c, ed)
	}
}

// idxEdits is the edit set for the owner index: the Replay's, or the
// transaction's own.
func (t *txn) idxEdits() edits {
	if t.idx != nil {
		return t.idx
	}
	return t.edits
}
