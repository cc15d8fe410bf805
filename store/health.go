package store

import (
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/histogram"
	"github.com/sysreg/sysreg/journal"
)

// Health: figures the store keeps for monitoring (R50) and the warnings it
// logs (R51). The store never imports a metrics library: sysregd's
// Prometheus collector reads these through Stats.

// AppendBuckets are the upper bounds, in seconds, of the buckets of
// Stats.Append: from a page-cache commit to a stalled disk.
var AppendBuckets = journal.LatencyBuckets

// SlowAppend is the durable append time above which the store logs a
// warning: an fsync that slow means the disk stalls (R51).
const SlowAppend = time.Second

// WarnInterval is the least time between two warnings of one cause (R51).
const WarnInterval = time.Minute

// Histogram is a snapshot of a histogram, in Prometheus' shape; durations
// are in seconds.
type Histogram = journal.Histogram

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

// healthKnobs are the thresholds of R51. Only tests change them, through
// the unexported Options.knobs (export_test.go), to see a warning without
// waiting for a second or ten; zero fields mean the defaults.
type healthKnobs struct {
	slowAppend time.Duration // SlowAppend
	minLag     time.Duration // MinLagWarn
	lagScan    time.Duration // LagScan
}

// health is what a Store keeps for R50 and R51.
type health struct {
	append   *histogram.Recorder // durable append time of config mutations
	lagging  atomic.Uint64       // subscriptions found lagging (each delivery once)
	slowWarn rateLimit           // the slow-append warning
	lagWarn  rateLimit           // the lagging-subscriber warning, embedded or remote
	knobs    healthKnobs         // with the defaults filled in
	log      hclog.Logger
}

func newHealth(log hclog.Logger, k healthKnobs) *health {
	if k.slowAppend <= 0 {
		k.slowAppend = SlowAppend
	}
	if k.minLag <= 0 {
		k.minLag = MinLagWarn
	}
	if k.lagScan <= 0 {
		k.lagScan = LagScan
	}
	return &health{append: histogram.NewDurations(AppendBuckets), knobs: k, log: log}
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
		h.append.ObserveDuration(d)
		if d > h.knobs.slowAppend && h.slowWarn.allow(now, WarnInterval) {
			h.log.Warn("slow journal append: the disk took over a second to commit and fsync (R51)", "elapsed", d)
		}
		done(err)
	}
}

// LagWarnFactor and MinLagWarn: a subscriber, embedded or remote, that has
// not taken a delivery for LagWarnFactor × its MinInterval, and at least
// MinLagWarn, is logged as lagging (R51). The store looks for them every
// LagScan, so a warning comes up to LagScan after the threshold.
const (
	LagWarnFactor = 10
	MinLagWarn    = 10 * time.Second
	LagScan       = 5 * time.Second
)

// lagThreshold is how long a delivery to a subscriber with minInterval may
// wait before the subscriber counts as lagging.
func (h *health) lagThreshold(minInterval time.Duration) time.Duration {
	return max(LagWarnFactor*minInterval, h.knobs.minLag)
}

// scanLag counts the subscriptions of reg found lagging now and warns at
// most once per WarnInterval (R51). The checkpointer calls it every
// knobs.lagScan.
func (h *health) scanLag(reg *core.Registry) {
	now := time.Now()
	n, worst := reg.Lagging(now, h.lagThreshold)
	if n == 0 {
		return
	}
	total := h.lagging.Add(uint64(n))
	if h.lagWarn.allow(now, WarnInterval) {
		h.log.Warn("subscriber lags: a delivery has not been taken (R51)", "subscribers", n, "waited", worst, "lagging", total)
	}
}

// serverHealth is what a Server keeps for R50 and R51.
type serverHealth struct {
	dropped  atomic.Uint64 // clients disconnected for not reading
	lagging  atomic.Uint64 // deliveries that waited past the lag threshold
	dropWarn rateLimit
}

// drop counts a client disconnected for not reading, and warns at most once
// per WarnInterval (R51).
func (h *serverHealth) drop(log hclog.Logger, timeout time.Duration) {
	n := h.dropped.Add(1)
	if h.dropWarn.allow(time.Now(), WarnInterval) {
		log.Warn("client does not read; disconnecting (R51)", "timeout", timeout, "dropped", n)
	}
}

// watchLag arms a timer that, if the delivery write has not finished after
// lag, counts the subscriber as lagging and warns at most once per
// WarnInterval, with the store's limiter: the store's scan may find the
// same subscriber (R51). The caller stops the timer when the write returns.
func (h *serverHealth) watchLag(log hclog.Logger, lagWarn *rateLimit, sub uint64, lag time.Duration) *time.Timer {
	return time.AfterFunc(lag, func() {
		n := h.lagging.Add(1)
		if lagWarn.allow(time.Now(), WarnInterval) {
			log.Warn("subscriber lags: a delivery has not been taken (R51)", "sub", sub, "waited", lag, "lagging", n)
		}
	})
}
