package store_test

import (
	"bufio"
	"net"
	"testing"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/codec"
	"github.com/sysreg/sysreg/internal/wire"
	"github.com/sysreg/sysreg/store"
)

// TestR7_PipelinedRequestsInOrder: requests written in one go — state
// updates the daemon applies together, mixed with a failing one, a config
// update, a delete, a detach and a mutate of the detached handle — take
// effect in the order sent, each gets its own reply in that order, and a
// failing update fails alone (R7, R10, R13, R31).
func TestR7_PipelinedRequestsInOrder(t *testing.T) {
	d := startDaemon(t, t.TempDir(), store.ServerOptions{})
	nc, err := net.Dial("unix", d.socket)
	must(t, err)
	defer nc.Close()
	st := core.StateScope("pipe", "a")
	cfg := core.ConfigScope("pipe", "a")
	put := func(handle uint64, sc core.Scope, v core.Values) wire.Mutate {
		raw, err := codec.EncodeValues(v)
		must(t, err)
		return wire.Mutate{Handle: handle, Ops: []wire.Op{{Kind: wire.OpPut, Scope: wire.Scope{Bucket: uint8(sc.Bucket), Type: sc.Type, Subtype: sc.Subtype}, Values: raw}}}
	}
	del := func(handle uint64, sc core.Scope, keys ...string) wire.Mutate {
		return wire.Mutate{Handle: handle, Ops: []wire.Op{{Kind: wire.OpDel, Scope: wire.Scope{Bucket: uint8(sc.Bucket), Type: sc.Type, Subtype: sc.Subtype}, Values: []byte{0xf6}, Keys: keys}}}
	}
	type req struct {
		t    wire.Type
		body any
		want wire.Type
		code string // for want == TError
	}
	reqs := []req{
		{wire.THello, wire.Hello{Version: wire.Version, Client: "pipe"}, wire.THelloOK, ""},
		{wire.TAttach, wire.Attach{Name: "a"}, wire.TAttachOK, ""}, // handle 1
		{wire.TAttach, wire.Attach{Name: "b"}, wire.TAttachOK, ""}, // handle 2
	}
	for i := range 100 {
		reqs = append(reqs, req{wire.TMutate, put(1, st, core.Values{"n": int64(i)}), wire.TOK, ""})
	}
	reqs = append(reqs,
		req{wire.TMutate, put(2, st, core.Values{"n": int64(-1)}), wire.TError, wire.CodeReservedKeys}, // a's key
		req{wire.TMutate, put(2, st, core.Values{"b": true}), wire.TOK, ""},                            // b's own key in a's scope
		req{wire.TMutate, put(2, core.StateScope("pipe", "b"), core.Values{"b": true}), wire.TOK, ""},
		req{wire.TMutate, put(1, st, core.Values{"m": "x"}), wire.TOK, ""},
		req{wire.TMutate, put(1, cfg, core.Values{"c": int64(1)}), wire.TOK, ""},
		req{wire.TMutate, del(1, st, "m"), wire.TOK, ""},
		req{wire.TMutate, put(1, st, core.Values{"n": int64(100)}), wire.TOK, ""},
		req{wire.TMutate, put(9, st, core.Values{"n": int64(-2)}), wire.TError, wire.CodeBadRequest}, // no handle 9
		req{wire.TDetach, wire.Detach{Handle: 2}, wire.TOK, ""},
		req{wire.TMutate, put(2, core.StateScope("pipe", "b"), core.Values{"b": false}), wire.TError, wire.CodeBadRequest},
		req{wire.TMutate, put(1, st, core.Values{"n": int64(101)}), wire.TOK, ""},
	)
	var out []byte
	for i, r := range reqs {
		out, err = wire.AppendFrame(out, r.t, uint64(i+1), r.body)
		must(t, err)
	}
	if _, err := nc.Write(out); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	for i, r := range reqs {
		f, _, err := wire.ReadFrame(br, wire.MaxReplyFrame, nil)
		must(t, err)
		if f.ID != uint64(i+1) || f.Type != r.want {
			t.Fatalf("reply %d: %s id %d, want %s id %d", i, f.Type, f.ID, r.want, i+1)
		}
		if r.want == wire.TError {
			var e wire.Error
			must(t, wire.DecodeBody(f, &e))
			if e.Code != r.code {
				t.Fatalf("reply %d: error %+v, want code %s", i, e, r.code)
			}
		}
	}
	snap, err := d.st.Snapshot(t.Context())
	must(t, err)
	for _, c := range []struct {
		sc   core.Scope
		key  string
		want any
	}{
		{st, "n", int64(101)}, {st, "m", nil}, {cfg, "c", int64(1)},
		{core.StateScope("pipe", "b"), "b", nil}, {st, "b", nil}, // b's state died with its detach (R13)
	} {
		if got, _ := snap.Get(c.sc, c.key); got != c.want {
			t.Errorf("%s %s = %v, want %v", c.sc, c.key, got, c.want)
		}
	}
}
