package main

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sysreg/sysreg/core"
)

// scrape fetches /metrics and parses it with the Prometheus text parser.
func scrape(t *testing.T, d *daemon, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("%v; daemon log:\n%s", err, d.stderr)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the exposition does not parse: %v", err)
	}
	return fams
}

// value is the value of the series of name with the given label pairs.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// TestMetrics: serve --metrics exposes the R50 series, every name starting
// with sysreg_, in a form the Prometheus text parser reads; under load the
// counters move, the histogram fills and scrapes do not block writers.
func TestMetrics(t *testing.T) {
	d := startDaemon(t, t.TempDir(), "--metrics", "127.0.0.1:0")
	m := regexp.MustCompile(`metrics listening: addr=(\S+)`).FindStringSubmatch(d.stderr.String())
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", d.stderr)
	}
	addr := m[1]
	before := scrape(t, d, addr)
	for name := range before {
		if !strings.HasPrefix(name, "sysreg_") {
			t.Errorf("metric %s does not start with sysreg_ (R50)", name)
		}
	}
	for _, name := range []string{"sysreg_mutations_total", "sysreg_deliveries_total", "sysreg_coalesced_total",
		"sysreg_subscribers", "sysreg_owners", "sysreg_sessions", "sysreg_connections", "sysreg_rejected_frames_total",
		"sysreg_journal_append_seconds", "sysreg_journal_commits_total", "sysreg_journal_batch_max",
		"sysreg_journal_file_bytes", "sysreg_recovery_seconds", "sysreg_checkpoints_total", "sysreg_slow_clients_total",
		"sysreg_journal_fsync_seconds", "sysreg_journal_batch_size", "sysreg_checkpoint_seconds", "sysreg_pending_applies"} {
		if before[name] == nil {
			t.Errorf("no %s (R50)", name)
		}
	}
	for _, name := range []string{"sysreg_journal_append_seconds", "sysreg_journal_fsync_seconds", "sysreg_journal_batch_size", "sysreg_checkpoint_seconds"} {
		if before[name].GetType() != dto.MetricType_HISTOGRAM {
			t.Errorf("%s is a %v", name, before[name].GetType())
		}
	}

	// Load: config writers, a flapping state writer and subscribers, while
	// scrapes run.
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	c := d.dial(t)
	for w := range 4 {
		o, err := c.Owner(t.Context(), fmt.Sprint("w", w), core.OwnerOptions{KeepConfig: true})
		must(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				if err := o.Update(ctx, core.ConfigScope("m", fmt.Sprint(w)), core.Values{"i": i}); err != nil && ctx.Err() == nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				if err := o.Update(ctx, core.StateScope("m", fmt.Sprint(w)), core.Values{"i": i}); err != nil && ctx.Err() == nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		}()
	}
	for range 3 {
		sub, err := c.Subscribe(t.Context(), core.SubscribeOptions{MinInterval: 10 * time.Millisecond})
		must(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				select {
				case <-sub.C():
				case <-ctx.Done():
				}
			}
		}()
	}
	var after map[string]*dto.MetricFamily
	poll(t, 20*time.Second, "the counters to move", func() bool {
		after = scrape(t, d, addr)
		return value(after, "sysreg_journal_append_seconds") > 100 && value(after, "sysreg_deliveries_total") > 6 &&
			value(after, "sysreg_remote_deliveries_total") > 6
	})
	cancel()
	wg.Wait()
	for _, name := range []string{"sysreg_journal_appends_total", "sysreg_journal_commits_total", "sysreg_requests_total",
		"sysreg_journal_fsync_seconds", "sysreg_journal_batch_size"} {
		if value(after, name) <= value(before, name) {
			t.Errorf("%s did not move: %v → %v", name, value(before, name), value(after, name))
		}
	}
	for _, b := range []string{"state", "config"} {
		if value(after, "sysreg_mutations_total", "bucket", b) <= value(before, "sysreg_mutations_total", "bucket", b) {
			t.Errorf("%s mutations did not move", b)
		}
	}
	// Every commit is timed, every batch counted (R50); once the load has
	// stopped (a sequence reservation may still be committing) they agree.
	poll(t, 10*time.Second, "fsync and batch observations to match commits and batches", func() bool {
		f := scrape(t, d, addr)
		return value(f, "sysreg_journal_fsync_seconds") == value(f, "sysreg_journal_commits_total") &&
			value(f, "sysreg_journal_batch_size") == value(f, "sysreg_journal_batches_total")
	})
	if value(after, "sysreg_subscribers") != 3 || value(after, "sysreg_owners") != 4 || value(after, "sysreg_keys", "bucket", "config") != 4 {
		t.Errorf("gauges: subscribers %v owners %v config keys %v", value(after, "sysreg_subscribers"),
			value(after, "sysreg_owners"), value(after, "sysreg_keys", "bucket", "config"))
	}
	h := after["sysreg_journal_append_seconds"].Metric[0].Histogram
	if len(h.Bucket) != 15 || h.GetSampleSum() <= 0 || h.Bucket[len(h.Bucket)-1].GetCumulativeCount() != h.GetSampleCount() ||
		h.Bucket[0].GetCumulativeCount() > h.Bucket[13].GetCumulativeCount() { // 14 bounds and +Inf, cumulative
		t.Errorf("append histogram: %v", h)
	}
}
