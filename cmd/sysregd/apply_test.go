package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestR44_ConfirmWithinCLI: set --confirm-within prints an apply id that
// pending lists; confirm keeps the change, rollback undoes one and prints
// the keys it left alone; a restart of the daemon undoes what is still
// pending. Bad input — a deadline of 0, negative or over 24 h, confirm of
// an unknown or finished id, an id that is no number — is a clear error
// and changes nothing; another uid may not confirm or roll back.
func TestR44_ConfirmWithinCLI(t *testing.T) {
	data := t.TempDir()
	d := startDaemon(t, data, "--no-sync")
	ok(t, d.socket, "set", "--owner", "ui", "config/net/eth0", "address=10.0.0.1")
	for _, w := range []string{"0s", "-1s", "25h"} {
		r := fails(t, 1, d.socket, "set", "--owner", "ui", "--confirm-within", w, "config/net/eth0", "address=x")
		if !strings.Contains(r.stderr, "invalid confirm deadline") {
			t.Fatalf("--confirm-within %s: %s", w, r)
		}
	}
	fails(t, 2, d.socket, "set", "--confirm-within", "soon", "config/net/eth0", "address=x")
	id := strings.TrimSpace(ok(t, d.socket, "set", "--owner", "ui", "--confirm-within", "60s", "config/net/eth0", "address=10.0.0.2").stdout)
	var pend []struct {
		ID    uint64 `json:"id"`
		Owner string `json:"owner"`
		Keys  []struct {
			Key string `json:"key"`
			Old any    `json:"old"`
			New any    `json:"new"`
		} `json:"keys"`
	}
	must(t, json.Unmarshal([]byte(ok(t, d.socket, "pending").stdout), &pend))
	if len(pend) != 1 || id == "" || pend[0].Owner != "ui" || len(pend[0].Keys) != 1 || pend[0].Keys[0].Old != "10.0.0.1" || pend[0].Keys[0].New != "10.0.0.2" {
		t.Fatalf("pending: %+v (id %q)", pend, id)
	}
	if os.Getuid() == 0 {
		const nobody = 65534
		must(t, os.Chmod(filepath.Dir(d.socket), 0o755))
		must(t, os.Chmod(d.socket, 0o666))
		for _, cmd := range []string{"confirm", "rollback"} {
			r := cliAs(t, &syscall.Credential{Uid: nobody, Gid: nobody}, d.socket, cmd, id)
			// The daemon refuses (the socket lets nobody in): the
			// apply's owner "ui" is bound to root's uid (R35).
			if r.code != 1 || !strings.Contains(r.stderr, `apply `+id+` of "ui"`) || !strings.Contains(r.stderr, "permission") {
				t.Fatalf("%s by uid nobody: %s", cmd, r)
			}
		}
	}
	ok(t, d.socket, "confirm", id)
	if r := fails(t, 1, d.socket, "confirm", id); !strings.Contains(r.stderr, "no such pending apply") {
		t.Fatalf("second confirm: %s", r)
	}
	fails(t, 1, d.socket, "rollback", "999999")
	fails(t, 2, d.socket, "confirm", "abc")
	fails(t, 2, d.socket, "rollback")
	if got := ok(t, d.socket, "get", "config/net/eth0", "address").stdout; got != "10.0.0.2\n" {
		t.Fatalf("after confirm: %q", got)
	}

	// A rollback with a key changed since: left alone and printed.
	id = strings.TrimSpace(ok(t, d.socket, "set", "--owner", "ui", "--confirm-within", "1h", "config/net/eth0", "address=10.0.0.3", "gw=10.0.0.254").stdout)
	ok(t, d.socket, "set", "--owner", "ui", "config/net/eth0", "gw=192.168.0.1")
	var left []map[string]any
	must(t, json.Unmarshal([]byte(ok(t, d.socket, "rollback", id).stdout), &left))
	if len(left) != 1 || left[0]["key"] != "gw" || left[0]["new"] != "192.168.0.1" || left[0]["old"] != nil {
		t.Fatalf("rollback printed %v", left)
	}
	if got := ok(t, d.socket, "get", "config/net/eth0").stdout; got != `{"address":"10.0.0.2","gw":"192.168.0.1"}`+"\n" {
		t.Fatalf("after rollback: %q", got)
	}

	// Unconfirmed across a restart: undone before the daemon serves.
	ok(t, d.socket, "set", "--owner", "ui", "--confirm-within", "1h", "config/net/eth0", "address=192.0.2.1")
	d.stop()
	d = startDaemon(t, data, "--no-sync")
	if got := ok(t, d.socket, "get", "config/net/eth0", "address").stdout; got != "10.0.0.2\n" {
		t.Fatalf("after restart: %q", got)
	}
	if got := strings.TrimSpace(ok(t, d.socket, "pending").stdout); got != "[]" {
		t.Fatalf("pending after restart: %s", got)
	}
}
