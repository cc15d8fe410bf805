package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// This file holds the CBOR primitives (RFC 8949) that the value, record and
// snapshot encodings are built from: appending heads and reading them back.
// Only the subset described in doc.go is produced or accepted.

// CBOR major types.
const (
	majorUint   = 0
	majorNeg    = 1
	majorBytes  = 2
	majorText   = 3
	majorArray  = 4
	majorMap    = 5
	majorTag    = 6
	majorSimple = 7
)

// Initial bytes of the simple values and floats that sysreg uses.
const (
	cborFalse   = 0xf4
	cborTrue    = 0xf5
	cborNull    = 0xf6
	cborFloat64 = 0xfb
)

// uint64Head is the encoded head of tag core.Uint64Tag (21330 = 0x5352).
var uint64Head = [3]byte{0xd9, 0x53, 0x52}

// appendHead appends the shortest head of the given major type and argument.
func appendHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= math.MaxUint8:
		return append(b, m|24, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, m|25), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, m|27), n)
}

func appendText(b []byte, s string) []byte {
	return append(appendHead(b, majorText, uint64(len(s))), s...)
}

// decoder reads CBOR items from data. It never retains or modifies data:
// strings and byte strings are copied out.
type decoder struct {
	data []byte
	off  int
	// scratch stack for the elements of large arrays being decoded, so
	// that such an array is allocated at its exact size only once its
	// elements have actually been read (a declared length alone never
	// allocates: nested headers claiming huge lengths cost nothing).
	vals []any
	// path is the key path of a failing value, innermost first (value.go).
	path []string
}

var errEOF = errors.New("unexpected end of data")

// errorf returns a plain error that names the current offset. The exported
// functions wrap it with ErrMalformed.
func (d *decoder) errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", d.off, fmt.Sprintf(format, args...))
}

func (d *decoder) remaining() uint64 { return uint64(len(d.data) - d.off) }

// head reads one item head and returns its major type, additional
// information and argument (for floats, the raw bits). It rejects the
// reserved additional information values and every indefinite-length item
// (and the "break" stop code), which sysreg never writes.
func (d *decoder) head() (major, ai byte, arg uint64, err error) {
	if d.off >= len(d.data) {
		return 0, 0, 0, d.errorf("%v", errEOF)
	}
	start := d.off
	ib := d.data[d.off]
	major, ai = ib>>5, ib&0x1f
	var size int
	switch {
	case ai < 24:
		d.off++
		return major, ai, uint64(ai), nil
	case ai <= 27:
		size = 1 << (ai - 24)
	case ai == 31 && major == majorSimple:
		return 0, 0, 0, d.errorf("unexpected break stop code")
	case ai == 31:
		return 0, 0, 0, d.errorf("indefinite-length item (major type %d) is not supported", major)
	default:
		return 0, 0, 0, d.errorf("reserved additional information %d", ai)
	}
	if len(d.data)-d.off-1 < size {
		return 0, 0, 0, d.errorf("%v", errEOF)
	}
	p := d.data[d.off+1 : d.off+1+size]
	switch size {
	case 1:
		arg = uint64(p[0])
	case 2:
		arg = uint64(binary.BigEndian.Uint16(p))
	case 4:
		arg = uint64(binary.BigEndian.Uint32(p))
	default:
		arg = binary.BigEndian.Uint64(p)
	}
	d.off = start + 1 + size
	return major, ai, arg, nil
}

// typeName names a major type for error messages.
func typeName(major byte) string {
	return [...]string{"unsigned integer", "negative integer", "byte string", "text string",
		"array", "map", "tag", "simple value or float"}[major]
}

// expect reads a head of the given major type and returns its argument.
func (d *decoder) expect(major byte) (uint64, error) {
	start := d.off
	m, _, arg, err := d.head()
	if err != nil {
		return 0, err
	}
	if m != major {
		d.off = start
		return 0, d.errorf("%s where %s expected", typeName(m), typeName(major))
	}
	return arg, nil
}

// uint reads an unsigned integer.
func (d *decoder) uint() (uint64, error) { return d.expect(majorUint) }

// arrayHead reads the head of a definite-length array. The length is checked
// against the bytes left (every element takes at least minSize bytes), so it is
// safe to allocate.
func (d *decoder) arrayHead(minSize uint64) (int, error) {
	n, err := d.expect(majorArray)
	if err != nil {
		return 0, err
	}
	if n > d.remaining()/minSize {
		return 0, d.errorf("array of %d elements is longer than the %d bytes left", n, d.remaining())
	}
	return int(n), nil
}

// textBytes reads a text string and returns its bytes (aliasing data),
// checked to be valid UTF-8.
func (d *decoder) textBytes() ([]byte, error) {
	n, err := d.expect(majorText)
	if err != nil {
		return nil, err
	}
	return d.textBody(n)
}

func (d *decoder) textBody(n uint64) ([]byte, error) {
	if n > d.remaining() {
		return nil, d.errorf("text string of %d bytes is longer than the %d bytes left", n, d.remaining())
	}
	b := d.data[d.off : d.off+int(n)]
	if !utf8.Valid(b) {
		return nil, d.errorf("text string is not valid UTF-8")
	}
	d.off += int(n)
	return b, nil
}

// text reads a text string.
func (d *decoder) text() (string, error) {
	b, err := d.textBytes()
	return string(b), err
}

// nonEmptyText reads a text string that must not be empty; what names it.
func (d *decoder) nonEmptyText(what string) (string, error) {
	b, err := d.textBytes()
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	if len(b) == 0 {
		return "", d.errorf("empty %s", what)
	}
	return string(b), nil
}

// end checks that all of data has been consumed.
func (d *decoder) end() error {
	if d.off != len(d.data) {
		return d.errorf("%d trailing bytes", len(d.data)-d.off)
	}
	return nil
}

// appendInt appends a signed integer: major type 0 or 1, shortest head.
func appendInt(b []byte, i int64) []byte {
	if i >= 0 {
		return appendHead(b, majorUint, uint64(i))
	}
	return appendHead(b, majorNeg, uint64(-1-i))
}

// int reads a signed integer that fits int64.
func (d *decoder) int() (int64, error) {
	start := d.off
	m, _, arg, err := d.head()
	if err != nil {
		return 0, err
	}
	switch {
	case m == majorUint && arg <= math.MaxInt64:
		return int64(arg), nil
	case m == majorNeg && arg <= math.MaxInt64:
		return -1 - int64(arg), nil
	case m == majorUint || m == majorNeg:
		d.off = start
		return 0, d.errorf("integer out of int64 range")
	}
	d.off = start
	return 0, d.errorf("%s where integer expected", typeName(m))
}
