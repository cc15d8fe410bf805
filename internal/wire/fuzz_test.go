package wire_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/sysreg/sysreg/internal/codec"
	"github.com/sysreg/sysreg/internal/wire"
)

// Seeds: every example message here, and in testdata/fuzz/<Name>/ the
// malformed cases of the end-to-end garbage test (oversized and truncated
// frames, garbage CBOR, unknown types, wrong shapes).

const fuzzMaxFrame = 1 << 16

// FuzzReadFrame reads a stream of frames: no input panics, every error is
// EOF, a short read, ErrFrameTooLarge or ErrMalformed, and every frame that
// decodes re-encodes to a frame that decodes to the same (R34).
func FuzzReadFrame(f *testing.F) {
	var stream []byte
	for _, m := range messages() {
		frame, err := wire.AppendFrame(nil, m.typ, m.id, m.body)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(frame)
		stream = append(stream, frame...)
	}
	f.Add(stream)
	f.Fuzz(func(t *testing.T, data []byte) {
		var r io.Reader = bytes.NewReader(data)
		if len(data)%2 == 1 {
			// The daemon's and the client's reader: the length is peeked.
			r = bufio.NewReaderSize(r, 16)
		}
		var buf []byte
		for range 64 {
			fr, b, err := wire.ReadFrame(r, fuzzMaxFrame, buf)
			buf = b
			if err != nil {
				if err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) &&
					!errors.Is(err, wire.ErrFrameTooLarge) && !errors.Is(err, wire.ErrMalformed) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			fr.Body = bytes.Clone(fr.Body) // buf is reused by the next read
			checkFrame(t, fr)
		}
	})
}

// FuzzDecodeFrame decodes one payload: no input panics, errors are
// ErrMalformed, and a frame that decodes re-encodes to one that decodes to
// the same; so does every body that decodes as any message (R34).
func FuzzDecodeFrame(f *testing.F) {
	for _, m := range messages() {
		frame, err := wire.AppendFrame(nil, m.typ, m.id, m.body)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(frame[4:])
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		fr, err := wire.DecodeFrame(payload)
		if err != nil {
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			return
		}
		checkFrame(t, fr)
	})
}

// checkFrame re-encodes fr and decodes it again, then decodes its body as
// every message type.
func checkFrame(t *testing.T, fr wire.Frame) {
	t.Helper()
	frame, err := wire.AppendFrame(nil, fr.Type, fr.ID, cbor.RawMessage(fr.Body))
	if err != nil {
		t.Fatalf("re-encode %s: %v", fr.Type, err)
	}
	again, _, err := wire.ReadFrame(bytes.NewReader(frame), len(frame), nil)
	if err != nil {
		t.Fatalf("re-encoded frame does not read: %v\n% x", err, frame)
	}
	if again.Type != fr.Type || again.ID != fr.ID || !bytes.Equal(again.Body, fr.Body) {
		t.Fatalf("re-encoded frame reads as %s %d % x, want %s %d % x", again.Type, again.ID, again.Body, fr.Type, fr.ID, fr.Body)
	}
	checkBodies(t, fr)
}

// bodyTypes returns a new pointer to every message struct.
func bodyTypes() []any {
	return []any{
		new(wire.Hello), new(wire.HelloOK), new(wire.Attach), new(wire.AttachOK),
		new(wire.Detach), new(wire.Mutate), new(wire.SnapshotOK), new(wire.Subscribe),
		new(wire.SubscribeOK), new(wire.Unsubscribe), new(wire.Evict), new(wire.Delivery),
		new(wire.StatsOK), new(wire.OwnersOK), new(wire.Error),
	}
}

// checkBodies decodes fr's body as every message type, whatever fr's type
// says (a daemon must survive a body of the wrong shape as well as garbage).
// A body that decodes must re-encode to bytes that decode to the same
// message, and encode again to the same bytes; the CBOR it embeds (values,
// snapshots, stats) goes through internal/codec, which must not panic.
func checkBodies(t *testing.T, fr wire.Frame) {
	t.Helper()
	for _, v := range bodyTypes() {
		if err := wire.DecodeBody(fr, v); err != nil {
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("%T: error %v does not match ErrMalformed", v, err)
			}
			continue
		}
		msg := reflect.ValueOf(v).Elem().Interface()
		raw, err := wire.EncodeBody(fr.Type, msg)
		if err != nil {
			t.Fatalf("%T %+v decodes but does not encode: %v", v, msg, err)
		}
		v2 := reflect.New(reflect.TypeOf(msg)).Interface()
		if err := wire.DecodeBody(wire.Frame{Type: fr.Type, Body: raw}, v2); err != nil {
			t.Fatalf("%T %+v: its encoding % x does not decode: %v", v, msg, raw, err)
		}
		msg2 := reflect.ValueOf(v2).Elem().Interface()
		if !reflect.DeepEqual(normal(msg), msg2) {
			t.Fatalf("%T: %+v re-encodes to % x, which decodes to %+v", v, msg, raw, msg2)
		}
		raw2, err := wire.EncodeBody(fr.Type, msg2)
		if err != nil || !bytes.Equal(raw, raw2) {
			t.Fatalf("%T: encoding is not stable: % x then % x (%v)", v, raw, raw2, err)
		}
		switch m := msg.(type) {
		case wire.Mutate:
			for _, op := range m.Ops {
				codec.DecodeValues(op.Values)
			}
		case wire.SnapshotOK:
			codec.DecodeSnapshot(m.Data)
		case wire.Delivery:
			codec.DecodeSnapshot(m.Data)
		case wire.StatsOK:
			codec.DecodeValue(m.Data)
		case wire.OwnersOK:
			codec.DecodeValue(m.Data)
		}
	}
}

// normal returns msg as it reads back after encoding: an op that was null
// (or lacked values) has nil Values, which encode as null and read back as
// the raw null item.
func normal(msg any) any {
	m, ok := msg.(wire.Mutate)
	if !ok {
		return msg
	}
	ops := make([]wire.Op, len(m.Ops))
	for i, op := range m.Ops {
		if op.Values == nil {
			op.Values = cbor.RawMessage{0xf6}
		}
		ops[i] = op
	}
	if m.Ops != nil {
		m.Ops = ops
	}
	return m
}
