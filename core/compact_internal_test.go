package core

import "testing"

// sameTrie reports whether the tries under a and b have the same nodes,
// bitmaps, keys and values (by eq), node for node.
func sameTrie[V any](a, b *hnode[V], eq func(x, y V) bool) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.datamap != b.datamap || a.nodemap != b.nodemap || len(a.leaves) != len(b.leaves) || len(a.nodes()) != len(b.nodes()) {
		return false
	}
	for i := range a.leaves {
		if a.leaves[i].key != b.leaves[i].key || !eq(a.leaves[i].val, b.leaves[i].val) {
			return false
		}
	}
	for i, x := range a.nodes() {
		if !sameTrie(x, b.nodes()[i], eq) {
			return false
		}
	}
	return true
}

// A compacted state (Replay.Finish) is the same tries, node for node: the
// canonical shape that Diff and scoped subscriptions compare (R18) is
// kept, and every slice it hands out is full, so an update copies.
func TestCompactKeepsEveryTrie(t *testing.T) {
	var s Snapshot
	for i := range 300 {
		vals := Values{}
		for k := range 1 + i%37 {
			vals["k"+string(rune('a'+k%26))+string(rune('a'+i%7))] = int64(i * k)
		}
		ops := []MutationOp{{Kind: MutMerge, Layer: Saved, Scope: ConfigScope("t", string(rune('a'+i%11))), Owner: "o" + string(rune('a'+i%3)), Values: vals}}
		if i%5 == 0 {
			ops = append(ops, MutationOp{Kind: MutSet, Layer: Fleet, Scope: ConfigScope("f", string(rune('a'+i%4))), Values: vals})
		}
		var err error
		if s, err = s.Apply(&Mutation{Seq: uint64(i + 1), Ops: ops}); err != nil {
			t.Fatal(err)
		}
	}
	a, c := s.st(), s.st().compact()
	eqEntry := func(x, y entry) bool { return x.org == y.org && x.meta == y.meta && equalValue(x.val, y.val) }
	eqKeys := func(x, y keysMap) bool { return x.n == y.n && sameTrie(x.root, y.root, eqEntry) }
	for i := range a.buckets {
		if !sameTrie(a.buckets[i].root, c.buckets[i].root, eqKeys) {
			t.Errorf("bucket %d differs after compact", i+1)
		}
	}
	for i := range a.lay().layers {
		if !sameTrie(a.lay().layers[i].root, c.lay().layers[i].root, eqKeys) {
			t.Errorf("layer %d differs after compact", i+1)
		}
	}
	eqOwner := func(x, y ownerInfo) bool {
		return x.org == y.org && x.uid == y.uid && x.bound == y.bound && x.journaled == y.journaled &&
			x.keys.n == y.keys.n && sameTrie(x.keys.root, y.keys.root, func(struct{}, struct{}) bool { return true })
	}
	if !sameTrie(a.owners.root, c.owners.root, eqOwner) {
		t.Error("owner index differs after compact")
	}
	var full func(n *hnode[entry]) bool
	full = func(n *hnode[entry]) bool {
		if n == nil {
			return true
		}
		if cap(n.leaves) != len(n.leaves) || cap(n.nodes()) != len(n.nodes()) {
			return false
		}
		for _, x := range n.nodes() {
			if !full(x) {
				return false
			}
		}
		return true
	}
	c.lay().layers[Saved-1].each(func(l *hleaf[keysMap]) bool {
		if !full(l.val.root) {
			t.Errorf("scope %q: a compacted node has spare capacity", l.key)
		}
		return true
	})
}
