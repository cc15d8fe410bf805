package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

func open(t *testing.T, dir string, opts store.Options) *store.Store {
	t.Helper()
	s, err := store.Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var (
	wifi = core.ConfigScope("wifi", "wlan0")
	eth0 = core.StateScope("net", "eth0")
)

// TestR27_ReopenRestoresConfig: config, owners and the sequence counter
// survive a clean close; state does not (R26); an owner re-attaching by name
// may delete its restored keys, another may not.
func TestR27_ReopenRestoresConfig(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s := open(t, dir, store.Options{})
	o, err := s.Owner(ctx, "netcfg", core.OwnerOptions{})
	must(t, err)
	must(t, o.Update(ctx, wifi, core.Values{"ssid": "home", "channel": uint64(11), "nested": map[string]any{"a": []any{1, "x"}}}))
	must(t, o.Update(ctx, eth0, core.Values{"up": true}))
	before, _ := s.Snapshot(ctx)
	must(t, s.Close())
	must(t, s.Close()) // idempotent
	if _, err := s.Snapshot(ctx); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Snapshot after Close: %v, want ErrClosed", err)
	}

	s2 := open(t, dir, store.Options{})
	after, _ := s2.Snapshot(ctx)
	if got := after.Values(wifi); !equalJSON(got, before.Values(wifi)) {
		t.Fatalf("config after reopen = %v, want %v", got, before.Values(wifi))
	}
	if v, _ := after.Get(wifi, "channel"); v != uint64(11) {
		t.Fatalf("uint64 did not round-trip: %T %v", v, v)
	}
	if owner, _ := after.Owner(wifi, "ssid"); owner != "netcfg" {
		t.Fatalf("owner after reopen = %q", owner)
	}
	if after.Len(core.State) != 0 {
		t.Fatalf("R26: state after reopen: %v", after.Map())
	}
	if after.Seq() < before.Seq() {
		t.Fatalf("R7: seq went back from %d to %d", before.Seq(), after.Seq())
	}
	other, _ := s2.Owner(ctx, "intruder", core.OwnerOptions{})
	if err := other.Delete(ctx, wifi, "ssid"); !errors.Is(err, core.ErrReservedKeys) {
		t.Fatalf("foreign delete of restored key: %v, want ErrReservedKeys", err)
	}
	// R11: anyone may update a config key; ownership does not move.
	must(t, other.Update(ctx, wifi, core.Values{"ssid": "guest"}))
	again, _ := s2.Owner(ctx, "netcfg", core.OwnerOptions{})
	must(t, again.Delete(ctx, wifi, "ssid"))
	snap, _ := s2.Snapshot(ctx)
	if _, ok := snap.Get(wifi, "ssid"); ok {
		t.Fatal("owner could not delete its restored key")
	}
	if snap.Seq() <= after.Seq() {
		t.Fatal("R7: no new sequence numbers after reopen")
	}
}

// TestR13_OwnerDeathIsDurable: an owner's death deletes its config keys,
// and the deletion survives a reopen; KeepConfig keeps them.
func TestR13_OwnerDeathIsDurable(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s := open(t, dir, store.Options{})
	tmp, _ := s.Owner(ctx, "tmp", core.OwnerOptions{})
	keep, _ := s.Owner(ctx, "tool", core.OwnerOptions{KeepConfig: true})
	must(t, tmp.Update(ctx, wifi, core.Values{"a": 1}))
	must(t, keep.Update(ctx, wifi, core.Values{"b": 2}))
	must(t, tmp.Close())
	must(t, keep.Close())
	must(t, s.Close())
	s2 := open(t, dir, store.Options{})
	snap, _ := s2.Snapshot(ctx)
	if got := snap.Values(wifi); len(got) != 1 || got["b"] != int64(2) {
		t.Fatalf("after reopen: %v, want only the KeepConfig key b", got)
	}
	// R14: evict the kept config of an owner that never comes back.
	must(t, s2.Evict(ctx, "tool"))
	must(t, s2.Close())
	s3 := open(t, dir, store.Options{})
	snap, _ = s3.Snapshot(ctx)
	if snap.Len(0) != 0 {
		t.Fatalf("after evict and reopen: %v", snap.Map())
	}
}

func TestR29_LockedDataDir(t *testing.T) {
	dir := t.TempDir()
	open(t, dir, store.Options{})
	_, err := store.Open(dir, store.Options{})
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
}

func TestR29_CorruptFile(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, store.JournalFile), []byte("this is not a journal, just some bytes of garbage........"), 0o600))
	_, err := store.Open(dir, store.Options{})
	var ce *store.CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("Open on garbage: %v, want *CorruptError", err)
	}
	if ce.Path != filepath.Join(dir, store.JournalFile) || ce.Reason == "" {
		t.Fatalf("CorruptError = %+v", ce)
	}
}

func TestDataDirModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "data")
	open(t, dir, store.Options{})
	fi, err := os.Stat(dir)
	must(t, err)
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %v, want 0700", fi.Mode().Perm())
	}
	fi, err = os.Stat(filepath.Join(dir, store.JournalFile))
	must(t, err)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("journal mode %v, want 0600", fi.Mode().Perm())
	}
}

func equalJSON(a, b core.Values) bool {
	ja := core.ValueJSON(map[string]any(a))
	jb := core.ValueJSON(map[string]any(b))
	return string(ja) == string(jb)
}

var _ = context.Background

// statsOf returns an embedded store's figures.
func statsOf(t testing.TB, s *store.Store) store.Stats {
	t.Helper()
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}
