package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/fxamacker/cbor/v2"

	"github.com/sysreg/sysreg/core"
)

// Version is the protocol version this build speaks (see PROTOCOL.md).
const Version = 2

// DefaultMaxFrame is the default limit on the payload of a frame the daemon
// reads.
const DefaultMaxFrame = 4 << 20

// MaxReplyFrame is the largest payload a client accepts from the daemon.
// The daemon's MaxFrame limits what it reads; its replies and pushes that
// carry a whole view (SnapshotOK, Delivery) are as large as the view, and
// the daemon is trusted not to send more than it has.
const MaxReplyFrame = 1<<31 - 1

// Type is a frame's message type.
type Type uint8

// Requests (client → daemon). Each is answered by exactly one reply frame
// carrying the same id: the reply type named, or TError.
const (
	THello       Type = 1  // Hello → HelloOK; must be the first frame
	TAttach      Type = 2  // Attach → AttachOK
	TDetach      Type = 3  // Detach → OK: the owner dies (R13)
	TMutate      Type = 4  // Mutate → OK: an update, delete or transaction
	TSnapshot    Type = 5  // (no body) → SnapshotOK
	TSubscribe   Type = 6  // Subscribe → SubscribeOK, then Delivery pushes
	TUnsubscribe Type = 7  // Unsubscribe → OK
	TEvict       Type = 8  // Evict → OK
	TStats       Type = 9  // (no body) → StatsOK
	TPing        Type = 10 // (no body) → OK
	TOwners      Type = 11 // (no body) → OwnersOK (R52)

	// Safe changes (R43–R46) are numbered from 20.
	TBackup    Type = 20 // (no body) → BackupOK; root or the daemon's uid only
	TReset     Type = 21 // Reset → OK; root or the daemon's uid only
	TResetKeys Type = 22 // ResetKeys → OK; root or the daemon's uid only
	TApply     Type = 23 // Apply → ApplyOK (R44)
	TConfirm   Type = 24 // Confirm → OK; the apply owner's uid or root
	TRollback  Type = 25 // Rollback → RollbackOK; the apply owner's uid or root
	TPending   Type = 26 // (no body) → PendingOK

	// The change feed (R47) is numbered from 30.
	TChanges   Type = 30 // Changes → ChangesOK (or Compacted), then Change pushes
	TUnchanges Type = 31 // Unchanges → OK
)

// Replies and pushes (daemon → client).
const (
	THelloOK     Type = 64
	TOK          Type = 65 // no body
	TError       Type = 66
	TAttachOK    Type = 67
	TSnapshotOK  Type = 68
	TSubscribeOK Type = 69
	TStatsOK     Type = 70
	TOwnersOK    Type = 71
	TBackupOK    Type = 80
	TConflict    Type = 81 // the error reply of a mutate whose condition failed (R43)
	TApplyOK     Type = 82
	TRollbackOK  Type = 83
	TPendingOK   Type = 84
	TDelivery    Type = 96 // push: id is the subscription id
	TSubClosed   Type = 97 // push: the daemon ended the subscription; id is its id

	TChangesOK  Type = 90 // the feed id (the request id)
	TCompacted  Type = 91 // the error reply of changes below the retained history (R47)
	TChange     Type = 98 // push: one feed item; id is the feed id
	TChangesEnd Type = 99 // push: the daemon ended the feed; id is the feed id
)

func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

var typeNames = map[Type]string{
	THello: "hello", TAttach: "attach", TDetach: "detach", TMutate: "mutate",
	TSnapshot: "snapshot", TSubscribe: "subscribe", TUnsubscribe: "unsubscribe",
	TEvict: "evict", TStats: "stats", TPing: "ping", THelloOK: "hello_ok", TOK: "ok",
	TError: "error", TAttachOK: "attach_ok", TSnapshotOK: "snapshot_ok",
	TSubscribeOK: "subscribe_ok", TStatsOK: "stats_ok", TDelivery: "delivery",
	TBackup: "backup", TBackupOK: "backup_ok", TConflict: "conflict", TReset: "reset", TResetKeys: "reset_keys",
	TSubClosed: "sub_closed",
	TChanges:   "changes", TUnchanges: "unchanges", TChangesOK: "changes_ok", TCompacted: "compacted",
	TChange: "change", TChangesEnd: "changes_end",
	TOwners: "owners", TOwnersOK: "owners_ok",
	TApply: "apply", TConfirm: "confirm", TRollback: "rollback", TPending: "pending",
	TApplyOK: "apply_ok", TRollbackOK: "rollback_ok", TPendingOK: "pending_ok",
}

// Known reports whether t is a type of this protocol version.
func (t Type) Known() bool { _, ok := typeNames[t]; return ok }

// Frame is one decoded frame: [type, id, body].
type Frame struct {
	_    struct{} `cbor:",toarray"`
	Type Type
	ID   uint64
	Body cbor.RawMessage // a CBOR item; null for no body
}

// Errors of the framing layer.
var (
	// ErrFrameTooLarge: a length prefix above the limit; nothing was
	// allocated for it and the stream cannot be resynchronised.
	ErrFrameTooLarge = errors.New("wire: frame too large")
	// ErrMalformed: a frame or body that does not decode.
	ErrMalformed = errors.New("wire: malformed frame")
	// ErrMalformedBody: a frame whose [type, id] decode but whose body is
	// not one well-formed item (an indefinite length, nesting deeper than
	// MaxNesting, trailing bytes, …). It also matches ErrMalformed; the
	// frame returned with it carries the type and id, so that the request
	// can be answered on a connection that is still in step.
	ErrMalformedBody = errors.New("wire: malformed body")
)

// MaxNesting is the deepest nesting of arrays and maps a frame may have,
// counted from the body: a value may nest core.MaxDepth deep (R2) inside
// the few levels of its message.
const MaxNesting = core.MaxDepth + 8

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	encMode, err = cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	decMode, err = cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsAllowed, // values carry core.Uint64Tag; codec checks them
		MaxNestedLevels:   MaxNesting,
		MaxArrayElements:  1 << 20,
		MaxMapPairs:       1 << 20,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// AppendFrame appends the encoding of a frame — a 4-byte big-endian length
// and the CBOR array [type, id, body] — to dst. body is a message struct,
// raw CBOR (cbor.RawMessage), or nil for no body. Mutate and Apply bodies
// are encoded by hand (ops.go), the rest by fxamacker's deterministic
// encoder; the bytes are the same.
func AppendFrame(dst []byte, t Type, id uint64, body any) ([]byte, error) {
	start := len(dst)
	dst, err := appendBody(beginFrame(dst, t, id), t, body)
	return endFrame(dst, start, err)
}

// AppendMutateFrame is AppendFrame of a mutate, without boxing m into an
// interface (which costs an allocation per update).
func AppendMutateFrame(dst []byte, id uint64, m *Mutate) ([]byte, error) {
	start := len(dst)
	dst, err := appendMutate(beginFrame(dst, TMutate, id), *m)
	if err != nil {
		err = fmt.Errorf("wire: encode %s body: %w", TMutate, err)
	}
	return endFrame(dst, start, err)
}

// beginFrame appends a frame's length (filled in by endFrame) and the
// start of its array.
func beginFrame(dst []byte, t Type, id uint64) []byte {
	dst = append(dst, 0, 0, 0, 0, 0x83)
	dst = appendUint(dst, uint64(t))
	return appendUint(dst, id)
}

// endFrame fills in the length of the frame begun at start, or drops it
// on err.
func endFrame(dst []byte, start int, err error) ([]byte, error) {
	if err != nil {
		return dst[:start], err
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst, nil
}

// EncodeBody encodes a message body (see AppendFrame).
func EncodeBody(t Type, body any) (cbor.RawMessage, error) {
	if b, ok := body.(cbor.RawMessage); ok {
		return b, nil
	}
	return appendBody(nil, t, body)
}

func appendBody(dst []byte, t Type, body any) ([]byte, error) {
	var err error
	switch b := body.(type) {
	case nil:
		return append(dst, 0xf6), nil // null
	case cbor.RawMessage:
		return append(dst, b...), nil
	case Mutate:
		dst, err = appendMutate(dst, b)
	case Apply:
		dst, err = appendApply(dst, b)
	default:
		var raw []byte
		raw, err = encMode.Marshal(body)
		dst = append(dst, raw...)
	}
	if err != nil {
		return dst, fmt.Errorf("wire: encode %s body: %w", t, err)
	}
	return dst, nil
}

// AppendHeader appends everything of a frame but its body of bodyLen bytes:
// the length prefix and the start of the array [type, id, …]. Writing the
// header and then a body encoded once lets the daemon push one snapshot to
// many subscribers without copying it per subscriber.
func AppendHeader(dst []byte, t Type, id uint64, bodyLen int) []byte {
	var head [1 + 2 + 9]byte
	h := append(head[:0], 0x83) // array of 3
	h = appendUint(h, uint64(t))
	h = appendUint(h, id)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(h)+bodyLen))
	return append(dst, h...)
}

func appendUint(dst []byte, n uint64) []byte {
	switch {
	case n < 24:
		return append(dst, byte(n))
	case n <= 0xff:
		return append(dst, 0x18, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(dst, 0x19), uint16(n))
	case n <= 0xffffffff:
		return binary.BigEndian.AppendUint32(append(dst, 0x1a), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0x1b), n)
}

// ReadFrame reads one frame of at most max payload bytes. The length is
// checked before anything is allocated (R34). The returned frame's Body
// aliases buf's storage when it fits; pass the previous buffer back to reuse
// it.
func ReadFrame(r io.Reader, max int, buf []byte) (Frame, []byte, error) {
	n, err := readLength(r)
	if err != nil {
		return Frame{}, buf, err
	}
	if int64(n) > int64(max) {
		return Frame{}, buf, fmt.Errorf("%w: %d bytes, the limit is %d", ErrFrameTooLarge, n, max)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, buf, err
	}
	f, err := DecodeFrame(buf)
	return f, buf, err
}

// Buffered reports whether br holds a whole frame, so that the next
// ReadFrame from br returns without reading from the connection. A daemon
// uses it to write the replies of pipelined requests with one write: it
// flushes when the next frame is not there yet.
func Buffered(br *bufio.Reader) bool {
	n := br.Buffered()
	if n < 4 {
		return false
	}
	h, err := br.Peek(4)
	return err == nil && uint64(n-4) >= uint64(binary.BigEndian.Uint32(h))
}

// readLength reads a frame's length prefix, as io.ReadFull would. From a
// bufio.Reader (the daemon's and the client's) it is peeked: a header
// array passed to an io.Reader escapes, an allocation per frame.
func readLength(r io.Reader) (uint32, error) {
	if br, ok := r.(*bufio.Reader); ok {
		h, err := br.Peek(4)
		switch {
		case len(h) == 4:
			br.Discard(4)
			return binary.BigEndian.Uint32(h), nil
		case err == io.EOF && len(h) > 0:
			return 0, io.ErrUnexpectedEOF
		}
		return 0, err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(hdr[:]), nil
}

// DecodeFrame decodes a frame payload (without the length prefix): the
// array head and the two integers are read directly (every request passes
// here, and reflection was a sixth of the daemon's profile); the body is
// checked to be exactly one well-formed CBOR item and left for DecodeBody.
// A body that is not is ErrMalformedBody, returned with the frame's type
// and id. The bodies of mutate and apply frames are not checked here:
// DecodeMutate and DecodeApply check them as they decode (so does
// DecodeBody), and the daemon answers a malformed one alike.
func DecodeFrame(payload []byte) (Frame, error) {
	if len(payload) == 0 || payload[0] != 0x83 {
		return Frame{}, fmt.Errorf("%w: not an array of 3 items", ErrMalformed)
	}
	t, n, err := readUint(payload[1:])
	if err != nil {
		return Frame{}, fmt.Errorf("%w: type: %v", ErrMalformed, err)
	}
	if t > 0xff {
		return Frame{}, fmt.Errorf("%w: type %d out of range", ErrMalformed, t)
	}
	id, m, err := readUint(payload[1+n:])
	if err != nil {
		return Frame{}, fmt.Errorf("%w: id: %v", ErrMalformed, err)
	}
	body := payload[1+n+m:]
	if len(body) == 0 {
		return Frame{}, fmt.Errorf("%w: no body", ErrMalformed)
	}
	if t == uint64(TMutate) || t == uint64(TApply) {
		// DecodeMutate and DecodeApply check the body as they decode it:
		// every write would otherwise be walked twice.
		return Frame{Type: Type(t), ID: id, Body: body}, nil
	}
	if err := decMode.Wellformed(body); err != nil {
		return Frame{Type: Type(t), ID: id, Body: body}, fmt.Errorf("%w: %w: %v", ErrMalformed, ErrMalformedBody, err)
	}
	return Frame{Type: Type(t), ID: id, Body: body}, nil
}

// readUint reads a CBOR unsigned integer (major type 0) from the front of
// b, returning it and its encoded length.
func readUint(b []byte) (uint64, int, error) {
	if len(b) == 0 {
		return 0, 0, errors.New("missing")
	}
	if b[0]>>5 != 0 {
		return 0, 0, fmt.Errorf("major type %d, want an unsigned integer", b[0]>>5)
	}
	ai := b[0] & 0x1f
	need := 0
	switch {
	case ai < 24:
		return uint64(ai), 1, nil
	case ai == 24:
		need = 1
	case ai == 25:
		need = 2
	case ai == 26:
		need = 4
	case ai == 27:
		need = 8
	default:
		return 0, 0, fmt.Errorf("bad additional information %d", ai)
	}
	if len(b) < 1+need {
		return 0, 0, errors.New("truncated")
	}
	var v uint64
	for _, c := range b[1 : 1+need] {
		v = v<<8 | uint64(c)
	}
	return v, 1 + need, nil
}

// DecodeBody decodes a frame's body into v, strictly: a body that is not an
// array (null included), unknown fields, wrong types and trailing data are
// errors matching ErrMalformed.
func DecodeBody(f Frame, v any) error {
	// Every message with a body is an array. fxamacker would decode null
	// (or undefined) into any struct as its zero value, which would make a
	// null Attach an anonymous attach and a null Subscribe a subscription.
	if len(f.Body) == 0 || f.Body[0]>>5 != 4 {
		return fmt.Errorf("%w: %s body is not an array", ErrMalformed, f.Type)
	}
	if err := decMode.Unmarshal(f.Body, v); err != nil {
		return fmt.Errorf("%w: %s body: %v", ErrMalformed, f.Type, err)
	}
	return nil
}
