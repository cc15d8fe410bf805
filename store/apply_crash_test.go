package store_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/testexec"
	"github.com/sysreg/sysreg/store"
)

// The apply crash test (R44): a child applies a change to one config key
// with a confirm deadline, over and over, and ends each apply one of three
// ways — confirmed (n%3 == 0), rolled back (n%3 == 1), or left to its
// short deadline (n%3 == 2, the child waits until the registry undid it).
// One apply is pending at a time. The parent SIGKILLs the child at a
// random moment — before an apply is durable, after, during a rollback or
// the undo at a deadline — and on every other round starts a second child
// that only opens the directory (whose recovery undoes what is pending)
// and kills it within a few milliseconds, during that undo or around it.
// After each round the parent opens the directory itself and checks that
// the key holds exactly the value of the last confirmed apply (or, if the
// child was killed between an apply to be confirmed and the line saying
// the confirm returned, possibly that apply's value): an unconfirmed
// apply is never in force after a restart, a confirmed one never undone,
// and the sequence numbers keep rising.
//
// Protocol on the child's stdout:
//
//	A open         about to open the store
//	A base         the key exists (its first value, 0, confirmed)
//	P n            apply n returned nil (id on the line: P n id)
//	C n            confirm of apply n returned nil
//	R n            rollback of apply n returned nil
//	D n            apply n was undone at its deadline
//	E text         something went wrong
const (
	applyCrashEnv   = "SYSREG_APPLY_CRASH_CHILD"
	applyCrashMode  = "SYSREG_APPLY_CRASH_MODE" // "work" or "open"
	applyCrashRound = "SYSREG_APPLY_CRASH_ROUND"
)

var applyCrashScope = core.ConfigScope("apply", "crash")

func applyCrashValue(round, n int) int64 { return int64(round)*crashRoundBase + int64(n) }

// TestApplyCrashChild is the child of TestR44_ApplyCrash.
func TestApplyCrashChild(t *testing.T) {
	if os.Getenv(applyCrashEnv) != "1" {
		return
	}
	round, _ := strconv.Atoi(os.Getenv(applyCrashRound))
	os.Exit(applyCrashChild(os.Getenv(crashDirEnv), os.Getenv(applyCrashMode), round))
}

func applyCrashChild(dir, mode string, round int) int {
	out := childOutput()
	out.printf("A open")
	s, err := store.Open(dir, store.Options{CheckpointRecords: 50})
	if err != nil {
		out.printf("E open: %v", err)
		return 3
	}
	if mode == "open" {
		select {} // until killed
	}
	ctx := context.Background()
	o, err := s.Owner(ctx, "ap", core.OwnerOptions{KeepConfig: true})
	if err != nil {
		out.printf("E owner: %v", err)
		return 3
	}
	if snap, _ := s.Snapshot(ctx); len(snap.Pending()) > 0 {
		out.printf("E pending after Open: %v", snap.Pending())
		return 3
	}
	if err := o.Commit(ctx, core.IfModSeq(applyCrashScope, "x", 0), core.Put(applyCrashScope, core.Values{"x": int64(0)})); err != nil && !errors.Is(err, core.ErrConflict) {
		out.printf("E base: %v", err)
		return 3
	}
	out.printf("A base")
	// The undo at a deadline is a change of x: the subscription delivers
	// it, so the workload waits for it without polling.
	undone, err := s.Subscribe(ctx, core.SubscribeOptions{})
	if err != nil {
		out.printf("E subscribe: %v", err)
		return 3
	}
	for n := 1; ; n++ {
		within := time.Hour
		if n%3 == 2 {
			within = time.Duration(1+n%7) * time.Millisecond
		}
		id, err := o.Apply(ctx, within, core.Put(applyCrashScope, core.Values{"x": applyCrashValue(round, n)}))
		if err != nil || id == 0 {
			out.printf("E apply %d: %d, %v", n, id, err)
			return 3
		}
		out.printf("P %d %d", n, id)
		switch n % 3 {
		case 0:
			if err := s.Confirm(ctx, id); err != nil {
				out.printf("E confirm %d: %v", n, err)
				return 3
			}
			out.printf("C %d", n)
		case 1:
			if _, err := s.Rollback(ctx, id); err != nil {
				out.printf("E rollback %d: %v", n, err)
				return 3
			}
			out.printf("R %d", n)
		case 2:
			// The workload waits for the registry's own deadline: a
			// delivery after the apply with nothing pending is its undo.
			for {
				snap, ok := <-undone.C()
				if !ok {
					out.printf("E subscription ended waiting for the undo of %d", n)
					return 3
				}
				if snap.Seq() > id && snap.PendingCount() == 0 {
					break
				}
			}
			out.printf("D %d", n)
		}
	}
}

// TestR44_ApplyCrash: see the comment at the top of this file. 20 rounds.
func TestR44_ApplyCrash(t *testing.T) {
	if os.Getenv(applyCrashEnv) == "1" {
		return
	}
	dir := t.TempDir()
	applyRounds(t, 20, dir, func(int) (string, <-chan struct{}, func()) { return dir, nil, func() {} })
}

// applyRounds runs the rounds of the apply crash test. boot prepares a
// round: it returns the data directory the children use, a channel closed
// when the working child is being killed at a crash point of its own (nil:
// it is killed after a random delay), and a function that runs once the
// children are dead (the power cut, for TestR44_ApplyPowerLoss); dir is
// where the parent then opens the store to check it.
func applyRounds(t *testing.T, rounds int, dir string, boot func(round int) (string, <-chan struct{}, func())) {
	t.Helper()
	if _, err := testexec.Reexec(); err != nil {
		t.Skipf("cannot re-execute the test binary: %v", err)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	committed := int64(-1) // the key's value after the last recovery; -1: absent
	var lastSeq, maxID uint64
	var applies, confirms int
	for round := 1; round <= rounds; round++ {
		childDir, killed, afterChildren := boot(round)
		env := []string{applyCrashEnv + "=1", crashDirEnv + "=" + childDir, applyCrashRound + "=" + strconv.Itoa(round)}
		delay := time.Duration(rng.Int64N(int64(150 * time.Millisecond)))
		lines := runChild(t, "TestApplyCrashChild", append(env, applyCrashMode+"=work"), round, delay, killed)
		allowed := map[int64]bool{}
		cur := committed
		inDoubt := int64(-2)
		based := false
		for _, line := range lines {
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			if f[0] == "E" {
				t.Fatalf("round %d: child reported: %s", round, line)
			}
			if len(f) < 2 || f[1] == "open" {
				continue
			}
			if f[1] == "base" {
				based = true
				if cur == -1 {
					cur = 0
				}
				continue
			}
			n, err := strconv.Atoi(f[1])
			if err != nil {
				continue // the testing package's own output
			}
			v := applyCrashValue(round, n)
			inDoubt = -2
			switch f[0] {
			case "P":
				applies++
				id, _ := strconv.ParseUint(f[2], 10, 64)
				if id <= maxID {
					t.Fatalf("round %d: R44: apply id %d after %d", round, id, maxID)
				}
				maxID = id
				if n%3 == 0 {
					inDoubt = v // its confirm may be durable without its line
				}
			case "C":
				confirms++
				cur = v
			}
		}
		allowed[cur] = true
		if inDoubt != -2 {
			allowed[inDoubt] = true
		}
		if !based && committed == -1 {
			allowed[0] = true // the base write may be durable without its line
		}
		if round%2 == 0 {
			// Kill a child during (or around) the undo its Open does.
			d := time.Duration(rng.Int64N(int64(5 * time.Millisecond)))
			lines := runChild(t, "TestApplyCrashChild", append(env, applyCrashMode+"=open"), round, d, nil)
			for _, line := range lines {
				if strings.HasPrefix(line, "E ") {
					t.Fatalf("round %d: open child reported: %s", round, line)
				}
			}
		}
		afterChildren()
		s, err := store.Open(dir, store.Options{})
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		snap, _ := s.Snapshot(t.Context())
		undone, rep := s.UndoneAtOpen(), s.Recovery()
		must(t, s.Close())
		if len(snap.Pending()) != 0 {
			t.Fatalf("round %d: R44: pending after Open: %+v (undone %v, recovery %+v, seq %d)", round, snap.Pending(), undone, rep, snap.Seq())
		}
		got := int64(-1)
		if v, ok := snap.Get(applyCrashScope, "x"); ok {
			got = v.(int64)
		}
		if !allowed[got] {
			t.Fatalf("round %d: R44: x = %d after restart, want one of %v (killed after %v; last lines %q)", round, got, allowed, delay, tail(lines, 4))
		}
		if snap.Seq() < lastSeq || snap.Seq() < maxID {
			t.Fatalf("round %d: R7: seq %d after restart, below %d (last apply id %d)", round, snap.Seq(), lastSeq, maxID)
		}
		lastSeq, committed = snap.Seq(), got
	}
	t.Logf("%d rounds, %d applies acknowledged, %d confirmed", rounds, applies, confirms)
}

func tail(lines []string, n int) []string { return lines[max(0, len(lines)-n):] }
