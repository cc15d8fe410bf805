package store_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

// TestOwnersEmbedded: Store.Owners lists every name that holds keys or has
// a live session, with its key counts and layers and the uid a name holding
// keys is bound to: an embedded session's is the process's (R52, R35).
func TestOwnersEmbedded(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s := open(t, dir, store.Options{NoSync: true})
	netd, err := s.Owner(ctx, "netd", core.OwnerOptions{KeepConfig: true})
	must(t, err)
	must(t, netd.Update(ctx, wifi, core.Values{"ssid": "x", "psk": "y"}))
	must(t, netd.Update(ctx, eth0, core.Values{"up": true}))
	_, err = s.Owner(ctx, "idle", core.OwnerOptions{})
	must(t, err)
	list, err := s.Owners(ctx)
	must(t, err)
	if len(list) != 2 || list[1].UID == nil || *list[1].UID != uint32(os.Getuid()) {
		t.Fatalf("owners %+v: netd not bound to uid %d", list, os.Getuid())
	}
	list[1].UID = nil
	got := fmt.Sprintf("%+v", list)
	want := "[{Name:idle Live:true Grace:false UID:<nil> StateKeys:0 ConfigKeys:0 Layers:map[] Scopes:0} " +
		"{Name:netd Live:true Grace:false UID:<nil> StateKeys:1 ConfigKeys:2 Layers:map[saved:2] Scopes:2}]"
	if got != want {
		t.Fatalf("owners\n%s\nwant\n%s", got, want)
	}
	must(t, netd.Close())
	must(t, s.Close())
	s = open(t, dir, store.Options{NoSync: true})
	list, err = s.Owners(ctx)
	must(t, err)
	if len(list) != 1 || list[0].UID == nil || *list[0].UID != uint32(os.Getuid()) {
		t.Fatalf("owners after reopen %+v: netd not bound to uid %d", list, os.Getuid())
	}
	list[0].UID = nil
	if got, want := fmt.Sprintf("%+v", list), "[{Name:netd Live:false Grace:false UID:<nil> StateKeys:0 ConfigKeys:2 Layers:map[saved:2] Scopes:1}]"; got != want {
		t.Fatalf("owners after reopen\n%s\nwant\n%s", got, want)
	}
}
