package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/codec"
	"github.com/sysreg/sysreg/internal/fleet"
	"github.com/sysreg/sysreg/internal/fleet/fleettest"
)

// TestServeFleet: "sysregd serve --fleet URL --device ID" joins a fleet
// on an in-process NATS server: a fleet-wide push shows up in "get" as
// fleet-layer config, the device's view is reported, and stats and the
// metrics carry the bridge's state (R53).
func TestServeFleet(t *testing.T) {
	srv, err := fleettest.NewServer(t.TempDir())
	must(t, err)
	t.Cleanup(srv.Stop)
	nc, err := nats.Connect(srv.URL())
	must(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	must(t, err)
	desired, err := js.CreateOrUpdateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: fleet.DesiredBucket})
	must(t, err)
	reported, err := js.CreateOrUpdateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: fleet.ReportedBucket})
	must(t, err)

	d := startDaemon(t, t.TempDir(), "--fleet", srv.URL(), "--device", "dev 1", "--fleet-interval", "100ms", "--metrics", "127.0.0.1:0")
	data, err := codec.EncodeValues(core.Values{"server": "pool.ntp.org"})
	must(t, err)
	_, err = desired.Put(t.Context(), fleet.DesiredKey(fleet.AllDevices, "ntp", "main"), data)
	must(t, err)
	poll(t, 20*time.Second, "the push in get", func() bool {
		r := cli(t, d.socket, "get", "config/ntp/main", "server")
		return r.code == 0 && strings.TrimSpace(r.stdout) == "pool.ntp.org"
	})
	// The device reports its view, the pushed config included.
	poll(t, 20*time.Second, "the reported config", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		e, err := reported.Get(ctx, fleet.ReportedKey("dev 1", core.ConfigScope("ntp", "main")))
		return err == nil && string(e.Value()) == string(data)
	})
	st, err := d.dial(t).Stats(t.Context())
	must(t, err)
	if f := st.Fleet; f == nil || !f.Connected || f.Device != "dev 1" || f.DesiredRevision == 0 {
		t.Errorf("stats fleet = %+v", st.Fleet)
	}
	m := regexp.MustCompile(`metrics listening: addr=(\S+)`).FindStringSubmatch(d.stderr.String())
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", d.stderr)
	}
	fams := scrape(t, d, m[1])
	if v := value(fams, "sysreg_fleet_connected"); v != 1 {
		t.Errorf("sysreg_fleet_connected = %v, want 1", v)
	}
	if v := value(fams, "sysreg_fleet_desired_revision"); v <= 0 {
		t.Errorf("sysreg_fleet_desired_revision = %v", v)
	}
	d.stop()
}

// TestServeFleetUsage: fleet flags that cannot work are usage errors (exit
// 2) before anything starts.
func TestServeFleetUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--fleet", "nats://127.0.0.1:4222"},
		{"--device", "d1"},
		{"--fleet-creds", "x.creds"},
		{"--fleet", "nats://127.0.0.1:4222", "--device", "d1", "--fleet-interval", "0s"},
	} {
		r := cli(t, shortSocket(t), append([]string{"serve", "--data-dir", t.TempDir()}, args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, "--") {
			t.Errorf("serve %q: want usage error 2: %s", args, r)
		}
	}
	// A reserved device ID fails the start with a clear error.
	r := cli(t, shortSocket(t), "serve", "--data-dir", t.TempDir(), "--fleet", "nats://127.0.0.1:1", "--device", "all")
	if r.code != 1 || !strings.Contains(r.stderr, "reserved") {
		t.Errorf("serve --device all: %s", r)
	}
}
