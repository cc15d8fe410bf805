package core

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// FeedChanges lists what changed from old to new in the journaled config
// layers (fleet, saved, runtime; R41), layer by layer: each Change has
// Layer = the layer, and Old/New and the owners as they are in that layer
// (not the effective view). Sorted by layer, then scope text, then key.
// Like Diff, it skips sub-trees both snapshots share, so its cost follows
// the size of the change. It is what a change feed (R47) reports for one
// mutation, whether the two snapshots come from the live registry or from
// replaying the journal.
func FeedChanges(old, new Snapshot) []Change {
	var out []Change
	a, b := old.st().lay(), new.st().lay()
	for l := Fleet; l <= Runtime; l++ {
		n := len(out)
		diffMaps(a.layers[l-1], b.layers[l-1], func(x, y *hleaf[keysMap]) bool {
			k, ka, kb := leafKV(x, y)
			if ka.root == kb.root {
				return true
			}
			sc := splitScopeKey(Config, k)
			diffMaps(ka, kb, func(x, y *hleaf[entry]) bool {
				if x != nil && y != nil && x.val.owner() == y.val.owner() && equalValue(x.val.val, y.val.val) {
					return true
				}
				c := Change{Scope: sc, Layer: l}
				if x != nil {
					c.Key, c.Old, c.Existed, c.OldOwner = x.key, copyValue(x.val.val), true, x.val.owner()
				}
				if y != nil {
					c.Key, c.New, c.Exists, c.NewOwner = y.key, copyValue(y.val.val), true, y.val.owner()
				}
				out = append(out, c)
				return true
			})
			return true
		})
		slices.SortFunc(out[n:], func(x, y Change) int {
			if c := compareScopes(x.Scope, y.Scope); c != 0 {
				return c
			}
			return strings.Compare(x.Key, y.Key)
		})
	}
	return out
}

// ApplyLayers is Apply for the config layers alone: it changes the layers
// and the owner index as Apply does, but leaves the effective config view
// and its metadata as they were, so the result is good only for reading
// layers (LayerValues, LayerOwner, LayerScopes, WalkLayer, FeedChanges)
// and for further ApplyLayers — never to show, encode or publish. A
// change feed (R47) replays the journal with it to learn each layer's old
// values at a fraction of Apply's cost.
func (s Snapshot) ApplyLayers(m *Mutation) (Snapshot, error) { return s.apply(m, true) }

// Tap receives every published mutation that carries a journal record
// (config changes of journaled layers), in sequence order, into a bounded
// buffer: the live side of a change feed (R47). The write path never
// waits for a tap: when the buffer is full, the tap drops what it holds
// and every later item until the next Take, which reports the loss, so
// that its reader can fetch the lost items from the journal instead (every
// item published before that Take is durable there). A tap costs the
// write path one short lock and one append per logged mutation.
//
// Methods are safe for concurrent use; one goroutine normally reads it.
type Tap struct {
	r     *Registry
	ready chan struct{} // one slot: items (or a loss) to take

	mu    sync.Mutex // guards the fields below
	buf   []TapItem
	limit int
	lost  bool
	done  bool
}

// TapItem is one published mutation as a tap saw it: the published state
// before and after it.
type TapItem struct {
	Seq      uint64
	Time     time.Time
	Old, New Snapshot
}

// Changes returns the item's per-layer changes (FeedChanges).
func (it TapItem) Changes() []Change { return FeedChanges(it.Old, it.New) }

// Tap starts a tap holding at most limit items (at least 1) until taken.
// The caller must Close it.
func (r *Registry) Tap(limit int) *Tap {
	t := &Tap{r: r, ready: make(chan struct{}, 1), limit: max(limit, 1)}
	r.mu.Lock()
	r.taps = append(r.taps, t)
	r.mu.Unlock()
	return t
}

// Ready has a value whenever there is something to Take.
func (t *Tap) Ready() <-chan struct{} { return t.ready }

// Take moves the buffered items into dst[:0] and returns it, with lost =
// true if items were dropped since the last Take (then dst holds none of
// them: the items published after this Take come in later Takes).
func (t *Tap) Take(dst []TapItem) (items []TapItem, lost bool) {
	t.mu.Lock()
	dst = append(dst[:0], t.buf...)
	clear(t.buf)
	t.buf, lost, t.lost = t.buf[:0], t.lost, false
	t.mu.Unlock()
	return dst, lost
}

// Close stops the tap. Idempotent.
func (t *Tap) Close() {
	t.r.mu.Lock()
	if i := slices.Index(t.r.taps, t); i >= 0 {
		t.r.taps = slices.Delete(t.r.taps, i, i+1)
	}
	t.r.mu.Unlock()
	t.mu.Lock()
	t.done, t.buf = true, nil
	t.mu.Unlock()
}

// push hands one published item to the tap; called with the registry's
// write lock held, in sequence order. It never blocks.
func (t *Tap) push(it TapItem) {
	t.mu.Lock()
	switch {
	case t.done || t.lost:
	case len(t.buf) >= t.limit:
		clear(t.buf)
		t.buf, t.lost = t.buf[:0], true
	default:
		t.buf = append(t.buf, it)
	}
	t.mu.Unlock()
	select {
	case t.ready <- struct{}{}:
	default:
	}
}
