package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sysreg/sysreg/core"
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

// TestFeedRetentionFlag runs 'sysregd serve --feed-retention N' (R47): a
// checkpoint keeps the newest N config changes it covers for 'changes
// --from', and drops the older ones, across a restart; 0 keeps none beyond the checkpoint; a
// negative or non-integer N is a usage error (exit 2) that starts nothing.
func TestFeedRetentionFlag(t *testing.T) {
	// 17 updates of 1,000,000 bytes pass the journal's 16 MiB
	// checkpoint threshold (store.Options.CheckpointBytes) on the last
	// one, and not before: the daemon has no flag for the threshold.
	const writes, size = 17, 1_000_000
	for _, keep := range []int{5, 0} {
		t.Run(fmt.Sprintf("feed-retention=%d", keep), func(t *testing.T) {
			dir := t.TempDir()
			d := startDaemon(t, dir, "--no-sync", "--feed-retention", fmt.Sprint(keep))
			c := d.dial(t)
			o, err := c.Owner(t.Context(), "blobd", core.OwnerOptions{KeepConfig: true})
			must(t, err)
			for i := range writes {
				must(t, o.Update(t.Context(), core.ConfigScope("blob", "x"), core.Values{fmt.Sprint("k", i): strings.Repeat("v", size)}))
			}
			poll(t, 30*time.Second, "a checkpoint", func() bool {
				st, err := c.Stats(t.Context())
				return err == nil && st.Journal.Checkpoints > 0
			})
			c.Close()

			// Twice: on the running daemon, and after a restart (the
			// history is kept across restarts).
			for _, when := range []string{"running", "restarted"} {
				if when == "restarted" {
					d.stop()
					d = startDaemonAt(t, dir, d.socket, "--no-sync", "--feed-retention", fmt.Sprint(keep))
				}
				r := fails(t, 1, d.socket, "changes", "--from", "0")
				var oldest uint64
				_, msg, found := strings.Cut(r.stderr, "history compacted: the oldest --from kept is ")
				if _, err := fmt.Sscanf(msg, "%d;", &oldest); !found || err != nil {
					t.Fatalf("%s: changes --from 0: %s", when, r)
				}
				var keys []string
				for _, line := range strings.Split(strings.TrimSpace(ok(t, d.socket, "changes", "--from", itoa(oldest)).stdout), "\n") {
					var it struct{ Changes []struct{ Key string } }
					if line == "" {
						continue
					}
					if err := json.Unmarshal([]byte(line), &it); err != nil || len(it.Changes) != 1 {
						t.Fatalf("%s: line %.100q: %v", when, line, err)
					}
					keys = append(keys, it.Changes[0].Key)
				}
				// The checkpoint keeps the newest keep changes it covers;
				// it may have been taken before the last write became
				// visible, and then that write, above it, is kept too.
				var want []string
				for i := writes - len(keys); i < writes; i++ {
					want = append(want, fmt.Sprint("k", i))
				}
				if len(keys) < keep || len(keys) > keep+1 || fmt.Sprint(keys) != fmt.Sprint(want) {
					t.Errorf("%s: changes --from %d (the oldest kept): keys %v, want the newest %d (or %d)", when, oldest, keys, keep, keep+1)
				}
			}
		})
	}

	t.Run("bad-flag", func(t *testing.T) {
		for _, n := range []string{"-1", "x", "1.5", ""} {
			sock := shortSocket(t)
			r := cli(t, sock, "serve", "--data-dir", t.TempDir(), "--socket", sock, "--feed-retention", n)
			if r.code != 2 || !strings.Contains(r.stderr, "--feed-retention") {
				t.Errorf("serve --feed-retention %q: %s", n, r)
			}
		}
	})
}
