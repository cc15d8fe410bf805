package store_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/powerfail"
	"github.com/sysreg/sysreg/internal/testexec"
	"github.com/sysreg/sysreg/store"
)

// The power-loss test (R24, R27, R28, R7, R13): like the crash test, but the
// child writes through internal/powerfail, a FUSE filesystem that forgets
// every write not followed by an fsync, and every directory entry not
// followed by an fsync of its directory, when the parent cuts the power
// after SIGKILLing the child. A process kill alone leaves the kernel's page
// cache intact, so only this tests the power-loss half of R24: a missing
// fdatasync, a directory never fsynced after a file was created, a
// checkpoint step that relies on write order without a sync.
//
// Each round: mount over the data directory's disk, start a child that
// opens the store in the mount (a checkpoint every few records, so cuts
// land inside checkpoints) and writes from 64 goroutines, SIGKILL it after
// a random delay, unmount, cut (rounds rotate between losing every unsynced
// write, keeping a random subset, and tearing the last one), then
// store.Open the disk directly, as the next boot would, and check: Open
// succeeds, every acknowledged operation is there (each writer's keys are
// the replay of its acknowledged operations, or of one more), nothing a
// subscriber saw is gone, no transaction is half there, sequence numbers
// never go back.
//
// Writers (owner "p<g>", KeepConfig unless it is an ephemeral writer):
//
//	g%4 == 0, 1   single-key updates and deletes over 3 keys; every 7th
//	              operation closes the owner and attaches it again (KeepConfig:
//	              its config stays)
//	g%4 == 2      transactions of 6 keys over two scopes (R15), every 4th a delete
//	g%4 == 3      an ephemeral owner "e<g>" without KeepConfig: odd operations
//	              attach it (if needed) and write a key, even ones close it,
//	              which deletes its config (R13)
//
// Every writer acts for uid 2000+g (Store.OwnerFor), so its names are bound
// to it (R35): after recovery each name that holds a key is bound to its
// writer's uid, and a name that holds none is unbound — bindings survive a
// power cut exactly as the config they protect.
//
// Confirmed and unconfirmed applies (R44) have their own power-loss test,
// TestR44_ApplyPowerLoss: the apply crash test's rounds with the data
// directory on the lazy filesystem and a power cut after each boot.

const (
	powerEnv       = "SYSREG_POWER_CHILD"
	powerDirEnv    = "SYSREG_POWER_DIR"
	powerRoundEnv  = "SYSREG_POWER_ROUND"
	powerNoSyncEnv = "SYSREG_POWER_NOSYNC"
	powerWriters   = 64
	powerCkpt      = 40 // records per checkpoint in the child
)

var (
	powerScopes = []core.Scope{core.ConfigScope("power", "s0"), core.ConfigScope("power", "s1")}
	powerTxn    = []core.Scope{core.ConfigScope("powertxn", "x"), core.ConfigScope("powertxn", "y")}
	powerEph    = core.ConfigScope("powereph", "e")
)

type powerKind uint8

const (
	powerPut powerKind = iota + 1
	powerDel
	powerRestart // close the KeepConfig owner and attach it again
	powerTxnPut
	powerTxnDel
	powerEphPut // attach the ephemeral owner if needed, write its key
	powerEphDie // close the ephemeral owner: its config goes
)

// powerOp is writer g's operation n, as the child performs it and the
// parent replays it.
type powerOp struct {
	kind powerKind
	keys []crashKey
}

func powerOpFor(g, n int) powerOp {
	switch g % 4 {
	case 2:
		var keys []crashKey
		for _, sc := range powerTxn {
			for _, k := range []string{"a", "b", "c"} {
				keys = append(keys, crashKey{sc, fmt.Sprintf("w%02d-%s", g, k)})
			}
		}
		if n%4 == 0 {
			return powerOp{powerTxnDel, keys}
		}
		return powerOp{powerTxnPut, keys}
	case 3:
		k := []crashKey{{powerEph, fmt.Sprintf("w%02d-e%d", g, n%3)}}
		if n%2 == 0 {
			return powerOp{powerEphDie, nil}
		}
		return powerOp{powerEphPut, k}
	}
	if n%7 == 0 {
		return powerOp{powerRestart, nil}
	}
	k := []crashKey{{powerScopes[n%2], fmt.Sprintf("w%02d-k%d", g, n%3)}}
	if n%5 == 0 {
		return powerOp{powerDel, k}
	}
	return powerOp{powerPut, k}
}

// apply replays the operation on m (crashKey.String() → value).
func (op powerOp) apply(m map[string]int64, v int64) {
	switch op.kind {
	case powerPut, powerTxnPut, powerEphPut:
		for _, k := range op.keys {
			m[k.String()] = v
		}
	case powerDel, powerTxnDel:
		for _, k := range op.keys {
			delete(m, k.String())
		}
	case powerEphDie:
		for k := range m {
			if strings.HasPrefix(k, powerEph.String()+"#") {
				delete(m, k)
			}
		}
	}
}

// powerWriter is one writer goroutine of the child.
type powerWriter struct {
	g        int
	reg      *store.Store
	own, eph store.Owner
}

// powerUID is the uid writer g acts for (R35).
func powerUID(g int) uint32 { return uint32(2000 + g) }

func (w *powerWriter) do(ctx context.Context, op powerOp, v int64) error {
	var err error
	switch op.kind {
	case powerPut:
		return w.own.Update(ctx, op.keys[0].scope, core.Values{op.keys[0].key: v})
	case powerDel:
		return w.own.Delete(ctx, op.keys[0].scope, op.keys[0].key)
	case powerRestart:
		if err := w.own.Close(); err != nil {
			return err
		}
		w.own, err = w.reg.OwnerFor(ctx, fmt.Sprintf("p%02d", w.g), powerUID(w.g), core.OwnerOptions{KeepConfig: true})
		return err
	case powerTxnPut, powerTxnDel:
		var ops []core.Op
		for _, sc := range powerTxn {
			var keys []string
			vals := core.Values{}
			for _, k := range op.keys {
				if k.scope == sc {
					keys = append(keys, k.key)
					vals[k.key] = v
				}
			}
			if op.kind == powerTxnDel {
				ops = append(ops, core.Del(sc, keys...))
			} else {
				ops = append(ops, core.Put(sc, vals))
			}
		}
		return w.own.Commit(ctx, ops...)
	case powerEphPut:
		if w.eph == nil {
			if w.eph, err = w.reg.OwnerFor(ctx, fmt.Sprintf("e%02d", w.g), powerUID(w.g), core.OwnerOptions{}); err != nil {
				return err
			}
		}
		return w.eph.Update(ctx, op.keys[0].scope, core.Values{op.keys[0].key: v})
	case powerEphDie:
		if w.eph == nil {
			return nil
		}
		err, w.eph = w.eph.Close(), nil
		return err
	}
	return fmt.Errorf("unknown operation %d", op.kind)
}

// powerKeys returns every writer's config keys in snap, and the owner of
// each key (crashKey.String() → owner).
func powerKeys(snap core.Snapshot) ([powerWriters]map[string]int64, map[string]string, error) {
	var keys [powerWriters]map[string]int64
	for g := range keys {
		keys[g] = map[string]int64{}
	}
	owners := map[string]string{}
	err := snap.Walk(core.Config, func(scope core.Scope, key, owner string, value any) error {
		g, err := strconv.Atoi(strings.TrimPrefix(key[:min(len(key), 3)], "w"))
		v, ok := value.(int64)
		if err != nil || g < 0 || g >= powerWriters || !ok {
			return fmt.Errorf("unexpected key %s#%s = %v (owner %s)", scope, key, value, owner)
		}
		k := crashKey{scope, key}.String()
		keys[g][k] = v
		owners[k] = owner
		return nil
	})
	return keys, owners, err
}

// TestPowerChild is the child process of TestR24_PowerLoss. It does nothing
// unless SYSREG_POWER_CHILD=1; then it writes until it is killed (the
// protocol on stdout is the crash test's, with 64 writers).
func TestPowerChild(t *testing.T) {
	if os.Getenv(powerEnv) != "1" {
		return
	}
	round, _ := strconv.Atoi(os.Getenv(powerRoundEnv))
	os.Exit(powerChild(os.Getenv(powerDirEnv), round, os.Getenv(powerNoSyncEnv) == "1"))
}

func powerChild(dir string, round int, noSync bool) int {
	out := &lineWriter{w: os.Stdout}
	go func() { // the parent closes stdin or dies: stop
		_, _ = os.Stdin.Read(make([]byte, 1))
		os.Exit(4)
	}()
	time.AfterFunc(time.Minute, func() { // a safety net
		out.printf("E child ran for a minute without being killed")
		os.Exit(5)
	})
	s, err := store.Open(dir, store.Options{CheckpointRecords: powerCkpt, NoSync: noSync})
	if err != nil {
		out.printf("E open: %v", err)
		return 3
	}
	ctx := context.Background()
	snap, _ := s.Snapshot(ctx)
	out.printf("O %d", snap.Seq())
	sub, err := s.Subscribe(ctx, core.SubscribeOptions{})
	if err != nil {
		out.printf("E subscribe: %v", err)
		return 3
	}
	go func() {
		for snap := range sub.C() {
			keys, _, err := powerKeys(snap)
			if err != nil {
				out.printf("E subscriber: %v", err)
				continue
			}
			line := strconv.AppendUint([]byte("S "), snap.Seq(), 10)
			for g := range powerWriters {
				top := 0
				for _, v := range keys[g] {
					if int(v/crashRoundBase) == round {
						top = max(top, int(v%crashRoundBase))
					}
				}
				line = append(line, ' ')
				line = strconv.AppendInt(line, int64(top), 10)
			}
			if bad := powerHalfTxn(keys); bad != "" {
				out.printf("E subscriber saw a half-applied transaction at seq %d: %s", snap.Seq(), bad)
			}
			out.printf("%s", line)
		}
	}()
	for g := range powerWriters {
		own, err := s.OwnerFor(ctx, fmt.Sprintf("p%02d", g), powerUID(g), core.OwnerOptions{KeepConfig: true})
		if err != nil {
			out.printf("E owner %d: %v", g, err)
			return 3
		}
		w := &powerWriter{g: g, reg: s, own: own}
		go func() {
			for n := 1; ; n++ {
				if err := w.do(ctx, powerOpFor(g, n), crashValue(round, n)); err != nil {
					out.printf("E writer %d op %d: %v", g, n, err)
					return
				}
				out.printf("A %d %d", g, n)
			}
		}()
	}
	select {} // until killed
}

// powerHalfTxn describes a transaction writer whose keys disagree, or "".
func powerHalfTxn(keys [powerWriters]map[string]int64) string {
	for g := 2; g < powerWriters; g += 4 {
		vals := slices.Sorted(maps.Values(keys[g]))
		if len(vals) != 0 && (len(vals) != 6 || vals[0] != vals[5]) {
			return fmt.Sprintf("writer %d: %v", g, keys[g])
		}
	}
	return ""
}

// powerRound is what the parent read from one child.
type powerRound struct {
	openSeq uint64
	acked   [powerWriters]int
	seen    [powerWriters]int
	maxSeq  uint64
	errs    []string
}

func parsePowerOutput(lines []string) (r powerRound, err error) {
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if f[0] == "E" {
			r.errs = append(r.errs, line)
			continue
		}
		nums := make([]uint64, 0, len(f)-1)
		for _, x := range f[1:] {
			u, err := strconv.ParseUint(x, 10, 64)
			if err != nil {
				return r, fmt.Errorf("bad line %q", line)
			}
			nums = append(nums, u)
		}
		switch {
		case f[0] == "O" && len(nums) == 1:
			r.openSeq = nums[0]
		case f[0] == "A" && len(nums) == 2 && nums[0] < powerWriters:
			g, n := nums[0], int(nums[1])
			if n != r.acked[g]+1 {
				return r, fmt.Errorf("writer %d acked %d after %d", g, n, r.acked[g])
			}
			r.acked[g] = n
		case f[0] == "S" && len(nums) == 1+powerWriters:
			r.maxSeq = max(r.maxSeq, nums[0])
			for g := range powerWriters {
				r.seen[g] = max(r.seen[g], int(nums[1+g]))
			}
		}
	}
	return r, nil
}

// powerHarness runs rounds on one disk and keeps what the last recovery
// held.
type powerHarness struct {
	t              *testing.T
	disk, mnt      string
	rng            *rand.Rand
	prev           [powerWriters]map[string]int64
	lastSeq        uint64
	acked, checked int // acknowledged operations: in total, and checked after a cut
	cuts           int
}

func newPowerHarness(t *testing.T) *powerHarness {
	if _, err := testexec.Reexec(); err != nil {
		t.Skipf("cannot re-execute the test binary: %v", err)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	root := t.TempDir()
	h := &powerHarness{t: t, disk: filepath.Join(root, "disk"), mnt: filepath.Join(root, "mnt"),
		rng: rand.New(rand.NewPCG(seed, 0))}
	for _, d := range []string{h.disk, h.mnt} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for g := range h.prev {
		h.prev[g] = map[string]int64{}
	}
	return h
}

// powerKilledTag is added to the round number in the values of a first
// child killed at a sync, so that its values differ from the second's.
const powerKilledTag = 1_000_000

// powerChildRun is one child of a boot: the round tag of its values and
// what it printed.
type powerChildRun struct {
	tag int
	r   powerRound
}

// round runs one boot: a fresh mount, one child (or, with killAt, a first
// child killed at a sync killAt picks, then a second one), the power cut,
// and the check of the recovered store. A check that fails is returned
// (the negative control expects one); anything else wrong fails the test.
func (h *powerHarness) round(round int, opts powerfail.Options, noSync bool, killAt func(powerfail.Sync) bool) (string, error) {
	t := h.t
	t.Helper()
	delay := 10*time.Millisecond + time.Duration(h.rng.Int64N(int64(150*time.Millisecond)))
	env := func(tag int) []string {
		env := []string{powerEnv + "=1", powerDirEnv + "=" + filepath.Join(h.mnt, "data"), powerRoundEnv + "=" + strconv.Itoa(tag)}
		if noSync {
			env = append(env, powerNoSyncEnv+"=1")
		}
		return env
	}
	var killed chan struct{}
	if killAt != nil {
		killed = make(chan struct{})
		var once sync.Once
		opts.KillAt = func(s powerfail.Sync) bool {
			if !killAt(s) {
				return false
			}
			once.Do(func() { close(killed) })
			return true
		}
	}
	fs := powerfail.MountForTest(t, h.disk, h.mnt, opts)
	var runs []powerChildRun
	if killed != nil {
		tag := round + powerKilledTag
		runs = append(runs, powerChildRun{tag: tag, r: h.parse(round, runChild(t, "TestPowerChild", env(tag), round, 0, killed))})
	}
	runs = append(runs, powerChildRun{tag: round, r: h.parse(round, runChild(t, "TestPowerChild", env(round), round, delay, nil))})
	rep, err := fs.Cut()
	if err != nil {
		t.Fatalf("round %d: cut: %v", round, err)
	}
	if len(rep.Inconsistent) > 0 {
		t.Fatalf("round %d: cut: %v", round, rep.Inconsistent)
	}
	h.cuts++
	acked := 0
	for _, run := range runs {
		for g := range powerWriters {
			acked += run.r.acked[g]
		}
	}
	h.acked += acked
	summary := fmt.Sprintf("round %d (reorder=%v torn=%v killed-at-sync=%v): killed after %v, %d acknowledged; cut: %d files rolled back, %d changes lost, %d kept (%d torn), %d entries undone",
		round, opts.Reorder, opts.Torn, killAt != nil, delay.Round(time.Millisecond), acked, rep.Files, rep.Lost, rep.Kept, rep.Torn, rep.Entries)
	seq := h.lastSeq
	for i, run := range runs {
		if run.r.openSeq != 0 && run.r.openSeq < seq {
			return summary, fmt.Errorf("R7: child %d opened at seq %d, below %d seen before", i+1, run.r.openSeq, seq)
		}
		seq = max(seq, run.r.openSeq, run.r.maxSeq)
	}
	if err := h.check(runs, seq); err != nil {
		return summary, err
	}
	h.checked += acked
	return summary, nil
}

func (h *powerHarness) parse(round int, lines []string) powerRound {
	r, err := parsePowerOutput(lines)
	if err != nil {
		h.t.Fatalf("round %d: child output: %v", round, err)
	}
	if len(r.errs) > 0 {
		h.t.Fatalf("round %d: child reported: %s", round, strings.Join(r.errs, "; "))
	}
	return r
}

// check reopens the disk as the next boot would and compares it with what
// the children acknowledged and showed; seq is the highest sequence number
// any of them saw.
func (h *powerHarness) check(runs []powerChildRun, seq uint64) error {
	s, err := store.Open(filepath.Join(h.disk, "data"), store.Options{})
	if err != nil {
		return fmt.Errorf("R27: reopen after the power cut: %w", err)
	}
	snap, _ := s.Snapshot(h.t.Context())
	if err := s.Close(); err != nil {
		h.t.Fatalf("close: %v", err)
	}
	if snap.Seq() < seq {
		return fmt.Errorf("R7: recovered seq %d, but a child saw seq %d", snap.Seq(), seq)
	}
	keys, owners, err := powerKeys(snap)
	if err != nil {
		return err
	}
	if bad := powerHalfTxn(keys); bad != "" {
		return fmt.Errorf("R15: half-applied transaction after recovery: %s", bad)
	}
	for g := range powerWriters {
		ms, ok := matchPowerPrefix(h.prev[g], keys[g], g, runs)
		if !ok {
			var acked []int
			for _, run := range runs {
				acked = append(acked, run.r.acked[g])
			}
			return fmt.Errorf("R24: writer %d: recovered %v is not the replay of its acknowledged operations %v (or of one more each) (before the round: %v)",
				g, keys[g], acked, h.prev[g])
		}
		for i, run := range runs {
			if ms[i] < run.r.seen[g] {
				return fmt.Errorf("R24: writer %d: child %d's subscriber saw operation %d, recovery holds only %d", g, i+1, run.r.seen[g], ms[i])
			}
		}
		for k := range keys[g] {
			want := fmt.Sprintf("p%02d", g)
			if strings.HasPrefix(k, powerEph.String()+"#") {
				want = fmt.Sprintf("e%02d", g)
			}
			if owners[k] != want {
				return fmt.Errorf("R27: %s owned by %q, want %q", k, owners[k], want)
			}
		}
		// R35: bound to the writer's uid exactly while holding a key.
		for _, name := range []string{fmt.Sprintf("p%02d", g), fmt.Sprintf("e%02d", g)} {
			uid, bound := snap.Binding(name)
			if holds := snap.Holds(name, 0); bound != holds || bound && uid != powerUID(g) {
				return fmt.Errorf("R35: %s holds keys %v, bound %v to uid %d (want %d)", name, holds, bound, uid, powerUID(g))
			}
		}
	}
	h.prev = keys
	h.lastSeq = snap.Seq()
	return nil
}

// matchPowerPrefix replays writer g's operations of each child in turn
// onto before — each child's acknowledged operations, or one more (the one
// in flight when it was killed) — and returns how many of each child's
// operations give got (the most that do), if any.
func matchPowerPrefix(before, got map[string]int64, g int, runs []powerChildRun) ([]int, bool) {
	if len(runs) == 0 {
		return nil, maps.Equal(before, got)
	}
	run := runs[0]
	m := maps.Clone(before)
	for n := 1; n <= run.r.acked[g]; n++ {
		powerOpFor(g, n).apply(m, crashValue(run.tag, n))
	}
	one := maps.Clone(m)
	powerOpFor(g, run.r.acked[g]+1).apply(one, crashValue(run.tag, run.r.acked[g]+1))
	if rest, ok := matchPowerPrefix(one, got, g, runs[1:]); ok {
		return append([]int{run.r.acked[g] + 1}, rest...), true
	}
	if rest, ok := matchPowerPrefix(m, got, g, runs[1:]); ok {
		return append([]int{run.r.acked[g]}, rest...), true
	}
	return nil, false
}

// powerOptions rotates the cut's options over the rounds: lose every
// unsynced write, keep a random subset, tear the last one, both.
func (h *powerHarness) powerOptions(round int) powerfail.Options {
	o := powerfail.Options{Seed: h.rng.Uint64()}
	switch round % 4 {
	case 1:
		o.Reorder = true
	case 2:
		o.Torn = true
	case 3:
		o.Reorder, o.Torn = true, true
	}
	return o
}

// killAt: every third round, a first child is killed inside one of the
// first 300 fsyncs of the boot (file or directory: inside a commit, a
// checkpoint, an Open) before the second one runs.
func (h *powerHarness) killAt(round int) func(powerfail.Sync) bool {
	if round%3 != 0 {
		return nil
	}
	return nthSync(1+h.rng.IntN(300), false)
}

// nthSync picks the n-th fsync (only of directories if dirs).
func nthSync(n int, dirs bool) func(powerfail.Sync) bool {
	var seen atomic.Int32
	return func(s powerfail.Sync) bool {
		if dirs && !s.Dir {
			return false
		}
		return seen.Add(1) == int32(n)
	}
}

// TestR24_PowerLoss: see the comment at the top of this file. 30 rounds
// (what CI runs), 10 under -short, SYSREG_POWER_ROUNDS for a longer soak;
// it stops early, passing, once a minute has gone by (a slow machine), so
// that CI stays bounded.
func TestR24_PowerLoss(t *testing.T) {
	if os.Getenv(powerEnv) == "1" {
		return
	}
	rounds, budget := 30, time.Minute
	if testing.Short() {
		rounds = 10
	}
	if n, err := strconv.Atoi(os.Getenv("SYSREG_POWER_ROUNDS")); err == nil && n > 0 {
		rounds, budget = n, 0
	}
	h := newPowerHarness(t)
	start := time.Now()
	for round := 1; round <= rounds; round++ {
		summary, err := h.round(round, h.powerOptions(round), false, h.killAt(round))
		if err != nil {
			t.Fatalf("%s\n%v", summary, err)
		}
		if testing.Verbose() {
			t.Log(summary)
		}
		if budget > 0 && time.Since(start) > budget && round < rounds {
			t.Logf("time budget of %v spent after %d of %d rounds", budget, round, rounds)
			break
		}
	}
	t.Logf("%d power cuts under load, %d acknowledged writes checked, 0 lost, in %v",
		h.cuts, h.checked, time.Since(start).Round(time.Millisecond))
}

// TestR24_PowerLossNoSyncIsCaught is the negative control: with NoSync
// the child's acknowledged writes are not durable, and the same harness
// must say so within a few rounds — proof that the power-loss test can
// fail.
func TestR24_PowerLossNoSyncIsCaught(t *testing.T) {
	if os.Getenv(powerEnv) == "1" {
		return
	}
	h := newPowerHarness(t)
	for round := 1; round <= 5; round++ {
		summary, err := h.round(round, powerfail.Options{}, true, nil)
		if err != nil {
			t.Logf("caught, as it must be: %s\n%v", summary, err)
			return
		}
		t.Logf("not caught yet: %s", summary)
	}
	t.Fatal("5 power cuts of a NoSync store and the harness saw no loss: it cannot fail")
}

// TestR24_PowerLossAfterKillInDirSync: a first process is killed inside
// the fsync of a directory it has just added an entry to (the data
// directory in its parent, the journal file in the data directory); a
// second one, in the same boot, finds the entry there (the page cache still
// has it), opens the store and acknowledges writes; then the power goes.
// The second Open must make the entry durable itself, or every write it
// acknowledged is lost with the entry.
func TestR24_PowerLossAfterKillInDirSync(t *testing.T) {
	if os.Getenv(powerEnv) == "1" {
		return
	}
	for _, tc := range []struct {
		name   string
		killAt int
	}{
		{"data-dir", 1},     // store.Open: the mkdir of the data directory
		{"journal-file", 2}, // journal.Open: the creation of journal.db
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newPowerHarness(t)
			summary, err := h.round(1, powerfail.Options{}, false, nthSync(tc.killAt, true))
			if err != nil {
				t.Fatalf("%s\n%v", summary, err)
			}
			t.Log(summary)
		})
	}
}

// TestR44_ApplyPowerLoss runs the apply crash test's rounds (see
// apply_crash_test.go) on the lazy filesystem: the working child is killed
// after a random delay or, every other round, inside a random fsync; after
// the children of a boot are dead, the power is cut, and the store opened on the disk must
// hold the last confirmed value — never an unconfirmed apply, never an
// undone confirmed one — with sequence numbers that never go back (R24,
// R44, R7).
func TestR44_ApplyPowerLoss(t *testing.T) {
	if os.Getenv(applyCrashEnv) == "1" {
		return
	}
	rounds := 20
	if testing.Short() {
		rounds = 6
	}
	h := newPowerHarness(t)
	lost := 0
	applyRounds(t, rounds, filepath.Join(h.disk, "data"), func(round int) (string, <-chan struct{}, func()) {
		opts := h.powerOptions(round)
		var killed chan struct{}
		if round%2 == 1 {
			// Killed inside a random fsync of its first few dozen: the
			// apply, confirm or undo being synced is lost at the cut.
			killed = make(chan struct{})
			var once sync.Once
			at := nthSync(1+h.rng.IntN(40), false)
			opts.KillAt = func(s powerfail.Sync) bool {
				if !at(s) {
					return false
				}
				once.Do(func() { close(killed) })
				return true
			}
		}
		fs := powerfail.MountForTest(t, h.disk, h.mnt, opts)
		return filepath.Join(h.mnt, "data"), killed, func() {
			rep, err := fs.Cut()
			if err != nil {
				t.Fatalf("round %d: cut: %v", round, err)
			}
			if len(rep.Inconsistent) > 0 {
				t.Fatalf("round %d: cut: %v", round, rep.Inconsistent)
			}
			h.cuts++
			lost += rep.Lost
		}
	})
	t.Logf("%d power cuts around applies, confirms, rollbacks and undos; %d unsynced changes lost at the cuts", h.cuts, lost)
}
