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

// Finish returns Snapshot with its maps copied into a few large
// allocations (see slab). The records' nodes grew in place (leaves by
// doubling) between the garbage of decoding and path copies; what a daemon
// keeps for as long as it runs is better off packed (issue #14's idle
// footprint): the copy is one pass over the keys, and the nodes it
// replaces become garbage all together. The Replay must not be used after
// it.
func (r *Replay) Finish() Snapshot {
	s := r.s
	if r.err == nil && s.s != nil {
		s = Snapshot{s.s.compact()}
	}
	r.s, r.idx, r.err = Snapshot{}, nil, errReplayFinished
	return s
}

var errReplayFinished = errors.New("core: Replay used after Finish")

// compact returns a copy of s whose maps are in a few large allocations
// (see slab); values and keys are shared.
func (s *state) compact() *state {
	var ks slab[entry]
	var ss slab[keysMap]
	var os slab[ownerInfo]
	var is slab[struct{}]
	maps := make([]*scopesMap, 0, 2+NumLayers)
	c := *s
	for i := range c.buckets {
		maps = append(maps, &c.buckets[i])
	}
	if s.cfg != nil {
		cfg := *s.cfg
		for i := range cfg.layers {
			maps = append(maps, &cfg.layers[i])
		}
		c.cfg = &cfg
	}
	for _, m := range maps {
		ss.count(m.root, func(km keysMap) { ks.count(km.root, nil) })
	}
	os.count(c.owners.root, func(oi ownerInfo) { is.count(oi.keys.root, nil) })
	ks.alloc()
	ss.alloc()
	os.alloc()
	is.alloc()
	for _, m := range maps {
		m.root = ss.copy(m.root, func(km keysMap) keysMap {
			km.root = ks.copy(km.root, nil)
			return km
		})
	}
	c.owners.root = os.copy(c.owners.root, func(oi ownerInfo) ownerInfo {
		oi.keys.root = is.copy(oi.keys.root, nil)
		return oi
	})
	return &c
}

// slab holds copies of the nodes of tries of one value type in four
// allocations: nodes, leaves, sub-node pointers and their slice headers,
// each counted first and then filled to exactly its length. Large
// allocations have spans of their own, so the copy of a recovered state is
// packed, not spread over the holes that recovery's garbage leaves in the
// small size classes (about 1 MB with 10,000 keys: issue #14's idle
// footprint). A slab lives until the last node in it is replaced: the
// price is at most the recovered state's size once more, for as long as
// updates leave one of its nodes in place.
type slab[V any] struct {
	nodes  []hnode[V]
	leaves []hleaf[V]
	subs   []*hnode[V]
	hdrs   [][]*hnode[V]
	nn, nl int
	ns, nh int
}

// count adds the nodes under n to what alloc allocates; each value goes
// to f (if not nil).
func (sl *slab[V]) count(n *hnode[V], f func(V)) {
	if n == nil {
		return
	}
	sub := n.nodes()
	sl.nn++
	sl.nl += len(n.leaves)
	if len(sub) > 0 {
		sl.ns += len(sub)
		sl.nh++
	}
	if f != nil {
		for i := range n.leaves {
			f(n.leaves[i].val)
		}
	}
	for _, x := range sub {
		sl.count(x, f)
	}
}

func (sl *slab[V]) alloc() {
	sl.nodes = make([]hnode[V], 0, sl.nn)
	sl.leaves = make([]hleaf[V], 0, sl.nl)
	sl.subs = make([]*hnode[V], 0, sl.ns)
	sl.hdrs = make([][]*hnode[V], 0, sl.nh)
}

// copy copies the trie under n into the slab (counted before), each value
// passed through f (if not nil). Every slice it hands out has no spare
// capacity, so an append to one copies, as for any shared node; its nodes
// are in no edit set, so nothing changes them in place.
func (sl *slab[V]) copy(n *hnode[V], f func(V) V) *hnode[V] {
	if n == nil {
		return nil
	}
	sl.nodes = append(sl.nodes, hnode[V]{datamap: n.datamap, nodemap: n.nodemap})
	c := &sl.nodes[len(sl.nodes)-1]
	if k := len(n.leaves); k > 0 {
		i := len(sl.leaves)
		sl.leaves = append(sl.leaves, n.leaves...)
		c.leaves = sl.leaves[i : i+k : i+k]
		if f != nil {
			for j := range c.leaves {
				c.leaves[j].val = f(c.leaves[j].val)
			}
		}
	}
	if sub := n.nodes(); len(sub) > 0 {
		i := len(sl.subs)
		sl.subs = append(sl.subs, sub...)
		s := sl.subs[i : i+len(sub) : i+len(sub)]
		for j, x := range s {
			s[j] = sl.copy(x, f)
		}
		sl.hdrs = append(sl.hdrs, s)
		c.sub = &sl.hdrs[len(sl.hdrs)-1]
	}
	return c
}

// idxEdits is the edit set for the owner index: the Replay's, or the
// transaction's own.
func (t *txn) idxEdits() edits {
	if t.idx != nil {
		return t.idx
	}
	return t.edits
}
