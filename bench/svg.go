package bench

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strings"
)

// Colours of the two sides in plots.
const (
	colourSysreg   = "#1f6fb4"
	colourBaseline = "#e07020"
)

// WriteSVG draws the flap run as a standalone SVG image: two panels over
// time since the producers started, producer updates (cumulative) and
// deliveries per subscriber (cumulative mean), sysreg against the naive
// baseline, on logarithmic axes, with a legend and the headline numbers.
func (r FlapResult) WriteSVG(w io.Writer) error {
	const (
		width, height = 1000, 540
		top, bottom   = 110, 90
		left, gap     = 80, 110
		right         = 30
	)
	bw, p := startSVG(w, width, height, left, fmt.Sprintf(
		"Flapping load: %d producers, %s subscribers, MinInterval %s%s",
		r.Producers, thousands(float64(r.Subscribers)), fmtMs(r.IntervalMs), ReuseNote(r.ReuseValues)))
	p(`<text x="%d" y="50" fill="%s">%s</text>`+"\n", left, colourSysreg, esc(fmt.Sprintf(
		"sysreg (%s): %s updates/s, %.1f deliveries per subscriber, all converged %s after the last change",
		r.Target, human(r.Sysreg.UpdatesPerSec), r.Sysreg.Deliveries.Mean, fmtMs(r.Sysreg.ConvergeMs.Max))))
	if b := r.Baseline; b != nil {
		p(`<text x="%d" y="70" fill="%s">%s</text>`+"\n", left, colourBaseline, esc(fmt.Sprintf(
			"naive channel fan-out: %s updates/s, %s events per subscriber, all converged %s after; sysreg/naive %.0fx",
			human(b.UpdatesPerSec), human(b.Deliveries.Mean), fmtMs(b.ConvergeMs.Max), r.ThroughputRatio)))
	}

	pw := (width - left - right - gap) / 2
	ph := height - top - bottom
	runs := []*FlapRun{&r.Sysreg, r.Baseline}
	xmax := 0.0
	for _, run := range runs {
		if run != nil && len(run.Series) > 0 {
			xmax = max(xmax, run.Series[len(run.Series)-1].Ms/1000)
		}
	}
	xmax = niceCeil(max(xmax, 0.1))
	panels := []struct {
		title, ylabel string
		y             func(Sample) float64
	}{
		{"Producer updates (cumulative)", "updates (log scale)", func(s Sample) float64 { return float64(s.Updates) }},
		{"Deliveries per subscriber (cumulative mean)", "deliveries (log scale)", func(s Sample) float64 { return s.Deliveries }},
	}
	for i, pan := range panels {
		x0 := left + i*(pw+gap)
		ymax := 1.0
		for _, run := range runs {
			if run == nil {
				continue
			}
			for _, s := range run.Series {
				ymax = max(ymax, pan.y(s))
			}
		}
		decades := max(1, int(math.Ceil(math.Log10(ymax)-1e-9)))
		px := func(t float64) float64 { return float64(x0) + t/xmax*float64(pw) }
		py := func(v float64) float64 {
			return float64(top+ph) - math.Log10(max(v, 1))/float64(decades)*float64(ph)
		}
		p(`<text x="%d" y="%d" font-size="14" font-weight="bold">%s</text>`+"\n", x0, top-14, esc(pan.title))
		// Grid and y ticks: powers of ten.
		for d := 0; d <= decades; d++ {
			y := py(math.Pow(10, float64(d)))
			p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", x0, y, x0+pw, y)
			p(`<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-6, y+4, human(math.Pow(10, float64(d))))
		}
		// x ticks.
		step := niceStep(xmax)
		for t := 0.0; t <= xmax+1e-9; t += step {
			x := px(t)
			p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>`+"\n", x, top, x, top+ph)
			p(`<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x, top+ph+18, trimFloat(t))
		}
		if r.DurationS > 0 && r.DurationS <= xmax {
			x := px(r.DurationS)
			p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#888" stroke-dasharray="5,4"/>`+"\n", x, top, x, top+ph)
			p(`<text x="%.1f" y="%d" fill="#666" text-anchor="start">producers stop</text>`+"\n", x+4, top+ph-8)
		}
		// Axes.
		p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", x0, top, x0, top+ph)
		p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", x0, top+ph, x0+pw, top+ph)
		p(`<text x="%d" y="%d" text-anchor="middle">time since the producers started (s)</text>`+"\n", x0+pw/2, top+ph+40)
		p(`<text transform="translate(%d,%d) rotate(-90)" text-anchor="middle">%s</text>`+"\n",
			x0-58, top+ph/2, pan.ylabel)
		for j, run := range runs {
			if run == nil || len(run.Series) == 0 {
				continue
			}
			colour := colourSysreg
			if j == 1 {
				colour = colourBaseline
			}
			var pts strings.Builder
			for _, s := range run.Series {
				fmt.Fprintf(&pts, "%.1f,%.1f ", px(s.Ms/1000), py(pan.y(s)))
			}
			p(`<polyline fill="none" stroke="%s" stroke-width="2.5" points="%s"/>`+"\n", colour, strings.TrimSpace(pts.String()))
		}
	}
	// Legend, bottom centre.
	ly := height - 14
	lx := width/2 - 200
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", lx, ly-4, lx+30, ly-4, colourSysreg)
	p(`<text x="%d" y="%d">sysreg (coalescing, latest state only)</text>`+"\n", lx+36, ly)
	if r.Baseline != nil {
		lx += 270
		p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", lx, ly-4, lx+30, ly-4, colourBaseline)
		p(`<text x="%d" y="%d">naive event-per-change channels</text>`+"\n", lx+36, ly)
	}
	p("</svg>\n")
	return bw.Flush()
}

// startSVG begins a standalone SVG image of the given size on a white
// background with title at x = left, and returns the buffered writer (to
// Flush at the end) and a printf onto it.
func startSVG(w io.Writer, width, height, left int, title string) (*bufio.Writer, func(string, ...any)) {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="13">`+"\n",
		width, height, width, height)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%d" y="28" font-size="18" font-weight="bold">%s</text>`+"\n", left, esc(title))
	return bw, p
}

// niceCeil rounds x up to 1, 2 or 5 times a power of ten.
func niceCeil(x float64) float64 {
	e := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10} {
		if x <= m*e+1e-12 {
			return m * e
		}
	}
	return 10 * e
}

// niceStep is a tick step giving 4–10 ticks up to xmax.
func niceStep(xmax float64) float64 {
	e := math.Pow(10, math.Floor(math.Log10(xmax/8)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if xmax/(m*e) <= 8 {
			return m * e
		}
	}
	return 10 * e
}

func trimFloat(f float64) string {
	s := fmt.Sprintf("%.2f", f)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// human formats a count with k/M/G suffixes.
func human(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e9:
		return trimFloat(v/1e9) + "G"
	case a >= 1e6:
		return trimFloat(v/1e6) + "M"
	case a >= 1e4:
		return trimFloat(math.Round(v/100)/10) + "k"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	}
	return trimFloat(v)
}

// thousands formats an integer-valued float with thousands separators.
func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", math.Abs(v))
	var b strings.Builder
	if v < 0 {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func fmtMs(v float64) string {
	if v >= 1000 {
		return trimFloat(v/1000) + " s"
	}
	return strings.TrimSuffix(fmt.Sprintf("%.1f", v), ".0") + " ms"
}

func esc(s string) string {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")
	return r.Replace(s)
}
