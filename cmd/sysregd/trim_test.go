package main

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

// Issue #14's appliance footprint: an idle daemon gives back memory once a
// burst of work is over, and only then.
func TestTrimDue(t *testing.T) {
	const M = 1 << 20
	for _, c := range []struct {
		name            string
		last, prev, now uint64
		want            bool
	}{
		{"nothing allocated since the last trim", 5 * M, 5 * M, 5 * M, false},
		{"a little allocated since the last trim", 5 * M, 5 * M, 5*M + trimAfter - 1, false},
		{"a burst, still busy", 5 * M, 5 * M, 9 * M, false},
		{"a burst, then a quiet tick", 5 * M, 9 * M, 9 * M, true},
		{"a burst, then a tick with a trickle", 5 * M, 9 * M, 9*M + trimQuiet, true},
		{"a burst, then a busy tick", 5 * M, 9 * M, 9*M + trimQuiet + 1, false},
	} {
		if got := trimDue(c.last, c.prev, c.now); got != c.want {
			t.Errorf("%s: trimDue(%d, %d, %d) = %v, want %v", c.name, c.last, c.prev, c.now, got, c.want)
		}
	}
}

var burstSink [][]byte

func TestIdleTrimAfterStartAndAfterBursts(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	synctest.Test(t, func(t *testing.T) {
		var trims atomic.Int32
		stop, done := make(chan struct{}), make(chan struct{})
		go idleTrim(stop, done, time.Second, func() { trims.Add(1) })
		step := func(want int32, what string) {
			t.Helper()
			time.Sleep(time.Second)
			synctest.Wait()
			if got := trims.Load(); got != want {
				t.Fatalf("%s: %d trims, want %d", what, got, want)
			}
		}
		step(1, "the first quiet tick after start-up")
		step(1, "an idle tick")
		burst := func() {
			// Large objects: counted by the runtime as they are allocated.
			for range 2 * trimAfter / (64 << 10) {
				burstSink = append(burstSink, make([]byte, 64<<10))
			}
			burstSink = nil
		}
		burst()
		step(1, "the tick of a burst")
		step(2, "the quiet tick after it")
		step(2, "an idle tick")
		burst()
		step(2, "the tick of another burst")
		burst()
		step(2, "a tick with more of it")
		step(3, "the quiet tick after them")
		close(stop)
		<-done
	})
}
