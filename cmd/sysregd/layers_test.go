package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sysreg/sysreg/core"
)

// writeFile writes a defaults file for the tests.
func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// scope parses a scope for the tests.
func scope(t *testing.T, s string) core.Scope {
	t.Helper()
	sc, err := core.ParseScope(s)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// origins decodes get --origin SCOPE: key → {"value", "layer", "owner", …}.
func origins(t *testing.T, out string) map[string]map[string]any {
	t.Helper()
	var m map[string]map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("get --origin: not JSON: %v\n%s", err, out)
	}
	return m
}

// TestR40_LayerStackE2E walks the layer stack through the real binary: a
// firmware defaults directory (R40), a user's saved change (R39, R52), a
// process's runtime value and an operator's override (R37), get --origin
// (R38, R42), reset to the default, and an OTA that adds a default applied
// by SIGHUP.
func TestR40_LayerStackE2E(t *testing.T) {
	fw := t.TempDir()
	writeFile(t, filepath.Join(fw, "10-base.json"),
		`{"wifi": {"wlan0": {"ssid": "setup", "channel": 6}}, "ntp": {"main": {"server": "pool.ntp.org"}}}`)
	d := startDaemon(t, t.TempDir(), "--defaults", fw)
	sock := d.socket
	const wlan = "config/wifi/wlan0"

	if got := ok(t, sock, "get", wlan).stdout; got != `{"channel":6,"ssid":"setup"}`+"\n" {
		t.Fatalf("defaults: %q", got)
	}
	// The user's saved change, a process's runtime value (its session stays
	// open) and an operator's override (held by another session).
	ok(t, sock, "set", "--owner", "settings", wlan, "ssid=home")
	c := d.dial(t)
	proc, err := c.Owner(t.Context(), "wpa", core.OwnerOptions{Layer: core.Runtime})
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Update(t.Context(), scope(t, wlan), core.Values{"channel": int64(11)}); err != nil {
		t.Fatal(err)
	}
	op, err := c.Owner(t.Context(), "operator", core.OwnerOptions{Layer: core.Override})
	if err != nil {
		t.Fatal(err)
	}
	if err := op.Update(t.Context(), scope(t, "config/ntp/main"), core.Values{"server": "10.0.0.1"}); err != nil {
		t.Fatal(err)
	}

	o := origins(t, ok(t, sock, "get", "--origin", wlan).stdout)
	for key, want := range map[string][3]string{
		"ssid":    {"home", "saved", "settings"},
		"channel": {"11", "runtime", "wpa"},
	} {
		got := o[key]
		if v, _ := json.Marshal(got["value"]); strings.Trim(string(v), `"`) != want[0] || got["layer"] != want[1] || got["owner"] != want[2] {
			t.Errorf("get --origin %s: %s = %v, want value %s layer %s owner %s", wlan, key, got, want[0], want[1], want[2])
		}
		if seq, _ := got["mod_seq"].(float64); seq == 0 {
			t.Errorf("%s: no mod_seq: %v", key, got)
		}
		if m, _ := got["modified"].(string); m == "" {
			t.Errorf("%s: no modified: %v", key, got)
		}
	}
	one := ok(t, sock, "get", "--origin", "config/ntp/main", "server").stdout
	if !strings.Contains(one, `"layer":"override"`) || !strings.Contains(one, `"value":"10.0.0.1"`) || !strings.Contains(one, `"owner":"operator"`) {
		t.Errorf("get --origin SCOPE KEY: %s", one)
	}
	// With no scope: the global view's shape; -o pretty like every reader.
	all := jsonOf(t, ok(t, sock, "get", "--origin", "-o", "pretty").stdout)
	if _, ok := all["config"].(map[string]any)["wifi"]; !ok {
		t.Errorf("get --origin: %v", all)
	}

	// Reset to default: the saved ssid goes, the default shows again.
	r := ok(t, sock, "reset", wlan, "ssid")
	if r.stdout != `[{"layer":"saved","scope":"config/wifi/wlan0","keys":["ssid"]}]`+"\n" {
		t.Errorf("reset printed %q", r.stdout)
	}
	o = origins(t, ok(t, sock, "get", "--origin", wlan).stdout)
	if o["ssid"]["value"] != "setup" || o["ssid"]["layer"] != "default" || o["ssid"]["owner"] != "" {
		t.Errorf("after reset: ssid = %v, want the default", o["ssid"])
	}
	// Nothing saved there any more: a reset of the saved layer of the
	// whole scope removes nothing (the runtime channel stays).
	if r := ok(t, sock, "reset", "--layer", "saved", wlan); r.stdout != "[]\n" {
		t.Errorf("second reset printed %q", r.stdout)
	}

	// An OTA ships a new default; SIGHUP applies it under what is set.
	writeFile(t, filepath.Join(fw, "20-ota.json"), `{"wifi": {"wlan0": {"country": "DE", "channel": 1}}}`)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, "the OTA default", func() bool {
		return ok(t, sock, "get", wlan, "country").stdout == "DE\n"
	})
	if got := ok(t, sock, "get", wlan, "channel").stdout; got != "11\n" {
		t.Errorf("channel after OTA = %q, want the runtime 11 over the new default", got)
	}

	// A malformed file at SIGHUP: logged with file:line:col, previous
	// defaults kept, the daemon keeps serving.
	bad := filepath.Join(fw, "30-bad.json")
	writeFile(t, bad, "{\"wifi\": {\"wlan0\": {\"country\": \"FR\",}}}\n")
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, "the reload error in the log", func() bool {
		return strings.Contains(d.stderr.String(), "defaults reload failed")
	})
	if log := d.stderr.String(); !strings.Contains(log, bad+":1:37") {
		t.Errorf("reload error does not name file:line:col %s:1:37:\n%s", bad, log)
	}
	if got := ok(t, sock, "get", wlan, "country").stdout; got != "DE\n" {
		t.Errorf("country after a bad reload = %q, want the previous default DE", got)
	}
	d.stop()
}

// TestR40_ServeDefaultsMistakes: mistakes made on purpose with --defaults,
// get --origin and reset get a clear error and the right exit code.
func TestR40_ServeDefaultsMistakes(t *testing.T) {
	t.Run("malformed file at start", func(t *testing.T) {
		fw := t.TempDir()
		bad := filepath.Join(fw, "10-base.json")
		writeFile(t, bad, "{\"wifi\": {\"wlan0\": {\n  \"ssid\": setup}}}\n")
		p := start(t, shortSocket(t), "serve", "--data-dir", t.TempDir(), "--defaults", fw)
		if code := p.wait(30 * time.Second); code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, p.stderr)
		}
		if !strings.Contains(p.stderr.String(), bad+":2:11") {
			t.Errorf("error does not name %s:2:11:\n%s", bad, p.stderr)
		}
	})
	t.Run("not an object of objects", func(t *testing.T) {
		fw := t.TempDir()
		writeFile(t, filepath.Join(fw, "10-base.json"), `{"wifi": ["wlan0"]}`)
		p := start(t, shortSocket(t), "serve", "--data-dir", t.TempDir(), "--defaults", fw)
		if code := p.wait(30 * time.Second); code != 1 || !strings.Contains(p.stderr.String(), "10-base.json") {
			t.Fatalf("exit %d, want 1 naming the file:\n%s", code, p.stderr)
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		p := start(t, shortSocket(t), "serve", "--data-dir", t.TempDir(), "--defaults", filepath.Join(t.TempDir(), "nope"))
		if code := p.wait(30 * time.Second); code != 1 || !strings.Contains(p.stderr.String(), "nope") {
			t.Fatalf("exit %d, want 1 naming the directory:\n%s", code, p.stderr)
		}
	})

	d := startDaemon(t, t.TempDir())
	sock := d.socket
	// SIGHUP without --defaults: a warning, nothing else.
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, "the SIGHUP warning", func() bool {
		return strings.Contains(d.stderr.String(), "SIGHUP ignored")
	})
	for _, args := range [][]string{
		{"reset"},
		{"reset", "state/net/eth0"},
		{"reset", "config/wifi", "ssid"},
		{"reset", "config/wifi/wlan0", ""},
		{"reset", "--layer", "nope", "config/wifi/wlan0", "ssid"},
		{"reset", "--layer", "default", "config/wifi/wlan0", "ssid"},
		{"get", "--origin", "--meta", "config/wifi/wlan0", "ssid"},
		{"set", "--layer", "nope", "config/wifi/wlan0", "ssid=x"},
		{"set", "--layer", "default", "config/wifi/wlan0", "ssid=x"},
	} {
		fails(t, 2, sock, args...)
	}
	// get --origin of an absent key: exit 1 and nothing printed, as get.
	if r := cli(t, sock, "get", "--origin", "config/wifi/wlan0", "nope"); r.code != 1 || r.stdout != "" {
		t.Errorf("get --origin of an absent key: %s", r)
	}
	// Reset is whoever owns the key (R46): a name with a live session too;
	// only the key named goes.
	c := d.dial(t)
	o, err := c.Owner(t.Context(), "settings", core.OwnerOptions{Layer: core.Saved})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Update(t.Context(), scope(t, "config/wifi/wlan0"), core.Values{"ssid": "home", "hidden": true}); err != nil {
		t.Fatal(err)
	}
	if r := ok(t, sock, "reset", "config/wifi/wlan0", "ssid"); r.stdout != `[{"layer":"saved","scope":"config/wifi/wlan0","keys":["ssid"]}]`+"\n" {
		t.Errorf("reset of a live owner's key printed %q", r.stdout)
	}
	if got := ok(t, sock, "get", "config/wifi/wlan0").stdout; got != `{"hidden":true}`+"\n" {
		t.Errorf("after reset of ssid: %q", got)
	}
	d.stop()
}
