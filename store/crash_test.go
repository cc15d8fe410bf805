package store_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/testexec"
	"github.com/sysreg/sysreg/store"
)

// The crash test (R24, R27, R7): a child process — this test binary,
// re-executed to run TestCrashChild — writes config from several goroutines
// with real fsync and prints every acknowledgement; the parent SIGKILLs it
// at a random moment, reopens the data directory and checks that nothing
// acknowledged or seen is lost and that no transaction is half applied.
// Many rounds run on the same directory, so each recovery starts from what
// the previous crash left (checkpoints included: the child checkpoints
// every few hundred records).
//
// The child's workload is deterministic given (round, writer, counter), so
// the parent can replay it: writer g does operations n = 1, 2, … one after
// the other, and prints "A g n" only after operation n returned nil. A crash
// therefore leaves, for each writer, the effect of operations 1..m for some
// m in [last printed, last printed + 1] (operation n+1 may have returned
// without its line being printed; n+2 cannot have started). The parent
// checks that the recovered keys of each writer equal the replay of one of
// those two prefixes: every acknowledged write is there, nothing is half
// there, nothing unasked for is there.
//
// A subscriber in the child prints, per delivery, the sequence number and
// for each writer the highest counter of the current round visible in the
// snapshot: everything a subscriber saw must survive the crash (R24), so
// the recovered prefix m must reach it, and the recovered sequence number
// must not be below any sequence number seen (R7).
//
// Protocol on the child's stdout, one line per event, each written with one
// write(2) after the event:
//
//	O seq              opened; the first sequence number (R7)
//	A g n              writer g's operation n returned nil
//	S seq c0 c1 … c7   a subscriber delivery: seq and each writer's highest visible counter
//	E text             something went wrong in the child (fails the test)
//
// Writers 0 and 1 make their config updates through Store.UpdateBatch,
// each in one batch with a state update (the batched write path).

const (
	crashEnv       = "SYSREG_CRASH_CHILD"
	crashDirEnv    = "SYSREG_CRASH_DIR"
	crashRoundEnv  = "SYSREG_CRASH_ROUND"
	crashWriters   = 8 // writers 0..5 update and delete single keys, 6..7 commit transactions
	crashKeyWriter = 6 // writers below this one are single-key writers
	crashKeys      = 6 // keys per single-key writer, over three scopes
	crashRoundBase = 1_000_000_000
)

var (
	crashScopes = []core.Scope{
		core.ConfigScope("crash", "s0"), core.ConfigScope("crash", "s1"), core.ConfigScope("crash", "s2"),
	}
	txnX = core.ConfigScope("txn", "x")
	txnY = core.ConfigScope("txn", "y")
)

// crashUID is the uid writer g acts for: its name is bound to it (R35).
func crashUID(g int) uint32 { return uint32(1000 + g) }

// crashValue encodes (round, counter); it grows with both.
func crashValue(round, n int) int64 { return int64(round)*crashRoundBase + int64(n) }

// crashOp is writer g's operation n: what it writes, as both the child
// (which performs it) and the parent (which replays it) see it.
type crashOp struct {
	del  bool
	puts []crashKey // keys set to the value (one for single-key writers, six for transactions)
}

type crashKey struct {
	scope core.Scope
	key   string
}

func (k crashKey) String() string { return k.scope.String() + "#" + k.key }

func crashOpFor(g, n int) crashOp {
	if g < crashKeyWriter {
		k := n % crashKeys
		return crashOp{
			del:  n%5 == 0,
			puts: []crashKey{{crashScopes[k%len(crashScopes)], fmt.Sprintf("g%d-k%d", g, k)}},
		}
	}
	var keys []crashKey
	for _, sc := range []core.Scope{txnX, txnY} {
		for _, k := range []string{"a", "b", "c"} {
			keys = append(keys, crashKey{sc, fmt.Sprintf("g%d-%s", g, k)})
		}
	}
	return crashOp{del: n%4 == 0, puts: keys}
}

// apply replays the operation on m (crashKey.String() → value).
func (op crashOp) apply(m map[string]int64, v int64) {
	for _, k := range op.puts {
		if op.del {
			delete(m, k.String())
		} else {
			m[k.String()] = v
		}
	}
}

// do performs the operation through o: single keys by Update and Delete,
// transactions by one Commit over two scopes (R15).
func (op crashOp) do(ctx context.Context, o store.Owner, g int, v int64) error {
	if g < crashKeyWriter {
		k := op.puts[0]
		if op.del {
			return o.Delete(ctx, k.scope, k.key)
		}
		return o.Update(ctx, k.scope, core.Values{k.key: v})
	}
	byScope := map[core.Scope][]string{}
	for _, k := range op.puts {
		byScope[k.scope] = append(byScope[k.scope], k.key)
	}
	var ops []core.Op
	for _, sc := range []core.Scope{txnX, txnY} {
		if op.del {
			ops = append(ops, core.Del(sc, byScope[sc]...))
			continue
		}
		vals := core.Values{}
		for _, k := range byScope[sc] {
			vals[k] = v
		}
		ops = append(ops, core.Put(sc, vals))
	}
	return o.Commit(ctx, ops...)
}

// crashKeysOf returns the values of writer g's keys in snap.
func crashKeysOf(snap core.Snapshot, g int) map[string]int64 {
	m := map[string]int64{}
	seen := map[crashKey]bool{}
	for n := 1; n <= 2*crashKeys; n++ { // covers every key of the writer
		for _, k := range crashOpFor(g, n).puts {
			if seen[k] {
				continue
			}
			seen[k] = true
			if v, ok := snap.Get(k.scope, k.key); ok {
				i, _ := v.(int64)
				m[k.String()] = i
			}
		}
	}
	return m
}

// TestCrashChild is the child process of TestR24_CrashRecovery. It does
// nothing unless SYSREG_CRASH_CHILD=1; then it writes until it is killed,
// or until its stdin closes (the parent is gone), or for a minute at most.
func TestCrashChild(t *testing.T) {
	if os.Getenv(crashEnv) != "1" {
		return
	}
	round, _ := strconv.Atoi(os.Getenv(crashRoundEnv))
	os.Exit(crashChild(os.Getenv(crashDirEnv), round))
}

// lineWriter writes each line with one write(2), so a line the parent reads
// is complete and was written after the event it reports.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) printf(format string, args ...any) {
	line := fmt.Appendf(nil, format+"\n", args...)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w.Write(line)
}

// childOutput starts a crash child: it returns the child's line writer
// on stdout, and makes the child exit once its parent closes stdin (or
// dies), or after a minute without being killed (a safety net).
func childOutput() *lineWriter {
	out := &lineWriter{w: os.Stdout}
	go func() { // the parent closes stdin or dies: stop
		io.Copy(io.Discard, os.Stdin)
		os.Exit(4)
	}()
	time.AfterFunc(time.Minute, func() {
		out.printf("E child ran for a minute without being killed")
		os.Exit(5)
	})
	return out
}

func crashChild(dir string, round int) int {
	out := childOutput()
	s, err := store.Open(dir, store.Options{CheckpointRecords: 200})
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
			line := strconv.AppendUint([]byte("S "), snap.Seq(), 10)
			for g := range crashWriters {
				top := 0
				for _, v := range crashKeysOf(snap, g) {
					if int(v/crashRoundBase) == round {
						top = max(top, int(v%crashRoundBase))
					}
				}
				line = append(line, ' ')
				line = strconv.AppendInt(line, int64(top), 10)
			}
			if bad := halfTxn(snap); bad != "" {
				out.printf("E subscriber saw a half-applied transaction at seq %d: %s", snap.Seq(), bad)
			}
			out.printf("%s", line)
		}
	}()

	for g := range crashWriters {
		o, err := s.OwnerFor(ctx, fmt.Sprintf("w%d", g), crashUID(g), core.OwnerOptions{})
		if err != nil {
			out.printf("E owner %d: %v", g, err)
			return 3
		}
		go func() {
			state := core.StateScope("crash", fmt.Sprintf("g%d", g))
			for n := 1; ; n++ {
				op := crashOpFor(g, n)
				if g < 2 && !op.del {
					// The batched write path (issue #14): the config
					// update and a state update in one batch.
					k := op.puts[0]
					errs := s.UpdateBatch(ctx, []store.BatchUpdate{
						{Owner: o, Scope: k.scope, Values: core.Values{k.key: crashValue(round, n)}},
						{Owner: o, Scope: state, Values: core.Values{"b": n}},
					})
					if err := errors.Join(errs...); err != nil {
						out.printf("E writer %d batch %d: %v", g, n, err)
						return
					}
					out.printf("A %d %d", g, n)
					continue
				}
				if err := op.do(ctx, o, g, crashValue(round, n)); err != nil {
					out.printf("E writer %d op %d: %v", g, n, err)
					return
				}
				out.printf("A %d %d", g, n)
				// State mutations take sequence numbers too (R7).
				if g < crashKeyWriter {
					if err := o.Update(ctx, state, core.Values{"n": n}); err != nil {
						out.printf("E writer %d state %d: %v", g, n, err)
						return
					}
				}
			}
		}()
	}
	select {} // until killed
}

// halfTxn describes a transaction whose keys disagree in snap, or "".
func halfTxn(snap core.Snapshot) string {
	for g := crashKeyWriter; g < crashWriters; g++ {
		m := crashKeysOf(snap, g)
		vals := slices.Sorted(maps.Values(m))
		if len(vals) != 0 && (len(vals) != 6 || vals[0] != vals[5]) {
			return fmt.Sprintf("writer %d: %v", g, m)
		}
	}
	return ""
}

// crashRound is what the parent read from one child.
type crashRound struct {
	openSeq uint64            // O
	acked   [crashWriters]int // last A per writer
	seen    [crashWriters]int // highest counter any S showed per writer
	maxSeq  uint64            // highest seq of any S
	errs    []string          // E lines
	lines   int               // lines read
}

func parseCrashOutput(lines []string) (r crashRound, err error) {
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		nums := make([]uint64, 0, len(f)-1)
		if f[0] != "E" {
			for _, x := range f[1:] {
				u, err := strconv.ParseUint(x, 10, 64)
				if err != nil {
					return r, fmt.Errorf("bad line %q", line)
				}
				nums = append(nums, u)
			}
		}
		switch {
		case f[0] == "E":
			r.errs = append(r.errs, line)
		case f[0] == "O" && len(nums) == 1:
			r.openSeq = nums[0]
		case f[0] == "A" && len(nums) == 2 && nums[0] < crashWriters:
			g, n := nums[0], int(nums[1])
			if n != r.acked[g]+1 {
				return r, fmt.Errorf("writer %d acked %d after %d", g, n, r.acked[g])
			}
			r.acked[g] = n
		case f[0] == "S" && len(nums) == 1+crashWriters:
			r.maxSeq = max(r.maxSeq, nums[0])
			for g := range crashWriters {
				r.seen[g] = max(r.seen[g], int(nums[1+g]))
			}
		default:
			continue // the testing package's own output, if any
		}
		r.lines++
	}
	return r, nil
}

// TestR24_CrashRecovery: see the comment at the top of this file. 20 rounds
// always (also under -short), 40 without -short.
func TestR24_CrashRecovery(t *testing.T) {
	if os.Getenv(crashEnv) == "1" {
		return
	}
	if _, err := testexec.Reexec(); err != nil {
		t.Skipf("cannot re-execute the test binary: %v", err)
	}
	rounds := 20
	if !testing.Short() {
		rounds = 40
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()

	prev := make([]map[string]int64, crashWriters) // each writer's keys after the last recovery
	for g := range prev {
		prev[g] = map[string]int64{}
	}
	var lastSeq uint64 // seq of the last recovery
	var totalAcks int
	start := time.Now()
	for round := 1; round <= rounds; round++ {
		delay := 20*time.Millisecond + time.Duration(rng.Int64N(int64(280*time.Millisecond)))
		lines := runChild(t, "TestCrashChild", []string{crashEnv + "=1", crashDirEnv + "=" + dir, crashRoundEnv + "=" + strconv.Itoa(round)}, round, delay, nil)
		r, err := parseCrashOutput(lines)
		if err != nil {
			t.Fatalf("round %d: child output: %v", round, err)
		}
		if len(r.errs) > 0 {
			t.Fatalf("round %d: child reported: %s", round, strings.Join(r.errs, "; "))
		}
		if r.openSeq < lastSeq {
			t.Fatalf("round %d: R7: child opened at seq %d, below %d of the previous recovery", round, r.openSeq, lastSeq)
		}
		for g := range crashWriters {
			totalAcks += r.acked[g]
		}

		s, err := store.Open(dir, store.Options{})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		if p := s.PreviousRun(); p != store.PreviousRunUnclean {
			t.Fatalf("round %d: R51: the run killed by SIGKILL ended %q, want %q", round, p, store.PreviousRunUnclean)
		}
		snap, _ := s.Snapshot(t.Context())
		rep := s.Recovery()
		if err := s.Close(); err != nil {
			t.Fatalf("round %d: close: %v", round, err)
		}
		if snap.Seq() < r.maxSeq || snap.Seq() < r.openSeq {
			t.Fatalf("round %d: R7: recovered seq %d, but the child saw seq %d (opened at %d)", round, snap.Seq(), r.maxSeq, r.openSeq)
		}
		if n := snap.Len(core.State); n != 0 {
			t.Fatalf("round %d: R26: %d state keys after recovery", round, n)
		}
		if bad := halfTxn(snap); bad != "" {
			t.Fatalf("round %d: half-applied transaction after recovery: %s", round, bad)
		}
		keys := 0
		for g := range crashWriters {
			got := crashKeysOf(snap, g)
			keys += len(got)
			m, ok := matchPrefix(prev[g], got, g, round, r.acked[g])
			if !ok {
				t.Fatalf("round %d: writer %d: recovered %v is neither the replay of its %d acknowledged operations nor of one more\n(before the round: %v)",
					round, g, got, r.acked[g], prev[g])
			}
			if m < r.seen[g] {
				t.Fatalf("round %d: R24: writer %d: a subscriber saw operation %d, recovery holds only %d", round, g, r.seen[g], m)
			}
			for k := range got {
				sc, key, _ := strings.Cut(k, "#")
				scope, _ := core.ParseScope(sc)
				if owner, _ := snap.Owner(scope, key); owner != fmt.Sprintf("w%d", g) {
					t.Fatalf("round %d: R27: %s owned by %q", round, k, owner)
				}
			}
			// R35: the binding survives exactly with the config: bound
			// to the writer's uid while it holds a key, free otherwise.
			uid, bound := snap.Binding(fmt.Sprintf("w%d", g))
			if bound != (len(got) > 0) || bound && uid != crashUID(g) {
				t.Fatalf("round %d: R35: writer %d holds %d keys, bound %v to uid %d (want %d)", round, g, len(got), bound, uid, crashUID(g))
			}
			prev[g] = got
		}
		if keys != snap.Len(core.Config) {
			t.Fatalf("round %d: %d config keys recovered, %d expected: %s", round, snap.Len(core.Config), keys, mustJSON(snap))
		}
		if testing.Verbose() {
			t.Logf("round %d: killed after %v: acked %v, subscriber saw up to seq %d; recovered seq %d (checkpoint %d + %d records)",
				round, delay.Round(time.Millisecond), r.acked, r.maxSeq, snap.Seq(), rep.CheckpointSeq, rep.Records)
		}
		lastSeq = snap.Seq()
	}
	t.Logf("%d rounds, %d acknowledged writes, %v", rounds, totalAcks, time.Since(start).Round(time.Millisecond))
}

// matchPrefix replays writer g's operations of this round onto before and
// reports the m in [acked, acked+1] whose replay equals got (the larger if
// both do).
func matchPrefix(before, got map[string]int64, g, round, acked int) (int, bool) {
	m := maps.Clone(before)
	for n := 1; n <= acked; n++ {
		crashOpFor(g, n).apply(m, crashValue(round, n))
	}
	at := maps.Equal(m, got)
	crashOpFor(g, acked+1).apply(m, crashValue(round, acked+1))
	if maps.Equal(m, got) {
		return acked + 1, true
	}
	return acked, at
}

// runChild re-executes the test binary (through testexec) to run only the
// test named child, with env added to its environment; kills it with
// SIGKILL delay after its first acknowledgement (a line starting "A ") —
// or, if killed is not nil, after killed is closed (a crash point: the
// child is being killed) — and returns its stdout lines. The child never
// outlives the call (nor the test, should the call fail half way). Every
// crash test of this package starts its children here.
func runChild(t *testing.T, child string, env []string, round int, delay time.Duration, killed <-chan struct{}) []string {
	t.Helper()
	cmd, err := testexec.Reexec("-test.run=^"+child+"$", "-test.count=1")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	var waited sync.Once
	var waitErr error
	wait := func() error {
		waited.Do(func() {
			cmd.Process.Kill()
			stdin.Close()
			waitErr = cmd.Wait()
		})
		return waitErr
	}
	t.Cleanup(func() { wait() })

	var lines []string
	firstAck := make(chan struct{})
	eof := make(chan struct{})
	go func() {
		defer close(eof)
		sc := bufio.NewScanner(stdout)
		acked := false
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if !acked && strings.HasPrefix(sc.Text(), "A ") {
				acked = true
				close(firstAck)
			}
		}
	}()
	if killed != nil {
		// The crash point: the child is being killed, and may be gone
		// before we look; its own death is the one expected.
		select {
		case <-killed:
		case <-time.After(30 * time.Second): // a deadline, not synchronisation
			t.Fatalf("round %d: child did not reach its crash point in 30s: %s", round, stderr.String())
		}
	} else {
		select {
		case <-firstAck:
		case <-eof:
			err := wait()
			t.Fatalf("round %d: child exited before acknowledging anything (%v): %s\n%s", round, err, lines, stderr.String())
		case <-time.After(30 * time.Second): // a deadline, not synchronisation
			t.Fatalf("round %d: child acknowledged nothing in 30s: %s", round, stderr.String())
		}
		select {
		case <-time.After(delay): // the crash moment, chosen at random
		case <-eof:
			err := wait()
			t.Fatalf("round %d: child died before it was killed (%v): %s\n%s", round, err, lines, stderr.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("round %d: kill: %v", round, err)
	}
	<-eof // the pipe is drained: every line the child wrote is in lines
	err = wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("round %d: child did not die of SIGKILL: %v\n%s", round, err, stderr.String())
	}
	return lines
}

// TestR28_CheckpointCompaction: with a checkpoint every 100 records, 5,000
// config updates over 50 keys leave a journal whose record count and file
// size are bounded by the config, not by its history, and a reopen restores
// exactly the final config from the checkpoint and the few records after
// it. NoSync: compaction does not depend on fsync, and the test stays fast.
func TestR28_CheckpointCompaction(t *testing.T) {
	const (
		every   = 100
		updates = 5000
		keys    = 50
	)
	ctx := t.Context()
	dir := t.TempDir()
	// The feed's history (R47) is kept too, FeedRetention records: bounded
	// by its own setting, not by the history.
	s := open(t, dir, store.Options{NoSync: true, CheckpointRecords: every, FeedRetention: every})
	o, err := s.Owner(ctx, "cfg", core.OwnerOptions{})
	must(t, err)
	model := map[core.Scope]core.Values{}
	maxRecords := 0
	for i := range updates {
		sc := core.ConfigScope("compact", fmt.Sprintf("s%d", i%5))
		k := fmt.Sprintf("k%d", i%keys)
		v := core.Values{k: map[string]any{"i": int64(i), "pad": strings.Repeat("x", 100)}}
		must(t, o.Update(ctx, sc, v))
		if model[sc] == nil {
			model[sc] = core.Values{}
		}
		model[sc][k] = v[k]
		maxRecords = max(maxRecords, statsOf(t, s).Journal.Records)
	}
	st := statsOf(t, s).Journal
	t.Logf("journal after %d updates: %+v; most records between checkpoints %d", updates, st, maxRecords)
	if st.Retained > every {
		t.Errorf("R28, R47: %d records retained for the feed, want at most FeedRetention %d", st.Retained, every)
	}
	if st.Checkpoints < updates/every/2 {
		t.Errorf("R28: %d checkpoints for %d updates at one per %d records", st.Checkpoints, updates, every)
	}
	// The checkpointer runs beside the writer, so more records than the
	// threshold accumulate while it is scheduled, encodes and commits (up
	// to ~4x with NoSync writes on 2 CPUs); never the history.
	if maxRecords > 10*every {
		t.Errorf("R28: up to %d records between checkpoints, want about %d", maxRecords, every)
	}
	// The history is ~5,000 records of ~150 bytes (> 700 KiB of data
	// alone); the config is 50 keys, a few KiB. bbolt reuses freed pages.
	if st.FileSize > 512<<10 {
		t.Errorf("R28: journal file of %d bytes after %d updates of %d keys", st.FileSize, updates, keys)
	}
	before, _ := s.Snapshot(ctx)
	must(t, s.Close())

	s2 := open(t, dir, store.Options{})
	after, _ := s2.Snapshot(ctx)
	rep := s2.Recovery()
	t.Logf("recovery: %+v", rep)
	if rep.CheckpointSeq == 0 || rep.Records > 10*every {
		t.Errorf("R28: recovery replayed %d records after checkpoint %d", rep.Records, rep.CheckpointSeq)
	}
	if after.Len(core.Config) != keys || mustJSON(after) != mustJSON(before) {
		t.Fatalf("after reopen:\n%s\nwant\n%s", mustJSON(after), mustJSON(before))
	}
	for sc, vals := range model {
		if !equalJSON(after.Values(sc), vals) {
			t.Fatalf("%s after reopen = %v, want %v", sc, after.Values(sc), vals)
		}
	}
	if after.Seq() < before.Seq() {
		t.Fatalf("R7: seq %d after reopen, %d before", after.Seq(), before.Seq())
	}
}
