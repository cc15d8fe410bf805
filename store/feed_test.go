package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

// layerView is the journaled config layers of a snapshot as plain maps:
// the feed oracle (R47), built without core.FeedChanges.
type layerView map[core.Layer]map[core.Scope]map[string]ownedValue

type ownedValue struct {
	owner string
	value any
}

func layerViewOf(s core.Snapshot) layerView {
	v := layerView{}
	for _, l := range []core.Layer{core.Fleet, core.Saved, core.Runtime} {
		v[l] = map[core.Scope]map[string]ownedValue{}
		for _, sc := range s.LayerScopes(l) {
			m := map[string]ownedValue{}
			for k, val := range s.LayerValues(l, sc) {
				o, _ := s.LayerOwner(l, sc, k)
				m[k] = ownedValue{o, val}
			}
			v[l][sc] = m
		}
	}
	return v
}

// diffViews lists the per-layer changes from a to b, sorted by layer,
// scope text and key: what one feed item must hold.
func diffViews(a, b layerView) []core.Change {
	var out []core.Change
	for _, l := range []core.Layer{core.Fleet, core.Saved, core.Runtime} {
		var cs []core.Change
		scopes := map[core.Scope]bool{}
		for sc := range a[l] {
			scopes[sc] = true
		}
		for sc := range b[l] {
			scopes[sc] = true
		}
		for sc := range scopes {
			keys := map[string]bool{}
			for k := range a[l][sc] {
				keys[k] = true
			}
			for k := range b[l][sc] {
				keys[k] = true
			}
			for k := range keys {
				x, ok1 := a[l][sc][k]
				y, ok2 := b[l][sc][k]
				if ok1 == ok2 && x.owner == y.owner && reflect.DeepEqual(x.value, y.value) {
					continue
				}
				c := core.Change{Scope: sc, Key: k, Layer: l, Existed: ok1, Exists: ok2}
				if ok1 {
					c.Old, c.OldOwner = x.value, x.owner
				}
				if ok2 {
					c.New, c.NewOwner = y.value, y.owner
				}
				cs = append(cs, c)
			}
		}
		slices.SortFunc(cs, func(x, y core.Change) int {
			if c := strings.Compare(x.Scope.String(), y.Scope.String()); c != 0 {
				return c
			}
			return strings.Compare(x.Key, y.Key)
		})
		out = append(out, cs...)
	}
	return out
}

// applyItem applies a feed item's changes to a layer view (a resynced
// consumer's own copy).
func applyItem(v layerView, it store.FeedItem) {
	for _, c := range it.Changes {
		m := v[c.Layer][c.Scope]
		if m == nil {
			m = map[string]ownedValue{}
			v[c.Layer][c.Scope] = m
		}
		if c.Exists {
			m[c.Key] = ownedValue{c.NewOwner, c.New}
		} else {
			delete(m, c.Key)
			if len(m) == 0 {
				delete(v[c.Layer], c.Scope)
			}
		}
	}
}

// feedEnv is where the property test runs: embedded or over the socket.
type feedEnv struct {
	writer  func() store.Registry // owners, evictions, snapshots
	feeds   func() store.Registry // Changes
	fleet   func(ctx context.Context, scopes map[core.Scope]core.Values) error
	restart func()
}

// wantItem is what the oracle expects.
type wantItem struct {
	seq     uint64
	changes []core.Change
}

// nextItem waits for the next item of f (failing the test after a long
// while: a missing item, never a timing assumption).
func nextItem(t *testing.T, f store.Feed) store.FeedItem {
	t.Helper()
	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	select {
	case it, ok := <-f.C():
		if !ok {
			t.Fatalf("feed ended: %v", f.Err())
		}
		return it
	case <-timer.C:
		t.Fatal("no feed item within 20s")
	}
	return store.FeedItem{}
}

// runFeedProperty: random config and state mutations (puts and deletes in
// the saved and runtime layers, fleet updates, owner deaths, evictions),
// checkpoints (small thresholds), restarts of the store, and a consumer
// that reads at its own pace, disconnects at random and resumes from the
// last seq it saw: the concatenated feed equals the sequence of per-layer
// changes that an oracle derives from LayerValues snapshots after each
// mutation (R47).
func runFeedProperty(t *testing.T, seed uint64, env feedEnv, steps int) {
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	ctx := t.Context()
	names := []string{"a", "b", "c"}
	owners := map[string]store.Owner{}
	owner := func(name string) store.Owner {
		if o := owners[name]; o != nil {
			return o
		}
		opts := core.OwnerOptions{}
		if name == "a" {
			opts.KeepConfig = true
		}
		o, err := env.writer().Owner(ctx, name, opts)
		if err != nil {
			t.Fatalf("owner %s: %v", name, err)
		}
		owners[name] = o
		return o
	}
	snap := func() core.Snapshot {
		s, err := env.writer().Snapshot(ctx)
		must(t, err)
		return s
	}
	prev := snap()
	prevView := layerViewOf(prev)
	var want []wantItem
	var got []store.FeedItem
	restarts, resumes := 0, 0
	last := prev.Seq()
	feed, err := env.feeds().Changes(ctx, last)
	must(t, err)
	read := func(n int) {
		for range n {
			if len(got) >= len(want) {
				return
			}
			it := nextItem(t, feed)
			got = append(got, it)
			last = it.Seq
		}
	}
	scopes := []core.Scope{core.ConfigScope("wifi", "wlan0"), core.ConfigScope("net", "eth0"), core.ConfigScope("ntp", "srv")}
	for step := range steps {
		switch r := rng.IntN(100); {
		case r < 45:
			o := owner(names[rng.IntN(len(names))])
			v := core.Values{fmt.Sprintf("k%d", rng.IntN(4)): rng.IntN(3)}
			if rng.IntN(3) == 0 {
				v["m"] = core.Values{fmt.Sprintf("n%d", rng.IntN(2)): rng.IntN(2)}
			}
			err := o.Update(ctx, scopes[rng.IntN(len(scopes))], v)
			if err != nil && !errors.Is(err, core.ErrReservedKeys) {
				t.Fatalf("step %d: update: %v", step, err)
			}
		case r < 60:
			o := owner(names[rng.IntN(len(names))])
			err := o.Delete(ctx, scopes[rng.IntN(len(scopes))], fmt.Sprintf("k%d", rng.IntN(4)), "m")
			if err != nil && !errors.Is(err, core.ErrReservedKeys) {
				t.Fatalf("step %d: delete: %v", step, err)
			}
		case r < 68:
			o := owner(names[rng.IntN(len(names))])
			must(t, o.Update(ctx, core.StateScope("s", o.Name()), core.Values{"x": rng.IntN(5)}))
		case r < 75:
			name := names[rng.IntN(len(names))]
			if o := owners[name]; o != nil {
				must(t, o.Close()) // the owner dies (R13)
				delete(owners, name)
			}
		case r < 79:
			name := names[rng.IntN(len(names))]
			if o := owners[name]; o != nil {
				o.Close()
				delete(owners, name)
			}
			must(t, env.writer().Evict(ctx, name))
		case r < 84:
			if env.fleet != nil {
				must(t, env.fleet(ctx, map[core.Scope]core.Values{scopes[0]: {"k0": rng.IntN(3), "f": "x"}}))
			}
		case r < 92:
			// The consumer disconnects and resumes from the last seq it saw.
			read(rng.IntN(3))
			resumes++
			must(t, feed.Close())
			feed, err = env.feeds().Changes(ctx, last)
			must(t, err)
		case r < 94:
			read(len(want)) // before the restart: the store's history stays anyway
			must(t, feed.Close())
			env.restart()
			restarts++
			clear(owners)
			feed, err = env.feeds().Changes(ctx, last)
			must(t, err)
		default:
			read(rng.IntN(4))
		}
		next := snap()
		nextView := layerViewOf(next)
		if cs := diffViews(prevView, nextView); len(cs) > 0 {
			want = append(want, wantItem{next.Seq(), cs})
		}
		prev, prevView = next, nextView
		if len(want)-len(got) > 8 {
			read(len(want) - len(got)) // stay within the retained history
		}
	}
	read(len(want))
	must(t, feed.Close())
	if !errors.Is(feed.Err(), core.ErrClosed) {
		t.Errorf("Err after Close: %v, want ErrClosed", feed.Err())
	}
	if len(got) != len(want) {
		t.Fatalf("feed: %d items, want %d", len(got), len(want))
	}
	var lastTime time.Time
	for i := range want {
		if got[i].Seq != want[i].seq || !reflect.DeepEqual(got[i].Changes, want[i].changes) {
			t.Fatalf("item %d:\n got seq %d %+v\nwant seq %d %+v", i, got[i].Seq, got[i].Changes, want[i].seq, want[i].changes)
		}
		if got[i].Time.IsZero() || got[i].Time.Before(lastTime.Add(-time.Second)) {
			t.Errorf("item %d: time %v after %v", i, got[i].Time, lastTime)
		}
		lastTime = got[i].Time
	}
	t.Logf("%d feed items checked, %d resumes, %d restarts", len(got), resumes, restarts)
}

func embeddedFeedEnv(t *testing.T, opts store.Options) (feedEnv, **store.Store) {
	dir := t.TempDir()
	s := open(t, dir, opts)
	ps := &s
	env := feedEnv{
		writer: func() store.Registry { return *ps },
		feeds:  func() store.Registry { return *ps },
		fleet:  func(ctx context.Context, sc map[core.Scope]core.Values) error { return (*ps).SetFleet(ctx, sc) },
		restart: func() {
			must(t, (*ps).Close())
			*ps = open(t, dir, opts)
		},
	}
	return env, ps
}

// feedOpts checkpoint often and keep little history, so that checkpoints
// move the feed base many times during a test (R28, R47).
var feedOpts = store.Options{NoSync: true, CheckpointRecords: 7, FeedRetention: 20}

func TestR47_FeedProperty(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			env, _ := embeddedFeedEnv(t, feedOpts)
			runFeedProperty(t, seed+uint64(time.Now().UnixNano()%1000)*10, env, 400)
		})
	}
}

// TestR47_FeedFallsBehind: a consumer that does not read while more
// mutations happen than a feed buffers live still gets every one of them,
// from the journal, and the writers never wait for it.
func TestR47_FeedFallsBehind(t *testing.T) {
	s := open(t, t.TempDir(), store.Options{NoSync: true})
	ctx := t.Context()
	f, err := s.Changes(ctx, 0)
	must(t, err)
	defer f.Close()
	o, err := s.Owner(ctx, "o", core.OwnerOptions{KeepConfig: true})
	must(t, err)
	const n = 3000 // more than the live buffer
	for i := range n {
		must(t, o.Update(ctx, core.ConfigScope("a", "b"), core.Values{"k": i}))
	}
	for i := range n {
		it := nextItem(t, f)
		c := it.Changes
		if len(c) != 1 || c[0].New != int64(i) || c[0].Layer != core.Saved || (i > 0) != c[0].Existed {
			t.Fatalf("item %d: %+v", i, it)
		}
	}
}

// TestR47_FeedCompacted: a resume below the retained history fails with
// *core.CompactedError; the documented resync — Snapshot, then Changes
// from its Seq — yields the same final view.
func TestR47_FeedCompacted(t *testing.T) {
	env, ps := embeddedFeedEnv(t, store.Options{NoSync: true, CheckpointRecords: 1 << 20, FeedRetention: 20})
	testFeedCompacted(t, env, func() { must(t, (*ps).Checkpoint()) })
}

func testFeedCompacted(t *testing.T, env feedEnv, checkpointed func()) {
	ctx := t.Context()
	o, err := env.writer().Owner(ctx, "o", core.OwnerOptions{KeepConfig: true})
	must(t, err)
	for i := range 60 {
		must(t, o.Update(ctx, core.ConfigScope("a", fmt.Sprint(i%5)), core.Values{"k": i}))
	}
	checkpointed()
	_, err = env.feeds().Changes(ctx, 1)
	var ce *core.CompactedError
	if !errors.As(err, &ce) || !errors.Is(err, core.ErrCompacted) || ce.Oldest <= 1 {
		t.Fatalf("Changes(1) = %v, want a *core.CompactedError", err)
	}
	// Resync: a snapshot, then the feed from its Seq.
	snap, err := env.writer().Snapshot(ctx)
	must(t, err)
	view := layerViewOf(snap)
	f, err := env.feeds().Changes(ctx, snap.Seq())
	must(t, err)
	defer f.Close()
	for i := range 10 {
		must(t, o.Update(ctx, core.ConfigScope("a", "x"), core.Values{"k": i}))
	}
	must(t, o.Delete(ctx, core.ConfigScope("a", "1"), "k"))
	final, err := env.writer().Snapshot(ctx)
	must(t, err)
	for n := 0; n < 11; n++ {
		applyItem(view, nextItem(t, f))
	}
	if want := layerViewOf(final); !reflect.DeepEqual(view, want) {
		t.Fatalf("resynced view:\n%v\nwant\n%v", view, want)
	}
}

// socketFeedEnv: mutations on the daemon's store, feeds over a Client;
// a restart stops the daemon and starts another on the same directory.
func socketFeedEnv(t *testing.T, opts store.Options) (feedEnv, **daemon) {
	dir := t.TempDir()
	d := startDaemonOpts(t, dir, opts, store.ServerOptions{})
	c := dial(t, d)
	pd := &d
	env := feedEnv{
		writer: func() store.Registry { return (*pd).st },
		feeds:  func() store.Registry { return c },
		fleet:  func(ctx context.Context, sc map[core.Scope]core.Values) error { return (*pd).st.SetFleet(ctx, sc) },
		restart: func() {
			c.Close()
			(*pd).stop(t)
			*pd = startDaemonOpts(t, dir, opts, store.ServerOptions{})
			c = dial(t, *pd)
		},
	}
	return env, pd
}

func TestR47_FeedPropertySocket(t *testing.T) {
	for seed := range uint64(2) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			env, _ := socketFeedEnv(t, feedOpts)
			runFeedProperty(t, seed+uint64(time.Now().UnixNano()%1000)*10, env, 300)
		})
	}
}

func TestR47_FeedCompactedSocket(t *testing.T) {
	env, pd := socketFeedEnv(t, store.Options{NoSync: true, CheckpointRecords: 1 << 20, FeedRetention: 20})
	testFeedCompacted(t, env, func() { must(t, (*pd).st.Checkpoint()) })
}

// TestR47_FeedSocketSlowCostsOnlyItself: over the socket, a feed left
// unread costs only itself (R47's flow control, R32: the same as
// embedded). While it is not read and more changes happen than it
// buffers, the same Client keeps making calls (owner updates, Snapshot)
// and its other feed keeps delivering; then the slow feed, drained,
// delivers every change exactly once, in order — those made while it was
// full from the daemon's journal — and follows live again.
func TestR47_FeedSocketSlowCostsOnlyItself(t *testing.T) {
	d := startDaemon(t, t.TempDir(), store.ServerOptions{})
	c := dial(t, d)
	ctx := t.Context()
	slow, err := c.Changes(ctx, 0)
	must(t, err)
	defer slow.Close()
	fast, err := c.Changes(ctx, 0)
	must(t, err)
	defer fast.Close()
	o, err := c.Owner(ctx, "o", core.OwnerOptions{KeepConfig: true})
	must(t, err)
	const n = 3000 // well beyond the 1,024 items a feed buffers
	for i := range n {
		// A stalled connection fails the test here instead of hanging it.
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		must(t, o.Update(cctx, core.ConfigScope("a", "b"), core.Values{"k": i}))
		if i%100 == 0 {
			if _, err := c.Snapshot(cctx); err != nil {
				t.Fatalf("Snapshot at %d: %v", i, err)
			}
		}
		cancel()
		if it := nextItem(t, fast); it.Changes[0].New != int64(i) {
			t.Fatalf("other feed, item %d: %+v", i, it)
		}
	}
	var seq uint64
	check := func(i int) {
		t.Helper()
		it := nextItem(t, slow)
		if it.Seq <= seq {
			t.Fatalf("slow feed item %d: Seq %d after %d", i, it.Seq, seq)
		}
		seq = it.Seq
		if c := it.Changes; len(c) != 1 || c[0].New != int64(i) || c[0].Layer != core.Saved || (i > 0) != c[0].Existed {
			t.Fatalf("slow feed item %d: %+v", i, it)
		}
	}
	for i := range n {
		check(i)
	}
	// Live again, with nothing left over: the next item is the next change.
	must(t, o.Update(ctx, core.ConfigScope("a", "b"), core.Values{"k": n}))
	check(n)
	if err := slow.Err(); err != nil {
		t.Fatalf("slow feed Err %v while open", err)
	}
}

// TestR47_FeedSocketSlowCompacted: a feed over the socket that falls
// behind the daemon's retained history while it is not read ends with a
// *core.CompactedError (R47), as an embedded feed does, after the items
// it holds, which come in order.
func TestR47_FeedSocketSlowCompacted(t *testing.T) {
	d := startDaemonOpts(t, t.TempDir(), store.Options{NoSync: true, CheckpointRecords: 1 << 20, FeedRetention: 20}, store.ServerOptions{})
	c := dial(t, d)
	ctx := t.Context()
	f, err := c.Changes(ctx, 0)
	must(t, err)
	defer f.Close()
	o, err := c.Owner(ctx, "o", core.OwnerOptions{KeepConfig: true})
	must(t, err)
	const n = 3000
	for i := range n {
		must(t, o.Update(ctx, core.ConfigScope("a", "b"), core.Values{"k": i}))
	}
	must(t, d.st.Checkpoint()) // the history the feed needs is gone
	var seq uint64
	got := 0
	for it := range f.C() {
		if it.Seq <= seq || it.Changes[0].New != int64(got) {
			t.Fatalf("item %d: %+v after Seq %d", got, it, seq)
		}
		seq = it.Seq
		got++
	}
	var ce *core.CompactedError
	if !errors.As(f.Err(), &ce) || !errors.Is(f.Err(), core.ErrCompacted) || ce.Oldest <= seq {
		t.Fatalf("after %d items (last Seq %d): Err %v, want a *core.CompactedError", got, seq, f.Err())
	}
	if got >= n {
		t.Fatalf("got all %d items: the feed never fell behind", got)
	}
	// The Client is fine: resync from a snapshot as documented.
	snap, err := c.Snapshot(ctx)
	must(t, err)
	f2, err := c.Changes(ctx, snap.Seq())
	must(t, err)
	defer f2.Close()
	must(t, o.Update(ctx, core.ConfigScope("a", "b"), core.Values{"k": n}))
	if it := nextItem(t, f2); it.Changes[0].New != int64(n) {
		t.Fatalf("after the resync: %+v", it)
	}
}
