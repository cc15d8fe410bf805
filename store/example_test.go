package store_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

// Example is the quick start: config set through an owner is durable when
// Update returns (R24), and a reopened store has it back, with its owner
// and sequence number (R27); state does not survive (R26).
func Example() {
	dir, err := os.MkdirTemp("", "sysreg-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	s, err := store.Open(dir, store.Options{})
	if err != nil {
		log.Fatal(err)
	}
	// KeepConfig: the config outlives this owner's session (R13).
	tool, err := s.Owner(ctx, "wifi-setup", core.OwnerOptions{KeepConfig: true})
	if err != nil {
		log.Fatal(err)
	}
	wlan0 := core.ConfigScope("wifi", "wlan0")
	if err := tool.Update(ctx, wlan0, core.Values{"ssid": "home", "channel": 11}); err != nil {
		log.Fatal(err)
	}
	eth0 := core.StateScope("network_interface", "eth0")
	if err := tool.Update(ctx, eth0, core.Values{"up": true}); err != nil {
		log.Fatal(err)
	}
	tool.Close() // its state goes, its config stays
	s.Close()

	s, err = store.Open(dir, store.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	snap, _ := s.Snapshot(ctx)
	js, _ := snap.MarshalJSON()
	fmt.Println(string(js))
	ssid, _ := snap.Get(wlan0, "ssid")
	owner, _ := snap.Owner(wlan0, "ssid")
	fmt.Println(ssid, "owned by", owner)
	// Output:
	// {"config":{"wifi":{"wlan0":{"channel":11,"ssid":"home"}}}}
	// home owned by wifi-setup
}

// ExampleStore_Changes is a resumable consumer of the change feed (R47):
// it remembers the last seq it saw, resumes from there, and resyncs from
// a snapshot when the history it needs is gone.
func ExampleStore_Changes() {
	dir, _ := os.MkdirTemp("", "sysreg-feed")
	defer os.RemoveAll(dir)
	s, err := store.Open(dir, store.Options{})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	ctx := context.Background()
	o, _ := s.Owner(ctx, "wifid", core.OwnerOptions{KeepConfig: true})
	wlan := core.ConfigScope("wifi", "wlan0")
	_ = o.Update(ctx, wlan, core.Values{"ssid": "home"})
	_ = o.Update(ctx, wlan, core.Values{"ssid": "office"})

	saved := map[string]uint64{} // the consumer's own storage
	last := saved["feed"]        // its position: 0 = nothing seen yet
	feed, err := s.Changes(ctx, last)
	var compacted *core.CompactedError
	if errors.As(err, &compacted) {
		snap, _ := s.Snapshot(ctx) // resync: the whole view, then changes after it
		last = snap.Seq()
		feed, err = s.Changes(ctx, last)
	}
	if err != nil {
		panic(err)
	}
	defer feed.Close()
	for range 2 {
		item := <-feed.C()
		for _, c := range item.Changes {
			fmt.Printf("%s %s/%s: %v -> %v\n", c.Layer, c.Scope, c.Key, c.Old, c.New)
		}
		saved["feed"] = item.Seq // a restarted consumer resumes from here
	}
	// Output:
	// saved config/wifi/wlan0/ssid: <nil> -> home
	// saved config/wifi/wlan0/ssid: home -> office
}
