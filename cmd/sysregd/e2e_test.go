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
