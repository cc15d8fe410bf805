package core

// White-box tests of the persistent CHAMP map (hamt.go): agreement with a Go
// map under random set/del, canonical form (the shape depends on the key set
// alone, which Diff and regionChanged rely on), persistence, hash collisions
// below the last level, and diffMaps skipping shared sub-trees (R22).

import (
	"fmt"
	"maps"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// checkInvariants verifies the structure of the trie under n at shift and
// returns how many leaves it holds: bitmaps match slice lengths, leaves and
// sub-nodes sit in the slot their hash names, a sub-node holds at least two
// leaves (canonical form), and collision nodes are sorted.
func checkInvariants[V any](t *testing.T, n *hnode[V], shift uint, prefix uint64) int {
	t.Helper()
	if shift > hmaxShift {
		if n.datamap != 0 || n.nodemap != 0 || len(n.nodes()) != 0 || len(n.leaves) < 1 {
			t.Fatalf("collision node at shift %d: %+v", shift, n)
		}
		for i := range n.leaves {
			if hashOf(n.leaves[i].key) != hashOf(n.leaves[0].key) {
				t.Fatalf("collision node holds different hashes")
			}
			if i > 0 && n.leaves[i-1].key >= n.leaves[i].key {
				t.Fatalf("collision node not sorted: %q, %q", n.leaves[i-1].key, n.leaves[i].key)
			}
		}
		return len(n.leaves)
	}
	if bits.OnesCount32(n.datamap) != len(n.leaves) || bits.OnesCount32(n.nodemap) != len(n.nodes()) {
		t.Fatalf("shift %d: bitmaps %032b/%032b for %d leaves, %d nodes", shift, n.datamap, n.nodemap, len(n.leaves), len(n.nodes()))
	}
	if n.datamap&n.nodemap != 0 {
		t.Fatalf("shift %d: a slot is both leaf and node", shift)
	}
	mask := uint64(1)<<shift - 1
	total := 0
	for i := range n.leaves {
		l := &n.leaves[i]
		h := hashOf(l.key)
		if h&mask != prefix {
			t.Fatalf("leaf %q at shift %d is under the wrong prefix", l.key, shift)
		}
		slot := (h >> shift) & hmask
		if n.datamap&(1<<slot) == 0 || bits.OnesCount32(n.datamap&(1<<slot-1)) != i {
			t.Fatalf("leaf %q is not at its slot %d", l.key, slot)
		}
		total++
	}
	j := 0
	for slot := range uint64(32) {
		if n.nodemap&(1<<slot) == 0 {
			continue
		}
		sub := n.nodes()[j]
		j++
		c := checkInvariants(t, sub, shift+hbits, prefix|slot<<shift)
		if c < 2 {
			t.Fatalf("sub-node at shift %d holds %d leaf: not canonical", shift+hbits, c)
		}
		total += c
	}
	return total
}

func checkMap(t *testing.T, m hmap[int], want map[string]int) {
	t.Helper()
	if m.len() != len(want) {
		t.Fatalf("len %d, want %d", m.len(), len(want))
	}
	if m.root != nil {
		if n := checkInvariants(t, m.root, 0, 0); n != len(want) {
			t.Fatalf("trie holds %d leaves, len says %d", n, len(want))
		}
	} else if len(want) != 0 {
		t.Fatalf("nil root for %d keys", len(want))
	}
	for k, v := range want {
		if got, ok := m.get(k); !ok || got != v {
			t.Fatalf("get(%q) = %d, %v; want %d", k, got, ok, v)
		}
	}
	seen := map[string]int{}
	m.each(func(l *hleaf[int]) bool { seen[l.key] = l.val; return true })
	if !maps.Equal(seen, want) {
		t.Fatalf("each visits %d keys, want %d", len(seen), len(want))
	}
	sorted := m.sorted()
	if !slices.IsSortedFunc(sorted, func(a, b *hleaf[int]) int { return cmpLeafKey(*a, b.key) }) || len(sorted) != len(want) {
		t.Fatal("sorted() is not sorted or incomplete")
	}
}

// collidingKeys returns groups of keys whose hashes agree in their lowest
// `agree` bits, so that they share a path of agree/5 levels.
func collidingKeys(agree uint, groups, tries int) [][]string {
	byPrefix := map[uint64][]string{}
	mask := uint64(1)<<agree - 1
	var out [][]string
	for i := range tries {
		k := "c" + strconv.Itoa(i)
		p := hashKey(k) & mask
		byPrefix[p] = append(byPrefix[p], k)
		if len(byPrefix[p]) == 2 {
			out = append(out, byPrefix[p])
			if len(out) == groups {
				break
			}
		}
	}
	return out
}

func TestHAMTRandomAgainstMap(t *testing.T) {
	deep := collidingKeys(25, 20, 1<<20) // pairs sharing 5 levels
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 7))
		universe := 1 + r.IntN(300)
		pick := func() string {
			if r.IntN(4) == 0 && len(deep) > 0 {
				g := deep[r.IntN(len(deep))]
				return g[r.IntN(len(g))]
			}
			return "k" + strconv.Itoa(r.IntN(universe))
		}
		var m hmap[int]
		want := map[string]int{}
		var versions []hmap[int]
		var wants []map[string]int
		for step := range 600 {
			k := pick()
			if r.IntN(3) == 0 {
				m = m.del(k)
				delete(want, k)
			} else {
				m = m.set(k, step)
				want[k] = step
			}
			if step%50 == 0 {
				versions = append(versions, m)
				wants = append(wants, maps.Clone(want))
			}
		}
		checkMap(t, m, want)
		// Persistence: every older version is unchanged.
		for i, v := range versions {
			checkMap(t, v, wants[i])
		}
		// Deleting everything leaves the empty map.
		for k := range want {
			m = m.del(k)
		}
		if m.root != nil || m.len() != 0 {
			t.Fatalf("seed %d: after deleting every key: root %v, len %d", seed, m.root, m.len())
		}
	}
}

// setE with an edit set (Snapshot.Apply's replay) gives the same trie as
// persistent sets, mixed with persistent deletes, and never changes a map
// version that existed before the edit set: the base a replay starts from
// stays intact.
func TestHAMTEditsInPlace(t *testing.T) {
	deep := collidingKeys(25, 20, 1<<20)
	for seed := range uint64(100) {
		r := rand.New(rand.NewPCG(seed, 13))
		universe := 1 + r.IntN(500)
		pick := func() string {
			if r.IntN(4) == 0 && len(deep) > 0 {
				g := deep[r.IntN(len(deep))]
				return g[r.IntN(len(g))]
			}
			return "k" + strconv.Itoa(r.IntN(universe))
		}
		var base hmap[int]
		for i := range r.IntN(300) {
			base = base.set(pick(), -i)
		}
		baseWant := map[string]int{}
		base.each(func(l *hleaf[int]) bool { baseWant[l.key] = l.val; return true })
		ed := newEdits()
		m, p := base, base // m with the edit set, p persistent
		want := maps.Clone(baseWant)
		for step := range 800 {
			k := pick()
			if r.IntN(5) == 0 {
				m, p = m.del(k), p.del(k)
				delete(want, k)
			} else {
				m, p = m.setE(k, hashKey(k), step, ed), p.set(k, step)
				want[k] = step
			}
		}
		checkMap(t, m, want)
		checkMap(t, base, baseWant)
		if err := sameShape(m.root, p.root); err != nil {
			t.Fatalf("seed %d: edited and persistent tries differ: %v", seed, err)
		}
	}
}

func TestHAMTDeletingMissingKeysSharesTheMap(t *testing.T) {
	var m hmap[int]
	for i := range 100 {
		m = m.set(strconv.Itoa(i), i)
	}
	for _, k := range []string{"missing", "", "100", "-1"} {
		if d := m.del(k); d.root != m.root || d.len() != m.len() {
			t.Fatalf("del(%q) of a missing key copied the map", k)
		}
	}
	var empty hmap[int]
	if d := empty.del("x"); d.root != nil || d.len() != 0 {
		t.Fatal("del on the empty map")
	}
}

// sameShape compares two tries node by node: bitmaps, leaf keys, values.
func sameShape[V comparable](a, b *hnode[V]) error {
	if (a == nil) != (b == nil) {
		return fmt.Errorf("one trie is empty")
	}
	if a == nil {
		return nil
	}
	if a.datamap != b.datamap || a.nodemap != b.nodemap || len(a.leaves) != len(b.leaves) || len(a.nodes()) != len(b.nodes()) {
		return fmt.Errorf("node %032b/%032b (%d leaves) vs %032b/%032b (%d leaves)", a.datamap, a.nodemap, len(a.leaves), b.datamap, b.nodemap, len(b.leaves))
	}
	for i := range a.leaves {
		if a.leaves[i].key != b.leaves[i].key || a.leaves[i].val != b.leaves[i].val {
			return fmt.Errorf("leaf %q vs %q", a.leaves[i].key, b.leaves[i].key)
		}
	}
	for i := range a.nodes() {
		if err := sameShape(a.nodes()[i], b.nodes()[i]); err != nil {
			return err
		}
	}
	return nil
}

// Canonical form: the same key set gives the same trie, however it was
// built (insertion order, deletions of other keys, re-insertions).
func TestHAMTCanonicalForm(t *testing.T) {
	deep := collidingKeys(30, 8, 1<<22)
	for seed := range uint64(50) {
		r := rand.New(rand.NewPCG(seed, 11))
		n := 1 + r.IntN(2000)
		keys := make([]string, n)
		for i := range keys {
			keys[i] = "key-" + strconv.Itoa(i)
		}
		for _, g := range deep {
			keys = append(keys, g...)
		}
		extra := make([]string, 1+r.IntN(500))
		for i := range extra {
			extra[i] = "extra-" + strconv.Itoa(i)
		}
		for _, g := range collidingKeys(20, 5, 1<<18) {
			extra = append(extra, g...) // deep paths that must collapse again
		}
		// a: plain insertion in order.
		var a hmap[int]
		for _, k := range keys {
			a = a.set(k, len(k))
		}
		// b: shuffled, interleaved with extra keys that are deleted again,
		// and some keys deleted and re-inserted.
		var b hmap[int]
		order := slices.Clone(keys)
		r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for i, k := range order {
			b = b.set(k, -1)
			if i < len(extra) {
				b = b.set(extra[i], 0)
			}
		}
		for _, k := range extra {
			b = b.del(k)
		}
		for _, k := range order[:len(order)/3] {
			b = b.del(k)
		}
		for _, k := range order {
			b = b.set(k, len(k))
		}
		if err := sameShape(a.root, b.root); err != nil {
			t.Fatalf("seed %d: two builds of the same key set differ: %v", seed, err)
		}
		if a.len() != b.len() {
			t.Fatalf("seed %d: len %d vs %d", seed, a.len(), b.len())
		}
	}
}

// Keys whose 64-bit hashes collide end in a collision node below the last
// level. maphash gives no such keys, so these tests build leaves with chosen
// hashes through insertLeaf and removeKey, as set and del do.
func TestHAMTFullHashCollisions(t *testing.T) {
	const h = 0xdeadbeefcafef00d
	hashes := map[string]uint64{"z": h, "a": h, "m": h, "b": h, "near": h ^ 1<<62, "other": 42}
	chosenHashes(t, hashes)
	setH := func(m hmap[int], k string, hash uint64, v int) hmap[int] {
		root, added := insertLeaf(m.root, hleaf[int]{key: k, val: v}, hash, 0, nil)
		if added {
			return hmap[int]{root, m.n + 1}
		}
		return hmap[int]{root, m.n}
	}
	delH := func(m hmap[int], k string, hash uint64) hmap[int] {
		root, removed := removeKey(m.root, k, hash, 0)
		if !removed {
			return m
		}
		if len(root.leaves) == 0 && len(root.nodes()) == 0 {
			root = nil
		}
		return hmap[int]{root, m.n - 1}
	}
	getH := func(m hmap[int], k string, hash uint64) (int, bool) {
		n := m.root
		for shift := uint(0); n != nil; shift += hbits {
			if shift > hmaxShift {
				for _, l := range n.leaves {
					if l.key == k {
						return l.val, true
					}
				}
				return 0, false
			}
			bit := uint32(1) << ((hash >> shift) & hmask)
			switch {
			case n.datamap&bit != 0:
				l := n.leaves[bits.OnesCount32(n.datamap&(bit-1))]
				if l.key != k {
					return 0, false
				}
				return l.val, true
			case n.nodemap&bit != 0:
				n = n.nodes()[bits.OnesCount32(n.nodemap&(bit-1))]
			default:
				return 0, false
			}
		}
		return 0, false
	}
	var m hmap[int]
	want := map[string]int{}
	for _, k := range []string{"z", "a", "m", "near", "other", "b"} {
		m = setH(m, k, hashes[k], len(want))
		want[k] = len(want)
	}
	m = setH(m, "a", h, 100) // replace inside a collision node
	want["a"] = 100
	check := func() {
		t.Helper()
		if m.len() != len(want) {
			t.Fatalf("len %d, want %d", m.len(), len(want))
		}
		if m.root != nil {
			if n := checkInvariants(t, m.root, 0, 0); n != len(want) {
				t.Fatalf("%d leaves, want %d", n, len(want))
			}
		}
		for k, hash := range hashes {
			v, ok := getH(m, k, hash)
			if w, in := want[k]; ok != in || v != w {
				t.Fatalf("get(%q) = %d, %v; want %d, %v", k, v, ok, w, in)
			}
		}
	}
	check()
	// The same built with an edit set (Snapshot.Apply's replay), from a
	// persistent base that must stay as it was.
	ed := newEdits()
	em := setH(hmap[int]{}, "other", 42, -1)
	emBase := em
	for _, k := range []string{"z", "a", "m", "near", "other", "b"} {
		r, added := insertLeaf(em.root, hleaf[int]{key: k, val: want[k]}, hashes[k], 0, ed)
		em = hmap[int]{r, em.n}
		if added {
			em.n++
		}
	}
	if err := sameShape(em.root, m.root); err != nil || em.len() != m.len() {
		t.Fatalf("edited trie differs from the persistent one (len %d vs %d): %v", em.len(), m.len(), err)
	}
	if v, ok := getH(emBase, "other", 42); !ok || v != -1 || emBase.len() != 1 {
		t.Fatalf("the base changed: %d, %v, len %d", v, ok, emBase.len())
	}
	before := m
	// diffMaps inside collision nodes.
	m2 := setH(delH(m, "m", h), "b", h, 7)
	var changed []string
	diffMaps(before, m2, func(x, y *hleaf[int]) bool {
		if x == nil || y == nil || x.val != y.val {
			changed = append(changed, leafKey(x, y))
		}
		return true
	})
	slices.Sort(changed)
	if !slices.Equal(changed, []string{"b", "m"}) {
		t.Fatalf("diffMaps in a collision node: %q", changed)
	}
	for _, k := range []string{"m", "missing", "z", "near", "a"} {
		hash, ok := hashes[k]
		if !ok {
			hash = h
		}
		m = delH(m, k, hash)
		delete(want, k)
		check()
	}
	// One colliding key left: it must be inlined back up to the root level
	// (canonical form), like any single key.
	if len(m.root.nodes()) != 0 {
		t.Fatalf("a single colliding key is left in a sub-node: %+v", m.root)
	}
	for k := range want {
		m = delH(m, k, hashes[k])
	}
	if m.root != nil || m.len() != 0 {
		t.Fatal("not empty after deleting every key")
	}
	checkMap(t, hmap[int]{}, map[string]int{})
}

// chosenHashes makes hashOf give the keys of hs their chosen hash (the
// others keep hashKey's) until the test ends: a trie stores no hashes, and
// maphash gives no colliding keys.
func chosenHashes(t *testing.T, hs map[string]uint64) {
	prev := hashOf
	hashOf = func(k string) uint64 {
		if h, ok := hs[k]; ok {
			return h
		}
		return prev(k)
	}
	t.Cleanup(func() { hashOf = prev })
}

func leafKey[V any](x, y *hleaf[V]) string {
	if x != nil {
		return x.key
	}
	return y.key
}

// diffMaps reports every key whose presence or value differs (and may also
// report equal keys whose leaves sit in different nodes; fn compares).
func TestDiffMapsExact(t *testing.T) {
	deep := collidingKeys(25, 20, 1<<20)
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 3))
		universe := 1 + r.IntN(1000)
		key := func() string {
			if r.IntN(5) == 0 {
				g := deep[r.IntN(len(deep))]
				return g[r.IntN(len(g))]
			}
			return "k" + strconv.Itoa(r.IntN(universe))
		}
		var base hmap[int]
		ver := 0
		for range r.IntN(2 * universe) {
			ver++
			base = base.set(key(), ver)
		}
		x, y := base, base
		for range r.IntN(20) {
			ver++
			if r.IntN(3) == 0 {
				x = x.del(key())
			} else {
				x = x.set(key(), ver)
			}
		}
		for range r.IntN(20) {
			ver++
			if r.IntN(3) == 0 {
				y = y.del(key())
			} else {
				y = y.set(key(), ver)
			}
		}
		if r.IntN(4) == 0 { // a value set to what it was: same content, new leaf
			for _, l := range x.sorted() {
				y = y.set(l.key, l.val)
				break
			}
		}
		want := map[string]bool{}
		xs, ys := map[string]int{}, map[string]int{}
		x.each(func(l *hleaf[int]) bool { xs[l.key] = l.val; return true })
		y.each(func(l *hleaf[int]) bool { ys[l.key] = l.val; return true })
		for k, v := range xs {
			if w, ok := ys[k]; !ok || w != v {
				want[k] = true
			}
		}
		for k := range ys {
			if _, ok := xs[k]; !ok {
				want[k] = true
			}
		}
		got := map[string]bool{}
		diffMaps(x, y, func(a, b *hleaf[int]) bool {
			k := leafKey(a, b)
			if got[k] {
				t.Fatalf("seed %d: key %q reported twice", seed, k)
			}
			switch {
			case a == nil && (xs[k] != 0 || ys[k] == 0):
				t.Fatalf("seed %d: %q reported as only in y", seed, k)
			case b == nil && (ys[k] != 0 || xs[k] == 0):
				t.Fatalf("seed %d: %q reported as only in x", seed, k)
			}
			if a == nil || b == nil || a.val != b.val {
				got[k] = true
			}
			return true
		})
		if !maps.Equal(got, want) {
			t.Fatalf("seed %d: diffMaps reports %d differing keys, want %d", seed, len(got), len(want))
		}
		// Stopping early stops the walk.
		if len(want) > 0 {
			calls := 0
			if diffMaps(x, y, func(a, b *hleaf[int]) bool { calls++; return false }) || calls != 1 {
				t.Fatalf("seed %d: stop: %d calls", seed, calls)
			}
		}
	}
}

// diffMaps must not walk sub-trees that both maps share (R22: cost follows
// the change, not the map). The test poisons every shared node so that
// walking into it panics, then diffs.
func TestDiffMapsSkipsSharedSubtrees(t *testing.T) {
	var base hmap[int]
	for i := range 10000 {
		base = base.set("k"+strconv.Itoa(i), i)
	}
	changed := base.set("k42", -1).del("k4242").set("new", 1)

	// Collect the nodes of changed, then poison those that base shares.
	own := map[*hnode[int]]bool{}
	var walk func(n *hnode[int])
	walk = func(n *hnode[int]) {
		own[n] = true
		for _, s := range n.nodes() {
			walk(s)
		}
	}
	walk(changed.root)
	shared := 0
	var poison func(n *hnode[int])
	poison = func(n *hnode[int]) {
		for _, s := range n.nodes() {
			if own[s] {
				shared++
				// Poison a deep copy's worth: mark the node unreadable by
				// giving it bitmaps that do not match its slices.
				s.datamap, s.nodemap = ^uint32(0), ^uint32(0)
				continue
			}
			poison(s)
		}
	}
	// base's copy of a shared sub-tree is the same pointer, so poisoning
	// through base poisons it for both.
	poison(base.root)
	if shared == 0 {
		t.Fatal("no shared sub-trees found")
	}
	// diffMaps reports every key whose leaf sits in a copied node (the
	// caller compares values); the differing ones must be among them, and
	// the rest are only the neighbours on the copied paths.
	var got []string
	calls := 0
	diffMaps(base, changed, func(a, b *hleaf[int]) bool {
		calls++
		if a == nil || b == nil || a.val != b.val {
			got = append(got, leafKey(a, b))
		}
		return true
	})
	slices.Sort(got)
	if !slices.Equal(got, []string{"k42", "k4242", "new"}) {
		t.Fatalf("diffMaps = %q", got)
	}
	if calls > 3*3*32 {
		t.Fatalf("diffMaps made %d calls for 3 changed keys in 10,000", calls)
	}
	t.Logf("%d shared sub-trees skipped, %d calls", shared, calls)
}

func BenchmarkHAMT(b *testing.B) {
	for _, n := range []int{10, 10000} {
		keys := make([]string, n)
		var m hmap[int]
		for i := range keys {
			keys[i] = "key-" + strconv.Itoa(i)
			m = m.set(keys[i], i)
		}
		b.Run("op=set/keys="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				_ = m.set(keys[i%n], i)
				i++
			}
		})
		b.Run("op=get/keys="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, ok := m.get(keys[i%n]); !ok {
					b.Fatal("missing")
				}
				i++
			}
		})
		b.Run("op=del/keys="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				_ = m.del(keys[i%n])
				i++
			}
		})
		b.Run("op=diff1/keys="+strconv.Itoa(n), func(b *testing.B) {
			m2 := m.set(keys[n/2], -1)
			b.ReportAllocs()
			for b.Loop() {
				diffMaps(m, m2, func(x, y *hleaf[int]) bool { return true })
			}
		})
	}
}

// buildHmap gives the very trie that inserting the keys one by one gives
// (canonical form, which Diff relies on; R22), colliding hashes included,
// and refuses a key given twice.
func TestHAMTBuild(t *testing.T) {
	chosenHashes(t, map[string]uint64{"c0": 42, "c1": 42, "c2": 42}) // one full hash: a collision node
	deep := collidingKeys(30, 8, 1<<22)
	for seed := range uint64(40) {
		r := rand.New(rand.NewPCG(seed, 13))
		n := r.IntN(3000)
		if seed < 5 {
			n = int(seed)
		}
		var m hmap[int]
		var ls []hleaf[int]
		keys := map[string]bool{}
		addH := func(k string, h uint64) {
			if keys[k] {
				return
			}
			keys[k] = true
			v := r.IntN(100)
			m = m.setH(k, h, v)
			ls = append(ls, hleaf[int]{key: k, val: v})
		}
		for range n {
			k := "k" + strconv.Itoa(r.IntN(5000))
			addH(k, hashKey(k))
		}
		if seed%3 == 0 {
			for _, g := range deep {
				for _, k := range g {
					addH(k, hashKey(k))
				}
			}
			for i := range 3 { // one full hash: a collision node
				addH("c"+strconv.Itoa(i), 42)
			}
		}
		b, dup, ok := buildHmap(slices.Clone(ls))
		if !ok {
			t.Fatalf("seed %d: duplicate %q reported", seed, dup)
		}
		if b.len() != m.len() {
			t.Fatalf("seed %d: len %d, want %d", seed, b.len(), m.len())
		}
		if err := sameShape(b.root, m.root); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if len(ls) > 0 {
			dupd := append(slices.Clone(ls), ls[r.IntN(len(ls))])
			if _, dup, ok := buildHmap(dupd); ok || !keys[dup] {
				t.Fatalf("seed %d: a key given twice: ok=%v dup=%q", seed, ok, dup)
			}
		}
	}
}
