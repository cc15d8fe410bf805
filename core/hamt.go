package core

import (
	"hash/maphash"
	"math/bits"
	"slices"
	"strings"
	"unsafe"
)

// hmap is a persistent (immutable) hash map from string to V: a CHAMP trie
// (compressed hash-array mapped prefix tree). Every update copies only the
// nodes on the path to the changed key; everything else is shared with the
// previous version. The shape of the trie is a function of its key set alone
// (canonical form: a sub-node always holds at least two entries), so two
// versions can be compared by walking them side by side and skipping every
// pair of identical node pointers — the basis of Diff and of scoped
// subscription checks.
//
// Leaves are stored inline in their node (one allocation per copied node,
// not one per leaf); a *hleaf handed to a callback points into an immutable
// node and must not be modified.
//
// The zero hmap is empty and ready to use. Values of type V are stored as given
// and must not be modified after insertion.
type hmap[V any] struct {
	root *hnode[V]
	n    int
}

// hleaf is one key and its value. Its hash is not kept: every operation
// but a push-down (mergeLeaves) and a bulk build is given it, and those
// compute it again (hashOf) — 8 bytes less in every leaf of every node an
// update copies (R42's budget for the flapping benchmark). The value
// comes first: a zero-size V (the owner index's sets) at the end of the
// struct would be padded to 8 bytes, at the start it takes none.
type hleaf[V any] struct {
	val V
	key string
}

type hnode[V any] struct {
	datamap uint32 // bit i set: slot i holds a leaf (in leaves, by rank)
	nodemap uint32 // bit i set: slot i holds a sub-node (in *sub, by rank)
	leaves  []hleaf[V]
	// sub holds the sub-nodes behind a pointer (nil: none): most nodes
	// have none, and without a second slice header inline a node is 40
	// bytes, so the one-key node of a state scope (48-byte entry) is 112
	// bytes, the size class it had before per-key metadata (R42's budget
	// for the flapping benchmark). A node with sub-nodes is allocated
	// with its slice header (allocNode), so it costs no extra allocation.
	sub *[]*hnode[V]
	// A collision node (below the last hash level) has both maps zero and
	// holds its leaves sorted by key.
}

// nodes returns n's sub-nodes.
func (n *hnode[V]) nodes() []*hnode[V] {
	if n.sub == nil {
		return nil
	}
	return *n.sub
}

// setNodes sets n's sub-nodes (n is a node being built or one the caller
// owns).
func (n *hnode[V]) setNodes(s []*hnode[V]) {
	if n.sub == nil {
		p := new([]*hnode[V])
		*p = s
		n.sub = p
		return
	}
	*n.sub = s
}

const (
	hbits     = 5
	hmask     = 1<<hbits - 1
	hmaxShift = 60 // the last level that indexes by hash; deeper is a collision node
)

// hashSeed is fixed for the process: snapshots are compared only within one
// process, and nothing hashed is ever stored.
var hashSeed = maphash.MakeSeed()

func hashKey(k string) uint64 { return maphash.String(hashSeed, k) }

// hashOf is the hash of a stored key where it must be computed again: it
// is hashKey, except in tests that build tries of chosen hashes.
var hashOf = hashKey

func (m hmap[V]) len() int { return m.n }

func (m hmap[V]) get(k string) (V, bool) {
	if l := m.leaf(k); l != nil {
		return l.val, true
	}
	var zero V
	return zero, false
}

func (m hmap[V]) leaf(k string) *hleaf[V] { return m.leafH(k, hashKey(k)) }

// leafH is leaf with k's hash already computed.
func (m hmap[V]) leafH(k string, h uint64) *hleaf[V] {
	n, i := m.leafAt(k, h)
	if n == nil {
		return nil
	}
	return &n.leaves[i]
}

// leafAt returns the node holding k's leaf (hash h) and the leaf's index
// in its leaves; nil if k is absent.
func (m hmap[V]) leafAt(k string, h uint64) (*hnode[V], int) {
	n := m.root
	if n == nil {
		return nil, 0
	}
	for shift := uint(0); ; shift += hbits {
		if shift > hmaxShift {
			for i := range n.leaves {
				if n.leaves[i].key == k {
					return n, i
				}
			}
			return nil, 0
		}
		bit := uint32(1) << ((h >> shift) & hmask)
		if n.datamap&bit != 0 {
			i := bits.OnesCount32(n.datamap & (bit - 1))
			if n.leaves[i].key == k {
				return n, i
			}
			return nil, 0
		}
		if n.nodemap&bit == 0 {
			return nil, 0
		}
		n = (*n.sub)[bits.OnesCount32(n.nodemap&(bit-1))]
	}
}

// set returns a map with k bound to v.
func (m hmap[V]) set(k string, v V) hmap[V] { return m.setH(k, hashKey(k), v) }

// setH is set with k's hash already computed.
func (m hmap[V]) setH(k string, h uint64, v V) hmap[V] { return m.setE(k, h, v, nil) }

// setE is setH that changes the nodes in ed in place instead of copying
// them, and adds the nodes it creates to ed (nil: copy every node on the
// path, the persistent update).
//
// The caller must own every map version that can reach a node in ed: the
// map m is modified, not just the result, so an edit set belongs to one
// working copy that nothing else has seen (Snapshot.Apply's transaction,
// which replays a journal record of thousands of keys with one copy per
// node instead of one per key and node: issue #14's startup).
func (m hmap[V]) setE(k string, h uint64, v V, ed edits) hmap[V] {
	root, added := insertLeaf(m.root, hleaf[V]{key: k, val: v}, h, 0, ed)
	if added {
		return hmap[V]{root, m.n + 1}
	}
	return hmap[V]{root, m.n}
}

// edits is the set of nodes one working copy created and may change in
// place (see setE); nil: none, every change copies. It holds the nodes'
// addresses, which keeps those nodes alive, so an address in it is never
// reused for another node while the set holds it. The first few are kept
// in an array (a batch of the combining write path creates a handful), the
// rest in a map (a replayed record of thousands of keys).
type edits = *editSet

type editSet struct {
	n     int
	small [8]unsafe.Pointer
	big   map[unsafe.Pointer]struct{}
}

func newEdits() edits { return &editSet{} }

// reset empties the set: the nodes it held are immutable from now on.
func (e *editSet) reset() {
	clear(e.small[:e.n])
	e.n, e.big = 0, nil
}

// mine reports whether n is in ed.
func mine[V any](ed edits, n *hnode[V]) bool {
	if ed == nil {
		return false
	}
	p := unsafe.Pointer(n)
	for _, q := range ed.small[:ed.n] {
		if q == p {
			return true
		}
	}
	_, ok := ed.big[p]
	return ok
}

// claim adds n to ed (if any) and returns it.
func claim[V any](ed edits, n *hnode[V]) *hnode[V] {
	if ed == nil {
		return n
	}
	p := unsafe.Pointer(n)
	if ed.n < len(ed.small) {
		ed.small[ed.n] = p
		ed.n++
		return n
	}
	if ed.big == nil {
		ed.big = map[unsafe.Pointer]struct{}{}
	}
	ed.big[p] = struct{}{}
	return n
}

func cmpLeafKey[V any](e hleaf[V], k string) int { return strings.Compare(e.key, k) }

// insertLeaf returns n with leaf l, whose key has hash h, at shift.
func insertLeaf[V any](n *hnode[V], l hleaf[V], h uint64, shift uint, ed edits) (*hnode[V], bool) {
	if n == nil {
		c := allocNode[V](1, 1, 0)
		c.leaves[0] = l
		if shift <= hmaxShift {
			c.datamap = 1 << ((h >> shift) & hmask)
		}
		return claim(ed, c), true
	}
	own := mine(ed, n)
	if shift > hmaxShift {
		i, found := slices.BinarySearchFunc(n.leaves, l.key, cmpLeafKey[V])
		c := n
		if !own {
			c = claim(ed, &hnode[V]{leaves: slices.Clone(n.leaves)})
		}
		if found {
			c.leaves[i] = l
			return c, false
		}
		c.leaves = slices.Insert(c.leaves, i, l)
		return c, true
	}
	bit := uint32(1) << ((h >> shift) & hmask)
	switch {
	case n.datamap&bit != 0:
		i := bits.OnesCount32(n.datamap & (bit - 1))
		old := n.leaves[i]
		if old.key == l.key {
			c := n
			if !own {
				c = claim(ed, n.clone(0, 0))
			}
			l.key = old.key // keep sharing the stored key
			c.leaves[i] = l
			return c, false
		}
		// Push both leaves one level down.
		c := n
		if !own {
			c = claim(ed, n.clone(0, 1))
		}
		sub := mergeLeaves(old, hashOf(old.key), l, h, shift+hbits)
		c.leaves = slices.Delete(c.leaves, i, i+1)
		c.datamap &^= bit
		j := bits.OnesCount32(c.nodemap & (bit - 1))
		c.setNodes(slices.Insert(c.nodes(), j, sub))
		c.nodemap |= bit
		return c, true
	case n.nodemap&bit != 0:
		j := bits.OnesCount32(n.nodemap & (bit - 1))
		sub, added := insertLeaf((*n.sub)[j], l, h, shift+hbits, ed)
		c := n
		if !own {
			if sub == (*n.sub)[j] { // changed in place below
				return n, added
			}
			c = claim(ed, n.clone(0, 0))
		}
		(*c.sub)[j] = sub
		return c, added
	default:
		i := bits.OnesCount32(n.datamap & (bit - 1))
		c := n
		if !own {
			c = claim(ed, n.clone(1, 0))
		}
		c.leaves = slices.Insert(c.leaves, i, l)
		c.datamap |= bit
		return c, true
	}
}

// mergeLeaves returns the node at shift holding leaves a and b, whose
// keys have hashes ha and hb.
func mergeLeaves[V any](a hleaf[V], ha uint64, b hleaf[V], hb uint64, shift uint) *hnode[V] {
	if shift > hmaxShift {
		if a.key > b.key {
			a, b = b, a
		}
		return &hnode[V]{leaves: []hleaf[V]{a, b}}
	}
	ia, ib := (ha>>shift)&hmask, (hb>>shift)&hmask
	if ia == ib {
		c := allocNode[V](0, 0, 1)
		c.nodemap = 1 << ia
		*c.sub = append(*c.sub, mergeLeaves(a, ha, b, hb, shift+hbits))
		return c
	}
	if ia > ib {
		a, b = b, a
	}
	c := allocNode[V](2, 2, 0)
	c.datamap = 1<<ia | 1<<ib
	c.leaves[0], c.leaves[1] = a, b
	return c
}

// clone copies n with room for extraLeaves and extraNodes more entries.
func (n *hnode[V]) clone(extraLeaves, extraNodes int) *hnode[V] {
	c := allocNode[V](len(n.leaves), len(n.leaves)+extraLeaves, len(n.nodes())+extraNodes)
	c.datamap, c.nodemap = n.datamap, n.nodemap
	copy(c.leaves, n.leaves)
	if ns := n.nodes(); len(ns) > 0 {
		*c.sub = append(*c.sub, ns...)
	}
	return c
}

// allocNode returns a node with len(leaves) == nleaves and room for
// leafCap leaves and nodeCap sub-nodes. A node of up to four leaves and no
// sub-nodes — every node of a small scope — is one allocation with its
// leaves, not two: the path copy of an update is most of its cost.
func allocNode[V any](nleaves, leafCap, nodeCap int) *hnode[V] {
	var c *hnode[V]
	switch {
	case nodeCap > 0:
		b := new(struct {
			n   hnode[V]
			sub []*hnode[V]
		})
		b.sub = make([]*hnode[V], 0, nodeCap)
		c = &b.n
		c.sub = &b.sub
		if leafCap > 0 {
			c.leaves = make([]hleaf[V], nleaves, leafCap)
		}
	case leafCap > 4:
		c = &hnode[V]{}
		if leafCap > 0 {
			c.leaves = make([]hleaf[V], nleaves, leafCap)
		}
	case leafCap <= 1:
		b := new(struct {
			n   hnode[V]
			buf [1]hleaf[V]
		})
		c = &b.n
		c.leaves = b.buf[:nleaves]
	case leafCap == 2:
		b := new(struct {
			n   hnode[V]
			buf [2]hleaf[V]
		})
		c = &b.n
		c.leaves = b.buf[:nleaves]
	default:
		b := new(struct {
			n   hnode[V]
			buf [4]hleaf[V]
		})
		c = &b.n
		c.leaves = b.buf[:nleaves]
	}
	return c
}

// del returns a map without k.
func (m hmap[V]) del(k string) hmap[V] { return m.delH(k, hashKey(k)) }

// delH is del with k's hash already computed.
func (m hmap[V]) delH(k string, h uint64) hmap[V] {
	if m.root == nil {
		return m
	}
	root, removed := removeKey(m.root, k, h, 0)
	if !removed {
		return m
	}
	if len(root.leaves) == 0 && len(root.nodes()) == 0 {
		root = nil
	}
	return hmap[V]{root, m.n - 1}
}

// removeKey returns the node without k. A sub-node left with a single leaf
// and no sub-nodes is returned as such, and the caller inlines that leaf
// (canonical form).
func removeKey[V any](n *hnode[V], k string, h uint64, shift uint) (*hnode[V], bool) {
	if shift > hmaxShift {
		// A plain loop, not slices.BinarySearchFunc: k must not escape,
		// callers pass keys built on their stack.
		for i := range n.leaves {
			if n.leaves[i].key == k {
				return &hnode[V]{leaves: slices.Delete(slices.Clone(n.leaves), i, i+1)}, true
			}
		}
		return n, false
	}
	bit := uint32(1) << ((h >> shift) & hmask)
	switch {
	case n.datamap&bit != 0:
		i := bits.OnesCount32(n.datamap & (bit - 1))
		if n.leaves[i].key != k {
			return n, false
		}
		c := n.clone(0, 0)
		c.leaves = slices.Delete(c.leaves, i, i+1)
		c.datamap &^= bit
		return c, true
	case n.nodemap&bit != 0:
		j := bits.OnesCount32(n.nodemap & (bit - 1))
		sub, removed := removeKey((*n.sub)[j], k, h, shift+hbits)
		if !removed {
			return n, false
		}
		if len(sub.nodes()) == 0 && len(sub.leaves) == 1 {
			// Inline the last leaf of the sub-node into this node.
			c := n.clone(1, 0)
			*c.sub = slices.Delete(*c.sub, j, j+1)
			c.nodemap &^= bit
			i := bits.OnesCount32(n.datamap & (bit - 1))
			c.leaves = slices.Insert(c.leaves, i, sub.leaves[0])
			c.datamap |= bit
			return c, true
		}
		c := n.clone(0, 0)
		(*c.sub)[j] = sub
		return c, true
	}
	return n, false
}

// each calls fn for every leaf, in trie order (not sorted); fn returning
// false stops the walk, and each then returns false.
func (m hmap[V]) each(fn func(l *hleaf[V]) bool) bool {
	if m.root == nil {
		return true
	}
	return m.root.each(fn)
}

func (n *hnode[V]) each(fn func(l *hleaf[V]) bool) bool {
	for i := range n.leaves {
		if !fn(&n.leaves[i]) {
			return false
		}
	}
	for _, s := range n.nodes() {
		if !s.each(fn) {
			return false
		}
	}
	return true
}

// sorted returns the leaves ordered by key.
func (m hmap[V]) sorted() []*hleaf[V] {
	out := make([]*hleaf[V], 0, m.n)
	m.each(func(l *hleaf[V]) bool { out = append(out, l); return true })
	slices.SortFunc(out, func(a, b *hleaf[V]) int { return strings.Compare(a.key, b.key) })
	return out
}

// diffMaps calls fn(a, b) for every key that may differ between the two
// maps: a is nil for a key only in y, b is nil for a key only in x, and both
// are set for a key in both whose leaves sit in different nodes (fn compares
// the values). Whole sub-trees that are the same pointer are skipped without
// being walked. fn returning false stops the walk, and diffMaps then returns
// false.
func diffMaps[V any](x, y hmap[V], fn func(a, b *hleaf[V]) bool) bool {
	return diffNodes(x.root, y.root, 0, fn)
}

func diffNodes[V any](a, b *hnode[V], shift uint, fn func(a, b *hleaf[V]) bool) bool {
	if a == b {
		return true
	}
	if a == nil {
		return b.each(func(l *hleaf[V]) bool { return fn(nil, l) })
	}
	if b == nil {
		return a.each(func(l *hleaf[V]) bool { return fn(l, nil) })
	}
	if shift > hmaxShift {
		return diffLeafLists(a.leaves, b.leaves, fn)
	}
	all := a.datamap | a.nodemap | b.datamap | b.nodemap
	for all != 0 {
		bit := all & -all
		all &^= bit
		var al, bl *hleaf[V]
		var an, bn *hnode[V]
		if a.datamap&bit != 0 {
			al = &a.leaves[bits.OnesCount32(a.datamap&(bit-1))]
		} else if a.nodemap&bit != 0 {
			an = (*a.sub)[bits.OnesCount32(a.nodemap&(bit-1))]
		}
		if b.datamap&bit != 0 {
			bl = &b.leaves[bits.OnesCount32(b.datamap&(bit-1))]
		} else if b.nodemap&bit != 0 {
			bn = (*b.sub)[bits.OnesCount32(b.nodemap&(bit-1))]
		}
		ok := true
		switch {
		case an != nil || bn != nil:
			if al == nil && bl == nil {
				ok = diffNodes(an, bn, shift+hbits, fn)
			} else if al != nil { // leaf in a, node in b
				ok = diffLeafNode(al, bn, fn, false)
			} else {
				ok = diffLeafNode(bl, an, fn, true)
			}
		case al == nil:
			ok = fn(nil, bl)
		case bl == nil:
			ok = fn(al, nil)
		case al.key == bl.key:
			ok = fn(al, bl)
		default:
			ok = fn(al, nil) && fn(nil, bl)
		}
		if !ok {
			return false
		}
	}
	return true
}

// diffLeafNode compares a single leaf l against a sub-tree n. flipped says l
// belongs to the second map.
func diffLeafNode[V any](l *hleaf[V], n *hnode[V], fn func(a, b *hleaf[V]) bool, flipped bool) bool {
	call := func(x, y *hleaf[V]) bool {
		if flipped {
			return fn(y, x)
		}
		return fn(x, y)
	}
	found := false
	if !n.each(func(o *hleaf[V]) bool {
		if o.key == l.key {
			found = true
			return call(l, o)
		}
		return call(nil, o)
	}) {
		return false
	}
	if !found {
		return call(l, nil)
	}
	return true
}

func diffLeafLists[V any](a, b []hleaf[V], fn func(a, b *hleaf[V]) bool) bool {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j >= len(b) || (i < len(a) && a[i].key < b[j].key):
			if !fn(&a[i], nil) {
				return false
			}
			i++
		case i >= len(a) || b[j].key < a[i].key:
			if !fn(nil, &b[j]) {
				return false
			}
			j++
		default:
			if !fn(&a[i], &b[j]) {
				return false
			}
			i++
			j++
		}
	}
	return true
}

// buildHmap builds, in one pass, the map of the leaves ls: the very trie
// that inserting them one by one would give (the shape is a function of
// the key set), at one allocation per node instead of a path copy per key.
// ls is reordered. ok is false, naming the key, when a key occurs twice.
func buildHmap[V any](ls []hleaf[V]) (m hmap[V], dup string, ok bool) {
	if len(ls) == 0 {
		return hmap[V]{}, "", true
	}
	hs := make([]uint64, 2*len(ls)) // hashes, and their scratch
	for i := range ls {
		hs[i] = hashOf(ls[i].key)
	}
	root, dup, ok := buildNode(ls, make([]hleaf[V], len(ls)), hs[:len(ls)], hs[len(ls):], 0)
	if !ok {
		return hmap[V]{}, dup, false
	}
	return hmap[V]{root, len(ls)}, "", true
}

// buildNode builds the node at shift for ls (two or more leaves, or one at
// the root), whose hashes are hs; scratch and hscratch are as long as ls.
func buildNode[V any](ls, scratch []hleaf[V], hs, hscratch []uint64, shift uint) (*hnode[V], string, bool) {
	if shift > hmaxShift {
		c := &hnode[V]{leaves: slices.Clone(ls)}
		slices.SortFunc(c.leaves, func(a, b hleaf[V]) int { return strings.Compare(a.key, b.key) })
		for i := 1; i < len(c.leaves); i++ {
			if c.leaves[i].key == c.leaves[i-1].key {
				return nil, c.leaves[i].key, false
			}
		}
		return c, "", true
	}
	// Counting sort by the slot at this level.
	var start [hmask + 2]int
	for i := range ls {
		start[(hs[i]>>shift)&hmask+1]++
	}
	nl, nn := 0, 0
	for s := 1; s < len(start); s++ {
		switch start[s] {
		case 0:
		case 1:
			nl++
		default:
			nn++
		}
		start[s] += start[s-1]
	}
	pos := start
	for i := range ls {
		s := (hs[i] >> shift) & hmask
		scratch[pos[s]], hscratch[pos[s]] = ls[i], hs[i]
		pos[s]++
	}
	copy(ls, scratch)
	copy(hs, hscratch)
	c := allocNode[V](0, nl, nn)
	for s := range uint(hmask + 1) {
		lo, hi := start[s], start[s+1]
		switch hi - lo {
		case 0:
		case 1:
			c.leaves = append(c.leaves, ls[lo])
			c.datamap |= 1 << s
		default:
			sub, dup, ok := buildNode(ls[lo:hi], scratch[lo:hi], hs[lo:hi], hscratch[lo:hi], shift+hbits)
			if !ok {
				return nil, dup, false
			}
			*c.sub = append(*c.sub, sub)
			c.nodemap |= 1 << s
		}
	}
	return c, "", true
}
