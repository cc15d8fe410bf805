package store_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

// Example_guardedEdit: two editors of config/ntp/main; the one whose read
// is stale gets a conflict instead of overwriting the other's change
// (R43). Then a backup, an export, a factory reset and an import (R45,
// R46). The README's "Changing config safely" mirrors it.
func Example_guardedEdit() {
	dir, err := os.MkdirTemp("", "sysreg-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	s, err := store.Open(filepath.Join(dir, "data"), store.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	ntp := core.ConfigScope("ntp", "main")
	ui, _ := s.Owner(ctx, "web-ui", core.OwnerOptions{Layer: core.Saved})
	cloud, _ := s.Owner(ctx, "cloud-agent", core.OwnerOptions{Layer: core.Saved})
	// Create only if absent.
	if err := ui.Commit(ctx, core.IfModSeq(ntp, "server", 0), core.Put(ntp, core.Values{"server": "pool.ntp.org"})); err != nil {
		log.Fatal(err)
	}

	// Both read the key's mod seq; the cloud agent writes first.
	snap, _ := s.Snapshot(ctx)
	meta, _ := snap.Meta(ntp, "server")
	if err := cloud.Commit(ctx, core.IfModSeq(ntp, "server", meta.ModSeq), core.Put(ntp, core.Values{"server": "time.example.com"})); err != nil {
		log.Fatal(err)
	}
	err = ui.Commit(ctx, core.IfModSeq(ntp, "server", meta.ModSeq), core.Put(ntp, core.Values{"server": "ntp.home"}))
	var ce *core.ConflictError
	fmt.Println("web-ui:", errors.Is(err, core.ErrConflict), errors.As(err, &ce) && ce.Key == "server")

	// A consistent copy of the journal, while the store runs.
	if _, err := store.WriteBackup(ctx, s, filepath.Join(dir, "backup.db")); err != nil {
		log.Fatal(err)
	}
	// Export the saved layer, reset it (factory reset), import it back.
	snap, _ = s.Snapshot(ctx)
	exported, err := store.Export(snap, core.Pattern{}, store.ExportOptions{Layer: core.Saved})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(exported))
	if err := s.Reset(ctx, core.Pattern{}); err != nil {
		log.Fatal(err)
	}
	snap, _ = s.Snapshot(ctx)
	fmt.Println("after reset:", snap.Len(core.Config), "config keys")
	scopes, err := store.ParseExport("export.json", exported)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := store.Import(ctx, s, "restore", scopes); err != nil {
		log.Fatal(err)
	}
	snap, _ = s.Snapshot(ctx)
	server, _ := snap.Get(ntp, "server")
	fmt.Println("after import:", server)
	// Output:
	// web-ui: true true
	// {"ntp":{"main":{"server":"time.example.com"}}}
	// after reset: 0 config keys
	// after import: time.example.com
}

// ExampleOwner_apply: a network change that undoes itself unless it is
// confirmed (R44) — a rollback on purpose, then an apply left unconfirmed
// across a restart: a restart is never a confirmation. The README's
// "Changing config safely" mirrors it.
func ExampleOwner_apply() {
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
	eth0 := core.ConfigScope("net", "eth0")
	ui, _ := s.Owner(ctx, "web-ui", core.OwnerOptions{Layer: core.Saved})
	_ = ui.Update(ctx, eth0, core.Values{"address": "10.0.0.1"})

	// Applied, visible and durable now; undone in 60 s unless confirmed.
	id, err := ui.Apply(ctx, 60*time.Second, core.Put(eth0, core.Values{"address": "10.0.0.2"}))
	if err != nil {
		log.Fatal(err)
	}
	snap, _ := s.Snapshot(ctx)
	v, _ := snap.Get(eth0, "address")
	fmt.Println("applied:", v, "pending:", len(snap.Pending()))
	if err := s.Confirm(ctx, id); err != nil { // still reachable: keep it
		log.Fatal(err)
	}

	// This one is rolled back on purpose; a second rollback is refused.
	id, _ = ui.Apply(ctx, time.Minute, core.Put(eth0, core.Values{"address": "10.9.9.9"}))
	left, _ := s.Rollback(ctx, id)
	_, err = s.Rollback(ctx, id)
	snap, _ = s.Snapshot(ctx)
	v, _ = snap.Get(eth0, "address")
	fmt.Println("rolled back:", v, len(left), errors.Is(err, core.ErrNotPending))

	// Unconfirmed when the device restarts: undone before Open returns.
	_, _ = ui.Apply(ctx, time.Hour, core.Put(eth0, core.Values{"address": "192.0.2.1"}))
	s.Close()
	s, err = store.Open(dir, store.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	snap, _ = s.Snapshot(ctx)
	v, _ = snap.Get(eth0, "address")
	fmt.Println("after restart:", v, "undone:", len(s.UndoneAtOpen()))
	// Output:
	// applied: 10.0.0.2 pending: 1
	// rolled back: 10.0.0.2 0 true
	// after restart: 10.0.0.2 undone: 1
}
