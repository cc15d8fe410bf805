package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestChanges runs 'sysregd changes' against a real daemon (R47): the
// history as one JSON line per mutation with per-layer old and new
// values, a resume from the last seq seen, nothing after the newest, and
// bad arguments as usage errors (exit 2).
func TestChanges(t *testing.T) {
	d := startDaemon(t, t.TempDir(), "--no-sync")
	sock := d.socket
	ok(t, sock, "set", "--owner", "wifid", "config/wifi/wlan0", "ssid=home", "psk=x")
	ok(t, sock, "set", "--owner", "wifid", "config/wifi/wlan0", "ssid=office")
	ok(t, sock, "set", "state/net/wan", "up=true") // state: not in the feed
	ok(t, sock, "delete", "--owner", "wifid", "config/wifi/wlan0", "psk")

	type change struct {
		Layer, Scope, Key string
		Old, New          any
		OldOwner          string `json:"old_owner"`
		NewOwner          string `json:"new_owner"`
	}
	type item struct {
		Seq     uint64
		Time    string
		Changes []change
	}
	parse := func(out string) []item {
		var items []item
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if line == "" {
				continue
			}
			var it item
			if err := json.Unmarshal([]byte(line), &it); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			items = append(items, it)
		}
		return items
	}
	all := parse(ok(t, sock, "changes", "--from", "0").stdout)
	if len(all) != 3 {
		t.Fatalf("3 config mutations, got %d items: %+v", len(all), all)
	}
	want := [][]change{
		{{Layer: "saved", Scope: "config/wifi/wlan0", Key: "psk", New: "x", NewOwner: "wifid"}, {Layer: "saved", Scope: "config/wifi/wlan0", Key: "ssid", New: "home", NewOwner: "wifid"}},
		{{Layer: "saved", Scope: "config/wifi/wlan0", Key: "ssid", Old: "home", OldOwner: "wifid", New: "office", NewOwner: "wifid"}},
		{{Layer: "saved", Scope: "config/wifi/wlan0", Key: "psk", Old: "x", OldOwner: "wifid"}},
	}
	for i, it := range all {
		if it.Time == "" || (i > 0 && it.Seq <= all[i-1].Seq) {
			t.Errorf("item %d: seq %d, time %q", i, it.Seq, it.Time)
		}
		if got, _ := json.Marshal(it.Changes); string(got) != string(must2(json.Marshal(want[i]))) {
			t.Errorf("item %d: %s, want %s", i, got, must2(json.Marshal(want[i])))
		}
	}
	if rest := parse(ok(t, sock, "changes", "--from", itoa(all[0].Seq)).stdout); len(rest) != 2 || rest[0].Seq != all[1].Seq {
		t.Errorf("resume after %d: %+v", all[0].Seq, rest)
	}
	if r := ok(t, sock, "changes", "--from", itoa(all[2].Seq)); r.stdout != "" {
		t.Errorf("nothing after the newest: %s", r)
	}
	for _, args := range [][]string{{"--from", "x"}, {"--from", "-1"}, {"extra"}} {
		if r := cli(t, sock, append([]string{"changes"}, args...)...); r.code != 2 {
			t.Errorf("changes %s: want exit 2: %s", args, r)
		}
	}
}

func must2(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func itoa(n uint64) string { return strings.TrimSpace(string(must2(json.Marshal(n)))) }
