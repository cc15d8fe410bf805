package main

// End-to-end tests: they build the real sysregd binary once (TestMain) and
// run it as a daemon on a Unix socket under a short temporary path, and as
// the command line client (R30–R35).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

// bin is the sysregd binary built by TestMain.
var bin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sysregd-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "sysregd")
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		goTool = "go"
	}
	build := exec.Command(goTool, "build", "-o", bin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build sysregd:", err)
		return 1
	}
	return m.Run()
}

// syncBuffer is a bytes.Buffer safe for a child's output and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// shortSocket returns a socket path in a new short temporary directory:
// Unix socket paths are limited to about 108 bytes.
func shortSocket(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s")
}

// env is the environment of every child: no default data directory or
// socket of the user's is ever touched.
func env(t *testing.T, socket string) []string {
	return append(os.Environ(), "SYSREG_SOCKET="+socket, "XDG_STATE_HOME="+t.TempDir())
}

// proc is a running sysregd process.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{} // closed when the process has exited
	state  *os.ProcessState
}

func start(t *testing.T, socket string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, cmd: exec.Command(bin, args...), stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = env(t, socket)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		p.state = p.cmd.ProcessState
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.state.ExitCode()
	case <-time.After(timeout):
		p.t.Fatalf("%s did not exit within %v; stderr:\n%s", p.cmd.Args, timeout, p.stderr)
		return -1
	}
}

// signal sends sig and waits for the exit code.
func (p *proc) signal(sig os.Signal) int {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
	return p.wait(15 * time.Second)
}

// daemon is a running "sysregd serve".
type daemon struct {
	*proc
	dir, socket string
}

// startDaemon runs "sysregd serve" on dataDir and a socket under a short
// path and waits until the socket answers.
func startDaemon(t *testing.T, dataDir string, args ...string) *daemon {
	t.Helper()
	return startDaemonAt(t, dataDir, shortSocket(t), args...)
}

func startDaemonAt(t *testing.T, dataDir, socket string, args ...string) *daemon {
	t.Helper()
	d := &daemon{dir: dataDir, socket: socket}
	d.proc = start(t, socket, append([]string{"serve", "--data-dir", dataDir, "--socket", socket, "--log-level", "debug"}, args...)...)
	d.waitReady()
	return d
}

// waitReady polls the socket with a handshake until it answers.
func (d *daemon) waitReady() {
	d.t.Helper()
	poll(d.t, 10*time.Second, "the daemon to answer", func() bool {
		if d.exited() {
			d.t.Fatalf("sysregd serve exited with %d:\n%s", d.state.ExitCode(), d.stderr)
		}
		ctx, cancel := context.WithTimeout(d.t.Context(), time.Second)
		defer cancel()
		c, err := store.Dial(ctx, d.socket)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// stop shuts the daemon down with SIGTERM and expects exit code 0 (R30).
func (d *daemon) stop() {
	d.t.Helper()
	if code := d.signal(syscall.SIGTERM); code != 0 {
		d.t.Fatalf("sysregd serve exited with %d after SIGTERM:\n%s", code, d.stderr)
	}
}

func (d *daemon) dial(t *testing.T) *store.Client {
	t.Helper()
	c, err := store.Dial(t.Context(), d.socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// poll calls cond until it is true, failing the test after timeout.
func poll(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// result is a finished command.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// cli runs "sysregd args…" against socket and returns its outcome.
func cli(t *testing.T, socket string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env(t, socket)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("sysregd %s: %v", args, err)
	}
	r := result{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
	if strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine ") {
		t.Fatalf("sysregd %s crashed:\n%s", args, r)
	}
	return r
}

// ok runs cli and expects exit code 0.
func ok(t *testing.T, socket string, args ...string) result {
	t.Helper()
	r := cli(t, socket, args...)
	if r.code != 0 {
		t.Fatalf("sysregd %s: %s", args, r)
	}
	return r
}

// fails runs cli and expects exit code want and an error on stderr.
func fails(t *testing.T, want int, socket string, args ...string) result {
	t.Helper()
	r := cli(t, socket, args...)
	if r.code != want || !strings.Contains(r.stderr, "sysregd:") {
		t.Fatalf("sysregd %s: want exit %d with an error: %s", args, want, r)
	}
	return r
}

// jsonOf decodes one JSON document with json.Number numbers.
func jsonOf(t *testing.T, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("more than one JSON document:\n%s", s)
	}
	return m
}

// path follows keys through nested maps; nil if absent.
func path(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func snapshot(t *testing.T, c *store.Client) core.Snapshot {
	t.Helper()
	s, err := c.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// lines reads r line by line into a channel, closed at EOF.
func lines(r io.Reader) <-chan string {
	ch := make(chan string, 64)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 64<<20)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
}

func nextLine(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case l, ok := <-ch:
		if !ok {
			t.Fatal("output ended")
		}
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("no line within 10s")
	}
	return ""
}

// TestBigView: a view larger than the daemon's frame limit (which limits
// requests) still reaches clients: get, Snapshot and deliveries. Before the
// fix the client refused the frame, lost its connection, and with it its
// owners (R13) — any subscriber died once the view passed 4 MiB.
func TestBigView(t *testing.T) {
	d := startDaemon(t, t.TempDir(), "--no-sync")
	c := d.dial(t)
	o, err := c.Owner(t.Context(), "big", core.OwnerOptions{})
	must(t, err)
	chunk := strings.Repeat("x", 900<<10)
	for i := range 6 {
		must(t, o.Update(t.Context(), core.StateScope("big", fmt.Sprint(i)), core.Values{"v": chunk}))
	}
	sub, err := c.Subscribe(t.Context(), core.SubscribeOptions{})
	must(t, err)
	select {
	case s, ok := <-sub.C():
		if !ok || s.Len(core.State) != 6 {
			t.Fatalf("delivery: ok %v, %d keys", ok, s.Len(core.State))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery")
	}
	r := ok(t, d.socket, "get")
	if len(r.stdout) < 5<<20 {
		t.Fatalf("get printed %d bytes", len(r.stdout))
	}
	if got := snapshot(t, c).Len(core.State); got != 6 {
		t.Fatalf("%d keys after get, want 6", got)
	}
}

// TestSocketMode: the socket is created 0600 (R35).
func TestSocketMode(t *testing.T) {
	d := startDaemon(t, t.TempDir(), "--no-sync")
	fi, err := os.Stat(d.socket)
	must(t, err)
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	d.stop()
	if _, err := os.Lstat(d.socket); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the socket is still there after shutdown: %v", err)
	}
}

// TestOwnerDeathOnDisconnect: a connection may attach several owners, and
// when it drops they all die, config without KeepConfig included (R13, R31);
// a KeepConfig owner's config stays, its state goes.
func TestOwnerDeathOnDisconnect(t *testing.T) {
	d := startDaemon(t, t.TempDir(), "--no-sync")
	watcher := d.dial(t)
	c, err := store.Dial(t.Context(), d.socket)
	must(t, err)
	a, err := c.Owner(t.Context(), "a", core.OwnerOptions{})
	must(t, err)
	b, err := c.Owner(t.Context(), "b", core.OwnerOptions{})
	must(t, err)
	k, err := c.Owner(t.Context(), "k", core.OwnerOptions{KeepConfig: true})
	must(t, err)
	must(t, a.Update(t.Context(), core.StateScope("net", "eth0"), core.Values{"up": true}))
	must(t, a.Update(t.Context(), core.ConfigScope("net", "eth0"), core.Values{"mtu": 1500}))
	must(t, b.Update(t.Context(), core.StateScope("net", "eth1"), core.Values{"up": false}))
	must(t, k.Update(t.Context(), core.StateScope("k", "s"), core.Values{"x": 1}))
	must(t, k.Update(t.Context(), core.ConfigScope("k", "c"), core.Values{"x": 2}))
	// Another connection cannot attach the same names (R8).
	if _, err := watcher.Owner(t.Context(), "a", core.OwnerOptions{}); !errors.Is(err, core.ErrOwnerInUse) {
		t.Fatalf("second session of a: %v, want ErrOwnerInUse", err)
	}
	s := snapshot(t, watcher)
	if s.Len(core.State) != 3 || s.Len(core.Config) != 2 {
		t.Fatalf("before: %d state, %d config keys", s.Len(core.State), s.Len(core.Config))
	}
	must(t, c.Close())
	poll(t, 5*time.Second, "owner deaths", func() bool {
		s = snapshot(t, watcher)
		return s.Len(core.State) == 0 && s.Len(core.Config) == 1
	})
	if v, _ := s.Get(core.ConfigScope("k", "c"), "x"); v != int64(2) {
		t.Fatalf("KeepConfig owner's config: %v", v)
	}
	if o, _ := s.Owner(core.ConfigScope("k", "c"), "x"); o != "k" {
		t.Fatalf("owner of config/k/c x: %q", o)
	}
	// The names are free again.
	a2, err := watcher.Owner(t.Context(), "a", core.OwnerOptions{})
	must(t, err)
	must(t, a2.Close())
}

// TestKeepConfigSurvivesRestart: config of a KeepConfig owner outlives its
// client and a daemon restart, with its owner, and that owner name can
// delete it again (R13, R27).
func TestKeepConfigSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir)
	c := d.dial(t)
	o, err := c.Owner(t.Context(), "keeper", core.OwnerOptions{KeepConfig: true})
	must(t, err)
	must(t, o.Update(t.Context(), core.ConfigScope("wifi", "wlan0"), core.Values{"ssid": "home", "n": uint64(1 << 63)}))
	must(t, o.Update(t.Context(), core.StateScope("wifi", "wlan0"), core.Values{"rssi": -40}))
	seq := snapshot(t, c).Seq()
	must(t, c.Close())
	d.stop()

	d = startDaemonAt(t, dir, d.socket)
	c = d.dial(t)
	s := snapshot(t, c)
	if s.Len(core.State) != 0 {
		t.Fatalf("state after restart: %v (R26)", s.Map())
	}
	if v, _ := s.Get(core.ConfigScope("wifi", "wlan0"), "n"); v != uint64(1<<63) {
		t.Fatalf("config/wifi/wlan0 n = %#v after restart, want uint64 (R2)", v)
	}
	if own, _ := s.Owner(core.ConfigScope("wifi", "wlan0"), "ssid"); own != "keeper" {
		t.Fatalf("owner %q after restart", own)
	}
	if s.Seq() <= seq {
		t.Fatalf("seq %d after restart, was %d (R7)", s.Seq(), seq)
	}
	// Another owner may not delete it; its owner may (R11, R27).
	fails(t, 1, d.socket, "delete", "config/wifi/wlan0", "ssid")
	ok(t, d.socket, "delete", "--owner", "keeper", "config/wifi/wlan0", "ssid")
	s = snapshot(t, c)
	if _, ok := s.Get(core.ConfigScope("wifi", "wlan0"), "ssid"); ok {
		t.Fatal("ssid still there after delete --owner keeper")
	}
	if _, ok := s.Get(core.ConfigScope("wifi", "wlan0"), "n"); !ok {
		t.Fatal("delete --owner keeper ssid took keeper's other key with it")
	}
}

// TestShutdownKeepsConfig: SIGTERM with live sessions exits 0 and deletes
// nothing: a clean shutdown is not an owner death (R27, R30).
func TestShutdownKeepsConfig(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir)
	c := d.dial(t)
	o, err := c.Owner(t.Context(), "live", core.OwnerOptions{})
	must(t, err)
	must(t, o.Update(t.Context(), core.ConfigScope("live", "x"), core.Values{"v": "kept"}))
	sub, err := c.Subscribe(t.Context(), core.SubscribeOptions{})
	must(t, err)
	<-sub.C()
	d.stop()
	if !strings.Contains(d.stderr.String(), "stopped") {
		t.Errorf("no 'stopped' in the log:\n%s", d.stderr)
	}
	// The client notices.
	poll(t, 5*time.Second, "the client to lose its connection", func() bool {
		_, err := c.Snapshot(t.Context())
		return errors.Is(err, store.ErrConnLost)
	})
	if _, open := <-sub.C(); open {
		t.Fatal("subscription channel still open after the daemon stopped")
	}

	d = startDaemonAt(t, dir, d.socket)
	s := snapshot(t, d.dial(t))
	if v, _ := s.Get(core.ConfigScope("live", "x"), "v"); v != "kept" {
		t.Fatalf("config of a live session after SIGTERM and restart: %v", s.Map())
	}
}

// TestSecondServeRefuses: a second daemon on the same socket refuses to
// start and leaves the first one serving (R30); on the same data directory
// it fails with the lock (R29).
func TestSecondServeRefuses(t *testing.T) {
	d := startDaemon(t, t.TempDir(), "--no-sync")
	t.Run("same-socket", func(t *testing.T) {
		p := start(t, d.socket, "serve", "--data-dir", t.TempDir(), "--socket", d.socket)
		if code := p.wait(10 * time.Second); code != 1 {
			t.Fatalf("second serve exited %d:\n%s", code, p.stderr)
		}
		if !strings.Contains(p.stderr.String(), "another daemon answers") {
			t.Fatalf("stderr:\n%s", p.stderr)
		}
	})
	t.Run("same-data-dir", func(t *testing.T) {
		p := start(t, "", "serve", "--data-dir", d.dir, "--socket", shortSocket(t))
		if code := p.wait(10 * time.Second); code != 1 {
			t.Fatalf("second serve exited %d:\n%s", code, p.stderr)
		}
		if !strings.Contains(p.stderr.String(), "locked") {
			t.Fatalf("stderr:\n%s", p.stderr)
		}
	})
	if d.exited() {
		t.Fatalf("the first daemon exited:\n%s", d.stderr)
	}
	ok(t, d.socket, "set", "--keep-config", "config/still/here", "x=1")
	if r := ok(t, d.socket, "get", "config/still/here"); strings.TrimSpace(r.stdout) != `{"x":1}` {
		t.Fatalf("get: %s", r)
	}
}

// TestStaleSocket: a socket file nobody listens on is removed and serve
// starts (R30); a path that is not a socket is left alone and refused.
func TestStaleSocket(t *testing.T) {
	socket := shortSocket(t)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	must(t, err)
	ln.SetUnlinkOnClose(false)
	must(t, ln.Close())
	if _, err := os.Lstat(socket); err != nil {
		t.Fatalf("the stale socket file is gone already: %v", err)
	}
	d := startDaemonAt(t, t.TempDir(), socket, "--no-sync")
	ok(t, d.socket, "stats")
	d.stop()

	t.Run("not-a-socket", func(t *testing.T) {
		file := shortSocket(t)
		must(t, os.WriteFile(file, []byte("precious"), 0o600))
		p := start(t, file, "serve", "--data-dir", t.TempDir(), "--socket", file)
		if code := p.wait(10 * time.Second); code != 1 || !strings.Contains(p.stderr.String(), "not a socket") {
			t.Fatalf("exit %d:\n%s", code, p.stderr)
		}
		if b, err := os.ReadFile(file); err != nil || string(b) != "precious" {
			t.Fatalf("the file was touched: %q %v", b, err)
		}
	})
}

// TestHelpAndUsage: every subcommand has --help (exit 0, help on stdout)
// and refuses an unknown flag with exit 2 and an error on stderr (R33).
func TestHelpAndUsage(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "none") // no daemon needed
	for name := range commands {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := ok(t, socket, name, "--help")
			if !strings.HasPrefix(r.stdout, "usage: sysregd "+name) || !strings.Contains(r.stdout, "-") || r.stderr != "" {
				t.Fatalf("--help: %s", r)
			}
			r = fails(t, 2, socket, name, "--no-such-flag")
			if r.stdout != "" || !strings.Contains(r.stderr, "no-such-flag") {
				t.Fatalf("unknown flag: %s", r)
			}
		})
	}
	t.Run("no-command", func(t *testing.T) { fails(t, 2, socket) })
	t.Run("unknown-command", func(t *testing.T) { fails(t, 2, socket, "frobnicate") })
	t.Run("help", func(t *testing.T) {
		r := ok(t, socket, "help")
		for name := range commands {
			if !strings.Contains(r.stdout, "  "+name+" ") {
				t.Errorf("help does not list %s:\n%s", name, r.stdout)
			}
		}
	})
	t.Run("no-daemon", func(t *testing.T) {
		for _, args := range [][]string{{"get"}, {"set", "config/a/b", "x=1"}, {"delete", "config/a/b"}, {"evict", "x"}, {"stats"}, {"watch"}} {
			r := fails(t, 1, socket, args...)
			if !strings.Contains(r.stderr, "sysregd serve running") || r.stdout != "" {
				t.Errorf("%s: %s", args, r)
			}
		}
	})
}

// TestCLI runs get, set, delete, evict and stats against a daemon (R33).
func TestCLI(t *testing.T) {
	d := startDaemon(t, t.TempDir(), "--no-sync")
	sock := d.socket
	c := d.dial(t)

	if r := ok(t, sock, "get"); strings.TrimSpace(r.stdout) != "{}" {
		t.Fatalf("get on an empty registry: %s", r)
	}
	t.Run("set-types", func(t *testing.T) {
		r := ok(t, sock, "set", "--owner", "t", "--keep-config", "config/cli/types",
			"i=42", "neg=-7", "u=18446744073709551615", "f=1.5", "e=1e3", "b=true", "n=null",
			"s=hello", `q="quoted"`, `arr=[1,"a",{"z":null}]`, `obj={"x":{"y":2}}`, "bad={x", "two=1 2", "empty=")
		if r.stdout != "" {
			t.Fatalf("set printed on stdout: %q", r.stdout)
		}
		s := snapshot(t, c).Values(core.ConfigScope("cli", "types"))
		want := core.Values{
			"i": int64(42), "neg": int64(-7), "u": uint64(18446744073709551615), "f": 1.5, "e": 1000.0,
			"b": true, "n": nil, "s": "hello", "q": "quoted",
			"arr": []any{int64(1), "a", map[string]any{"z": nil}},
			"obj": map[string]any{"x": map[string]any{"y": int64(2)}},
			"bad": "{x", "two": "1 2", "empty": "",
		}
		if fmt.Sprintf("%#v", s) != fmt.Sprintf("%#v", want) {
			t.Fatalf("stored\n%#v\nwant\n%#v", s, want)
		}
		got := jsonOf(t, ok(t, sock, "get", "config/cli/types").stdout)
		if got["u"] != json.Number("18446744073709551615") || got["n"] != nil || path(got, "obj", "x", "y") != json.Number("2") {
			t.Fatalf("get config/cli/types: %v", got)
		}
		view := jsonOf(t, ok(t, sock, "get").stdout)
		if path(view, "config", "cli", "types", "s") != "hello" {
			t.Fatalf("get: %v", view)
		}
		if r := ok(t, sock, "get", "config/cli/none"); strings.TrimSpace(r.stdout) != "{}" {
			t.Fatalf("get of an empty scope: %s", r)
		}
	})
	t.Run("set-without-keep-config", func(t *testing.T) {
		r := ok(t, sock, "set", "config/cli/gone", "x=1")
		if !strings.Contains(r.stderr, "deleted when this command exits") {
			t.Fatalf("no warning: %s", r)
		}
		r = ok(t, sock, "set", "state/cli/gone", "x=1")
		if !strings.Contains(r.stderr, "deleted when this command exits") {
			t.Fatalf("no warning: %s", r)
		}
		s := snapshot(t, c)
		if s.Values(core.ConfigScope("cli", "gone")) != nil || s.Values(core.StateScope("cli", "gone")) != nil {
			t.Fatalf("keys outlived the command: %v", s.Map())
		}
		// Updating another owner's config key needs no warning: it
		// keeps its owner (R11).
		r = ok(t, sock, "set", "config/cli/types", "i=43")
		if r.stderr != "" {
			t.Fatalf("warning for a key owned by another: %s", r)
		}
		if v, _ := snapshot(t, c).Get(core.ConfigScope("cli", "types"), "i"); v != int64(43) {
			t.Fatalf("i = %v", v)
		}
	})
	t.Run("set-anonymous-keep-config", func(t *testing.T) {
		r := ok(t, sock, "set", "--keep-config", "config/cli/anon", "x=1")
		s := snapshot(t, c)
		own, _ := s.Owner(core.ConfigScope("cli", "anon"), "x")
		if own == "" || !strings.Contains(r.stderr, own) {
			t.Fatalf("owner %q not named: %s", own, r)
		}
		ok(t, sock, "evict", own)
	})
	t.Run("delete", func(t *testing.T) {
		r := fails(t, 1, sock, "delete", "config/cli/types", "i")
		if !strings.Contains(r.stderr, "--owner") {
			t.Fatalf("no hint: %s", r)
		}
		ok(t, sock, "delete", "--owner", "t", "config/cli/types", "i", "neg")
		vals := snapshot(t, c).Values(core.ConfigScope("cli", "types"))
		if _, ok := vals["i"]; ok || vals["s"] != "hello" {
			t.Fatalf("after delete i neg: %v", vals)
		}
		ok(t, sock, "delete", "--owner", "t", "config/cli/types", "missing") // R12: no-op
		ok(t, sock, "delete", "--owner", "t", "config/cli/nowhere")
		// A live session of the name: owner_in_use.
		o, err := c.Owner(t.Context(), "busy", core.OwnerOptions{})
		must(t, err)
		must(t, o.Update(t.Context(), core.StateScope("cli", "busy"), core.Values{"x": 1}))
		r = fails(t, 1, sock, "delete", "--owner", "busy", "state/cli/busy", "x")
		if !strings.Contains(r.stderr, "in use") {
			t.Fatalf("%s", r)
		}
		r = fails(t, 1, sock, "evict", "busy")
		must(t, o.Close())
		// Deleting all of an owner's keys in a scope.
		ok(t, sock, "delete", "--owner", "t", "config/cli/types")
		if v := snapshot(t, c).Values(core.ConfigScope("cli", "types")); v != nil {
			t.Fatalf("after delete of all keys: %v", v)
		}
	})
	t.Run("evict", func(t *testing.T) {
		ok(t, sock, "set", "--owner", "ev", "--keep-config", "config/cli/ev1", "x=1")
		ok(t, sock, "set", "--owner", "ev", "--keep-config", "config/cli/ev2", "y=2")
		ok(t, sock, "evict", "ev")
		s := snapshot(t, c)
		if s.Holds("ev", core.Config) {
			t.Fatalf("ev still holds config: %v", s.Map())
		}
		ok(t, sock, "evict", "nobody") // nothing to do
	})
	t.Run("stats", func(t *testing.T) {
		st := jsonOf(t, ok(t, sock, "stats").stdout)
		if st["seq"] == nil || path(st, "server", "connections") == nil || path(st, "journal", "records") == nil {
			t.Fatalf("stats: %v", st)
		}
	})
	t.Run("usage-errors", func(t *testing.T) {
		fails(t, 2, sock, "get", "bogus/a/b")
		fails(t, 2, sock, "get", "config/a")
		fails(t, 2, sock, "get", "config/a/b", "extra")
		fails(t, 2, sock, "set", "config/a/b")
		fails(t, 2, sock, "set", "config/a/b", "novalue")
		fails(t, 2, sock, "set", "config/a/b", "=1")
		fails(t, 2, sock, "set", "config/a/b", "x=1", "x=2")
		fails(t, 2, sock, "delete")
		fails(t, 2, sock, "evict")
		fails(t, 2, sock, "watch", "--match", "nobucket/x")
		fails(t, 2, sock, "watch", "extra")
		fails(t, 2, sock, "stats", "extra")
	})
	t.Run("refused", func(t *testing.T) {
		o, err := c.Owner(t.Context(), "holder", core.OwnerOptions{})
		must(t, err)
		must(t, o.Update(t.Context(), core.StateScope("cli", "held"), core.Values{"x": 1}))
		fails(t, 1, sock, "set", "state/cli/held", "x=2") // R10
		fails(t, 1, sock, "set", "--owner", strings.Repeat("n", 129), "config/a/b", "x=1") // R8
		if v, _ := snapshot(t, c).Get(core.StateScope("cli", "held"), "x"); v != int64(1) {
			t.Fatalf("held x = %v", v)
		}
	})
}

// TestWatch: one line per delivery, the current view first; --match wakes
// only for matching changes while still printing the whole view (R16, R21,
// R33); SIGINT ends it with exit 0, a daemon going away with exit 1.
func TestWatch(t *testing.T) {
	d := startDaemon(t, t.TempDir(), "--no-sync")
	ok(t, d.socket, "set", "--owner", "pre", "--keep-config", "config/pre/x", "a=1")

	w := exec.Command(bin, "watch", "--match", "config/watch")
	w.Env = env(t, d.socket)
	var stderr syncBuffer
	w.Stderr = &stderr
	out, err := w.StdoutPipe()
	must(t, err)
	must(t, w.Start())
	exited := make(chan int, 1)
	go func() { w.Wait(); exited <- w.ProcessState.ExitCode() }()
	t.Cleanup(func() { w.Process.Kill() })
	ch := lines(out)

	type delivery struct {
		Seq  uint64         `json:"seq"`
		View map[string]any `json:"view"`
	}
	next := func() delivery {
		t.Helper()
		l := nextLine(t, ch)
		var dl delivery
		if err := json.Unmarshal([]byte(l), &dl); err != nil || dl.View == nil {
			t.Fatalf("bad line %q: %v", l, err)
		}
		return dl
	}
	first := next()
	if path(first.View, "config", "pre", "x", "a") != 1.0 {
		t.Fatalf("first delivery is not the current view: %+v", first)
	}
	ok(t, d.socket, "set", "--owner", "other", "--keep-config", "config/other/x", "a=1")
	ok(t, d.socket, "set", "--owner", "w", "--keep-config", "config/watch/x", "n=1")
	second := next()
	if second.Seq <= first.Seq || path(second.View, "config", "watch", "x", "n") != 1.0 {
		t.Fatalf("second delivery %+v after %+v", second, first)
	}
	// config/other did not wake the watcher, but the view is whole (R21).
	if path(second.View, "config", "other", "x", "a") != 1.0 {
		t.Fatalf("the non-matching change is missing from the view: %+v", second)
	}
	ok(t, d.socket, "set", "--owner", "w", "--keep-config", "config/watch/x", "n=2")
	third := next()
	if third.Seq <= second.Seq || path(third.View, "config", "watch", "x", "n") != 2.0 {
		t.Fatalf("third delivery %+v", third)
	}
	must(t, w.Process.Signal(os.Interrupt))
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("watch exited %d after SIGINT: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not exit after SIGINT")
	}

	t.Run("daemon-goes-away", func(t *testing.T) {
		p := start(t, d.socket, "watch", "--min-interval", "10ms", "--hysteresis", "1ms")
		poll(t, 5*time.Second, "the watch to subscribe", func() bool {
			st := jsonOf(t, ok(t, d.socket, "stats").stdout)
			return st["subscriptions"] == json.Number("1")
		})
		d.stop()
		if code := p.wait(10 * time.Second); code != 1 || !strings.Contains(p.stderr.String(), "sysregd:") {
			t.Fatalf("watch exited %d when the daemon stopped:\n%s", code, p.stderr)
		}
	})
}
