package bench_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sysreg/sysreg/bench"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tinyFlap is a flap run small enough for every test run, with a fixed
// number of updates so that its counts are deterministic.
func tinyFlap(core bool) bench.FlapConfig {
	return bench.FlapConfig{
		Producers:   3,
		Keys:        2,
		Subscribers: 20,
		Interval:    20 * time.Millisecond,
		Updates:     400,
		Core:        core,
		SampleEvery: 10 * time.Millisecond,
		Timeout:     10 * time.Second,
	}
}

func TestFlapScenarioCounts(t *testing.T) {
	for _, target := range []string{"store", "core"} {
		t.Run("target="+target, func(t *testing.T) {
			cfg := tinyFlap(target == "core")
			r, err := bench.RunFlap(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if r.Target != target {
				t.Errorf("Target = %q, want %q", r.Target, target)
			}
			total := uint64(cfg.Producers * cfg.Updates)
			s := r.Sysreg
			if s.Updates != total {
				t.Errorf("sysreg updates = %d, want %d", s.Updates, total)
			}
			// R17: deliveries at least Interval apart, the initial one
			// included, within Windows intervals.
			if limit := math.Floor(s.Windows) + 1; s.Deliveries.Max > limit {
				t.Errorf("a subscriber had %v deliveries in %.2f windows (limit %v)", s.Deliveries.Max, s.Windows, limit)
			}
			if s.Deliveries.Min < 1 || s.Deliveries.Min > s.Deliveries.Mean || s.Deliveries.Mean > s.Deliveries.Max {
				t.Errorf("deliveries spread inconsistent: %+v", s.Deliveries)
			}
			// Coalesced counts every (change, subscriber) pair that did not
			// get a delivery of its own.
			wantCoalesced := float64(cfg.Subscribers)*float64(total+1) - s.Deliveries.Mean*float64(cfg.Subscribers)
			if math.Abs(float64(s.Coalesced)-wantCoalesced) > 0.5 {
				t.Errorf("coalesced = %d, want %.0f", s.Coalesced, wantCoalesced)
			}
			if f := s.CoalescedFraction; f <= 0 || f > 1 {
				t.Errorf("coalesced fraction = %v", f)
			}
			if s.ConvergeMs.Max < s.ConvergeMs.P99 || s.ConvergeMs.P99 < s.ConvergeMs.P50 {
				t.Errorf("convergence quantiles out of order: %+v", s.ConvergeMs)
			}
			checkSeries(t, "sysreg", s.Series, total)

			b := r.Baseline
			if b == nil {
				t.Fatal("no baseline")
			}
			if b.Updates != total {
				t.Errorf("baseline updates = %d, want %d", b.Updates, total)
			}
			// The baseline delivers every event to every consumer.
			if b.Deliveries.Min != float64(total) || b.Deliveries.Max != float64(total) {
				t.Errorf("baseline events per consumer = %+v, want all %d", b.Deliveries, total)
			}
			if b.Coalesced != 0 {
				t.Errorf("baseline coalesced = %d", b.Coalesced)
			}
			checkSeries(t, "baseline", b.Series, total)
			if want := s.UpdatesPerSec / b.UpdatesPerSec; math.Abs(r.ThroughputRatio-want) > 1e-9*want {
				t.Errorf("ratio = %v, want %v", r.ThroughputRatio, want)
			}
		})
	}
}

func checkSeries(t *testing.T, side string, series []bench.Sample, total uint64) {
	t.Helper()
	if len(series) < 2 {
		t.Fatalf("%s: %d samples", side, len(series))
	}
	for i := 1; i < len(series); i++ {
		a, b := series[i-1], series[i]
		if b.Ms < a.Ms || b.Updates < a.Updates || b.Deliveries < a.Deliveries {
			t.Fatalf("%s: series not cumulative at %d: %+v then %+v", side, i, a, b)
		}
	}
	if last := series[len(series)-1]; last.Updates != total {
		t.Errorf("%s: last sample has %d updates, want %d", side, last.Updates, total)
	}
}

// TestFlapScenarioDeterministic: with a fixed number of updates, what does
// not depend on timing is the same every run.
func TestFlapScenarioDeterministic(t *testing.T) {
	cfg := tinyFlap(true)
	cfg.Subscribers = 5
	var prev *bench.FlapResult
	for range 2 {
		r, err := bench.RunFlap(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if prev != nil {
			if r.Sysreg.Updates != prev.Sysreg.Updates || r.Baseline.Updates != prev.Baseline.Updates ||
				r.Baseline.Deliveries != prev.Baseline.Deliveries {
				t.Errorf("runs differ: %d/%d/%+v then %d/%d/%+v",
					prev.Sysreg.Updates, prev.Baseline.Updates, prev.Baseline.Deliveries,
					r.Sysreg.Updates, r.Baseline.Updates, r.Baseline.Deliveries)
			}
		}
		prev = &r
	}
}

// TestFlapScenarioDuration: with a duration and a rate, the producers stop
// on time and write no faster than asked.
func TestFlapScenarioDuration(t *testing.T) {
	cfg := bench.FlapConfig{
		Producers:   2,
		Subscribers: 5,
		Interval:    10 * time.Millisecond,
		Duration:    200 * time.Millisecond,
		Rate:        500,
		Core:        true,
		NoBaseline:  true,
	}
	r, err := bench.RunFlap(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Baseline != nil {
		t.Error("baseline ran with NoBaseline")
	}
	s := r.Sysreg
	if s.ProduceS < 0.2 || s.ProduceS > 2 {
		t.Errorf("producers wrote for %.3f s, want about 0.2", s.ProduceS)
	}
	if limit := 2 * 500 * s.ProduceS * 1.05; float64(s.Updates) > limit+2 {
		t.Errorf("%d updates in %.3f s at 2×500/s", s.Updates, s.ProduceS)
	}
	if s.Updates == 0 {
		t.Error("no updates")
	}
}

// TestFlapScenarioReuseValues: with ReuseValues the producers pass maps
// built once, the run still ends with every subscriber holding the last
// update (the scenario checks each one's final state), the result says so,
// and the callers' maps no longer show in the bytes allocated per update.
func TestFlapScenarioReuseValues(t *testing.T) {
	run := func(reuse bool) bench.FlapResult {
		t.Helper()
		r, err := bench.RunFlap(t.Context(), bench.FlapConfig{
			Producers: 2, Keys: 3, Subscribers: 20, Interval: 5 * time.Millisecond,
			Updates: 3000, NoBaseline: true, ReuseValues: reuse, Dir: t.TempDir(),
		})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	fresh, reused := run(false), run(true)
	if fresh.ReuseValues || !reused.ReuseValues {
		t.Errorf("ReuseValues in the results: %v, %v; want false, true", fresh.ReuseValues, reused.ReuseValues)
	}
	if got := reused.Sysreg.Updates; got != 2*3000 {
		t.Errorf("%d updates, want 6,000", got)
	}
	// A fresh one-key map is a few hundred bytes; the registry itself
	// allocates a little per run of updates between two publications.
	if f, r := fresh.Sysreg.AllocPerUpdate, reused.Sysreg.AllocPerUpdate; r >= f/2 {
		t.Errorf("bytes allocated per update: %.0f with fresh maps, %.0f reused; want the reused far fewer", f, r)
	}
	// A plot of the reused run says it is not the headline; one of the
	// headline run does not.
	for _, r := range []bench.FlapResult{fresh, reused} {
		var buf bytes.Buffer
		if err := r.WriteSVG(&buf); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(buf.String(), "not the headline"); got != r.ReuseValues {
			t.Errorf("ReuseValues %v: the SVG says 'not the headline': %v", r.ReuseValues, got)
		}
	}
}

func TestDurableScenario(t *testing.T) {
	cfg := bench.DurableConfig{Writers: []int{1, 4}, Updates: 5, Dir: t.TempDir()}
	r, err := bench.RunDurable(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Rows) != 2 {
		t.Fatalf("%d rows", len(r.Rows))
	}
	for _, row := range r.Rows {
		want := uint64(row.Writers * cfg.Updates)
		for name, run := range map[string]*bench.DurableRun{"sysreg": &row.Sysreg, "commit": row.Commit, "batch": row.Batch} {
			if run == nil {
				t.Fatalf("writers=%d: no %s", row.Writers, name)
			}
			if run.Updates != want {
				t.Errorf("writers=%d %s: %d updates, want %d", row.Writers, name, run.Updates, want)
			}
			// Never worse than one fsync per update (R25), never none.
			if run.Fsyncs == 0 || run.Fsyncs > run.Updates {
				t.Errorf("writers=%d %s: %d fsyncs for %d updates", row.Writers, name, run.Fsyncs, run.Updates)
			}
		}
		if row.Commit.Fsyncs != row.Commit.Updates {
			t.Errorf("writers=%d: one commit per update made %d fsyncs for %d updates", row.Writers, row.Commit.Fsyncs, row.Commit.Updates)
		}
		if row.VsBatch <= 0 || row.VsCommit <= 0 {
			t.Errorf("writers=%d: ratios %v, %v", row.Writers, row.VsBatch, row.VsCommit)
		}
	}
}

func TestRecoveryScenario(t *testing.T) {
	cfg := bench.RecoveryConfig{Sizes: []int{1000, 300}, Keys: 200, Opens: 2, Writers: 8, Dir: t.TempDir()}
	r, err := bench.RunRecovery(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Rows) != 2 || r.Rows[0].Updates != 300 || r.Rows[1].Updates != 1000 {
		t.Fatalf("rows %+v, want sizes 300 and 1000 in order", r.Rows)
	}
	for _, row := range r.Rows {
		if row.RestoredKeys != cfg.Keys {
			t.Errorf("%d updates: %d keys restored, want %d", row.Updates, row.RestoredKeys, cfg.Keys)
		}
		// Without a checkpoint (fewer than 10,000 records) every record
		// is replayed.
		if row.Replayed != row.Updates || row.CheckpointKeys != 0 {
			t.Errorf("%d updates: %d replayed, checkpoint of %d keys", row.Updates, row.Replayed, row.CheckpointKeys)
		}
		if row.OpenMs.P50 <= 0 || row.DirBytes <= 0 {
			t.Errorf("%d updates: open %v ms, %d bytes", row.Updates, row.OpenMs.P50, row.DirBytes)
		}
	}
}

func TestDaemonScenario(t *testing.T) {
	cfg := bench.DaemonConfig{
		Pipeline:     4,
		Conns:        2,
		Updates:      50,
		RoundTrips:   50,
		Subscribers:  30,
		SubConns:     3,
		Interval:     20 * time.Millisecond,
		FlapDuration: 100 * time.Millisecond,
	}
	r, err := bench.RunDaemon(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.OneConn.Updates != 4*50 || r.OneConn.Conns != 1 {
		t.Errorf("one connection: %+v, want 200 updates", r.OneConn)
	}
	if r.ManyConns.Updates != 2*4*50 || r.ManyConns.Conns != 2 {
		t.Errorf("two connections: %+v, want 400 updates", r.ManyConns)
	}
	if r.RoundTrips != 50 || r.RoundTripUs.P50 <= 0 || r.RoundTripUs.P99 < r.RoundTripUs.P50 {
		t.Errorf("round trips: %d, %+v", r.RoundTrips, r.RoundTripUs)
	}
	s := r.Subscribers
	if s.Subscribers != 30 || s.Updates == 0 {
		t.Errorf("subscribers: %+v", s)
	}
	if limit := math.Floor(s.Windows) + 1; s.Deliveries.Max > limit || s.Deliveries.Min < 1 {
		t.Errorf("remote deliveries %+v in %.2f windows", s.Deliveries, s.Windows)
	}
}

// TestResultJSONScenario: the JSON of each result has the documented
// fields.
func TestResultJSONScenario(t *testing.T) {
	cases := []struct {
		v    any
		keys []string
	}{
		{bench.FlapResult{Baseline: &bench.FlapRun{}}, []string{
			"target", "producers", "keys_per_producer", "subscribers", "interval_ms", "duration_s",
			"rate_per_producer", "work_us", "baseline_buffer", "sysreg", "baseline", "throughput_ratio",
			"sysreg.updates", "sysreg.produce_s", "sysreg.updates_per_s", "sysreg.deliveries_per_sub.mean",
			"sysreg.deliveries_per_sub.min", "sysreg.deliveries_per_sub.max", "sysreg.windows",
			"sysreg.coalesced", "sysreg.coalesced_fraction", "sysreg.converge_ms.p50", "sysreg.converge_ms.p99",
			"sysreg.converge_ms.max", "sysreg.peak_heap_bytes", "sysreg.heap_bytes_per_sub", "sysreg.cpu_s",
			"sysreg.series", "baseline.updates_per_s",
		}},
		{bench.DurableResult{Rows: []bench.DurableRow{{Commit: &bench.DurableRun{}, Batch: &bench.DurableRun{}}}}, []string{
			"duration_s", "rows",
		}},
		{bench.DurableRow{Commit: &bench.DurableRun{}, Batch: &bench.DurableRun{}}, []string{
			"writers", "sysreg.updates", "sysreg.updates_per_s", "sysreg.fsyncs", "sysreg.fsyncs_per_update",
			"sysreg.latency_us.p99", "bbolt_commit.updates_per_s", "bbolt_batch.fsyncs_per_update",
			"x_commit", "x_batch",
		}},
		{bench.RecoveryRow{}, []string{
			"updates", "open_ms.p50", "recovery_ms", "records_replayed", "checkpoint_keys", "restored_keys", "dir_bytes", "build_s",
		}},
		{bench.DaemonResult{}, []string{
			"one_conn.updates_per_s", "one_conn.conns", "one_conn.goroutines_per_conn", "many_conns.updates_per_s",
			"round_trip_us.p50", "round_trip_us.p99", "round_trips", "remote_subscribers.converge_ms.max",
			"remote_subscribers.deliveries_per_sub.mean", "remote_subscribers.windows", "remote_subscribers.updates_per_s",
		}},
	}
	for _, c := range cases {
		data, err := json.Marshal(c.v)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range c.keys {
			var cur any = m
			for _, part := range strings.Split(k, ".") {
				obj, ok := cur.(map[string]any)
				if !ok {
					cur = nil
					break
				}
				cur, ok = obj[part]
				if !ok {
					t.Errorf("%T: no field %q in %s", c.v, k, data)
					break
				}
			}
		}
	}
}

// TestFlapSVGScenario: the plot is well-formed XML with both lines, the
// axes' labels and a legend.
func TestFlapSVGScenario(t *testing.T) {
	r, err := bench.RunFlap(t.Context(), tinyFlap(true))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := r.WriteSVG(&buf); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(buf.Bytes()))
	lines := 0
	var text strings.Builder
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not XML: %v\n%s", err, buf.Bytes())
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if tok.Name.Local == "polyline" {
				lines++
			}
		case xml.CharData:
			text.Write(tok)
		}
	}
	if lines != 4 { // two panels × (sysreg, baseline)
		t.Errorf("%d polylines, want 4", lines)
	}
	for _, want := range []string{"time since the producers started", "Deliveries per subscriber", "Producer updates", "sysreg", "naive"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("SVG text lacks %q", want)
		}
	}
}

// TestWearScenario: RunWear measures every side and writes fewer page
// bytes per update with 64 writers than with one (group commit, R25).
func TestWearScenario(t *testing.T) {
	cfg := bench.WearConfig{
		Updates: 64, Writers: []int{1, 8}, CheckpointRecords: 200, CheckpointKeys: 50,
		Day: bench.DayMix{Hours: 0.5, ConfigPerMinute: 1, StatePerSecond: 1, SessionsPerHour: 4, ConfigKeys: 10},
		Dir: t.TempDir(),
	}
	r, err := bench.RunWear(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Rows) != 2 {
		t.Fatalf("%d rows", len(r.Rows))
	}
	for _, row := range r.Rows {
		for name, run := range map[string]bench.DurableRun{"sysreg": row.Sysreg, "bbolt": row.Bolt} {
			if run.Updates != 64 || run.PageBytes <= 0 {
				t.Errorf("writers=%d %s: %d updates, %d page bytes", row.Writers, name, run.Updates, run.PageBytes)
			}
			if r.Supported && run.WriteBytes <= 0 {
				t.Errorf("writers=%d %s: no write_bytes", row.Writers, name)
			}
		}
	}
	if r.Rows[1].Sysreg.PageBytesPerUpdate >= r.Rows[0].Sysreg.PageBytesPerUpdate {
		t.Errorf("8 writers %.0f page B/update, one writer %.0f", r.Rows[1].Sysreg.PageBytesPerUpdate, r.Rows[0].Sysreg.PageBytesPerUpdate)
	}
	c := r.Checkpoint
	if c.DataBytes <= 0 || c.Sysreg.CheckpointPageBytes <= c.DataBytes || c.Sysreg.PageBytes <= c.Sysreg.CheckpointPageBytes || c.Bolt.PageBytes <= 0 {
		t.Errorf("checkpoint cycle %+v", c)
	}
	d := r.Day
	// Half an hour: 30 config updates and 2 sessions (a record each for
	// the update and the owner's death), scaled to 24 h.
	if d.ConfigUpdates != 30*48 || d.Sessions != 2*48 || d.Records != (30+4)*48 {
		t.Errorf("day: %d config updates, %d sessions, %d records", d.ConfigUpdates, d.Sessions, d.Records)
	}
	if d.Sysreg.PageBytes <= 0 || d.Bolt.PageBytes <= 0 || d.CheckpointPageBytes <= 0 {
		t.Errorf("day: %+v", d)
	}
}

// TestFlapSweepScenario: a sweep runs every point beside the bare
// producers, with the counts and ratios consistent, and draws it as SVG
// (R36: each figure beside its baseline).
func TestFlapSweepScenario(t *testing.T) {
	cfg := bench.FlapSweepConfig{Flap: tinyFlap(true), Subscribers: []int{5, 50}}
	r, err := bench.RunFlapSweep(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Points) != 2 {
		t.Fatalf("%d points, want 2", len(r.Points))
	}
	total := uint64(cfg.Flap.Producers * cfg.Flap.Updates)
	for i, pt := range r.Points {
		if pt.Subscribers != cfg.Subscribers[i] || pt.IntervalMs != 100 {
			t.Errorf("point %d: %d subscribers @%v ms, want %d @100 ms", i, pt.Subscribers, pt.IntervalMs, cfg.Subscribers[i])
		}
		if pt.Bare.Updates != total || pt.Subs.Updates != total {
			t.Errorf("point %d: updates bare %d, subs %d, want %d", i, pt.Bare.Updates, pt.Subs.Updates, total)
		}
		if pt.Bare.Deliveries.Max != 0 || pt.Subs.Deliveries.Min < 1 {
			t.Errorf("point %d: deliveries bare %+v, subs %+v", i, pt.Bare.Deliveries, pt.Subs.Deliveries)
		}
		if want := pt.Subs.UpdatesPerSec / pt.Bare.UpdatesPerSec; math.Abs(pt.VsBare-want) > 1e-9 || pt.Subs.UpdatesPerCPUSec <= 0 {
			t.Errorf("point %d: vs bare %v, want %v; per CPU-s %v", i, pt.VsBare, want, pt.Subs.UpdatesPerCPUSec)
		}
		if pt.Subs.Series != nil {
			t.Errorf("point %d keeps its series", i)
		}
	}
	if bench.SweepInterval(100_000) != time.Second || bench.SweepInterval(10_000) != 100*time.Millisecond {
		t.Error("SweepInterval: want 1 s at 100,000 subscribers, 100 ms below")
	}
	var buf bytes.Buffer
	if err := r.WriteSVG(&buf); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(buf.Bytes()))
	lines := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not XML: %v\n%s", err, buf.Bytes())
		}
		if el, ok := tok.(xml.StartElement); ok && el.Name.Local == "polyline" {
			lines++
		}
	}
	if lines != 4 { // two panels × two lines
		t.Errorf("%d polylines, want 4", lines)
	}
	if _, err := bench.RunFlapSweep(t.Context(), bench.FlapSweepConfig{Flap: tinyFlap(true), Subscribers: []int{0}}); err == nil {
		t.Error("a sweep point of 0 subscribers was accepted")
	}
}

// TestFleetScenario: a small fleet run measures every figure, and reported
// writes stay within one per interval per device (R53, R54).
func TestFleetScenario(t *testing.T) {
	r, err := bench.RunFleet(t.Context(), bench.FleetConfig{
		URL:      natsURL(t),
		Devices:  20,
		Pushes:   2,
		Interval: 200 * time.Millisecond,
		FlapFor:  time.Second,
		LocalFor: 100 * time.Millisecond,
		Rounds:   1,
		Timeout:  30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", r)
	if !bench.InProcessNATS {
		// The appliance build: no URL is a clear error, not a server.
		if _, err := bench.RunFleet(t.Context(), bench.FleetConfig{Devices: 1}); !errors.Is(err, bench.ErrNoNATS) {
			t.Errorf("no URL, no in-process server: %v, want ErrNoNATS", err)
		}
	}
	if r.PushMs.Max <= 0 || r.LocalOn <= 0 || r.LocalOff <= 0 || r.FlapUpdatesPerDeviceSec <= 0 {
		t.Errorf("missing figures: %+v", r)
	}
	// One write per interval per device, plus the leading one: 6 in 1 s.
	if limit := 6.0; r.ReportedWritesPerDeviceSec > limit {
		t.Errorf("%.1f reported writes per device per second, want ≤ %.1f", r.ReportedWritesPerDeviceSec, limit)
	}
}
