package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// DefaultSweepSubscribers are the subscriber counts of a sweep: issue #14's
// curve.
var DefaultSweepSubscribers = []int{10, 100, 1000, 10_000, 100_000}

// FlapSweepConfig configures RunFlapSweep.
type FlapSweepConfig struct {
	// Flap is the scenario run at every point; its Subscribers and
	// NoBaseline are ignored, its Interval (zero) is chosen per point.
	Flap FlapConfig
	// Subscribers are the points. Default DefaultSweepSubscribers.
	Subscribers []int
	// Interval is the subscribers' MinInterval at every point. Zero: the
	// targets' — 100 ms, and 1 s from 100,000 subscribers on.
	Interval time.Duration
}

// FlapSweepResult is the flap scenario against the number of subscribers:
// at every point, the producers alone and with the subscribers, one run
// right after the other.
type FlapSweepResult struct {
	Target    string  `json:"target"`
	Producers int     `json:"producers"`
	DurationS float64 `json:"duration_s"`
	// ReuseValues: FlapConfig.ReuseValues at every point.
	ReuseValues bool             `json:"reuse_values,omitempty"`
	Points      []FlapSweepPoint `json:"points"`
}

// FlapSweepPoint is one point of a sweep. Series are left out of its runs.
type FlapSweepPoint struct {
	Subscribers int     `json:"subscribers"`
	IntervalMs  float64 `json:"interval_ms"`
	Bare        FlapRun `json:"bare"` // no subscribers
	Subs        FlapRun `json:"subs"`
	// VsBare is Subs' updates/s over Bare's; VsBareCPU the same per CPU
	// second, which the machine's other load disturbs less.
	VsBare    float64 `json:"vs_bare"`
	VsBareCPU float64 `json:"vs_bare_cpu"`
	// LateMs is the worst convergence beyond MinInterval.
	LateMs float64 `json:"late_ms"`
}

// SweepInterval is the MinInterval a sweep uses for n subscribers when
// none is given: 100 ms, and 1 s from 100,000 on (10^5 deliveries/s).
func SweepInterval(n int) time.Duration {
	if n >= 100_000 {
		return time.Second
	}
	return 100 * time.Millisecond
}

// RunFlapSweep runs the flap scenario (sysreg only) for each subscriber
// count beside the same producers without subscribers. The order of the
// two runs alternates from point to point, so that neither side always
// runs on a warmer (or more loaded) machine.
func RunFlapSweep(ctx context.Context, cfg FlapSweepConfig) (FlapSweepResult, error) {
	counts := cfg.Subscribers
	if len(counts) == 0 {
		counts = DefaultSweepSubscribers
	}
	base := cfg.Flap
	base.NoBaseline = true
	p := &progress{w: base.Progress}
	base.Progress = nil
	d := base.withDefaults()
	res := FlapSweepResult{Target: "store", Producers: d.Producers, ReuseValues: d.ReuseValues}
	if base.Core {
		res.Target = "core"
	}
	if d.Updates <= 0 {
		res.DurationS = d.Duration.Seconds()
	}
	for i, n := range counts {
		if n <= 0 {
			return res, fmt.Errorf("bench: sweep: %d subscribers", n)
		}
		iv := cfg.Interval
		if iv == 0 {
			iv = SweepInterval(n)
		}
		bare, subs := base, base
		bare.Subscribers, bare.Interval = -1, iv
		subs.Subscribers, subs.Interval = n, iv
		pt := FlapSweepPoint{Subscribers: n, IntervalMs: ms(iv)}
		var err error
		for j := range 2 {
			if (i+j)%2 == 0 {
				pt.Bare, err = runSweepSide(ctx, bare)
			} else {
				pt.Subs, err = runSweepSide(ctx, subs)
			}
			if err != nil {
				return res, fmt.Errorf("bench: sweep at %d subscribers: %w", n, err)
			}
		}
		pt.VsBare = ratio(pt.Subs.UpdatesPerSec, pt.Bare.UpdatesPerSec)
		pt.VsBareCPU = ratio(pt.Subs.UpdatesPerCPUSec, pt.Bare.UpdatesPerCPUSec)
		pt.LateMs = max(0, pt.Subs.ConvergeMs.Max-pt.IntervalMs)
		res.Points = append(res.Points, pt)
		p.printf("sweep: %d subscribers @%v: %.0f updates/s (bare %.0f, %.2fx; per CPU-s %.2fx), converged within %.1f ms, %.0f B/sub",
			n, iv, pt.Subs.UpdatesPerSec, pt.Bare.UpdatesPerSec, pt.VsBare, pt.VsBareCPU, pt.Subs.ConvergeMs.Max, pt.Subs.HeapPerSub)
	}
	return res, nil
}

// ReuseNote is what a title of a flap run's table or plot adds when its
// producers reused their values (FlapConfig.ReuseValues): that it is not
// the headline. Empty otherwise.
func ReuseNote(reused bool) string {
	if reused {
		return ", values reused (not the headline)"
	}
	return ""
}

func runSweepSide(ctx context.Context, cfg FlapConfig) (FlapRun, error) {
	r, err := RunFlap(ctx, cfg)
	r.Sysreg.Series = nil
	return r.Sysreg, err
}

// WriteSVG draws the sweep as a standalone SVG image: producer updates/s
// with and without subscribers, and the worst convergence beyond
// MinInterval, against the number of subscribers (log scale).
func (r FlapSweepResult) WriteSVG(w io.Writer) error {
	const (
		width, height = 1000, 500
		top, bottom   = 90, 80
		left, gap     = 90, 110
		right         = 30
	)
	bw, p := startSVG(w, width, height, left, fmt.Sprintf(
		"Flapping load against subscribers: %d producers, %s, %s%s",
		r.Producers, r.Target, sweepIntervals(r.Points), ReuseNote(r.ReuseValues)))
	pw := (width - left - right - gap) / 2
	ph := height - top - bottom
	xmin, xmax := 1.0, 1.0
	if len(r.Points) > 0 {
		xmin, xmax = float64(r.Points[0].Subscribers), xmin
		for _, pt := range r.Points {
			xmin = min(xmin, float64(pt.Subscribers))
			xmax = max(xmax, float64(pt.Subscribers))
		}
	}
	d0, d1 := math.Floor(math.Log10(xmin)), math.Ceil(math.Log10(xmax))
	if d1 <= d0 {
		d1 = d0 + 1
	}
	type line struct {
		colour, label string
		dash          bool
		y             func(FlapSweepPoint) float64
	}
	panels := []struct {
		title, ylabel string
		lines         []line
	}{
		{"Producer updates/s", "updates/s", []line{
			{colourSysreg, "with the subscribers", false, func(pt FlapSweepPoint) float64 { return pt.Subs.UpdatesPerSec }},
			{colourBaseline, "same run, no subscribers", true, func(pt FlapSweepPoint) float64 { return pt.Bare.UpdatesPerSec }},
		}},
		{"Last change → all hold it, beyond MinInterval", "ms", []line{
			{colourSysreg, "worst subscriber", false, func(pt FlapSweepPoint) float64 { return pt.LateMs }},
			{colourBaseline, "99th percentile", true, func(pt FlapSweepPoint) float64 { return max(0, pt.Subs.ConvergeMs.P99-pt.IntervalMs) }},
		}},
	}
	for i, pan := range panels {
		x0 := left + i*(pw+gap)
		ymax := 1.0
		for _, l := range pan.lines {
			for _, pt := range r.Points {
				ymax = max(ymax, l.y(pt))
			}
		}
		ymax = niceCeil(ymax * 1.1)
		px := func(n float64) float64 {
			return float64(x0) + (math.Log10(n)-d0)/(d1-d0)*float64(pw)
		}
		py := func(v float64) float64 { return float64(top+ph) - v/ymax*float64(ph) }
		p(`<text x="%d" y="%d" font-size="14" font-weight="bold">%s</text>`+"\n", x0, top-14, esc(pan.title))
		step := niceStep(ymax)
		for v := 0.0; v <= ymax+1e-9; v += step {
			y := py(v)
			p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", x0, y, x0+pw, y)
			p(`<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-6, y+4, human(v))
		}
		for d := d0; d <= d1; d++ {
			x := px(math.Pow(10, d))
			p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>`+"\n", x, top, x, top+ph)
			p(`<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x, top+ph+18, human(math.Pow(10, d)))
		}
		p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", x0, top, x0, top+ph)
		p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", x0, top+ph, x0+pw, top+ph)
		p(`<text x="%d" y="%d" text-anchor="middle">subscribers (log scale)</text>`+"\n", x0+pw/2, top+ph+40)
		p(`<text transform="translate(%d,%d) rotate(-90)" text-anchor="middle">%s</text>`+"\n", x0-62, top+ph/2, esc(pan.ylabel))
		for j, l := range pan.lines {
			var pts strings.Builder
			for _, pt := range r.Points {
				x, y := px(float64(pt.Subscribers)), py(l.y(pt))
				fmt.Fprintf(&pts, "%.1f,%.1f ", x, y)
				p(`<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>`+"\n", x, y, l.colour)
			}
			dash := ""
			if l.dash {
				dash = ` stroke-dasharray="6,4"`
			}
			p(`<polyline fill="none" stroke="%s" stroke-width="2.5"%s points="%s"/>`+"\n", l.colour, dash, strings.TrimSpace(pts.String()))
			lx, ly := x0+10+j*(pw/2), top+ph+58
			p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"%s/>`+"\n", lx, ly-4, lx+26, ly-4, l.colour, dash)
			p(`<text x="%d" y="%d">%s</text>`+"\n", lx+32, ly, esc(l.label))
		}
	}
	p("</svg>\n")
	return bw.Flush()
}

// sweepIntervals describes the MinIntervals of the points, e.g.
// "MinInterval 100 ms (1 s at 100k)".
func sweepIntervals(pts []FlapSweepPoint) string {
	if len(pts) == 0 {
		return "no points"
	}
	first := pts[0].IntervalMs
	var other []string
	for _, pt := range pts[1:] {
		if pt.IntervalMs != first {
			other = append(other, fmtMs(pt.IntervalMs)+" at "+human(float64(pt.Subscribers)))
		}
	}
	s := "MinInterval " + fmtMs(first)
	if len(other) > 0 {
		s += " (" + strings.Join(other, ", ") + ")"
	}
	return s
}
