package store_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

var wlan0 = core.ConfigScope("wifi", "wlan0")

// TestR40_Defaults: files merge in name order under saved config, load at
// Open as one mutation, and reload (an OTA) applies at once.
func TestR40_Defaults(t *testing.T) {
	ctx := t.Context()
	dir, defs := t.TempDir(), t.TempDir()
	writeFile(t, defs, "10-base.json", `{"wifi": {"wlan0": {"ssid": "setup", "channel": 6, "radio": {"power": 20, "band": "2.4"}}}}`)
	writeFile(t, defs, "50-board.json", `{"wifi": {"wlan0": {"channel": 11, "radio": {"band": "5"}}}, "ntp": {"main": {"server": "pool.ntp.org"}}}`)
	writeFile(t, defs, "README.txt", `not json, not read`)
	s, err := store.Open(dir, store.Options{NoSync: true, DefaultsDir: defs})
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := s.Snapshot(ctx)
	want := core.Values{"ssid": "setup", "channel": int64(11), "radio": map[string]any{"power": int64(20), "band": "5"}}
	if got := snap.Values(wlan0); !reflect.DeepEqual(got, want) {
		t.Fatalf("defaults: %v, want %v", got, want)
	}
	m, _ := snap.Meta(wlan0, "ssid")
	if m.Layer != core.Default || m.Owner != "" || m.ModSeq != snap.Seq() {
		t.Fatalf("R42: default key meta %+v, seq %d", m, snap.Seq())
	}
	// The user's saved change wins over the default.
	ui, err := s.Owner(ctx, "ui", core.OwnerOptions{KeepConfig: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := ui.Update(ctx, wlan0, core.Values{"ssid": "home"}); err != nil {
		t.Fatal(err)
	}
	ui.Close()
	sub, err := s.Subscribe(ctx, core.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	first := <-sub.C()

	// A reload that changes nothing is no mutation (R6).
	if err := s.ReloadDefaults(ctx); err != nil {
		t.Fatal(err)
	}
	if now, _ := s.Snapshot(ctx); now.Seq() != first.Seq() {
		t.Fatalf("R6: an unchanged reload took seq %d → %d", first.Seq(), now.Seq())
	}
	// An OTA adds a default and changes one: both apply at once, under
	// the saved ssid, as one mutation and one notification.
	writeFile(t, defs, "50-board.json", `{"wifi": {"wlan0": {"channel": 36, "country": "DE"}}}`)
	if err := s.ReloadDefaults(ctx); err != nil {
		t.Fatal(err)
	}
	got := <-sub.C()
	if got.Seq() != first.Seq()+1 {
		t.Fatalf("reload: seq %d → %d, want one mutation", first.Seq(), got.Seq())
	}
	want = core.Values{"ssid": "home", "channel": int64(36), "country": "DE", "radio": map[string]any{"power": int64(20), "band": "2.4"}}
	if v := got.Values(wlan0); !reflect.DeepEqual(v, want) {
		t.Fatalf("after the OTA: %v, want %v", v, want)
	}
	if v := got.Values(core.ConfigScope("ntp", "main")); v != nil {
		t.Fatalf("a default gone from the files stays: %v", v)
	}
	// The next delivery is the next mutation's, not a second one of the
	// reload.
	marker, err := s.Owner(ctx, "marker", core.OwnerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := marker.Update(ctx, core.StateScope("marker", "x"), core.Values{"k": 1}); err != nil {
		t.Fatal(err)
	}
	if next := <-sub.C(); next.Seq() != got.Seq()+1 {
		t.Fatalf("after the reload's delivery (seq %d) came seq %d", got.Seq(), next.Seq())
	}
	marker.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// R41: defaults are never journaled: a reopen without the directory
	// shows only the saved value.
	s, err = store.Open(dir, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	snap, _ = s.Snapshot(ctx)
	if v := snap.Values(wlan0); !reflect.DeepEqual(v, core.Values{"ssid": "home"}) {
		t.Fatalf("after reopen without defaults: %v", v)
	}
	if err := s.ReloadDefaults(ctx); !errors.Is(err, store.ErrNoDefaults) {
		t.Fatalf("ReloadDefaults without a directory: %v", err)
	}
}

// TestR40_BadDefaults: every bad directory or file is a clear error naming
// the file (and for syntax, the position); Open fails, a reload keeps the
// previous defaults and changes nothing.
func TestR40_BadDefaults(t *testing.T) {
	ctx := t.Context()
	deep := strings.Repeat(`{"a":`, core.MaxDepth+1) + "1" + strings.Repeat("}", core.MaxDepth+1)
	cases := []struct {
		name, content string
		line, col     int // 0: not a syntax error; col -1: any
		want          error
		reason        string
	}{
		{"syntax", "{\"wifi\": {\"wlan0\": {\n  \"ssid\": \"x\",,\n}}}", 2, 15, nil, "invalid character"},
		{"truncated", `{"wifi": {"wlan0": {"ssid": `, 1, 29, nil, "end of file"},
		{"trailing", `{} {}`, 1, 5, nil, "after the top-level object"},
		{"top-array", `[1, 2]`, 0, 0, nil, "top level is an array"},
		{"type-string", `{"wifi": "x"}`, 0, 0, nil, `type "wifi" is a string`},
		{"scope-number", `{"wifi": {"wlan0": 5}}`, 0, 0, nil, "wifi/wlan0 is a number"},
		{"bad-type", `{"a/b": {"c": {"k": 1}}}`, 0, 0, core.ErrInvalidScope, "invalid scope"},
		{"empty-key", `{"wifi": {"wlan0": {"": 1}}}`, 0, 0, core.ErrInvalidValue, "invalid value"},
		{"number-range", `{"wifi": {"wlan0": {"n": 1e400}}}`, 0, 0, core.ErrNumberRange, "out of range"},
		// JSON's own depth limit is R2's (10,000): deeper is a syntax error.
		{"too-deep", `{"wifi": {"wlan0": {"k": ` + deep + `}}}`, 1, -1, nil, "max depth"},
		{"too-large", `{"wifi": {"wlan0": {"k": "` + strings.Repeat("x", 2<<20) + `"}}}`, 0, 0, core.ErrTooLarge, "limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defs := t.TempDir()
			writeFile(t, defs, "10-good.json", `{"wifi": {"wlan0": {"ssid": "setup"}}}`)
			writeFile(t, defs, "20-bad.json", tc.content)
			check := func(err error) {
				t.Helper()
				var de *store.DefaultsError
				if !errors.As(err, &de) {
					t.Fatalf("error %v, want a *DefaultsError", err)
				}
				if de.Path != filepath.Join(defs, "20-bad.json") || de.Line != tc.line || (tc.col >= 0 && de.Column != tc.col) || !strings.Contains(de.Error(), tc.reason) {
					t.Fatalf("DefaultsError %s (line %d col %d), want the bad file at %d:%d saying %q", de, de.Line, de.Column, tc.line, tc.col, tc.reason)
				}
				if tc.want != nil && !errors.Is(err, tc.want) {
					t.Fatalf("error %v, want %v", err, tc.want)
				}
				if strings.Contains(de.Error(), strings.Repeat("x", 100)) {
					t.Fatal("the error quotes the whole value")
				}
			}
			_, err := store.Open(t.TempDir(), store.Options{NoSync: true, DefaultsDir: defs})
			check(err)

			// At reload: the previous defaults stay, nothing changes.
			good := t.TempDir()
			writeFile(t, good, "10-good.json", `{"wifi": {"wlan0": {"ssid": "setup"}}}`)
			s, err := store.Open(t.TempDir(), store.Options{NoSync: true, DefaultsDir: good})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			before, _ := s.Snapshot(ctx)
			writeFile(t, good, "05-first.json", `{"wifi": {"wlan0": {"channel": 1}}}`) // would apply, were the reload whole
			writeFile(t, good, "20-bad.json", tc.content)
			err = s.ReloadDefaults(ctx)
			var de *store.DefaultsError
			if !errors.As(err, &de) || de.Path != filepath.Join(good, "20-bad.json") {
				t.Fatalf("reload: %v", err)
			}
			if after, _ := s.Snapshot(ctx); after.Seq() != before.Seq() || !reflect.DeepEqual(after.Map(), before.Map()) {
				t.Fatalf("a failed reload changed the view: %v", after.Map())
			}
		})
	}
	t.Run("missing-dir", func(t *testing.T) {
		_, err := store.Open(t.TempDir(), store.Options{NoSync: true, DefaultsDir: filepath.Join(t.TempDir(), "nope")})
		if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "nope") {
			t.Fatalf("missing directory: %v", err)
		}
	})
}
