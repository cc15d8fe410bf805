package main

// End-to-end tests: they build the real sysregd binary once (TestMain) and
// run it as a daemon on a Unix socket under a short temporary path, and as
// the command line client (R30–R35).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/sysreg/sysreg/bench"
	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/testexec"
	"github.com/sysreg/sysreg/internal/wire"
	"github.com/sysreg/sysreg/journal"
	"github.com/sysreg/sysreg/store"
)

// bin is the sysregd binary built by TestMain.
var bin string

// coverDir is where children built with -cover write their counters
// (GOCOVERDIR); empty without 'go test -cover'.
var coverDir string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Getenv(bindClientEnv) != "" {
		return bindClient() // re-executed as another uid (bind_e2e_test.go)
	}
	dir, err := os.MkdirTemp("", "sysregd-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Readable by all: TestPeerCredentials runs it as another user.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Built for this test binary's GOARCH and run through SYSREG_TEST_EXEC,
	// so the suite also runs under qemu-user (see internal/testexec).
	bin = filepath.Join(dir, "sysregd")
	var flags []string
	if raceEnabled {
		flags = append(flags, "-race")
	}
	// Under 'go test -cover' the children are built with -cover too and
	// write their counters where the test binary writes its own, so the
	// coverage reported for cmd/sysregd includes what the e2e tests run
	// through the real binary (issue 8 item 16).
	flag.Parse()
	if f := flag.Lookup("test.gocoverdir"); f != nil && f.Value.String() != "" && testing.CoverMode() != "" {
		coverDir = f.Value.String()
		flags = append(flags, "-cover", "-covermode="+testing.CoverMode())
	}
	if err := testexec.Build(bin, ".", flags...); err != nil {
		fmt.Fprintln(os.Stderr, "build sysregd:", err)
		return 1
	}
	sysregdExe = func() (string, error) { return bin, nil }
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

// childLog is a child's stderr: a file that the child writes itself, so
// whatever it wrote before it answered on its socket can be read at once.
// (Through a pipe, os/exec's copying goroutine may not have passed it on
// yet: TestStartLineSaysPreviousRun found no start line now and then.)
type childLog struct{ path string }

func (l *childLog) String() string {
	b, err := os.ReadFile(l.path)
	if err != nil {
		return fmt.Sprintf("(stderr: %v)", err)
	}
	return string(b)
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
// Under -race the children are race-built too: a race report ends them
// with exit code 66, and they skip the race runtime's 1 s sleep at exit.
func env(t *testing.T, socket string) []string {
	e := append(os.Environ(), "SYSREG_SOCKET="+socket, "XDG_STATE_HOME="+t.TempDir(),
		"GORACE=atexit_sleep_ms=0 halt_on_error=1")
	if coverDir != "" {
		e = append(e, "GOCOVERDIR="+coverDir)
	}
	return e
}

// proc is a running sysregd process.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *childLog
	done   chan struct{} // closed when the process has exited
	state  *os.ProcessState
}

func start(t *testing.T, socket string, args ...string) *proc {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // the child has its own descriptor
	p := &proc{t: t, cmd: testexec.Command(bin, args...), stderr: &childLog{f.Name()}, done: make(chan struct{})}
	p.cmd.Env = env(t, socket)
	p.cmd.Stderr = f
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
	return cliAs(t, nil, socket, args...)
}

// cliAs is cli with the child running as another user (nil: this one).
func cliAs(t *testing.T, cred *syscall.Credential, socket string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := testexec.CommandContext(ctx, bin, args...)
	cmd.Env = env(t, socket)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
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

// TestSocketDirMustExist: serve refuses a socket in a directory that does
// not exist, and creates nothing (R35, issue 8 item 11).
func TestSocketDirMustExist(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "nonexistent")
	socket := filepath.Join(parent, "s.sock")
	p := start(t, socket, "serve", "--data-dir", t.TempDir(), "--socket", socket)
	if code := p.wait(10 * time.Second); code != 1 || !strings.Contains(p.stderr.String(), "socket directory") {
		t.Fatalf("exit %d:\n%s", code, p.stderr)
	}
	if _, err := os.Stat(parent); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("serve created %s: %v", parent, err)
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

// commandNames are the names of sysregd's commands, but help.
func commandNames() []string {
	var names []string
	for _, c := range newRoot(io.Discard, io.Discard).Commands() {
		if c.Name() != "help" {
			names = append(names, c.Name())
		}
	}
	return names
}

// TestHelpAndUsage: every subcommand has --help and 'help CMD' (exit 0, its
// own help on stdout) and refuses an unknown flag with exit 2 and an error
// on stderr (R33, R52).
func TestHelpAndUsage(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "none") // no daemon needed
	for _, name := range commandNames() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := ok(t, socket, name, "--help")
			if !strings.HasPrefix(r.stdout, "usage: sysregd "+name) || !strings.Contains(r.stdout, "-") || r.stderr != "" {
				t.Fatalf("--help: %s", r)
			}
			for _, want := range []string{"exit status:", "2  usage error", "SYSREG_SOCKET", "SYSREG_DATA_DIR"} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("--help lacks %q: %s", want, r)
				}
			}
			// The same help, but for the default paths (each child has
			// its own $XDG_STATE_HOME).
			if h := ok(t, socket, "help", name); !strings.HasPrefix(h.stdout, "usage: sysregd "+name) ||
				strings.Count(h.stdout, "\n") != strings.Count(r.stdout, "\n") {
				t.Errorf("'help %s' differs from '%s --help':\n%s\n---\n%s", name, name, h.stdout, r.stdout)
			}
			r = fails(t, 2, socket, name, "--no-such-flag")
			if r.stdout != "" || !strings.Contains(r.stderr, "no-such-flag") {
				t.Fatalf("unknown flag: %s", r)
			}
		})
	}
	t.Run("no-command", func(t *testing.T) { fails(t, 2, socket) })
	t.Run("unknown-command", func(t *testing.T) { fails(t, 2, socket, "frobnicate") })
	t.Run("help-unknown-command", func(t *testing.T) { fails(t, 2, socket, "help", "frobnicate") })
	t.Run("help", func(t *testing.T) {
		r := ok(t, socket, "help")
		for _, name := range commandNames() {
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
		if got["u"] != json.Number("18446744073709551615") || got["n"] != nil || path(got, "obj", "x", "y") != json.Number("2") ||
			got["e"] != json.Number("1000.0") || got["i"] != json.Number("42") { // a float reads as a float
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
	t.Run("set-layers", func(t *testing.T) {
		// R52: config from the CLI goes to saved unless --layer says
		// otherwise; runtime and override keys die with the command (R13).
		r := ok(t, sock, "set", "config/cli/kept", "x=1")
		if strings.Contains(r.stderr, "deleted when this command exits") {
			t.Fatalf("warning for saved config: %s", r)
		}
		for _, l := range []string{"runtime", "override"} {
			r = ok(t, sock, "set", "--layer", l, "config/cli/gone", "x=1")
			if !strings.Contains(r.stderr, l+" config keys are deleted when this command exits") {
				t.Fatalf("no warning for --layer %s: %s", l, r)
			}
		}
		r = ok(t, sock, "set", "state/cli/gone", "x=1")
		if !strings.Contains(r.stderr, "deleted when this command exits") {
			t.Fatalf("no warning: %s", r)
		}
		s := snapshot(t, c)
		if s.Values(core.ConfigScope("cli", "gone")) != nil || s.Values(core.StateScope("cli", "gone")) != nil {
			t.Fatalf("keys outlived the command: %v", s.Map())
		}
		if l, _, ok := s.Origin(core.ConfigScope("cli", "kept"), "x"); !ok || l != core.Saved {
			t.Fatalf("R52: CLI config went to %s %v, want saved", l, ok)
		}
		own, _ := s.Owner(core.ConfigScope("cli", "kept"), "x")
		ok(t, sock, "evict", own)
		for _, bad := range [][]string{
			{"set", "--layer", "default", "config/cli/x", "x=1"},
			{"set", "--layer", "fleet", "config/cli/x", "x=1"},
			{"set", "--layer", "nope", "config/cli/x", "x=1"},
			{"set", "--layer", "runtime", "--keep-config", "config/cli/x", "x=1"},
			{"delete", "--layer", "default", "config/cli/x", "x"},
		} {
			if r := fails(t, 2, sock, bad...); !strings.Contains(r.stderr, "layer") {
				t.Fatalf("%q: %s", bad, r)
			}
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
		out := ok(t, sock, "stats").stdout
		st := jsonOf(t, out)
		if st["seq"] == nil || path(st, "server", "connections") == nil || path(st, "journal", "records") == nil {
			t.Fatalf("stats: %v", st)
		}
		// The float rule (R52): a float figure prints as one, a count never.
		for _, want := range []string{`"bounds":[1.0,2.0,4.0,`, `"bounds":[0.0005,0.001,`, `"sum":`} {
			if !strings.Contains(out, want) {
				t.Errorf("stats output lacks %s:\n%s", want, out)
			}
		}
		if regexp.MustCompile(`"sum":-?\d+[,}]`).MatchString(out) || regexp.MustCompile(`"(seq|commits|count)":\d+\.`).MatchString(out) {
			t.Errorf("stats output breaks the float rule:\n%s", out)
		}
	})
	t.Run("flags-after-args", func(t *testing.T) {
		// Issue 8 item 3: this stored a key "--owner" as anonymous (R52).
		ok(t, sock, "set", "--keep-config", "config/cli/late", "k=v", "--owner=me")
		s := snapshot(t, c)
		if own, _ := s.Owner(core.ConfigScope("cli", "late"), "k"); own != "me" {
			t.Fatalf("owner of k: %q; view %v", own, s.Map())
		}
		if _, bad := s.Get(core.ConfigScope("cli", "late"), "--owner"); bad {
			t.Fatal("a key --owner was stored")
		}
		fails(t, 2, sock, "set", "config/cli/late", "--", "--owner=me")
		ok(t, sock, "evict", "me")
	})
	t.Run("usage-errors", func(t *testing.T) {
		fails(t, 2, sock, "get", "bogus/a/b")
		fails(t, 2, sock, "get", "bogus/a")
		fails(t, 2, sock, "get", "config/a/b", "key", "extra")
		fails(t, 2, sock, "get", "config/*/b", "key") // a KEY needs one scope
		fails(t, 2, sock, "set", "config/a/b")
		fails(t, 2, sock, "set", "config/a/b", "novalue")
		fails(t, 2, sock, "set", "config/a/b", "=1")
		fails(t, 2, sock, "set", "config/a/b", "x=1", "x=2")
		fails(t, 2, sock, "set", "--keep-config", "config/a/b", "c=1e400")                // issue 8 item 7
		fails(t, 2, sock, "set", "--keep-config", "config/a/b", "i=18446744073709551616") // not a lossy float
		fails(t, 2, sock, "watch", "--min-interval", "100")                               // missing unit
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
		fails(t, 1, sock, "set", "state/cli/held", "x=2")                                  // R10
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

	w := testexec.Command(bin, "watch", "--match", "config/watch")
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
	if fmt.Sprint(first.View) != "map[]" {
		t.Fatalf("first delivery: %+v, want the (empty) matching part of the view", first)
	}
	ok(t, d.socket, "set", "--owner", "other", "--keep-config", "config/other/x", "a=1")
	ok(t, d.socket, "set", "--owner", "w", "--keep-config", "config/watch/x", "n=1")
	second := next()
	if second.Seq <= first.Seq || path(second.View, "config", "watch", "x", "n") != 1.0 {
		t.Fatalf("second delivery %+v after %+v", second, first)
	}
	// config/other did not wake the watcher (R21), and --match prints
	// only the matching scopes (R52).
	if path(second.View, "config", "other") != nil || path(second.View, "config", "pre") != nil {
		t.Fatalf("non-matching scopes printed: %+v", second)
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

	// watchOut starts a watch and returns its output lines.
	watchOut := func(t *testing.T, args ...string) <-chan string {
		w := testexec.Command(bin, append([]string{"watch"}, args...)...)
		w.Env = env(t, d.socket)
		out, err := w.StdoutPipe()
		must(t, err)
		must(t, w.Start())
		t.Cleanup(func() { w.Process.Kill(); w.Wait() })
		return lines(out)
	}
	t.Run("whole", func(t *testing.T) {
		ch := watchOut(t, "--match", "config/watch", "--whole")
		var dl delivery
		must(t, json.Unmarshal([]byte(nextLine(t, ch)), &dl))
		if path(dl.View, "config", "other", "x", "a") != 1.0 || path(dl.View, "config", "watch", "x", "n") != 2.0 {
			t.Fatalf("--whole: %+v", dl)
		}
	})
	t.Run("diff", func(t *testing.T) {
		ch := watchOut(t, "--match", "config/watch", "--diff")
		type change struct {
			Scope, Key, Op, Owner string
			Value, Old            any
		}
		type diffLine struct {
			Seq     uint64
			Changes []change
		}
		var dl diffLine
		must(t, json.Unmarshal([]byte(nextLine(t, ch)), &dl))
		if len(dl.Changes) != 1 || dl.Changes[0] != (change{Scope: "config/watch/x", Key: "n", Op: "add", Owner: "w", Value: 2.0}) {
			t.Fatalf("first --diff line: %+v", dl)
		}
		ok(t, d.socket, "set", "--owner", "w", "--keep-config", "config/watch/x", "n=3", "m=1.0")
		dl = diffLine{}
		must(t, json.Unmarshal([]byte(nextLine(t, ch)), &dl))
		want := []change{{Scope: "config/watch/x", Key: "m", Op: "add", Owner: "w", Value: 1.0},
			{Scope: "config/watch/x", Key: "n", Op: "change", Owner: "w", Value: 3.0, Old: 2.0}}
		if fmt.Sprint(dl.Changes) != fmt.Sprint(want) {
			t.Fatalf("second --diff line: %+v, want %+v", dl.Changes, want)
		}
		ok(t, d.socket, "delete", "--owner", "w", "config/watch/x", "m")
		dl = diffLine{}
		must(t, json.Unmarshal([]byte(nextLine(t, ch)), &dl))
		if len(dl.Changes) != 1 || dl.Changes[0] != (change{Scope: "config/watch/x", Key: "m", Op: "delete", Owner: "w", Old: 1.0}) {
			t.Fatalf("third --diff line: %+v", dl)
		}
	})

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

// rawConn is a connection that speaks raw bytes to the daemon.
type rawConn struct {
	t  *testing.T
	nc net.Conn
}

func dialRaw(t *testing.T, socket string) *rawConn {
	nc, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		t.Errorf("dial: %v", err)
		return nil
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, nc: nc}
}

func (c *rawConn) write(b []byte) { c.nc.Write(b) } // the daemon may have closed already

func (c *rawConn) frame(typ wire.Type, id uint64, body any) {
	b, err := wire.AppendFrame(nil, typ, id, body)
	if err != nil {
		c.t.Errorf("encode: %v", err)
		return
	}
	c.write(b)
}

// reply reads the next frame and decodes an error body, if it is one.
func (c *rawConn) reply() (wire.Frame, wire.Error, error) {
	f, _, err := wire.ReadFrame(c.nc, wire.MaxReplyFrame, nil)
	var we wire.Error
	if err == nil && f.Type == wire.TError {
		err = wire.DecodeBody(f, &we)
	}
	return f, we, err
}

// expectError reads the next frame and checks that it is an Error with code.
func (c *rawConn) expectError(what string, id uint64, code string) {
	f, we, err := c.reply()
	if err != nil || f.Type != wire.TError || f.ID != id || we.Code != code {
		c.t.Errorf("%s: got %s id %d %+v (%v), want error id %d %s", what, f.Type, f.ID, we, err, id, code)
	}
}

// expectClosed checks that the daemon closes the connection.
func (c *rawConn) expectClosed(what string) {
	for {
		f, _, err := c.reply()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				c.t.Errorf("%s: the daemon did not close the connection", what)
			}
			return
		}
		if f.Type != wire.TError {
			c.t.Errorf("%s: got %s before the close", what, f.Type)
		}
	}
}

func (c *rawConn) hello() bool {
	c.frame(wire.THello, 1, wire.Hello{Version: wire.Version, Client: "e2e"})
	f, we, err := c.reply()
	if err != nil || f.Type != wire.THelloOK {
		c.t.Errorf("hello: %s %+v %v", f.Type, we, err)
		return false
	}
	return true
}

// TestGarbageFrames sends 1,000 connections' worth of garbage, truncated,
// oversized, unknown and out-of-order frames, and attempts to act on other
// sessions, while an honest client holds keys and a subscription on its own
// connection: the daemon stays up, answers with errors or closes the bad
// connections, and the honest session is untouched (R34).
func TestGarbageFrames(t *testing.T) {
	d := startDaemon(t, t.TempDir(), "--no-sync", "--max-frame", "65536")
	honest := d.dial(t)
	o, err := honest.Owner(t.Context(), "honest", core.OwnerOptions{})
	must(t, err)
	must(t, o.Update(t.Context(), core.StateScope("honest", "s"), core.Values{"x": 1}))
	must(t, o.Update(t.Context(), core.ConfigScope("honest", "c"), core.Values{"y": "two"}))
	sub, err := honest.Subscribe(t.Context(), core.SubscribeOptions{})
	must(t, err)
	before := snapshot(t, honest)

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	const n = 1000
	kinds := []string{"random", "garbage-cbor", "oversized", "truncated", "unknown-type",
		"before-hello", "wrong-version", "bad-body", "impersonate", "own-session"}
	work := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				garbage(t, d.socket, kinds[i%len(kinds)], i, rand.New(rand.NewPCG(seed, uint64(i))))
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()

	if d.exited() {
		t.Fatalf("the daemon died:\n%s", d.stderr)
	}
	if _, err := honest.Ping(t.Context()); err != nil {
		t.Fatalf("honest client: %v", err)
	}
	// Each own-session connection's owner died with its connection, and
	// nothing else changed (poll: deaths follow the disconnects).
	poll(t, 10*time.Second, "the garbage sessions' owner deaths", func() bool {
		return snapshot(t, honest).Len(core.State) == 1
	})
	after := snapshot(t, honest)
	for _, sc := range []core.Scope{core.StateScope("honest", "s"), core.ConfigScope("honest", "c")} {
		if fmt.Sprint(after.Values(sc)) != fmt.Sprint(before.Values(sc)) {
			t.Errorf("%s: %v, was %v", sc, after.Values(sc), before.Values(sc))
		}
	}
	if fmt.Sprint(after.Map()) != fmt.Sprint(before.Map()) {
		t.Errorf("view changed:\n%v\nwas\n%v", after.Map(), before.Map())
	}
	// The honest session and its subscription still work.
	must(t, o.Update(t.Context(), core.StateScope("honest", "s"), core.Values{"x": 2}))
	deadline := time.After(10 * time.Second)
	for {
		select {
		case s := <-sub.C():
			if v, _ := s.Get(core.StateScope("honest", "s"), "x"); v != int64(2) {
				continue
			}
		case <-deadline:
			t.Fatal("the honest subscription got no delivery of the update")
		}
		break
	}
	st, err := honest.Stats(t.Context())
	must(t, err)
	if st.Server == nil || st.Server.BadFrames < uint64(n/2) {
		t.Errorf("server stats %+v after %d bad connections", st.Server, n)
	}
}

// garbage runs one bad connection of the given kind.
func garbage(t *testing.T, socket, kind string, i int, rnd *rand.Rand) {
	c := dialRaw(t, socket)
	if c == nil {
		return
	}
	defer c.nc.Close()
	junk := func(n int) []byte {
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(rnd.Uint32())
		}
		return b
	}
	switch kind {
	case "random":
		c.write(junk(1 + rnd.IntN(300)))
	case "garbage-cbor":
		body := junk(1 + rnd.IntN(200))
		c.write(append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...))
		if rnd.IntN(2) == 0 {
			c.expectClosed(kind)
		}
	case "oversized":
		c.write(binary.BigEndian.AppendUint32(nil, 65537+uint32(rnd.IntN(1<<30))))
		c.write(junk(64))
		c.expectError(kind, 0, wire.CodeBadRequest)
		c.expectClosed(kind)
	case "truncated":
		frame, _ := wire.AppendFrame(nil, wire.THello, 1, wire.Hello{Version: wire.Version, Client: strings.Repeat("x", 100)})
		if rnd.IntN(2) == 0 && c.hello() {
			frame, _ = wire.AppendFrame(nil, wire.TAttach, 2, wire.Attach{Name: fmt.Sprintf("trunc-%d", i)})
		}
		c.write(frame[:rnd.IntN(len(frame))])
	case "unknown-type":
		if !c.hello() {
			return
		}
		// Any type but a request of this version: requests are numbered
		// below 64 (1…10, and from 20 the safe-change requests).
		typ := wire.Type(11 + rnd.IntN(245))
		for typ < 64 && typ.Known() {
			typ = wire.Type(11 + rnd.IntN(245))
		}
		if typ.Known() { // a reply or push type sent as a request
			c.frame(typ, 7, nil)
		} else {
			c.frame(typ, 7, cbor.RawMessage(junkCBOR(rnd)))
		}
		c.expectError(kind, 7, wire.CodeBadRequest)
		c.frame(wire.TPing, 8, nil) // the connection still works
		if f, _, err := c.reply(); err != nil || f.Type != wire.TOK || f.ID != 8 {
			t.Errorf("ping after an unknown type: %s %v", f.Type, err)
		}
	case "before-hello":
		c.frame(wire.TAttach, 3, wire.Attach{Name: "honest"})
		c.expectError(kind, 3, wire.CodeBadRequest)
		c.expectClosed(kind)
	case "wrong-version":
		// A future version, or an old one (version 1, before config layers).
		v := wire.Version + 1 + uint64(rnd.IntN(100))
		if rnd.IntN(2) == 0 {
			v = uint64(rnd.IntN(int(wire.Version)))
		}
		c.frame(wire.THello, 1, wire.Hello{Version: v, Client: "other"})
		c.expectError(kind, 1, wire.CodeBadRequest)
		c.expectClosed(kind)
	case "bad-body":
		if !c.hello() {
			return
		}
		typ := []wire.Type{wire.TAttach, wire.TDetach, wire.TMutate, wire.TSubscribe, wire.TUnsubscribe, wire.TEvict}[rnd.IntN(6)]
		c.frame(typ, 9, cbor.RawMessage(junkCBOR(rnd)))
		c.expectError(kind+" "+typ.String(), 9, wire.CodeBadRequest)
	case "impersonate":
		if !c.hello() {
			return
		}
		// Handle 1 is the honest owner's on its own connection, and
		// means nothing here.
		c.frame(wire.TMutate, 2, wire.Mutate{Handle: 1, Ops: []wire.Op{{Kind: wire.OpDel, Scope: wire.Scope{Bucket: 1, Type: "honest", Subtype: "s"}, Values: cbor.RawMessage{0xf6}}}})
		c.expectError("mutate with a foreign handle", 2, wire.CodeBadRequest)
		c.frame(wire.TDetach, 3, wire.Detach{Handle: 1})
		c.expectError("detach of a foreign handle", 3, wire.CodeBadRequest)
		c.frame(wire.TAttach, 4, wire.Attach{Name: "honest"})
		c.expectError("attach as a live owner", 4, wire.CodeOwnerInUse)
		c.frame(wire.TEvict, 5, wire.Evict{Name: "honest"})
		c.expectError("evict of a live owner", 5, wire.CodeOwnerInUse)
		c.frame(wire.TUnsubscribe, 6, wire.Unsubscribe{Sub: 2}) // the honest client's subscription id
		if f, _, err := c.reply(); err != nil || f.Type != wire.TOK {
			t.Errorf("unsubscribe: %s %v", f.Type, err)
		}
		// Its own anonymous owner may not delete the honest keys (R10, R11).
		c.frame(wire.TAttach, 7, wire.Attach{})
		f, _, err := c.reply()
		if err != nil || f.Type != wire.TAttachOK {
			t.Errorf("attach: %s %v", f.Type, err)
			return
		}
		var ok wire.AttachOK
		wire.DecodeBody(f, &ok)
		c.frame(wire.TMutate, 8, wire.Mutate{Handle: ok.Handle, Ops: []wire.Op{{Kind: wire.OpDel, Scope: wire.Scope{Bucket: 2, Type: "honest", Subtype: "c"}, Values: cbor.RawMessage{0xf6}, Keys: []string{"y"}}}})
		c.expectError("delete of a foreign config key", 8, wire.CodeReservedKeys)
	case "own-session":
		if !c.hello() {
			return
		}
		c.frame(wire.TAttach, 2, wire.Attach{Name: fmt.Sprintf("victim-%d", i)})
		c.frame(wire.TMutate, 3, wire.Mutate{Handle: 1, Ops: []wire.Op{{Kind: wire.OpPut, Scope: wire.Scope{Bucket: 1, Type: "victim", Subtype: fmt.Sprint(i)}, Values: cbor.RawMessage{0xa1, 0x61, 'x', 0x01}}}})
		if f, _, err := c.reply(); err != nil || f.Type != wire.TAttachOK {
			t.Errorf("attach: %s %v", f.Type, err)
		}
		if f, _, err := c.reply(); err != nil || f.Type != wire.TOK {
			t.Errorf("mutate: %s %v", f.Type, err)
		}
		c.write(binary.BigEndian.AppendUint32(nil, 3))
		c.write([]byte{0xff, 0xff, 0xff}) // a frame that does not decode
		c.expectError(kind, 0, wire.CodeBadRequest)
		c.expectClosed(kind)
	}
}

// junkCBOR returns one well-formed CBOR item that is no message body.
func junkCBOR(rnd *rand.Rand) []byte {
	items := [][]byte{
		{0xf6}, {0xf5}, {0x00}, {0x20}, {0xa0}, {0x80}, {0x60}, {0x40},
		{0x81, 0x20}, {0x83, 0x01, 0x02, 0x03}, {0x82, 0x61, 'x', 0x61, 'y'},
		{0x82, 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf6},
		{0xc1, 0x01}, {0xfb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0},
	}
	return items[rnd.IntN(len(items))]
}

// TestInspectAndCheck: inspect prints the journal and check verifies it,
// offline, on a stopped daemon's directory and on a live one; on damaged
// copies both exit 1 with the problems, never a crash, and serve refuses
// to start (R29, R33).
func TestInspectAndCheck(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir)
	ok(t, d.socket, "set", "--owner", "netd", "--keep-config", "config/net/eth0", "address=192.168.1.100", "mtu=1500")
	ok(t, d.socket, "set", "--owner", "netd", "--keep-config", "config/net/eth1", "address=10.0.0.1")
	ok(t, d.socket, "delete", "--owner", "netd", "config/net/eth0", "mtu")
	ok(t, d.socket, "set", "--owner", "gone", "--keep-config", "config/gone/x", "v=1")
	ok(t, d.socket, "evict", "gone")

	t.Run("live", func(t *testing.T) {
		ins := jsonOf(t, ok(t, "", "inspect", "--data-dir", dir).stdout)
		if ins["live"] != true {
			t.Errorf("inspect of a running daemon's journal: live = %v", ins["live"])
		}
		ck := jsonOf(t, ok(t, "", "check", "--data-dir", dir).stdout)
		if ck["ok"] != true || ck["keys"] != json.Number("2") {
			t.Errorf("check of a running daemon's journal: %v", ck)
		}
	})
	d.stop()

	ins := jsonOf(t, ok(t, "", "inspect", "--data-dir", dir).stdout)
	if ins["format"] != "sysreg-journal" || ins["version"] != json.Number(fmt.Sprint(journal.FormatVersion)) || ins["live"] != false {
		t.Fatalf("inspect: %v", ins)
	}
	recs, _ := ins["records"].([]any)
	if len(recs) != 5 {
		t.Fatalf("inspect: %d records, want 5: %v", len(recs), ins)
	}
	var kinds []string
	for _, r := range recs {
		for _, op := range path(r, "mutation", "ops").([]any) {
			kinds = append(kinds, path(op, "kind").(string))
		}
	}
	if fmt.Sprint(kinds) != "[merge merge delete merge drop]" {
		t.Errorf("op kinds %v", kinds)
	}
	if path(recs[0], "mutation", "ops").([]any)[0].(map[string]any)["scope"] != "config/net/eth0" ||
		path(recs[0].(map[string]any)["mutation"].(map[string]any)["ops"].([]any)[0], "values", "address") != "192.168.1.100" {
		t.Errorf("first record: %v", recs[0])
	}
	ck := jsonOf(t, ok(t, "", "check", "--data-dir", dir).stdout)
	if ck["ok"] != true || ck["records"] != json.Number("5") || ck["keys"] != json.Number("2") || ck["owners"] != json.Number("1") {
		t.Fatalf("check: %v", ck)
	}

	journal, err := os.ReadFile(filepath.Join(dir, store.JournalFile))
	must(t, err)
	damage := map[string]func([]byte) []byte{
		"truncated": func(b []byte) []byte { return b[:len(b)/2] },
		"flipped-value": func(b []byte) []byte { // every copy of the value, in every page
			return bytes.ReplaceAll(b, []byte("192.168.1.100"), []byte("192.168.1.101"))
		},
		"random": func(b []byte) []byte {
			rnd := rand.New(rand.NewPCG(1, 2))
			for i := range b {
				b[i] = byte(rnd.Uint32())
			}
			return b
		},
		"zeroed-meta": func(b []byte) []byte { clear(b[:8192]); return b },
	}
	for name, f := range damage {
		t.Run(name, func(t *testing.T) {
			bad := t.TempDir()
			must(t, os.WriteFile(filepath.Join(bad, store.JournalFile), f(bytes.Clone(journal)), 0o600))
			r := fails(t, 1, "", "check", "--data-dir", bad)
			ck := jsonOf(t, r.stdout)
			if ck["ok"] != false || len(ck["problems"].([]any)) == 0 || !strings.Contains(r.stderr, "damaged") {
				t.Fatalf("check: %s", r)
			}
			r = fails(t, 1, "", "inspect", "--data-dir", bad)
			if ins := jsonOf(t, r.stdout); len(ins["problems"].([]any)) == 0 {
				t.Fatalf("inspect: %s", r)
			}
			// And the daemon refuses to start on it, clearly (R29).
			p := start(t, "", "serve", "--data-dir", bad, "--socket", shortSocket(t))
			if code := p.wait(10 * time.Second); code != 1 || !strings.Contains(p.stderr.String(), "corrupt") ||
				strings.Contains(p.stderr.String(), "goroutine ") {
				t.Fatalf("serve on a damaged journal exited %d:\n%s", code, p.stderr)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		fails(t, 1, "", "check", "--data-dir", t.TempDir())
		fails(t, 1, "", "inspect", "--data-dir", t.TempDir())
	})
}

// TestInspectCheckpoint: inspect decodes the checkpoint (its sequence, the
// config view and the owners) and check replays the records after it
// (R28).
func TestInspectCheckpoint(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{NoSync: true, CheckpointRecords: 4})
	must(t, err)
	o, err := st.Owner(t.Context(), "ck", core.OwnerOptions{KeepConfig: true})
	must(t, err)
	for i := range 10 {
		must(t, o.Update(t.Context(), core.ConfigScope("ck", "x"), core.Values{fmt.Sprint("k", i%3): i}))
	}
	poll(t, 10*time.Second, "a checkpoint", func() bool { js, _ := st.Stats(t.Context()); return js.Journal.Checkpoints > 0 })
	must(t, o.Update(t.Context(), core.ConfigScope("ck", "y"), core.Values{"after": true}))
	must(t, st.Close())

	ins := jsonOf(t, ok(t, "", "inspect", "--data-dir", dir).stdout)
	cp, _ := ins["checkpoint"].(map[string]any)
	if cp == nil || cp["seq"] == nil || cp["error"] != nil || path(cp, "owners", "config/ck/x", "k0") != "ck" ||
		path(cp, "view", "config", "ck", "x") == nil {
		t.Fatalf("checkpoint: %v", ins["checkpoint"])
	}
	ck := jsonOf(t, ok(t, "", "check", "--data-dir", dir).stdout)
	if ck["ok"] != true || ck["keys"] != json.Number("4") || ck["checkpoint_seq"] == json.Number("0") {
		t.Fatalf("check: %v", ck)
	}
}

// TestPeerCredentials: with --socket-group the socket is 0660 and the
// group's; an owner name holding config is bound to the uid that created
// it, so another uid cannot attach as it or evict it, while root can (R35).
// It needs root, to run the client as nobody.
func TestPeerCredentials(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as another uid")
	}
	const nobody = 65534
	d := startDaemon(t, t.TempDir(), "--no-sync", "--socket-group", fmt.Sprint(nobody))
	fi, err := os.Stat(d.socket)
	must(t, err)
	if fi.Mode().Perm() != 0o660 || fi.Sys().(*syscall.Stat_t).Gid != nobody {
		t.Fatalf("socket mode %v gid %d, want 0660 and gid %d", fi.Mode(), fi.Sys().(*syscall.Stat_t).Gid, nobody)
	}
	must(t, os.Chmod(filepath.Dir(d.socket), 0o755))
	as := &syscall.Credential{Uid: nobody, Gid: nobody}

	ok(t, d.socket, "set", "--owner", "rootcfg", "--keep-config", "config/r35/root", "x=1")
	r := cliAs(t, as, d.socket, "set", "--owner", "rootcfg", "--keep-config", "config/r35/root", "x=2")
	if r.code != 1 || !strings.Contains(r.stderr, "permission") {
		t.Fatalf("nobody attaching root's owner name: %s", r)
	}
	if r := cliAs(t, as, d.socket, "evict", "rootcfg"); r.code != 1 || !strings.Contains(r.stderr, "permission") {
		t.Fatalf("nobody evicting root's owner name: %s", r)
	}
	// nobody's own name works for nobody, and root may act as it.
	if r := cliAs(t, as, d.socket, "set", "--owner", "nobodycfg", "--keep-config", "config/r35/nobody", "y=1"); r.code != 0 {
		t.Fatalf("nobody setting its own config: %s", r)
	}
	if r := cliAs(t, as, d.socket, "delete", "--owner", "nobodycfg", "config/r35/nobody", "y"); r.code != 0 {
		t.Fatalf("nobody deleting its own config: %s", r)
	}
	if r := cliAs(t, as, d.socket, "set", "--owner", "nobodycfg", "--keep-config", "config/r35/nobody", "y=2"); r.code != 0 {
		t.Fatalf("nobody setting its own config: %s", r)
	}
	ok(t, d.socket, "evict", "nobodycfg")
	// A config key anyone may update keeps its owner (R11).
	if r := cliAs(t, as, d.socket, "set", "config/r35/root", "x=3"); r.code != 0 {
		t.Fatalf("nobody updating root's config key: %s", r)
	}
	got := jsonOf(t, ok(t, d.socket, "get", "config/r35/root").stdout)
	if got["x"] != json.Number("3") {
		t.Fatalf("config/r35/root: %v", got)
	}
}

// TestPipelineOrder: requests of one connection take effect in the order
// they were sent, whatever they are (PROTOCOL.md section 4): an evict, then
// an attach of the evicted name, then a write by it, pipelined in one
// write. 20 rounds, 5 under -short (each starts two CLI processes, slow
// under emulation).
func TestPipelineOrder(t *testing.T) {
	d := startDaemon(t, t.TempDir(), "--no-sync")
	rounds := 20
	if testing.Short() {
		rounds = 5
	}
	for i := range rounds {
		scope := fmt.Sprintf("config/pipe/%d", i)
		ok(t, d.socket, "set", "--owner", "x", "--keep-config", scope, "a=1")
		c := dialRaw(t, d.socket)
		if c == nil || !c.hello() {
			t.FailNow()
		}
		var b []byte
		b, _ = wire.AppendFrame(b, wire.TEvict, 2, wire.Evict{Name: "x"})
		b, _ = wire.AppendFrame(b, wire.TAttach, 3, wire.Attach{Name: "x", KeepConfig: true})
		b, _ = wire.AppendFrame(b, wire.TMutate, 4, wire.Mutate{Handle: 1, Ops: []wire.Op{{Kind: wire.OpPut,
			Scope: wire.Scope{Bucket: 2, Type: "pipe", Subtype: fmt.Sprint(i)}, Values: cbor.RawMessage{0xa1, 0x61, 'b', 0x02}}}})
		c.write(b)
		for _, want := range []wire.Type{wire.TOK, wire.TAttachOK, wire.TOK} {
			f, we, err := c.reply()
			if err != nil || f.Type != want {
				t.Fatalf("round %d: got %s %+v %v, want %s", i, f.Type, we, err, want)
			}
		}
		c.nc.Close()
		got := jsonOf(t, ok(t, d.socket, "get", scope).stdout)
		if fmt.Sprint(got) != "map[b:2]" {
			t.Fatalf("round %d: %s = %v, want only b: the evict must come before the put", i, scope, got)
		}
	}
}

// TestRestartDuringSlowShutdown: a daemon that takes long to shut down
// (a client that does not read holds up the end of its connection) must not
// remove the socket of a new daemon started on the same path meanwhile.
func TestRestartDuringSlowShutdown(t *testing.T) {
	a := startDaemon(t, t.TempDir(), "--no-sync", "--shutdown-timeout", "2s")
	// A client that sends pings and never reads its replies, until the
	// daemon's reply writer blocks on it.
	c := dialRaw(t, a.socket)
	if c == nil || !c.hello() {
		t.FailNow()
	}
	var pings []byte
	for i := range 1000 {
		pings, _ = wire.AppendFrame(pings, wire.TPing, uint64(i+1), nil) // id 0 is reserved
	}
	c.nc.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	for {
		if _, err := c.nc.Write(pings); err != nil {
			break // the daemon stopped reading: its writer is blocked
		}
	}
	must(t, a.cmd.Process.Signal(syscall.SIGTERM))
	poll(t, 5*time.Second, "the old daemon to close its listener", func() bool {
		_, err := os.Lstat(a.socket)
		return errors.Is(err, os.ErrNotExist)
	})
	if a.exited() {
		t.Skip("the old daemon shut down at once; nothing to race with")
	}
	b := startDaemonAt(t, t.TempDir(), a.socket, "--no-sync")
	if code := a.wait(15 * time.Second); code != 0 {
		t.Fatalf("old daemon exited %d:\n%s", code, a.stderr)
	}
	if _, err := os.Lstat(b.socket); err != nil {
		t.Fatalf("the old daemon removed the new daemon's socket: %v", err)
	}
	ok(t, b.socket, "stats")
}

// TestShutdownUnderLoad: SIGTERM while clients write config: the daemon
// exits 0, every write that was acknowledged is there after a restart
// (R24, R27, R30), and unacknowledged ones failed with ErrConnLost or
// ErrClosed rather than hanging.
func TestShutdownUnderLoad(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir)
	const writers = 8
	acked := make([][]int, writers)
	var wg sync.WaitGroup
	started := make(chan struct{}, writers)
	for w := range writers {
		c := d.dial(t)
		o, err := c.Owner(t.Context(), fmt.Sprint("w", w), core.OwnerOptions{KeepConfig: w%2 == 0})
		must(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				err := o.Update(context.Background(), core.ConfigScope("load", fmt.Sprint(w)), core.Values{fmt.Sprint(i): i})
				if err != nil {
					if !errors.Is(err, store.ErrConnLost) && !errors.Is(err, store.ErrClosed) {
						t.Errorf("writer %d: %v", w, err)
					}
					return
				}
				acked[w] = append(acked[w], i)
				if i == 10 {
					started <- struct{}{}
				}
			}
		}()
	}
	for range writers {
		<-started
	}
	d.stop()
	wg.Wait()

	d = startDaemonAt(t, dir, d.socket)
	s := snapshot(t, d.dial(t))
	total := 0
	for w := range writers {
		vals := s.Values(core.ConfigScope("load", fmt.Sprint(w)))
		for _, i := range acked[w] {
			if vals[fmt.Sprint(i)] != int64(i) {
				t.Fatalf("writer %d: acknowledged write %d is missing after restart", w, i)
			}
		}
		total += len(acked[w])
	}
	t.Logf("%d acknowledged writes, all there after SIGTERM and restart", total)
}

// TestCompletion: completion scripts are generated for bash, zsh and fish,
// and bash loads its script and registers it (R52); the completion engine
// behind them completes commands and flags.
func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		r := ok(t, "", "completion", sh)
		if !strings.Contains(r.stdout, "sysregd") || len(r.stdout) < 500 {
			t.Errorf("completion %s: %s", sh, r)
		}
	}
	fails(t, 2, "", "completion", "tcsh")
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script := strings.Join(testexec.Command(bin, "completion", "bash").Args, " ") // through SYSREG_TEST_EXEC
	out, err := exec.Command(bash, "-c", "source <("+script+") && complete -p sysregd").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "sysregd") {
		t.Fatalf("bash could not load the script: %v\n%s", err, out)
	}
	r := ok(t, "", "__complete", "ge")
	if !strings.Contains(r.stdout, "get") {
		t.Errorf("commands: %s", r)
	}
	r = ok(t, "", "__complete", "get", "--")
	for _, want := range []string{"--socket", "--output", "--timeout"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("get's flags lack %s: %s", want, r)
		}
	}
}

// TestSetFromStdin: a value near the 1 MiB limit, too large for argv
// comfort, goes through key=@- to the daemon and back; bytes through
// key=@FILE --bytes stay bytes (R2, R52).
func TestSetFromStdin(t *testing.T) {
	d := startDaemon(t, t.TempDir(), "--no-sync")
	big := strings.Repeat("v", 1<<20-64) // the update's CBOR size stays under 1 MiB
	cmd := testexec.Command(bin, "set", "--owner", "big", "--keep-config", "config/big/x", "blob=@-")
	cmd.Env = env(t, d.socket)
	cmd.Stdin = strings.NewReader(big + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("set blob=@-: %v\n%s", err, out)
	}
	bfile := filepath.Join(t.TempDir(), "b")
	must(t, os.WriteFile(bfile, []byte{0, 1, 2, 0xff}, 0o600))
	ok(t, d.socket, "set", "--owner", "big", "--keep-config", "config/big/x", "raw=@"+bfile, "--bytes")
	s := snapshot(t, d.dial(t))
	if v, _ := s.Get(core.ConfigScope("big", "x"), "blob"); v != big {
		t.Fatalf("blob: %d bytes, want %d", len(fmt.Sprint(v)), len(big))
	}
	if v, _ := s.Get(core.ConfigScope("big", "x"), "raw"); !bytes.Equal(v.([]byte), []byte{0, 1, 2, 0xff}) {
		t.Fatalf("raw = %#v", v)
	}
	// Over the limit: the registry refuses it, and nothing changes.
	cmd = testexec.Command(bin, "set", "--owner", "big", "--keep-config", "config/big/x", "blob=@-")
	cmd.Env = env(t, d.socket)
	cmd.Stdin = strings.NewReader(big + strings.Repeat("w", 1<<10))
	if out, err := cmd.CombinedOutput(); cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "too large") {
		t.Fatalf("over the limit: %v\n%.300s", err, out)
	}
}

// TestGetPatterns: get PATTERN prints the global view's shape restricted to
// the matching scopes, get SCOPE the values, get SCOPE KEY one raw value
// with exit 1 when absent (R52).
func TestGetPatterns(t *testing.T) {
	d := startDaemon(t, t.TempDir(), "--no-sync")
	for _, sc := range []string{"config/wifi/wlan0", "config/wifi/wlan1", "config/net/wlan0", "config/net/eth0", "config/wifi/a/b"} {
		ok(t, d.socket, "set", "--owner", "o", "--keep-config", sc, "k="+sc)
	}
	for _, tc := range []struct {
		arg  string
		want string // the scopes printed
	}{
		{"config/wifi", "config/wifi/a/b config/wifi/wlan0 config/wifi/wlan1"},
		{"config/wifi/*", "config/wifi/a/b config/wifi/wlan0 config/wifi/wlan1"},
		{"config/*/wlan0", "config/net/wlan0 config/wifi/wlan0"},
		{"*/*/wlan0", "config/net/wlan0 config/wifi/wlan0"},
		{"config", "config/net/eth0 config/net/wlan0 config/wifi/a/b config/wifi/wlan0 config/wifi/wlan1"},
		{"state", ""},
		{"config/none", ""},
		{"config/wifi/a/*", ""}, // a subtype is matched whole: "a/*" is no glob
	} {
		t.Run(strings.ReplaceAll(tc.arg, "/", "_"), func(t *testing.T) {
			view := jsonOf(t, ok(t, d.socket, "get", tc.arg).stdout)
			var got []string
			for b, types := range view {
				for typ, subs := range types.(map[string]any) {
					for sub, vals := range subs.(map[string]any) {
						sc := b + "/" + typ + "/" + sub
						if path(vals, "k") != sc {
							t.Errorf("%s: values %v", sc, vals)
						}
						got = append(got, sc)
					}
				}
			}
			slices.Sort(got)
			if strings.Join(got, " ") != tc.want {
				t.Errorf("get %s: %q, want %q", tc.arg, got, tc.want)
			}
		})
	}
	if r := ok(t, d.socket, "get", "config/wifi/wlan0"); strings.TrimSpace(r.stdout) != `{"k":"config/wifi/wlan0"}` {
		t.Errorf("get SCOPE: %s", r)
	}
	ok(t, d.socket, "set", "--owner", "o", "--keep-config", "config/wifi/wlan0", "n=1.0", `j={"a":[1]}`)
	for _, tc := range []struct{ key, raw, json string }{
		{"k", "config/wifi/wlan0\n", "\"config/wifi/wlan0\"\n"},
		{"n", "1.0\n", "1.0\n"},
		{"j", "{\"a\":[1]}\n", "{\n  \"a\": [\n    1\n  ]\n}\n"},
	} {
		if r := ok(t, d.socket, "get", "config/wifi/wlan0", tc.key); r.stdout != tc.raw {
			t.Errorf("get SCOPE %s: %q, want %q", tc.key, r.stdout, tc.raw)
		}
		out := "json"
		if tc.key == "j" {
			out = "pretty"
		}
		if r := ok(t, d.socket, "get", "-o", out, "config/wifi/wlan0", tc.key); r.stdout != tc.json {
			t.Errorf("get -o %s SCOPE %s: %q, want %q", out, tc.key, r.stdout, tc.json)
		}
	}
	if r := cli(t, d.socket, "get", "config/wifi/wlan0", "absent"); r.code != 1 || r.stdout != "" || r.stderr != "" {
		t.Errorf("absent key: %s", r)
	}
}

// TestOwners: owners lists every name holding keys or with a live
// session, with counts, live, grace and uid; restored config keeps its
// owner names across a restart, and an evicted name is gone; delete and
// evict say what they removed (R14, R27, R35, R48, R52).
func TestOwners(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir, "--no-sync")
	ok(t, d.socket, "set", "--owner", "netd", "--keep-config", "config/net/eth0", "a=1", "b=2")
	ok(t, d.socket, "set", "--owner", "netd", "--keep-config", "config/net/eth1", "a=1")
	ok(t, d.socket, "set", "--owner", "wifid", "--keep-config", "config/wifi/wlan0", "ssid=x")
	c := d.dial(t)
	o, err := c.Owner(t.Context(), "live", core.OwnerOptions{})
	must(t, err)
	must(t, o.Update(t.Context(), core.StateScope("live", "x"), core.Values{"up": true}))
	_, err = c.Owner(t.Context(), "idle", core.OwnerOptions{}) // a live session holding nothing
	must(t, err)
	type owner struct {
		Name       string
		StateKeys  int `json:"state_keys"`
		ConfigKeys int `json:"config_keys"`
		Scopes     int
		Live       bool
		Grace      bool
	}
	list := func() []owner {
		t.Helper()
		var got []owner
		r := ok(t, d.socket, "owners", "-o", "pretty")
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || !strings.Contains(r.stdout, "\n  ") {
			t.Fatalf("owners: %v\n%s", err, r)
		}
		return got
	}
	var raw []map[string]any
	must(t, json.Unmarshal([]byte(ok(t, d.socket, "owners").stdout), &raw))
	if len(raw) != 4 || raw[0]["state_keys"] == nil || raw[0]["config_keys"] == nil || path(raw[2], "layers", "saved") != 3.0 {
		t.Fatalf("owners: %v", raw)
	}
	// Every name that holds keys is bound to the uid that gave it its
	// first key: this process's (R35); idle holds none.
	if runtime.GOOS == "linux" {
		if raw[0]["uid"] != nil {
			t.Errorf("idle holds no key but is bound to %v", raw[0]["uid"])
		}
		for _, o := range raw[1:] {
			if o["uid"] != float64(os.Getuid()) {
				t.Errorf("owner %v: uid %v, want %d", o["name"], o["uid"], os.Getuid())
			}
		}
	}
	want := []owner{{"idle", 0, 0, 0, true, false}, {"live", 1, 0, 1, true, false}, {"netd", 0, 3, 2, false, false}, {"wifid", 0, 1, 1, false, false}}
	if got := list(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("owners %v, want %v", got, want)
	}
	// A dropped connection whose owner has a grace period: in grace, not live.
	c2 := d.dial(t)
	g, err := c2.Owner(t.Context(), "graced", core.OwnerOptions{Grace: time.Minute})
	must(t, err)
	must(t, g.Update(t.Context(), core.StateScope("g", "x"), core.Values{"up": true}))
	c2.Close()
	poll(t, 10*time.Second, "graced to be in grace", func() bool {
		got := list()
		return len(got) == 5 && fmt.Sprint(got[0]) == fmt.Sprint(owner{"graced", 1, 0, 1, false, true})
	})
	must(t, c.Close())
	d.stop()
	d = startDaemonAt(t, dir, d.socket, "--no-sync")
	want = []owner{{"netd", 0, 3, 2, false, false}, {"wifid", 0, 1, 1, false, false}}
	if got := list(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("owners after restart %v, want %v", got, want)
	}
	if r := ok(t, d.socket, "evict", "wifid"); r.stdout != "evicted wifid: 1 key\n  config/wifi/wlan0: ssid\n" {
		t.Errorf("evict: %q", r.stdout)
	}
	if r := ok(t, d.socket, "evict", "wifid"); r.stdout != "evicted wifid: 0 keys\n" {
		t.Errorf("evict again: %q", r.stdout)
	}
	if r := ok(t, d.socket, "delete", "--owner", "netd", "config/net/eth0", "b", "zz"); r.stdout != "deleted 1 key from config/net/eth0: b\n" {
		t.Errorf("delete: %q", r.stdout)
	}
	if r := ok(t, d.socket, "delete", "--owner", "netd", "config/net/eth0", "b"); r.stdout != "deleted 0 keys from config/net/eth0\n" {
		t.Errorf("delete again: %q", r.stdout)
	}
	want = []owner{{"netd", 0, 2, 2, false, false}}
	if got := list(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("owners after evict and delete %v, want %v", got, want)
	}
}

// TestStartLineSaysPreviousRun: the daemon's start line says whether the
// previous run ended cleanly: none for a new directory, clean after
// SIGTERM, unclean after kill -9 (R51).
func TestStartLineSaysPreviousRun(t *testing.T) {
	dir := t.TempDir()
	startLine := func(d *daemon) string {
		t.Helper()
		for _, l := range strings.Split(d.stderr.String(), "\n") {
			if strings.Contains(l, "sysregd: listening:") {
				return l
			}
		}
		t.Fatalf("no start line:\n%s", d.stderr)
		return ""
	}
	d := startDaemon(t, dir)
	if l := startLine(d); !strings.Contains(l, "previous_run=none") {
		t.Errorf("new directory: %s", l)
	}
	ok(t, d.socket, "set", "--owner", "x", "--keep-config", "config/a/b", "k=1")
	d.stop()
	d = startDaemonAt(t, dir, d.socket)
	if l := startLine(d); !strings.Contains(l, "previous_run=clean") {
		t.Errorf("after SIGTERM: %s", l)
	}
	must(t, d.cmd.Process.Kill())
	d.wait(10 * time.Second)
	d = startDaemonAt(t, dir, d.socket)
	if l := startLine(d); !strings.Contains(l, "previous_run=unclean") {
		t.Errorf("after kill -9: %s", l)
	}
}

// TestFootprintE2E: the footprint scenario starts the real daemon on a
// data directory with saved config and on an empty one, and reports both
// (issue #14: idle RSS and time to ready, in sysregd bench).
func TestFootprintE2E(t *testing.T) {
	r, err := bench.RunFootprint(t.Context(), bench.FootprintConfig{Exe: bin, Keys: 250, Starts: 1, Idle: 10 * time.Millisecond, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if r.Keys != 250 {
		t.Errorf("Keys = %d", r.Keys)
	}
	for name, run := range map[string]bench.FootprintRun{"loaded": r.Loaded, "empty": r.Empty} {
		if run.ReadyMs.P50 <= 0 || run.IdleRSSBytes < 1<<20 {
			t.Errorf("%s: ready %v ms, idle RSS %d B", name, run.ReadyMs.P50, run.IdleRSSBytes)
		}
	}
	if _, err := bench.RunFootprint(t.Context(), bench.FootprintConfig{}); err == nil {
		t.Error("RunFootprint without a binary succeeded")
	}
}
