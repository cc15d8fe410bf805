package store_test

import (
	"context"
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
