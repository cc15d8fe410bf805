package core_test

import (
	"context"
	"fmt"

	"github.com/sysreg/sysreg/core"
)

func Example() {
	ctx := context.Background()
	r := core.New(core.Options{})
	defer r.Close()

	sub, _ := r.Subscribe(ctx, core.SubscribeOptions{})
	defer sub.Close()
	first := <-sub.C() // R16: the current state, at once
	fmt.Println("initial seq:", first.Seq())

	netd, _ := r.Owner(ctx, "netd", core.OwnerOptions{})
	eth0 := core.StateScope("network_interface", "eth0")
	_ = netd.Update(ctx, eth0, core.Values{"address": "192.168.1.100"})

	snap := <-sub.C()
	js, _ := snap.MarshalJSON()
	fmt.Println(snap.Seq(), string(js))

	for _, c := range core.Diff(first, snap) {
		fmt.Printf("%s %s: %v -> %v (owner %s)\n", c.Scope, c.Key, c.Old, c.New, c.NewOwner)
	}

	// Another owner may not touch netd's state keys (R10).
	ui, _ := r.Owner(ctx, "ui", core.OwnerOptions{})
	err := ui.Update(ctx, eth0, core.Values{"address": "10.0.0.1"})
	fmt.Println(err)

	// When netd dies, its keys go (R13).
	netd.Close()
	fmt.Println(r.Snapshot().Map())
	// Output:
	// initial seq: 0
	// 1 {"state":{"network_interface":{"eth0":{"address":"192.168.1.100"}}}}
	// state/network_interface/eth0 address: <nil> -> 192.168.1.100 (owner netd)
	// core: keys reserved by another owner in state/network_interface/eth0: address
	// map[]
}
