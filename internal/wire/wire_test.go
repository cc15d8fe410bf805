package wire_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/sysreg/sysreg/internal/wire"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// message is one example of every message type, with its type and a
// pointer to a zero value of its body type (nil for bodies that are null).
type message struct {
	name string
	typ  wire.Type
	id   uint64
	body any // the body to encode
	into any // a pointer to decode the body into; nil: the body is null
}

func messages() []message {
	values := cbor.RawMessage{0xa1, 0x62, 'u', 'p', 0xf5} // {"up": true}
	return []message{
		{"hello", wire.THello, 1, wire.Hello{Version: wire.Version, Client: "sysreg-go"}, new(wire.Hello)},
		{"hello_ok", wire.THelloOK, 1, wire.HelloOK{Version: wire.Version, Server: "sysregd", MaxFrame: wire.DefaultMaxFrame}, new(wire.HelloOK)},
		{"attach", wire.TAttach, 2, wire.Attach{Name: "netd", Layer: 4}, new(wire.Attach)},
		{"attach_ok", wire.TAttachOK, 2, wire.AttachOK{Handle: 1, Name: "netd"}, new(wire.AttachOK)},
		{"mutate_put", wire.TMutate, 3, wire.Mutate{Handle: 1, Ops: []wire.Op{{Kind: wire.OpPut, Scope: wire.Scope{Bucket: 2, Type: "net", Subtype: "eth0"}, Values: values}}}, new(wire.Mutate)},
		{"mutate_del", wire.TMutate, 4, wire.Mutate{Handle: 1, Ops: []wire.Op{{Kind: wire.OpDel, Scope: wire.Scope{Bucket: 2, Type: "net", Subtype: "eth0"}, Values: cbor.RawMessage{0xf6}, Keys: []string{"up"}}}}, new(wire.Mutate)},
		{"ok", wire.TOK, 3, nil, nil},
		{"error", wire.TError, 4, wire.Error{Code: wire.CodeReservedKeys, Message: "reserved", Scope: wire.Scope{Bucket: 2, Type: "net", Subtype: "eth0"}, Keys: []string{"up"}}, new(wire.Error)},
		{"detach", wire.TDetach, 5, wire.Detach{Handle: 1}, new(wire.Detach)},
		{"snapshot", wire.TSnapshot, 6, nil, nil},
		{"snapshot_ok", wire.TSnapshotOK, 6, wire.SnapshotOK{Data: []byte{0x83, 0x02, 0x00, 0x80}}, new(wire.SnapshotOK)},
		{"subscribe", wire.TSubscribe, 7, wire.Subscribe{MinInterval: 100_000_000, Match: wire.Scope{Bucket: 1, Type: "net"}}, new(wire.Subscribe)},
		{"subscribe_ok", wire.TSubscribeOK, 7, wire.SubscribeOK{Sub: 7}, new(wire.SubscribeOK)},
		{"delivery", wire.TDelivery, 7, wire.Delivery{Data: []byte{0x83, 0x02, 0x00, 0x80}}, new(wire.Delivery)},
		{"unsubscribe", wire.TUnsubscribe, 8, wire.Unsubscribe{Sub: 7}, new(wire.Unsubscribe)},
		{"sub_closed", wire.TSubClosed, 7, nil, nil},
		{"evict", wire.TEvict, 9, wire.Evict{Name: "netd"}, new(wire.Evict)},
		{"stats", wire.TStats, 10, nil, nil},
		{"stats_ok", wire.TStatsOK, 10, wire.StatsOK{Data: []byte{0xa1, 0x63, 's', 'e', 'q', 0x01}}, new(wire.StatsOK)},
		{"owners", wire.TOwners, 11, nil, nil},
		{"owners_ok", wire.TOwnersOK, 11, wire.OwnersOK{Data: []byte{0x80}}, new(wire.OwnersOK)},
		{"ping", wire.TPing, 11, nil, nil},
		{"backup", wire.TBackup, 12, nil, nil},
		{"backup_ok", wire.TBackupOK, 12, wire.BackupOK{Data: []byte{0xed, 0xda}}, new(wire.BackupOK)},
		{"reset_keys", wire.TResetKeys, 15, wire.ResetKeys{Scope: wire.Scope{Bucket: 2, Type: "wifi", Subtype: "wlan0"}, Keys: []string{"ssid"}, Layers: []uint64{3}}, new(wire.ResetKeys)},
		{"reset", wire.TReset, 14, wire.Reset{Pattern: wire.Scope{Bucket: 2}, Layers: []uint64{3, 4}}, new(wire.Reset)},
		{"mutate_cond", wire.TMutate, 13, wire.Mutate{Handle: 1, Ops: []wire.Op{{Kind: wire.OpIfModSeq, Scope: wire.Scope{Bucket: 2, Type: "net", Subtype: "eth0"}, Values: cbor.RawMessage{0xa1, 0x62, 'u', 'p', 0xd9, 0x53, 0x52, 0x07}}}}, new(wire.Mutate)},
		{"apply", wire.TApply, 16, wire.Apply{Handle: 1, Within: int64(60e9), Ops: []wire.Op{{Kind: wire.OpPut, Scope: wire.Scope{Bucket: 2, Type: "net", Subtype: "eth0"}, Values: cbor.RawMessage{0xa1, 0x62, 'u', 'p', 0xf5}}}}, new(wire.Apply)},
		{"apply_ok", wire.TApplyOK, 16, wire.ApplyOK{ID: 42}, new(wire.ApplyOK)},
		{"confirm", wire.TConfirm, 17, wire.Confirm{ID: 42}, new(wire.Confirm)},
		{"rollback", wire.TRollback, 18, wire.Rollback{ID: 42}, new(wire.Rollback)},
		{"rollback_ok", wire.TRollbackOK, 18, wire.RollbackOK{Left: []wire.Change{{Layer: 3, Scope: wire.Scope{Bucket: 2, Type: "net", Subtype: "eth0"}, Key: "up", Old: cbor.RawMessage{0xf4}, New: cbor.RawMessage{0xf5}, Existed: true, Exists: true, OldOwner: "a", NewOwner: "b"}}}, new(wire.RollbackOK)},
		{"pending", wire.TPending, 19, nil, nil},
		{"pending_ok", wire.TPendingOK, 19, wire.PendingOK{Applies: []wire.Pending{{ID: 42, Owner: "ui", Layer: 3, Deadline: 1700000000000000000, Undo: []wire.Change{{Layer: 3, Scope: wire.Scope{Bucket: 2, Type: "net", Subtype: "eth0"}, Key: "up", Old: cbor.RawMessage{0xf6}, New: cbor.RawMessage{0xf5}, Exists: true, NewOwner: "ui"}}}}}, new(wire.PendingOK)},
		{"conflict", wire.TConflict, 13, wire.Conflict{Scope: wire.Scope{Bucket: 2, Type: "net", Subtype: "eth0"}, Key: "up", Want: cbor.RawMessage{0xd9, 0x53, 0x52, 0x07}, Got: cbor.RawMessage{0xd9, 0x53, 0x52, 0x09}, ModSeq: true, Present: true}, new(wire.Conflict)},
	}
}

// TestRoundTrip: every message type survives AppendFrame, ReadFrame and
// DecodeBody unchanged, and a stream of frames reads back in order (R34).
func TestRoundTrip(t *testing.T) {
	var stream []byte
	for _, m := range messages() {
		var err error
		stream, err = wire.AppendFrame(stream, m.typ, m.id, m.body)
		if err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
	}
	r := bufio.NewReader(bytes.NewReader(stream))
	var buf []byte
	for _, m := range messages() {
		t.Run(m.name, func(t *testing.T) {
			var f wire.Frame
			var err error
			f, buf, err = wire.ReadFrame(r, wire.DefaultMaxFrame, buf)
			if err != nil {
				t.Fatal(err)
			}
			if f.Type != m.typ || f.ID != m.id {
				t.Fatalf("got %s id %d, want %s id %d", f.Type, f.ID, m.typ, m.id)
			}
			if !m.typ.Known() || strings.HasPrefix(m.typ.String(), "type(") {
				t.Errorf("type %d has no name", m.typ)
			}
			if m.into == nil {
				if !bytes.Equal(f.Body, []byte{0xf6}) {
					t.Fatalf("body % x, want null", f.Body)
				}
				return
			}
			if err := wire.DecodeBody(f, m.into); err != nil {
				t.Fatal(err)
			}
			if got := reflect.ValueOf(m.into).Elem().Interface(); !reflect.DeepEqual(got, m.body) {
				t.Fatalf("got %#v, want %#v", got, m.body)
			}
		})
	}
	if _, _, err := wire.ReadFrame(r, wire.DefaultMaxFrame, buf); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

func TestTypeNames(t *testing.T) {
	names := map[string]wire.Type{}
	for i := 0; i < 256; i++ {
		ty := wire.Type(i)
		if !ty.Known() {
			if ty.String() == "" || !strings.HasPrefix(ty.String(), "type(") {
				t.Errorf("unknown type %d is named %q", i, ty)
			}
			continue
		}
		if prev, dup := names[ty.String()]; dup {
			t.Errorf("types %d and %d are both %q", prev, ty, ty)
		}
		names[ty.String()] = ty
	}
	if len(names) != 39 {
		t.Errorf("%d known types, want 39: update PROTOCOL.md with the protocol", len(names))
	}
}

// TestReadFrameLimits: the length prefix is checked before anything is
// allocated; a short stream is io.ErrUnexpectedEOF, not a hang (R34).
func TestReadFrameLimits(t *testing.T) {
	t.Run("oversized", func(t *testing.T) {
		in := binary.BigEndian.AppendUint32(nil, 0xffffffff)
		f, buf, err := wire.ReadFrame(bytes.NewReader(in), 1024, nil)
		if !errors.Is(err, wire.ErrFrameTooLarge) {
			t.Fatalf("err %v, want ErrFrameTooLarge", err)
		}
		if cap(buf) != 0 || f.Body != nil {
			t.Fatalf("allocated %d bytes for a refused frame", cap(buf))
		}
	})
	t.Run("at-the-limit", func(t *testing.T) {
		frame, err := wire.AppendFrame(nil, wire.TEvict, 1, wire.Evict{Name: strings.Repeat("x", 100)})
		if err != nil {
			t.Fatal(err)
		}
		n := len(frame) - 4
		if _, _, err := wire.ReadFrame(bytes.NewReader(frame), n, nil); err != nil {
			t.Fatalf("a frame of exactly the limit: %v", err)
		}
		if _, _, err := wire.ReadFrame(bytes.NewReader(frame), n-1, nil); !errors.Is(err, wire.ErrFrameTooLarge) {
			t.Fatalf("a frame one byte over the limit: %v", err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		frame, _ := wire.AppendFrame(nil, wire.TPing, 1, nil)
		for n := 1; n < len(frame); n++ {
			_, _, err := wire.ReadFrame(bytes.NewReader(frame[:n]), 1024, nil)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("%d of %d bytes: %v, want io.ErrUnexpectedEOF", n, len(frame), err)
			}
		}
	})
	t.Run("empty", func(t *testing.T) {
		if _, _, err := wire.ReadFrame(bytes.NewReader(nil), 1024, nil); err != io.EOF {
			t.Fatalf("%v, want io.EOF", err)
		}
	})
	t.Run("buffer-reuse", func(t *testing.T) {
		a, _ := wire.AppendFrame(nil, wire.TEvict, 1, wire.Evict{Name: "first"})
		b, _ := wire.AppendFrame(nil, wire.TEvict, 2, wire.Evict{Name: "2nd"})
		r := bytes.NewReader(append(a, b...))
		_, buf, err := wire.ReadFrame(r, 1024, make([]byte, 0, 64))
		if err != nil {
			t.Fatal(err)
		}
		f, buf2, err := wire.ReadFrame(r, 1024, buf)
		if err != nil {
			t.Fatal(err)
		}
		if &buf[:1][0] != &buf2[:1][0] {
			t.Error("a large enough buffer was not reused")
		}
		var e wire.Evict
		if err := wire.DecodeBody(f, &e); err != nil || e.Name != "2nd" {
			t.Fatalf("%v %q", err, e.Name)
		}
	})
}

// TestDecodeFrameRejects lists payloads that are not frames: each is
// ErrMalformed, never a panic and never a frame (R34). DecodeFrame checks
// the frame and that its body is one well-formed item; what is inside the
// body is DecodeBody's to check.
func TestDecodeFrameRejects(t *testing.T) {
	for _, tc := range []struct{ name, hex string }{
		{"empty", ""},
		{"not-an-array", "a0"},
		{"two-elements", "82 01 01"},
		{"four-elements", "84 01 01 f6 f6"},
		{"type-too-big", "83 19 0100 01 f6"},
		{"type-negative", "83 20 01 f6"},
		{"type-not-int", "83 f5 01 f6"},
		{"id-negative", "83 01 20 f6"},
		{"id-too-big", "83 01 c2 49 010000000000000000 f6"},
		{"indefinite-body", "83 01 01 9f ff"},
		{"indefinite-frame", "9f 01 01 f6 ff"},
		{"trailing-byte", "83 01 01 f6 00"},
		{"truncated-body", "83 01 01 82 01"},
		{"too-deep", "83 01 01 " + strings.Repeat("81", wire.MaxNesting+1) + "00"},
		{"reserved-simple", "83 01 01 f8 10"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := wire.DecodeFrame(unhex(t, tc.hex))
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("got %+v, %v; want ErrMalformed", f, err)
			}
		})
	}
}

// TestDecodeBodyStrict: a body must be exactly its message's array: wrong
// lengths, wrong types, trailing data and null are ErrMalformed (R34).
func TestDecodeBodyStrict(t *testing.T) {
	for _, tc := range []struct {
		name string
		typ  wire.Type
		hex  string
		into any
	}{
		{"null-hello", wire.THello, "f6", new(wire.Hello)},
		{"null-attach", wire.TAttach, "f6", new(wire.Attach)},
		{"null-mutate", wire.TMutate, "f6", new(wire.Mutate)},
		{"null-subscribe", wire.TSubscribe, "f6", new(wire.Subscribe)},
		{"undefined-detach", wire.TDetach, "f7", new(wire.Detach)},
		{"map-hello", wire.THello, "a0", new(wire.Hello)},
		{"short-hello", wire.THello, "81 01", new(wire.Hello)},
		{"long-hello", wire.THello, "83 01 60 60", new(wire.Hello)},
		{"hello-version-text", wire.THello, "82 61 31 60", new(wire.Hello)},
		{"attach-keep-int", wire.TAttach, "82 60 01", new(wire.Attach)},
		{"detach-negative", wire.TDetach, "81 20", new(wire.Detach)},
		{"mutate-op-short", wire.TMutate, "82 01 81 83 01 83 02 61 61 61 62 a0", new(wire.Mutate)},
		{"mutate-bucket-300", wire.TMutate, "82 01 81 84 01 83 19 012c 61 61 61 62 a0 f6", new(wire.Mutate)},
		{"subscribe-interval-float", wire.TSubscribe, "83 fb 3ff8000000000000 00 83 00 60 60", new(wire.Subscribe)},
		{"text-for-bytes", wire.TDelivery, "81 61 61", new(wire.Delivery)},
		{"trailing", wire.TEvict, "81 60 00", new(wire.Evict)},
		{"bad-utf8", wire.TEvict, "81 61 ff", new(wire.Evict)},
		{"dup-map-key-stats", wire.TStatsOK, "a2 61 61 01 61 61 02", new(wire.StatsOK)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := wire.DecodeBody(wire.Frame{Type: tc.typ, Body: unhex(t, tc.hex)}, tc.into)
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("decoded %+v, err %v; want ErrMalformed", tc.into, err)
			}
		})
	}
}

// TestProtocolExamples checks the example frames of PROTOCOL.md byte for
// byte against the encoder, so the document cannot drift from the code.
func TestProtocolExamples(t *testing.T) {
	doc, err := os.ReadFile("PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "<!-- examples: checked by TestProtocolExamples -->")
	if !ok {
		t.Fatal("PROTOCOL.md has no examples block")
	}
	block, _, _ := strings.Cut(after, "<!-- end of examples -->")
	line := regexp.MustCompile(`(?m)^\s*([a-z_]+)\s+id\s+(\d+):\s+([0-9a-f ]+)$`)
	examples := map[string]string{}
	for _, m := range line.FindAllStringSubmatch(block, -1) {
		examples[m[1]] = strings.Join(strings.Fields(m[3]), "")
	}
	for _, m := range messages() {
		want, ok := examples[m.name]
		if !ok {
			t.Errorf("PROTOCOL.md has no example of %s", m.name)
			continue
		}
		got, err := wire.AppendFrame(nil, m.typ, m.id, m.body)
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got) != want {
			t.Errorf("%s: PROTOCOL.md says\n\t%s\nthe encoder writes\n\t%x", m.name, want, got)
		}
		delete(examples, m.name)
	}
	for name := range examples {
		t.Errorf("PROTOCOL.md has an example of %s, which is no message", name)
	}
}
