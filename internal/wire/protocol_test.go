package wire_test

// The findings of an independent client written from PROTOCOL.md alone
// (issue #8 item 6), kept as tests against the real daemon side
// (store.Server) over a Unix socket, speaking raw frames.

import (
	"bufio"
	"context"
	"errors"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"go.uber.org/goleak"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/codec"
	"github.com/sysreg/sysreg/internal/wire"
	"github.com/sysreg/sysreg/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// daemon starts a store and a server on a socket in a short temp path.
func daemon(t *testing.T) string {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "sw")
	if err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := store.NewServer(st, store.ServerOptions{})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		<-served
		st.Close()
		os.RemoveAll(dir)
	})
	return socket
}

// rawConn is a client that writes frames by hand and reads what comes.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, socket string) *rawConn {
	t.Helper()
	nc, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// send writes frames: each a type, an id and a body (a message struct, raw
// CBOR or nil).
func (c *rawConn) send(frames ...rawFrame) {
	c.t.Helper()
	var b []byte
	for _, f := range frames {
		var err error
		if b, err = wire.AppendFrame(b, f.typ, f.id, f.body); err != nil {
			c.t.Fatal(err)
		}
	}
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

type rawFrame struct {
	typ  wire.Type
	id   uint64
	body any
}

// next reads the next frame (a deadline, not synchronisation: the daemon
// answers at once).
func (c *rawConn) next() wire.Frame {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, _, err := wire.ReadFrame(c.br, wire.MaxReplyFrame, nil)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

// closed reports whether the daemon closed the connection.
func (c *rawConn) closed() bool {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err := wire.ReadFrame(c.br, wire.MaxReplyFrame, nil)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.t.Fatal("the daemon neither answered nor closed")
	}
	return err != nil
}

// want reads the next frame and checks its type and id; for an Error, it
// returns its code.
func (c *rawConn) want(typ wire.Type, id uint64) wire.Frame {
	c.t.Helper()
	f := c.next()
	if f.Type != typ || f.ID != id {
		c.t.Fatalf("got %s id %d (% x), want %s id %d", f.Type, f.ID, f.Body, typ, id)
	}
	return f
}

func (c *rawConn) wantError(id uint64, code string) wire.Error {
	c.t.Helper()
	f := c.want(wire.TError, id)
	var we wire.Error
	if err := wire.DecodeBody(f, &we); err != nil {
		c.t.Fatal(err)
	}
	if we.Code != code {
		c.t.Fatalf("error %s (%s), want %s", we.Code, we.Message, code)
	}
	return we
}

// hello performs the handshake and attaches owner "o" as handle 1.
func (c *rawConn) hello() {
	c.t.Helper()
	c.send(rawFrame{wire.THello, 1, wire.Hello{Version: wire.Version, Client: "raw"}},
		rawFrame{wire.TAttach, 2, wire.Attach{Name: "o"}})
	c.want(wire.THelloOK, 1)
	c.want(wire.TAttachOK, 2)
}

// alive checks that the connection still answers requests.
func (c *rawConn) alive(id uint64) {
	c.t.Helper()
	c.send(rawFrame{wire.TPing, id, nil})
	c.want(wire.TOK, id)
}

func putOp(values []byte) wire.Op {
	return wire.Op{Kind: wire.OpPut, Scope: wire.Scope{Bucket: uint8(core.State), Type: "t", Subtype: "s"}, Values: values}
}

// mutateRaw is a Mutate frame whose one put carries values as raw bytes,
// assembled by hand so that they may break the encoder's rules.
func mutateRaw(values []byte) cbor.RawMessage {
	b := []byte{0x82, 0x01, 0x81, 0x84, 0x01, 0x83, 0x01, 0x61, 't', 0x61, 's'}
	b = append(b, values...)
	return append(b, 0xf6)
}

func nested(depth int) []byte {
	// {"k": [[…[1]…]]} with depth levels of arrays.
	b := []byte{0xa1, 0x61, 'k'}
	for range depth {
		b = append(b, 0x81)
	}
	return append(b, 0x01)
}

// Finding (a): a bad value is a bad request, not a broken frame: an
// indefinite length inside a value gets an Error with the request's id and
// the connection stays; values nest deeper than the frame layer's old limit
// of 64 levels, as deep as core.MaxDepth (R2, R34).
func TestProtocolBadValueKeepsConnection(t *testing.T) {
	c := dialRaw(t, daemon(t))
	c.hello()
	indefinite := []byte{0xa1, 0x61, 'k', 0x9f, 0x01, 0xff} // {"k": [_ 1]}
	c.send(rawFrame{wire.TMutate, 3, mutateRaw(indefinite)})
	c.wantError(3, wire.CodeBadRequest)
	c.alive(4)

	c.send(rawFrame{wire.TMutate, 5, mutateRaw(nested(100))})
	c.want(wire.TOK, 5)
	c.send(rawFrame{wire.TMutate, 6, mutateRaw(nested(core.MaxDepth + 10))})
	f := c.next()
	if f.ID != 6 || f.Type != wire.TError {
		t.Fatalf("a value deeper than core.MaxDepth: %s id %d, want an error for id 6", f.Type, f.ID)
	}
	c.alive(7)

	// A body that is not an item at all (truncated inside the payload).
	c.send(rawFrame{wire.TMutate, 8, cbor.RawMessage{0x82, 0x01}})
	c.wantError(8, wire.CodeBadRequest)
	c.alive(9)

	// A tag where a field belongs (PROTOCOL.md §2): the handle as a
	// tagged integer, which fxamacker would have read as 1.
	tagged := append(cbor.RawMessage{0x82, 0xd9, 0x53, 0x52}, mutateRaw([]byte{0xa1, 0x61, 'k', 0x01})[1:]...)
	c.send(rawFrame{wire.TMutate, 10, tagged})
	c.wantError(10, wire.CodeBadRequest)
	c.alive(11)
}

// Finding (b): 3- and 5-byte floats and NaN/±Inf are values like any
// float: accepted, and read back as float64 (PROTOCOL.md §6).
func TestProtocolFloatForms(t *testing.T) {
	c := dialRaw(t, daemon(t))
	c.hello()
	for i, tc := range []struct {
		name string
		cbor []byte
		want float64
	}{
		{"half", []byte{0xf9, 0x3e, 0x00}, 1.5},
		{"single", []byte{0xfa, 0x3f, 0xc0, 0x00, 0x00}, 1.5},
		{"nan", []byte{0xf9, 0x7e, 0x00}, math.NaN()},
		{"+inf", []byte{0xfa, 0x7f, 0x80, 0x00, 0x00}, math.Inf(1)},
		{"-inf", []byte{0xfb, 0xff, 0xf0, 0, 0, 0, 0, 0, 0}, math.Inf(-1)},
	} {
		id := uint64(10 + 2*i)
		// Read the write back only after its ok: a snapshot pipelined
		// behind a mutate may not show it yet (PROTOCOL.md §4).
		c.send(rawFrame{wire.TMutate, id, mutateRaw(append([]byte{0xa1, 0x61, 'k'}, tc.cbor...))})
		c.want(wire.TOK, id)
		c.send(rawFrame{wire.TSnapshot, id + 1, nil})
		var ok wire.SnapshotOK
		if err := wire.DecodeBody(c.want(wire.TSnapshotOK, id+1), &ok); err != nil {
			t.Fatal(err)
		}
		snap, err := codec.DecodeSnapshot(ok.Data)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := snap.Get(core.StateScope("t", "s"), "k")
		f, isFloat := v.(float64)
		if !isFloat || !(f == tc.want || math.IsNaN(tc.want) && math.IsNaN(f)) {
			t.Errorf("%s: read back %#v, want float64 %v", tc.name, v, tc.want)
		}
	}
}

// Finding (c): null in place of a put's values is not "the zero value" (an
// empty map, a no-op): it is invalid_value, and the connection stays.
func TestProtocolNullValuesOfPut(t *testing.T) {
	c := dialRaw(t, daemon(t))
	c.hello()
	c.send(rawFrame{wire.TMutate, 3, wire.Mutate{Handle: 1, Ops: []wire.Op{putOp([]byte{0xf6})}}})
	c.wantError(3, wire.CodeInvalidValue)
	c.alive(4)
}

// Finding (d): nothing precedes hello_ok, not even the first delivery of a
// subscription pipelined right behind hello.
func TestProtocolNothingBeforeHelloOK(t *testing.T) {
	socket := daemon(t)
	for range 50 {
		c := dialRaw(t, socket)
		c.send(rawFrame{wire.THello, 1, wire.Hello{Version: wire.Version, Client: "raw"}},
			rawFrame{wire.TSubscribe, 2, wire.Subscribe{}})
		c.want(wire.THelloOK, 1)
		c.nc.Close()
	}
}

// Finding (e): a second hello is a bad request with its id; the connection
// stays.
func TestProtocolSecondHello(t *testing.T) {
	c := dialRaw(t, daemon(t))
	c.hello()
	c.send(rawFrame{wire.THello, 3, wire.Hello{Version: wire.Version, Client: "again"}})
	c.wantError(3, wire.CodeBadRequest)
	c.alive(4)
}

// Finding (f): id 0 is reserved for errors about the connection, sent just
// before the daemon closes it. A request with id 0 is refused that way.
func TestProtocolIDZeroReserved(t *testing.T) {
	// A daemon per case: each connection attaches the same owner name, and
	// a closed connection's owner dies only once the daemon has noticed.
	t.Run("hello", func(t *testing.T) {
		c := dialRaw(t, daemon(t))
		c.send(rawFrame{wire.THello, 0, wire.Hello{Version: wire.Version, Client: "raw"}})
		c.wantError(0, wire.CodeBadRequest)
		if !c.closed() {
			t.Fatal("connection still open after an error with id 0")
		}
	})
	t.Run("request", func(t *testing.T) {
		c := dialRaw(t, daemon(t))
		c.hello()
		c.send(rawFrame{wire.TPing, 0, nil})
		c.wantError(0, wire.CodeBadRequest)
		if !c.closed() {
			t.Fatal("connection still open after an error with id 0")
		}
	})
	t.Run("broken-frame", func(t *testing.T) {
		c := dialRaw(t, daemon(t))
		c.hello()
		if _, err := c.nc.Write([]byte{0, 0, 0, 1, 0xa0}); err != nil { // not [type, id, body]
			t.Fatal(err)
		}
		c.wantError(0, wire.CodeBadRequest)
		if !c.closed() {
			t.Fatal("connection still open after an error with id 0")
		}
	})
}

// Finding (g): a pattern whose type holds '/' or whose type or subtype
// holds NUL never matches a scope: it is refused like a scope
// (invalid_scope), and the connection stays.
func TestProtocolBadPattern(t *testing.T) {
	c := dialRaw(t, daemon(t))
	c.hello()
	for i, p := range []wire.Scope{
		{Type: "a/b"},
		{Type: "a\x00"},
		{Subtype: "x\x00y"},
		{Bucket: 3},
	} {
		id := uint64(10 + i)
		c.send(rawFrame{wire.TSubscribe, id, wire.Subscribe{Match: p}})
		if we := c.wantError(id, wire.CodeInvalidScope); !strings.Contains(we.Message, "pattern") {
			t.Errorf("pattern %+v: message %q does not name the pattern", p, we.Message)
		}
	}
	c.alive(20)
	// A subtype may hold '/' (R1), so a pattern's subtype may too.
	c.send(rawFrame{wire.TSubscribe, 21, wire.Subscribe{Match: wire.Scope{Subtype: "a/b"}}})
	for f := c.next(); f.Type != wire.TSubscribeOK; f = c.next() {
		if f.Type != wire.TDelivery {
			t.Fatalf("subscribe with subtype a/b: %s", f.Type)
		}
	}
}
