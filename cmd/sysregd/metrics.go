package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sysreg/sysreg/store"
)

// Metrics (R50): a Prometheus collector that reads the counters the store
// and the server keep (store.Stats, store.ServerStats) at each scrape. The
// registry never imports Prometheus, and nothing here runs on the write
// path: a scrape costs one Stats call.

// metric is one series: its description and how to read it.
type metric struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value func(st *store.Stats, srv *store.ServerStats) float64
}

func newMetric(name, help string, typ prometheus.ValueType, labels prometheus.Labels,
	value func(st *store.Stats, srv *store.ServerStats) float64) metric {
	return metric{prometheus.NewDesc("sysreg_"+name, help, nil, labels), typ, value}
}

// collector is sysregd's prometheus.Collector.
type collector struct {
	st      *store.Store
	srv     *store.Server
	metrics []metric
	fleet   []metric // only when the store runs a fleet bridge
	hists   []hist
}

// hist is one histogram series, read from a store.Histogram.
type hist struct {
	desc  *prometheus.Desc
	value func(st *store.Stats) store.Histogram
}

func newCollector(st *store.Store, srv *store.Server) *collector {
	c, g := prometheus.CounterValue, prometheus.GaugeValue
	bucket := func(b string) prometheus.Labels { return prometheus.Labels{"bucket": b} }
	h := func(name, help string, value func(st *store.Stats) store.Histogram) hist {
		return hist{prometheus.NewDesc("sysreg_"+name, help, nil, nil), value}
	}
	return &collector{st: st, srv: srv,
		hists: []hist{
			h("journal_append_seconds", "Time from a config mutation's journal append to its outcome: queueing, the group commit and its fsync.",
				func(st *store.Stats) store.Histogram { return st.Append }),
			h("journal_fsync_seconds", "Disk time of each journal commit: its page writes and two fdatasyncs (R25).",
				func(st *store.Stats) store.Histogram { return st.Journal.Fsync }),
			h("journal_batch_size", "Operations per group-commit batch (R25).",
				func(st *store.Stats) store.Histogram { return st.Journal.Batch }),
			h("checkpoint_seconds", "Time of each checkpoint, from the request to durable (R28).",
				func(st *store.Stats) store.Histogram { return st.Journal.CheckpointTime }),
		},
		metrics: []metric{
			newMetric("seq", "The last sequence number handed out (R7).", g, nil,
				func(st *store.Stats, _ *store.ServerStats) float64 { return float64(st.Seq) }),
			newMetric("mutations_total", "Effective mutations since start, per bucket they changed (a failed journal append never counts).", c, bucket("config"),
				func(st *store.Stats, _ *store.ServerStats) float64 { return float64(st.ConfigMutations) }),
			newMetric("mutations_total", "Effective mutations since start, per bucket they changed (a failed journal append never counts).", c, bucket("state"),
				func(st *store.Stats, _ *store.ServerStats) float64 { return float64(st.StateMutations) }),
			newMetric("pending_applies", "Applied changes waiting for confirmation or their deadline (R44).", g, nil,
				func(st *store.Stats, _ *store.ServerStats) float64 { return float64(st.PendingApplies) }),
			newMetric("keys", "Keys in the view, per bucket.", g, bucket("state"),
				func(st *store.Stats, _ *store.ServerStats) float64 { return float64(st.StateKeys) }),
			newMetric("keys", "Keys in the view, per bucket.", g, bucket("config"),
				func(st *store.Stats, _ *store.ServerStats) float64 { return float64(st.ConfigKeys) }),
			newMetric("owners", "Owner names that hold keys.", g, nil,
				func(st *store.Stats, _ *store.ServerStats) float64 { return float64(st.Owners) }),
			newMetric("sessions", "Live owner sessions.", g, nil,
				func(st *store.Stats, _ *store.ServerStats) float64 { return float64(st.Sessions) }),
			newMetric("subscribers", "Live subscriptions.", g, nil,
				func(st *store.Stats, _ *store.ServerStats) float64 { return float64(st.Subscriptions) }),
			newMetric("deliveries_total", "Snapshots handed to subscriptions (R16).", c, nil,
				func(st *store.Stats, _ *store.ServerStats) float64 { return float64(st.Deliveries) }),
			newMetric("coalesced_total", "Undelivered snapshots replaced by a newer one (R19).", c, nil,
				func(st *store.Stats, _ *store.ServerStats) float64 { return float64(st.Coalesced) }),
			newMetric("journal_appends_total", "Journal appends (config mutations) since start.", c, nil,
				func(st *store.Stats, _ *store.ServerStats) float64 { return float64(st.Journal.Appends) }),
			newMetric("journal_commits_total", "Journal commits since start, one fsync pair each (R25).", c, nil,
				func(st *store.Stats, _ *store.ServerStats) float64 { return float64(st.Journal.Commits) }),
			newMetric("journal_batches_total", "Group-commit batches since start.", c, nil,
				func(st *store.Stats, _ *store.ServerStats) float64 { return float64(st.Journal.Batches) }),
			newMetric("journal_batch_max", "Most operations in one group-commit batch since start.", g, nil,
				func(st *store.Stats, _ *store.ServerStats) float64 { return float64(st.Journal.MaxBatch) }),
			newMetric("journal_records", "Journal records after the last checkpoint.", g, nil,
				func(st *store.Stats, _ *store.ServerStats) float64 { return float64(st.Journal.Records) }),
			newMetric("journal_file_bytes", "Size of the journal file.", g, nil,
				func(st *store.Stats, _ *store.ServerStats) float64 { return float64(st.Journal.FileSize) }),
			newMetric("journal_written_bytes_total", "Bytes the journal's commits wrote (pages and meta pages) since start.", c, nil,
				func(st *store.Stats, _ *store.ServerStats) float64 { return float64(st.Journal.PageBytes) }),
			newMetric("checkpoints_total", "Checkpoints written since start (R28).", c, nil,
				func(st *store.Stats, _ *store.ServerStats) float64 { return float64(st.Journal.Checkpoints) }),
			newMetric("recovery_seconds", "Time the last startup took to recover the config (R27).", g, nil,
				func(st *store.Stats, _ *store.ServerStats) float64 { return st.Recovery.Elapsed.Seconds() }),
			newMetric("recovery_records", "Journal records the last startup replayed.", g, nil,
				func(st *store.Stats, _ *store.ServerStats) float64 { return float64(st.Recovery.Records) }),
			newMetric("connections", "Open client connections.", g, nil,
				func(_ *store.Stats, srv *store.ServerStats) float64 { return float64(srv.Connections) }),
			newMetric("connections_total", "Client connections accepted since start.", c, nil,
				func(_ *store.Stats, srv *store.ServerStats) float64 { return float64(srv.ConnsTotal) }),
			newMetric("requests_total", "Requests served since start.", c, nil,
				func(_ *store.Stats, srv *store.ServerStats) float64 { return float64(srv.Requests) }),
			newMetric("remote_deliveries_total", "Snapshots pushed to remote subscribers.", c, nil,
				func(_ *store.Stats, srv *store.ServerStats) float64 { return float64(srv.Deliveries) }),
			newMetric("rejected_frames_total", "Malformed, oversized or unknown frames (R34).", c, nil,
				func(_ *store.Stats, srv *store.ServerStats) float64 { return float64(srv.BadFrames) }),
			newMetric("slow_clients_total", "Clients disconnected for not reading (R51).", c, nil,
				func(_ *store.Stats, srv *store.ServerStats) float64 { return float64(srv.SlowClients) }),
			newMetric("lagging_subscribers_total", "Deliveries, embedded or remote, found untaken past the subscriber's lag threshold (R51).", c, nil,
				func(st *store.Stats, _ *store.ServerStats) float64 { return float64(st.LaggingSubscribers) }),
			newMetric("lagging_deliveries_total", "Deliveries that waited past the subscriber's lag threshold (R51).", c, nil,
				func(_ *store.Stats, srv *store.ServerStats) float64 { return float64(srv.LaggingPushes) }),
			newMetric("bound_owners", "Owner names bound to a uid (R35).", g, nil,
				func(_ *store.Stats, srv *store.ServerStats) float64 { return float64(srv.BoundOwnerUIDs) }),
		},
		fleet: []metric{
			newMetric("fleet_connected", "1 while the fleet bridge is connected to NATS (R53).", g, nil,
				func(st *store.Stats, _ *store.ServerStats) float64 { return boolValue(st.Fleet.Connected) }),
			newMetric("fleet_connects_total", "Connections of the fleet bridge, the first one included.", c, nil,
				func(st *store.Stats, _ *store.ServerStats) float64 { return float64(st.Fleet.Connects) }),
			newMetric("fleet_last_sync_timestamp_seconds", "When the fleet layer last matched the desired bucket (Unix time; 0: never).", g, nil,
				func(st *store.Stats, _ *store.ServerStats) float64 {
					if st.Fleet.LastSync.IsZero() {
						return 0
					}
					return float64(st.Fleet.LastSync.UnixNano()) / 1e9
				}),
			newMetric("fleet_desired_revision", "Revision of sysreg_desired that the fleet layer reflects.", g, nil,
				func(st *store.Stats, _ *store.ServerStats) float64 { return float64(st.Fleet.DesiredRevision) }),
			newMetric("fleet_applied_total", "Fleet-layer mutations applied by the bridge.", c, nil,
				func(st *store.Stats, _ *store.ServerStats) float64 { return float64(st.Fleet.Applied) }),
			newMetric("fleet_reported_lag_seconds", "How long sysreg_reported has been behind the view (0: in sync).", g, nil,
				func(st *store.Stats, _ *store.ServerStats) float64 { return st.Fleet.ReportedLagSeconds }),
			newMetric("fleet_reported_writes_total", "Puts and deletes written to sysreg_reported.", c, nil,
				func(st *store.Stats, _ *store.ServerStats) float64 { return float64(st.Fleet.ReportedWrites) }),
			newMetric("fleet_refused", "Desired keys whose value is refused now (R2).", g, nil,
				func(st *store.Stats, _ *store.ServerStats) float64 { return float64(len(st.Fleet.Refused)) }),
		}}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.metrics {
		ch <- m.desc
	}
	for _, m := range c.fleet {
		ch <- m.desc
	}
	for _, h := range c.hists {
		ch <- h.desc
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st, _ := c.st.Stats(context.Background()) // its error is only the ctx's
	srv := c.srv.Stats()
	for _, m := range c.metrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.typ, m.value(&st, &srv))
	}
	if st.Fleet != nil {
		for _, m := range c.fleet {
			ch <- prometheus.MustNewConstMetric(m.desc, m.typ, m.value(&st, &srv))
		}
	}
	for _, h := range c.hists {
		v := h.value(&st)
		ch <- prometheus.MustNewConstHistogram(h.desc, v.Count, v.Sum, v.Cumulative())
	}
}

// serveMetrics serves /metrics on addr until ctx ends; it returns the
// listening address (addr may have port 0) and a stop function.
func serveMetrics(addr string, col *collector, logger hclog.Logger) (net.Addr, func(), error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(col); err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: errorLogger{logger}}))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics server failed", "error", err)
		}
	}()
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(ctx)
		<-done
	}
	return ln.Addr(), stop, nil
}

// errorLogger is promhttp's error log on hclog.
type errorLogger struct{ log hclog.Logger }

func (l errorLogger) Println(v ...any) { l.log.Warn("metrics", "error", v) }
