package store

import (
	"context"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/fleet"
)

// FleetOptions connects a store to a fleet over NATS JetStream (R53):
// desired config from the KV bucket sysreg_desired goes into the fleet
// layer (R37), the effective view goes to sysreg_reported. See the README's
// "Fleets" for the buckets, keys and what a device does offline.
type FleetOptions struct {
	// URL of the NATS server(s), comma separated ("nats://host:4222").
	URL string
	// Device is this device's ID: non-empty UTF-8 without NUL; "all" is
	// reserved for the whole fleet.
	Device string
	// Interval is the reported-state interval: at most one write per
	// changed scope per interval. 0: 1 s.
	Interval time.Duration
	// CredsFile is a NATS credentials file (JWT and seed). "": none.
	CredsFile string
	// ReconnectWait is the pause between reconnect attempts. 0: 2 s.
	ReconnectWait time.Duration
	// Timeout bounds each NATS request and dial. 0: 5 s.
	Timeout time.Duration
	// DesiredBucket and ReportedBucket name the KV buckets. "":
	// sysreg_desired and sysreg_reported.
	DesiredBucket, ReportedBucket string
}

// FleetStatus is the fleet bridge's state in Stats (R53).
type FleetStatus struct {
	Device    string `json:"device"`
	Connected bool   `json:"connected"`
	// Connects counts successful connections, the first one included.
	Connects uint64 `json:"connects"`
	// LastSync is when the fleet layer last matched the desired bucket.
	LastSync time.Time `json:"last_sync"`
	// DesiredRevision is the revision of sysreg_desired that the fleet
	// layer reflects (journaled with it).
	DesiredRevision uint64 `json:"desired_revision"`
	// Applied counts fleet-layer mutations since Open.
	Applied uint64 `json:"applied"`
	// ReportedSeq is the sequence number of the view last written in full
	// to sysreg_reported; ReportedLagSeconds how long the bucket has been
	// behind the view (0: in sync).
	ReportedSeq        uint64  `json:"reported_seq"`
	ReportedLagSeconds float64 `json:"reported_lag_seconds"`
	// ReportedWrites counts puts and deletes in sysreg_reported.
	ReportedWrites uint64 `json:"reported_writes"`
	// Refused lists the desired keys whose value is refused (R2), with why.
	Refused []FleetRefusal `json:"refused,omitempty"`
	// LastError is the last error talking to NATS or applying.
	LastError string `json:"last_error,omitempty"`
}

// FleetRefusal is a desired value the bridge did not apply.
type FleetRefusal struct {
	Key      string `json:"key"`
	Revision uint64 `json:"revision"`
	Reason   string `json:"reason"`
}

// fleetRevision is the fleet-layer scope in which the store journals the
// desired revision the layer was applied at, in the same mutation as the
// layer (R53): config/sysreg/fleet {"revision": N}. It shows in the view
// and so is reported back: an operator sees per device which revision it
// holds. The bridge refuses desired keys for this scope.
var fleetRevision = fleet.RevisionScope

// startFleet starts the bridge of opts on s.
func (s *Store) startFleet(opts *FleetOptions) error {
	b, err := fleet.Start(fleetTarget{s}, fleet.Options{
		URL:            opts.URL,
		Device:         opts.Device,
		Interval:       opts.Interval,
		CredsFile:      opts.CredsFile,
		ReconnectWait:  opts.ReconnectWait,
		Timeout:        opts.Timeout,
		DesiredBucket:  opts.DesiredBucket,
		ReportedBucket: opts.ReportedBucket,
		MaxValueBytes:  s.maxBytes,
		Logger:         s.logger.Named("fleet"),
	})
	if err != nil {
		return err
	}
	s.fleet = b
	return nil
}

// fleetStatus is the bridge's status for Stats; nil without a bridge.
func (s *Store) fleetStatus() *FleetStatus {
	if s.fleet == nil {
		return nil
	}
	st := s.fleet.Status()
	out := &FleetStatus{
		Device:             st.Device,
		Connected:          st.Connected,
		Connects:           st.Connects,
		LastSync:           st.LastSync,
		DesiredRevision:    st.DesiredRevision,
		Applied:            st.Applied,
		ReportedSeq:        st.ReportedSeq,
		ReportedLagSeconds: st.ReportedLag.Seconds(),
		ReportedWrites:     st.ReportedWrites,
		LastError:          st.LastError,
	}
	for _, r := range st.Refused {
		out.Refused = append(out.Refused, FleetRefusal(r))
	}
	return out
}

// fleetTarget is the store as the bridge's Target: the registry's view and
// its fleet layer.
type fleetTarget struct{ s *Store }

func (t fleetTarget) Subscribe(ctx context.Context, opts core.SubscribeOptions) (fleet.Subscription, error) {
	sub, err := t.s.reg.Subscribe(ctx, opts)
	if err != nil {
		return nil, err
	}
	return sub, nil
}

func (t fleetTarget) FleetState(context.Context) (fleet.State, error) {
	snap := t.s.reg.Snapshot()
	var st fleet.State
	for _, sc := range snap.LayerScopes(core.Fleet) {
		vals := snap.LayerValues(core.Fleet, sc)
		if sc == fleetRevision {
			st.Revision, _ = vals["revision"].(uint64)
			continue
		}
		st.Scopes = append(st.Scopes, fleet.ScopeValues{Scope: sc, Values: vals})
	}
	return st, nil
}

func (t fleetTarget) ApplyFleet(ctx context.Context, rev uint64, scopes []fleet.ScopeValues) error {
	m := make(map[core.Scope]core.Values, len(scopes)+1)
	for _, sv := range scopes {
		m[sv.Scope] = sv.Values
	}
	m[fleetRevision] = core.Values{"revision": rev}
	return t.s.reg.SetFleet(ctx, m)
}
