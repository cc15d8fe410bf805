package fleet_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/codec"
	"github.com/sysreg/sysreg/internal/fleet"
	"github.com/sysreg/sysreg/internal/fleet/fleettest"
	"github.com/sysreg/sysreg/store"
)

// TestOptionsRefused: bad options fail Start with ErrInvalidOptions, the
// reserved device ID "all" included (R53).
func TestOptionsRefused(t *testing.T) {
	tg, err := fleettest.NewTarget(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	for _, o := range []fleet.Options{
		{Device: "d1"},
		{URL: "nats://127.0.0.1:1"},
		{URL: "nats://127.0.0.1:1", Device: fleet.AllDevices},
		{URL: "nats://127.0.0.1:1", Device: "a\x00b"},
		{URL: "nats://127.0.0.1:1", Device: "\xff"},
		{URL: "nats://127.0.0.1:1", Device: "d1", Interval: -time.Second},
		{URL: "nats://bad host:1", Device: "d1"},
		{URL: "nats://127.0.0.1:1,", Device: "d1"},
		{URL: "nats://127.0.0.1:1", Device: "d1", CredsFile: "/nonexistent/user.creds"},
	} {
		if b, err := fleet.Start(tg, o); !errors.Is(err, fleet.ErrInvalidOptions) {
			if b != nil {
				b.Close()
			}
			t.Errorf("Start(%+v) = %v, want ErrInvalidOptions", o, err)
		}
	}
}

// TestOfflineStart: with no server, store.Open returns at once, config
// and state writes work, stats say disconnected, and Close returns promptly
// (offline first, R53).
func TestOfflineStart(t *testing.T) {
	start := time.Now()
	d := startDevice(t, testOptions("nats://127.0.0.1:1", "d1"), "", false) // nothing listens on port 1
	o := d.owner(t, "app")
	if err := o.Update(t.Context(), core.StateScope("app", "x"), core.Values{"up": true}); err != nil {
		t.Fatal(err)
	}
	if err := o.Update(t.Context(), core.ConfigScope("app", "x"), core.Values{"level": int64(2)}); err != nil {
		t.Fatal(err)
	}
	if st := d.status(t); st.Connected || st.Device != "d1" {
		t.Errorf("status %+v", st)
	}
	d.stop()
	d.stop() // idempotent
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("open, write and close took %v", took)
	}
}

// TestStoreFleetOptionsRefused: store.Open refuses bad fleet options with
// a clear error, before anything runs (R53).
func TestStoreFleetOptionsRefused(t *testing.T) {
	for _, o := range []store.FleetOptions{
		{URL: "nats://127.0.0.1:1", Device: fleet.AllDevices},
		{URL: "", Device: "d1"},
	} {
		st, err := store.Open(t.TempDir(), store.Options{Fleet: &o})
		if err == nil {
			st.Close()
			t.Errorf("Open with %+v succeeded", o)
		} else if !errors.Is(err, fleet.ErrInvalidOptions) {
			t.Errorf("Open with %+v: %v, want ErrInvalidOptions", o, err)
		}
	}
}

// TestFleetPush: a fleet-wide push reaches every device; a device's own key
// deep-merges over all's and wins; deleting keys takes the values out of the
// fleet layer (R53, R54).
func TestFleetPush(t *testing.T) {
	n := 200
	if testing.Short() {
		n = 50
	}
	srv := startServer(t)
	adm := newAdmin(t, srv.URL())
	devs := make([]*device, n)
	for i := range devs {
		devs[i] = startDevice(t, testOptions(srv.URL(), fmt.Sprintf("dev-%d", i)), "", true)
	}
	ntp := core.ConfigScope("ntp", "main")
	all := core.Values{"servers": []any{"a.pool", "b.pool"}, "opts": map[string]any{"iburst": true, "minpoll": int64(4)}}
	adm.push(t, fleet.AllDevices, "ntp", "main", all)
	eachDevice(t, devs, func(d *device) {
		d.waitView(t, 30*time.Second, "fleet-wide push", hasValues(ntp, all))
	})

	// Device 7's own values deep-merge over all's (R4).
	adm.push(t, "dev-7", "ntp", "main", core.Values{"opts": map[string]any{"minpoll": int64(6)}, "local": "x"})
	merged := core.Values{"servers": []any{"a.pool", "b.pool"}, "opts": map[string]any{"iburst": true, "minpoll": int64(6)}, "local": "x"}
	devs[7].waitView(t, 10*time.Second, "own over all", hasValues(ntp, merged))

	// A new fleet-wide value changes what device 7 does not override.
	all2 := core.Values{"servers": []any{"c.pool"}}
	adm.push(t, fleet.AllDevices, "ntp", "main", all2)
	devs[7].waitView(t, 10*time.Second, "all changed under own", hasValues(ntp, core.Values{
		"servers": []any{"c.pool"}, "opts": map[string]any{"minpoll": int64(6)}, "local": "x",
	}))
	eachDevice(t, devs, func(d *device) {
		if d.id != "dev-7" {
			d.waitView(t, 30*time.Second, "second push", hasValues(ntp, all2))
		}
	})

	// Deleting all's key leaves device 7 with its own values only, and
	// every other device without the scope.
	adm.unpush(t, fleet.AllDevices, "ntp", "main")
	eachDevice(t, devs, func(d *device) {
		want := core.Values(nil)
		if d.id == "dev-7" {
			want = core.Values{"opts": map[string]any{"minpoll": int64(6)}, "local": "x"}
		}
		d.waitView(t, 30*time.Second, "deletion", hasValues(ntp, want))
	})
	adm.unpush(t, "dev-7", "ntp", "main")
	devs[7].waitView(t, 10*time.Second, "own deletion", hasValues(ntp, nil))

	// The fleet config is reported back as part of the effective view.
	st := devs[3].status(t)
	if !st.Connected || st.DesiredRevision == 0 || st.LastSync.IsZero() || st.Applied == 0 || st.Refused != nil {
		t.Errorf("status %+v", st)
	}
}

// eachDevice runs fn for every device concurrently and waits.
func eachDevice(t *testing.T, devs []*device, fn func(*device)) {
	t.Helper()
	var wg sync.WaitGroup
	for _, d := range devs {
		wg.Go(func() { fn(d) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// TestRefusedValues: desired values that fail R2, or keys that name no
// scope, are refused and reported in the status; the scope keeps what it
// had; a good value later clears the refusal (R53).
func TestRefusedValues(t *testing.T) {
	srv := startServer(t)
	adm := newAdmin(t, srv.URL())
	d := startDevice(t, testOptions(srv.URL(), "d1"), "", true)
	sc := core.ConfigScope("wifi", "wlan0")
	good := core.Values{"ssid": "home"}
	adm.push(t, "d1", "wifi", "wlan0", good)
	d.waitView(t, 10*time.Second, "good value", hasValues(sc, good))

	bad := map[string][]byte{
		"not CBOR":            {0xff, 0x00},
		"not a map":           mustEncode(t, "text"),
		"empty top-level key": {0xa1, 0x60, 0x01},             // {"": 1}
		"non-UTF-8 string":    {0xa1, 0x61, 0x6b, 0x61, 0xff}, // {"k": "\xff"}
		"unknown tag":         {0xa1, 0x61, 0x6b, 0xc1, 0x01}, // {"k": 1(1)}
	}
	for what, data := range bad {
		rev, err := adm.desired.Put(t.Context(), fleet.DesiredKey("d1", "wifi", "wlan0"), data)
		if err != nil {
			t.Fatal(err)
		}
		waitStatus(t, d, what, func(st store.FleetStatus) bool {
			return len(st.Refused) == 1 && st.Refused[0].Revision == rev && st.Refused[0].Key == "d1.wifi.wlan0"
		})
		if got := d.snapshot(t).Values(sc); !core.Equal(map[string]any(got), map[string]any(good)) {
			t.Fatalf("%s: scope is %v, want the previous %v", what, got, good)
		}
	}
	// A key that names no scope is refused too.
	if _, err := adm.desired.Put(t.Context(), "all.onlytype", mustEncode(t, core.Values{"a": int64(1)})); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, d, "bad key", func(st store.FleetStatus) bool { return len(st.Refused) == 2 })

	good2 := core.Values{"ssid": "work"}
	adm.push(t, "d1", "wifi", "wlan0", good2)
	d.waitView(t, 10*time.Second, "good value again", hasValues(sc, good2))
	waitStatus(t, d, "refusal cleared", func(st store.FleetStatus) bool {
		return len(st.Refused) == 1 && st.Refused[0].Key == "all.onlytype"
	})
}

func mustEncode(t testing.TB, v any) []byte {
	t.Helper()
	var data []byte
	var err error
	if vals, ok := v.(core.Values); ok {
		data, err = codec.EncodeValues(vals)
	} else {
		data, err = codec.EncodeValue(v)
	}
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// waitStatus waits for the bridge status to satisfy ok. The status has no
// change notification, so this is the one place that polls, on a ticker.
func waitStatus(t testing.TB, d *device, what string, ok func(store.FleetStatus) bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		st := d.status(t)
		if ok(st) {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%s: status never matched: %+v", what, st)
		}
	}
}
