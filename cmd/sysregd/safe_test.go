package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestR45_BackupRestore: 'sysregd backup FILE' while the daemon runs
// writes a file that, placed as DIR/journal.db, passes 'check' and is a
// data directory 'serve' starts from with the config the daemon had (R45).
// A backup by another uid than root or the daemon's is refused and writes
// nothing.
func TestR45_BackupRestore(t *testing.T) {
	d := startDaemon(t, t.TempDir(), "--no-sync")
	ok(t, d.socket, "set", "--owner", "netcfg", "--keep-config", "config/net/eth0", "mtu=1500", "dhcp=true")
	ok(t, d.socket, "set", "--owner", "wifi", "--keep-config", "config/wifi/wlan0", `ssid="home"`)

	restored := t.TempDir()
	file := filepath.Join(restored, "journal.db")
	out := jsonOf(t, ok(t, d.socket, "backup", file).stdout)
	fi, err := os.Stat(file)
	must(t, err)
	if out["file"] != file || out["bytes"] != json.Number(fmt.Sprint(fi.Size())) {
		t.Fatalf("backup printed %v; the file has %d bytes", out, fi.Size())
	}
	ck := jsonOf(t, ok(t, "", "check", "--data-dir", restored).stdout)
	if ck["ok"] != true || ck["keys"] != json.Number("3") {
		t.Fatalf("check of the backup: %v", ck)
	}
	r := startDaemon(t, restored, "--no-sync")
	if got := ok(t, r.socket, "get", "config/net/eth0", "mtu").stdout; got != "1500\n" {
		t.Fatalf("restored mtu = %q", got)
	}
	if got := ok(t, r.socket, "get", "config/wifi/wlan0", "ssid").stdout; got != "home\n" {
		t.Fatalf("restored ssid = %q", got)
	}

	fails(t, 2, d.socket, "backup")
	fails(t, 2, d.socket, "backup", "a", "b")
	if os.Getuid() == 0 {
		const nobody = 65534
		d2 := startDaemon(t, t.TempDir(), "--no-sync", "--socket-group", fmt.Sprint(nobody))
		must(t, os.Chmod(filepath.Dir(d2.socket), 0o755))
		dir := t.TempDir()
		must(t, os.Chmod(dir, 0o777))
		res := cliAs(t, &syscall.Credential{Uid: nobody, Gid: nobody}, d2.socket, "backup", filepath.Join(dir, "b.db"))
		if res.code != 1 || !strings.Contains(res.stderr, "permission") {
			t.Fatalf("backup by uid nobody: %s", res)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("a refused backup left %v", ents)
		}
	}
}

// TestR43_GuardedSet: set --create-only writes only absent keys; set
// --if-mod-seq N writes only while the key's mod seq, as get --meta shows
// it, is still N; a conflict exits 1, says so, and writes nothing (R43).
func TestR43_GuardedSet(t *testing.T) {
	d := startDaemon(t, t.TempDir(), "--no-sync")
	ok(t, d.socket, "set", "--create-only", "config/ntp/main", "server=a")
	r := fails(t, 1, d.socket, "set", "--create-only", "config/ntp/main", "server=b")
	if !strings.Contains(r.stderr, "conflict") || !strings.Contains(r.stderr, "nothing was written") {
		t.Fatalf("create-only of an existing key: %s", r)
	}
	m := jsonOf(t, ok(t, d.socket, "get", "--meta", "config/ntp/main", "server").stdout)
	seq := string(m["mod_seq"].(json.Number))
	if m["layer"] != "saved" || seq == "0" {
		t.Fatalf("get --meta: %v", m)
	}
	ok(t, d.socket, "set", "--if-mod-seq", seq, "config/ntp/main", "server=c")
	r = fails(t, 1, d.socket, "set", "--if-mod-seq", seq, "config/ntp/main", "server=d")
	if !strings.Contains(r.stderr, "mod seq") {
		t.Fatalf("stale --if-mod-seq: %s", r)
	}
	if got := ok(t, d.socket, "get", "config/ntp/main", "server").stdout; got != "c\n" {
		t.Fatalf("server = %q, want c", got)
	}
	fails(t, 2, d.socket, "set", "--if-mod-seq", "3", "--create-only", "config/ntp/main", "server=e")
	fails(t, 2, d.socket, "set", "--if-mod-seq", "-1", "config/ntp/main", "server=e")
	fails(t, 2, d.socket, "get", "--meta", "config/ntp/main")
}

// TestR46_ResetAll: 'reset --all' deletes the saved and runtime config of
// every owner as one change, prints what it removed, and survives a
// restart (core's TestR46_Reset shows the defaults coming back). Another uid than root or the daemon's
// is refused and nothing changes (R46).
func TestR46_ResetAll(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir, "--no-sync", "--socket-group", "65534")
	ok(t, d.socket, "set", "--owner", "ui", "config/wifi/wlan0", "ssid=home")
	ok(t, d.socket, "set", "--owner", "cloud", "config/ntp/main", "server=pool")
	if os.Getuid() == 0 {
		const nobody = 65534
		must(t, os.Chmod(filepath.Dir(d.socket), 0o755))
		r := cliAs(t, &syscall.Credential{Uid: nobody, Gid: nobody}, d.socket, "reset", "--all")
		if r.code != 1 || !strings.Contains(r.stderr, "permission") {
			t.Fatalf("reset by uid nobody: %s", r)
		}
		if got := ok(t, d.socket, "get", "config/wifi/wlan0", "ssid").stdout; got != "home\n" {
			t.Fatalf("a refused reset changed ssid to %q", got)
		}
	}
	fails(t, 2, d.socket, "reset")
	fails(t, 2, d.socket, "reset", "--all", "config/wifi")
	fails(t, 2, d.socket, "reset", "state/net")
	fails(t, 2, d.socket, "reset", "--layer", "default", "--all")
	var removed []removedOut
	must(t, json.Unmarshal([]byte(ok(t, d.socket, "reset", "--all").stdout), &removed))
	if len(removed) != 2 || removed[0].Scope != "config/ntp/main" || removed[1].Scope != "config/wifi/wlan0" || removed[1].Keys[0] != "ssid" {
		t.Fatalf("reset printed %+v", removed)
	}
	if r := cli(t, d.socket, "get", "config/wifi/wlan0", "ssid"); r.code != 1 {
		t.Fatalf("ssid after reset: %s", r)
	}
	if got := ok(t, d.socket, "reset", "--all").stdout; got != "[]\n" {
		t.Fatalf("second reset printed %q", got)
	}
	d.stop()
	d = startDaemon(t, dir, "--no-sync")
	if r := cli(t, d.socket, "get", "config/ntp/main", "server"); r.code != 1 {
		t.Fatalf("reset config came back after a restart: %s", r)
	}
}

// TestR45_ExportImportCLI: export (JSON and --cbor) from one daemon, import
// into another, same saved config; a pattern matching nothing and a foreign
// file are errors that change nothing (R45).
func TestR45_ExportImportCLI(t *testing.T) {
	a := startDaemon(t, t.TempDir(), "--no-sync")
	ok(t, a.socket, "set", "--owner", "ui", "config/wifi/wlan0", `ssid="home"`, "channel=11", "gain=1.0")
	js := ok(t, a.socket, "export", "config/wifi").stdout
	if js != `{"wifi":{"wlan0":{"channel":11,"gain":1.0,"ssid":"home"}}}`+"\n" {
		t.Fatalf("export printed %q", js)
	}
	dir := t.TempDir()
	jsonFile, cborFile := filepath.Join(dir, "c.json"), filepath.Join(dir, "c.cbor")
	must(t, os.WriteFile(jsonFile, []byte(js), 0o600))
	must(t, os.WriteFile(cborFile, []byte(ok(t, a.socket, "export", "--cbor", "--layer", "saved").stdout), 0o600))
	for _, f := range []string{jsonFile, cborFile} {
		b := startDaemon(t, t.TempDir(), "--no-sync")
		if got := ok(t, b.socket, "import", "--owner", "restore", f).stdout; got != `{"keys":3}`+"\n" {
			t.Fatalf("import printed %q", got)
		}
		if got := ok(t, b.socket, "export", "--layer", "saved").stdout; got != js {
			t.Fatalf("after import of %s: %q, want %q", f, got, js)
		}
	}
	if r := fails(t, 1, a.socket, "export", "config/nothing"); !strings.Contains(r.stderr, "no config scope matches") {
		t.Fatalf("export of nothing: %s", r)
	}
	foreign := filepath.Join(dir, "foreign")
	must(t, os.WriteFile(foreign, []byte("#!/bin/sh\necho hi\n"), 0o600))
	if r := fails(t, 1, a.socket, "import", "--owner", "x", foreign); !strings.Contains(r.stderr, "not a sysreg export") {
		t.Fatalf("import of a foreign file: %s", r)
	}
	fails(t, 2, a.socket, "import", jsonFile)
	fails(t, 2, a.socket, "export", "state/net")
}
