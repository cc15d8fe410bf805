package store

import (
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Health: figures the store keeps for monitoring (R50) and the warnings it
// logs (R51). The store never imports a metrics library: sysregd's
// Prometheus collector reads these through Stats.

// AppendBuckets are the upper bounds, in seconds, of the buckets of
// Stats.Append: from a page-cache commit to a stalled disk.
var AppendBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// SlowAppend is the durable append time above which the store logs a
// warning: an fsync that slow means the disk stalls (R51).
const SlowAppend = time.Second

// WarnInterval is the least time between two warnings of one cause (R51).
const WarnInterval = time.Minute

// Histogram is a snapshot of a histogram of durations in seconds, in
// Prometheus' shape.
type Histogram struct {
	Bounds []float64 `json:"bounds"` // bucket upper bounds, ascending; +Inf is implicit
	Counts []uint64  `json:"counts"` // observations per bucket, not cumulative; len(Bounds)+1
	Count  uint64    `json:"count"`  // observations
	Sum    float64   `json:"sum"`    // their sum, in seconds
}

// Cumulative returns the count of observations at or below each bound.
func (h Histogram) Cumulative() map[float64]uint64 {
	out := make(map[float64]uint64, len(h.Bounds))
	var n uint64
	for i, b := range h.Bounds {
		n += h.Counts[i]
		out[b] = n
	}
	return out
}

// histogram records durations without locks: one atomic add per bucket
// and total.
type histogram struct {
	bounds []float64
	counts []atomic.Uint64 // len(bounds)+1
	count  atomic.Uint64
	sumNs  atomic.Uint64
}

func newHistogram(bounds []float64) *histogram {
	return &histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

func (h *histogram) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(h.bounds) && s > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.count.Add(1)
	h.sumNs.Add(uint64(max(d, 0)))
}

func (h *histogram) snapshot() Histogram {
	out := Histogram{Bounds: h.bounds, Counts: make([]uint64, len(h.counts))}
	for i := range h.counts {
		out.Counts[i] = h.counts[i].Load()
	}
	out.Count = h.count.Load()
	out.Sum = float64(h.sumNs.Load()) / 1e9
	return out
}

// rateLimit lets one event through per interval (R51: a warning at most
// once a minute per cause). The zero value lets the first one through.
type rateLimit struct{ last atomic.Int64 } // unix nanoseconds of the last event let through

func (r *rateLimit) allow(now time.Time, every time.Duration) bool {
	for {
		last := r.last.Load()
		if last != 0 && now.UnixNano()-last < int64(every) {
			return false
		}
		if r.last.CompareAndSwap(last, now.UnixNano()) {
			return true
		}
	}
}

// health is what a Store keeps for R50 and R51.
type health struct {
	append   *histogram // durable append time of config mutations
	slowWarn rateLimit  // the slow-append warning
	log      hclog.Logger
}

func newHealth(log hclog.Logger) *health {
	return &health{append: newHistogram(AppendBuckets), log: log}
}

// timeAppend wraps an append's done callback: it records the time from the
// append to its outcome (queueing, the group commit and its fsync) and
// warns, at most once per WarnInterval, when that took over SlowAppend.
// done runs on the journal's committer, so this stays cheap: two clock
// reads and three atomic adds.
func (h *health) timeAppend(done func(error)) func(error) {
	start := time.Now()
	return func(err error) {
		now := time.Now()
		d := now.Sub(start)
		h.append.observe(d)
		if d > SlowAppend && h.slowWarn.allow(now, WarnInterval) {
			h.log.Warn("slow journal append: the disk took over a second to commit and fsync (R51)", "elapsed", d)
		}
		done(err)
	}
}

// LagWarnFactor and MinLagWarn: a remote subscriber that has not taken a
// delivery for LagWarnFactor × its MinInterval, and at least MinLagWarn,
// is logged as lagging (R51).
const (
	LagWarnFactor = 10
	MinLagWarn    = 10 * time.Second
)

// serverHealth is what a Server keeps for R50 and R51.
type serverHealth struct {
	dropped  atomic.Uint64 // clients disconnected for not reading
	lagging  atomic.Uint64 // deliveries that waited past the lag threshold
	dropWarn rateLimit
	lagWarn  rateLimit
}

// drop counts a client disconnected for not reading, and warns at most once
// per WarnInterval (R51).
func (h *serverHealth) drop(log hclog.Logger, timeout time.Duration) {
	n := h.dropped.Add(1)
	if h.dropWarn.allow(time.Now(), WarnInterval) {
		log.Warn("client does not read; disconnecting (R51)", "timeout", timeout, "dropped", n)
	}
}

// lagThreshold is how long a delivery to a subscriber with minInterval may
// wait before the subscriber counts as lagging.
func lagThreshold(minInterval time.Duration) time.Duration {
	return max(LagWarnFactor*minInterval, MinLagWarn)
}

// watchLag arms a timer that, if the delivery write has not finished after
// lag, counts the subscriber as lagging and warns at most once per
// WarnInterval (R51). The caller stops the timer when the write returns.
func (h *serverHealth) watchLag(log hclog.Logger, sub uint64, lag time.Duration) *time.Timer {
	return time.AfterFunc(lag, func() {
		n := h.lagging.Add(1)
		if h.lagWarn.allow(time.Now(), WarnInterval) {
			log.Warn("subscriber lags: a delivery has not been taken (R51)", "sub", sub, "waited", lag, "lagging", n)
		}
	})
}
