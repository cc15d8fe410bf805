package fleet_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/codec"
	"github.com/sysreg/sysreg/internal/fleet"
	"github.com/sysreg/sysreg/internal/fleet/fleettest"
	"github.com/sysreg/sysreg/store"
)

// startServer starts an in-process NATS server with JetStream in a temp dir
// on a random loopback port (R54); it stops with the test.
func startServer(t testing.TB) *fleettest.Server {
	t.Helper()
	s, err := fleettest.NewServer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// admin is the fleet operator's side: a plain client of the two buckets.
type admin struct {
	nc                *nats.Conn
	desired, reported jetstream.KeyValue
}

func newAdmin(t testing.TB, url string) *admin {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	a := &admin{nc: nc}
	ctx := t.Context()
	if a.desired, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: fleet.DesiredBucket}); err != nil {
		t.Fatal(err)
	}
	if a.reported, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: fleet.ReportedBucket}); err != nil {
		t.Fatal(err)
	}
	return a
}

// push writes the desired values of config scope typ/sub for device.
func (a *admin) push(t testing.TB, device, typ, sub string, vals core.Values) uint64 {
	t.Helper()
	data, err := codec.EncodeValues(vals)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := a.desired.Put(t.Context(), fleet.DesiredKey(device, typ, sub), data)
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

func (a *admin) unpush(t testing.TB, device, typ, sub string) {
	t.Helper()
	if err := a.desired.Delete(t.Context(), fleet.DesiredKey(device, typ, sub)); err != nil {
		t.Fatal(err)
	}
}

var testLogger = func() hclog.Logger {
	if os.Getenv("FLEET_LOG") == "" {
		return nil
	}
	return hclog.New(&hclog.LoggerOptions{Level: hclog.Debug})
}()

func testOptions(url, id string) store.FleetOptions {
	return store.FleetOptions{
		URL:           url,
		Device:        id,
		Interval:      100 * time.Millisecond,
		ReconnectWait: 50 * time.Millisecond,
		Timeout:       2 * time.Second,
	}
}

// device is one in-process device: a store in a data directory of its own,
// running the fleet bridge (R54).
type device struct {
	id  string
	dir string
	st  *store.Store
}

// startDevice opens a device's store in dir ("": a new temp dir) with the
// bridge on; it closes with the test unless stopped before. NoSync keeps
// hundreds of devices cheap; the reboot test syncs.
func startDevice(t testing.TB, opts store.FleetOptions, dir string, noSync bool) *device {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	st, err := store.Open(dir, store.Options{Fleet: &opts, NoSync: noSync, Logger: testLogger})
	if err != nil {
		t.Fatal(err)
	}
	d := &device{id: opts.Device, dir: dir, st: st}
	t.Cleanup(d.stop)
	return d
}

func (d *device) stop() { d.st.Close() }

// status is the bridge's status in the store's stats.
func (d *device) status(t testing.TB) store.FleetStatus {
	t.Helper()
	st, err := d.st.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Fleet == nil {
		t.Fatalf("device %s: no fleet status in stats", d.id)
	}
	return *st.Fleet
}

func (d *device) snapshot(t testing.TB) core.Snapshot {
	t.Helper()
	s, err := d.st.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (d *device) owner(t testing.TB, name string) store.Owner {
	t.Helper()
	o, err := d.st.Owner(t.Context(), name, core.OwnerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// waitView waits until the device's view satisfies ok, reading deliveries
// of a subscription (no polling), and fails the test after timeout.
func (d *device) waitView(t testing.TB, timeout time.Duration, what string, ok func(core.Snapshot) bool) {
	t.Helper()
	sub, err := d.st.Subscribe(t.Context(), core.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var last core.Snapshot
	for {
		select {
		case s := <-sub.C():
			if ok(s) {
				return
			}
			last = s
		case <-deadline.C:
			t.Errorf("device %s: %s: not reached within %v; view %v; status %+v", d.id, what, timeout, last.Map(), d.status(t))
			return
		}
	}
}

// hasValues reports whether scope sc holds exactly want.
func hasValues(sc core.Scope, want core.Values) func(core.Snapshot) bool {
	return func(s core.Snapshot) bool {
		return core.Equal(map[string]any(s.Values(sc)), map[string]any(want))
	}
}

// watchKey follows one key of a bucket: it returns a channel of its values
// (nil for a delete), fed until the test ends.
func watchKey(t testing.TB, kv jetstream.KeyValue, key string) <-chan []byte {
	t.Helper()
	w, err := kv.Watch(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan []byte, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range w.Updates() {
			if e == nil {
				continue
			}
			v := e.Value()
			if e.Operation() != jetstream.KeyValuePut {
				v = nil
			}
			select {
			case ch <- v:
			default:
				panic(fmt.Sprintf("watchKey %s: more than %d values", key, cap(ch)))
			}
		}
	}()
	t.Cleanup(func() { w.Stop(); <-done })
	return ch
}

// waitKey reads values of a watched key until one decodes to want.
func waitKey(t testing.TB, ch <-chan []byte, timeout time.Duration, want core.Values) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var last core.Values
	for {
		select {
		case v := <-ch:
			if v == nil {
				last = nil
				if want == nil {
					return
				}
				continue
			}
			got, err := codec.DecodeValues(v)
			if err != nil {
				t.Fatalf("reported value: %v", err)
			}
			if want != nil && core.Equal(map[string]any(got), map[string]any(want)) {
				return
			}
			last = got
		case <-deadline.C:
			t.Fatalf("key never reached %v within %v; last %v", want, timeout, last)
		}
	}
}
