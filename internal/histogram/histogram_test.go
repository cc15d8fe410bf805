package histogram

import (
	"testing"
	"time"
)

// TestDurations: observations land in the first bucket whose bound they do
// not exceed, the rest in +Inf; Cumulative is Prometheus' shape (R50).
func TestDurations(t *testing.T) {
	h := NewDurations([]float64{0.001, 0.01, 1})
	for _, d := range []time.Duration{time.Microsecond, time.Millisecond, 2 * time.Millisecond, time.Second, 3 * time.Second} {
		h.ObserveDuration(d)
	}
	s := h.Snapshot()
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

// TestCounts: whole numbers (batch sizes) with scale 1.
func TestCounts(t *testing.T) {
	h := New([]float64{1, 2, 4}, 1)
	for _, v := range []uint64{1, 1, 2, 3, 4, 9} {
		h.Observe(v)
	}
	s := h.Snapshot()
	if s.Count != 6 || s.Sum != 20 {
		t.Fatalf("count %d sum %v", s.Count, s.Sum)
	}
	if got := s.Counts; got[0] != 2 || got[1] != 1 || got[2] != 2 || got[3] != 1 {
		t.Fatalf("counts %v", got)
	}
}
