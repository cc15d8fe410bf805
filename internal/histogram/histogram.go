// Package histogram records observations into fixed buckets without locks
// and hands out snapshots in Prometheus' shape. journal (fsync time, group
// commit batch sizes, checkpoint time) and store (append time) share it;
// neither imports a metrics library (R50): sysregd's collector turns the
// snapshots into Prometheus histograms.
//
// # Concurrency
//
// Observe is safe from any goroutine and costs one bucket search and three
// atomic adds. A Snapshot taken while observations land may count an
// observation in Count before its bucket or sum: each field is exact on its
// own, and the next snapshot catches up.
package histogram

import (
	"sync/atomic"
	"time"
)

// Snapshot is a histogram's content at one time.
type Snapshot struct {
	Bounds []float64 `json:"bounds"` // bucket upper bounds, ascending; +Inf is implicit
	Counts []uint64  `json:"counts"` // observations per bucket, not cumulative; len(Bounds)+1
	Count  uint64    `json:"count"`  // observations
	Sum    float64   `json:"sum"`    // their sum, in the histogram's unit (seconds for durations)
}

// Cumulative returns the count of observations at or below each bound.
func (h Snapshot) Cumulative() map[float64]uint64 {
	out := make(map[float64]uint64, len(h.Bounds))
	var n uint64
	for i, b := range h.Bounds {
		if i < len(h.Counts) {
			n += h.Counts[i]
		}
		out[b] = n
	}
	return out
}

// Recorder is a lock-free histogram. Values are recorded as whole numbers
// of a raw unit (nanoseconds, operations) and reported times scale.
type Recorder struct {
	bounds []float64
	scale  float64
	counts []atomic.Uint64 // len(bounds)+1
	count  atomic.Uint64
	sum    atomic.Uint64 // in raw units
}

// New returns a Recorder with the given bucket upper bounds (ascending, in
// reported units) whose raw values are reported times scale.
func New(bounds []float64, scale float64) *Recorder {
	return &Recorder{bounds: bounds, scale: scale, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// NewDurations returns a Recorder of durations reported in seconds.
func NewDurations(bounds []float64) *Recorder { return New(bounds, 1e-9) }

// Observe records raw value v.
func (h *Recorder) Observe(v uint64) {
	s := float64(v) * h.scale
	i := 0
	for i < len(h.bounds) && s > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.count.Add(1)
	h.sum.Add(v)
}

// ObserveDuration records d (a Recorder from NewDurations); a negative d
// counts as 0.
func (h *Recorder) ObserveDuration(d time.Duration) { h.Observe(uint64(max(d, 0))) }

// Snapshot returns the histogram's content.
func (h *Recorder) Snapshot() Snapshot {
	out := Snapshot{Bounds: h.bounds, Counts: make([]uint64, len(h.counts))}
	for i := range h.counts {
		out.Counts[i] = h.counts[i].Load()
	}
	out.Count = h.count.Load()
	out.Sum = float64(h.sum.Load()) * h.scale
	return out
}
