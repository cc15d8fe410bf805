package store

import (
	"testing"
	"time"
)

// TestRateLimit: one warning per cause per WarnInterval (R51).
func TestRateLimit(t *testing.T) {
	var r rateLimit
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		at   time.Duration
		want bool
	}{
		{0, true}, {time.Second, false}, {59 * time.Second, false}, {60 * time.Second, true}, {61 * time.Second, false}, {3 * time.Minute, true},
	} {
		if got := r.allow(t0.Add(tc.at), WarnInterval); got != tc.want {
			t.Errorf("at +%v: allow = %v, want %v", tc.at, got, tc.want)
		}
	}
}

// TestHistogram: observations land in the first bucket whose bound they do
// not exceed, the rest in +Inf; Cumulative is Prometheus' shape (R50).
func TestHistogram(t *testing.T) {
	h := newHistogram([]float64{0.001, 0.01, 1})
	for _, d := range []time.Duration{time.Microsecond, time.Millisecond, 2 * time.Millisecond, time.Second, 3 * time.Second} {
		h.observe(d)
	}
	s := h.snapshot()
	if s.Count != 5 || s.Sum < 4.003 || s.Sum > 4.0031 {
		t.Fatalf("count %d sum %v", s.Count, s.Sum)
	}
	if got := s.Counts; len(got) != 4 || got[0] != 2 || got[1] != 1 || got[2] != 1 || got[3] != 1 {
		t.Fatalf("counts %v", got)
	}
	if c := s.Cumulative(); c[0.001] != 2 || c[0.01] != 3 || c[1] != 4 {
		t.Fatalf("cumulative %v", c)
	}
}

// TestLagThreshold: 10 × MinInterval, at least 10 s (R51).
func TestLagThreshold(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{0: 10 * time.Second, time.Second: 10 * time.Second, 5 * time.Second: 50 * time.Second} {
		if got := lagThreshold(in); got != want {
			t.Errorf("lagThreshold(%v) = %v, want %v", in, got, want)
		}
	}
}
