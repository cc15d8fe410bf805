package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/testexec"
	"github.com/sysreg/sysreg/store"
)

// bindClientEnv makes the test binary, re-executed as another uid, run
// bindClient instead of the tests: a client that attaches several owners
// on one connection, which the CLI cannot do.
const bindClientEnv = "SYSREG_E2E_BIND_CLIENT"

// bindClient attaches wifi-setup (KeepConfig), then netd, then writes
// config as wifi-setup, on one connection to the socket in $SYSREG_SOCKET,
// and closes it: the sequence of issue #8 item 2.
func bindClient() int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := func() error {
		c, err := store.Dial(ctx, os.Getenv("SYSREG_SOCKET"))
		if err != nil {
			return err
		}
		defer c.Close()
		w, err := c.Owner(ctx, "wifi-setup", core.OwnerOptions{KeepConfig: true})
		if err != nil {
			return err
		}
		n, err := c.Owner(ctx, "netd", core.OwnerOptions{})
		if err != nil {
			return err
		}
		if err := n.Update(ctx, core.StateScope("net", "eth0"), core.Values{"up": true}); err != nil {
			return err
		}
		return w.Update(ctx, core.ConfigScope("wifi", "wlan0"), core.Values{"ssid": "home"})
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bind client:", err)
		return 1
	}
	return 0
}

// copyTestBinary copies the running test binary into a directory every
// user can read, so that it can be re-executed as another uid.
func copyTestBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	must(t, err)
	dir, err := os.MkdirTemp("", "sysregd-bind")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	must(t, os.Chmod(dir, 0o755))
	src, err := os.Open(exe)
	must(t, err)
	defer src.Close()
	path := filepath.Join(dir, "client")
	dst, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	must(t, err)
	_, err = io.Copy(dst, src)
	must(t, errors.Join(err, dst.Close()))
	return path
}

// TestR35_BindingOutlivesOtherAttaches is issue #8 item 2 against the real
// binary, with two real uids in the socket's group: uid 1234 attaches
// wifi-setup (KeepConfig), then netd, then writes config as wifi-setup, on
// one connection. uid 4321 may then neither attach as wifi-setup nor evict
// it — not after a clean restart, not after kill -9 — since the binding is
// in the journal with the config (no owners.json). uid 1234 still may, and
// root may evict it; once it holds nothing, the name is free for anyone.
func TestR35_BindingOutlivesOtherAttaches(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run clients as other uids")
	}
	if testexec.Emulated() {
		t.Skip("running a child as another uid under an emulator")
	}
	const group = 65534
	client := copyTestBinary(t)
	dir := t.TempDir()
	d := startDaemon(t, dir, "--socket-group", fmt.Sprint(group))
	must(t, os.Chmod(filepath.Dir(d.socket), 0o755))
	uidA := &syscall.Credential{Uid: 1234, Gid: group}
	uidB := &syscall.Credential{Uid: 4321, Gid: group}

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := testexec.CommandContext(ctx, client)
	cmd.Env = append(env(t, d.socket), bindClientEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: uidA}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("uid 1234's client: %v\n%s", err, out)
	}
	if got := jsonOf(t, ok(t, d.socket, "get", "config/wifi/wlan0").stdout); got["ssid"] != "home" {
		t.Fatalf("config/wifi/wlan0 = %v after uid 1234's client", got)
	}

	refused := func(when string) {
		t.Helper()
		r := cliAs(t, uidB, d.socket, "set", "--owner", "wifi-setup", "--keep-config", "config/wifi/wlan0", "ssid=evil")
		if r.code != 1 || !strings.Contains(r.stderr, "permission") {
			t.Fatalf("%s: uid 4321 attaching wifi-setup: %s", when, r)
		}
		r = cliAs(t, uidB, d.socket, "evict", "wifi-setup")
		if r.code != 1 || !strings.Contains(r.stderr, "permission") {
			t.Fatalf("%s: uid 4321 evicting wifi-setup: %s", when, r)
		}
		if got := jsonOf(t, ok(t, d.socket, "get", "config/wifi/wlan0").stdout); got["ssid"] != "home" {
			t.Fatalf("%s: config/wifi/wlan0 = %v", when, got)
		}
		if _, err := os.Stat(filepath.Join(dir, store.BindingsFile)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: %s exists (%v): bindings belong in the journal", when, store.BindingsFile, err)
		}
	}
	refused("running")
	d.stop()
	d = startDaemonAt(t, dir, d.socket, "--socket-group", fmt.Sprint(group))
	refused("after a clean restart")
	must(t, d.cmd.Process.Kill())
	d.wait(10 * time.Second)
	d = startDaemonAt(t, dir, d.socket, "--socket-group", fmt.Sprint(group))
	refused("after kill -9")

	// The bound uid keeps its name; root may evict it; then it is free.
	if r := cliAs(t, uidA, d.socket, "set", "--owner", "wifi-setup", "--keep-config", "config/wifi/wlan0", "ssid=home2"); r.code != 0 {
		t.Fatalf("uid 1234 writing as wifi-setup: %s", r)
	}
	ok(t, d.socket, "evict", "wifi-setup")
	if r := cliAs(t, uidB, d.socket, "set", "--owner", "wifi-setup", "--keep-config", "config/wifi/wlan0", "ssid=b"); r.code != 0 {
		t.Fatalf("uid 4321 taking the evicted name: %s", r)
	}
	if r := cliAs(t, uidA, d.socket, "evict", "wifi-setup"); r.code != 1 || !strings.Contains(r.stderr, "permission") {
		t.Fatalf("uid 1234 evicting wifi-setup, now uid 4321's: %s", r)
	}
}
