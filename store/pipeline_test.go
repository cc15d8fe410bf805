package store_test

import (
	"bufio"
	"fmt"
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

// TestR7_BatchReusesValueMaps: the daemon decodes the values of a
// connection's batched state updates into maps it reuses for the next
// batch; what an earlier batch applied stays as it was (R3, R7).
func TestR7_BatchReusesValueMaps(t *testing.T) {
	d := startDaemon(t, t.TempDir(), store.ServerOptions{})
	nc, err := net.Dial("unix", d.socket)
	must(t, err)
	defer nc.Close()
	br := bufio.NewReader(nc)
	id := uint64(0)
	// send writes the requests in one go and reads their replies: each
	// call's state updates are one batch (or several), never the last's.
	send := func(reqs ...wire.Mutate) {
		t.Helper()
		var out []byte
		for _, m := range reqs {
			id++
			out, err = wire.AppendFrame(out, wire.TMutate, id, m)
			must(t, err)
		}
		_, err := nc.Write(out)
		must(t, err)
		for range reqs {
			f, _, err := wire.ReadFrame(br, wire.MaxReplyFrame, nil)
			must(t, err)
			if f.Type != wire.TOK {
				var e wire.Error
				wire.DecodeBody(f, &e)
				t.Fatalf("reply %s %+v, want ok", f.Type, e)
			}
		}
	}
	var hs []byte
	hs, _ = wire.AppendFrame(hs, wire.THello, 1000, wire.Hello{Version: wire.Version, Client: "maps"})
	hs, _ = wire.AppendFrame(hs, wire.TAttach, 1001, wire.Attach{Name: "m"})
	_, err = nc.Write(hs)
	must(t, err)
	for range 2 {
		_, _, err := wire.ReadFrame(br, wire.MaxReplyFrame, nil)
		must(t, err)
	}
	scope := func(i int) wire.Scope {
		return wire.Scope{Bucket: uint8(core.State), Type: "maps", Subtype: fmt.Sprint(i)}
	}
	put := func(i int, v core.Values) wire.Mutate {
		raw, err := codec.EncodeValues(v)
		must(t, err)
		return wire.Mutate{Handle: 1, Ops: []wire.Op{{Kind: wire.OpPut, Scope: scope(i), Values: raw}}}
	}
	send(put(0, core.Values{"a": int64(0), "b": "zero"}), put(1, core.Values{"a": int64(1)}))
	send(put(2, core.Values{"c": int64(2)}), put(3, core.Values{"d": []any{int64(3)}}))
	send(put(4, core.Values{}))
	snap, err := d.st.Snapshot(t.Context())
	must(t, err)
	for i, want := range []core.Values{
		{"a": int64(0), "b": "zero"}, {"a": int64(1)}, {"c": int64(2)}, {"d": []any{int64(3)}}, nil,
	} {
		sc := core.StateScope("maps", fmt.Sprint(i))
		got := snap.Values(sc)
		if fmt.Sprint(got) != fmt.Sprint(want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("%s holds %v, want %v", sc, got, want)
		}
	}
}
