package fleet

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/sysreg/sysreg/core"
)

// RevisionScope is the config scope in which a store journals, in the fleet
// layer and in the same mutation as the layer, the desired revision it was
// applied at: {"revision": N} (uint64). It is reserved: desired keys for it
// are refused.
var RevisionScope = core.ConfigScope("sysreg", "fleet")

// AllDevices is the device ID of the fleet-wide desired keys; no device may
// use it as its own ID (R53).
const AllDevices = "all"

// keyByte reports whether c stands for itself in an encoded token: the
// characters a NATS KV key allows, minus '.' (the token separator) and '='
// (the escape character).
func keyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '/'
}

const hexDigits = "0123456789ABCDEF"

// EncodeToken encodes s, a device ID, type or subtype, as one token of a NATS
// KV key: bytes in [-/_a-zA-Z0-9] stand for themselves, every other byte
// (including '.', '=' and every byte of a multi-byte UTF-8 character) is
// written "=XX" with XX its value in upper-case hex. "eth0" stays "eth0",
// "a.b" is "a=2Eb", "wlan=1" is "wlan=3D1", "é" is "=C3=A9". The encoding is
// canonical: each string has exactly one token and DecodeToken accepts only
// that one, so two keys never name the same scope.
func EncodeToken(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !keyByte(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if keyByte(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('=')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0xF])
	}
	return b.String()
}

// DecodeToken reverses EncodeToken. It fails with ErrInvalidKey on an empty
// token, a byte outside the encoded alphabet, a malformed or lower-case
// escape, an escape of a byte that stands for itself (not canonical), or a
// result that is not valid UTF-8 or holds a NUL (no scope part may, R1).
func DecodeToken(tok string) (string, error) {
	if tok == "" {
		return "", fmt.Errorf("%w: empty token", ErrInvalidKey)
	}
	if !strings.Contains(tok, "=") {
		for i := 0; i < len(tok); i++ {
			if !keyByte(tok[i]) {
				return "", fmt.Errorf("%w: %q: byte %#x at %d", ErrInvalidKey, tok, tok[i], i)
			}
		}
		return tok, nil
	}
	out := make([]byte, 0, len(tok))
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case keyByte(c):
			out = append(out, c)
		case c == '=':
			if i+2 >= len(tok) {
				return "", fmt.Errorf("%w: %q: short escape at %d", ErrInvalidKey, tok, i)
			}
			hi, lo := unhex(tok[i+1]), unhex(tok[i+2])
			if hi < 0 || lo < 0 {
				return "", fmt.Errorf("%w: %q: bad escape at %d", ErrInvalidKey, tok, i)
			}
			v := byte(hi<<4 | lo)
			if keyByte(v) {
				return "", fmt.Errorf("%w: %q: needless escape at %d", ErrInvalidKey, tok, i)
			}
			out = append(out, v)
			i += 2
		default:
			return "", fmt.Errorf("%w: %q: byte %#x at %d", ErrInvalidKey, tok, c, i)
		}
	}
	s := string(out)
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		return "", fmt.Errorf("%w: %q: not UTF-8 without NUL", ErrInvalidKey, tok)
	}
	return s, nil
}

// unhex returns the value of an upper-case hex digit, or -1.
func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// ReportedKey returns the key of scope sc of device in the bucket
// sysreg_reported: "<device>.<bucket>.<type>.<subtype>", each part encoded
// with EncodeToken.
func ReportedKey(device string, sc core.Scope) string {
	return EncodeToken(device) + "." + sc.Bucket.String() + "." + EncodeToken(sc.Type) + "." + EncodeToken(sc.Subtype)
}

// ParseReportedKey reverses ReportedKey.
func ParseReportedKey(key string) (device string, sc core.Scope, err error) {
	parts := strings.Split(key, ".")
	if len(parts) != 4 {
		return "", core.Scope{}, fmt.Errorf("%w: %q is not device.bucket.type.subtype", ErrInvalidKey, key)
	}
	if device, err = DecodeToken(parts[0]); err != nil {
		return "", core.Scope{}, err
	}
	b, err := core.ParseBucket(parts[1])
	if err != nil {
		return "", core.Scope{}, fmt.Errorf("%w: %q: %v", ErrInvalidKey, key, err)
	}
	sc, err = scopeOf(b, parts[2], parts[3])
	return device, sc, err
}

// DesiredKey returns the key of config scope (typ, subtype) for device
// (AllDevices for the whole fleet) in the bucket sysreg_desired:
// "<device>.<type>.<subtype>", each part encoded with EncodeToken.
func DesiredKey(device, typ, subtype string) string {
	return EncodeToken(device) + "." + EncodeToken(typ) + "." + EncodeToken(subtype)
}

// ParseDesiredKey reverses DesiredKey; the scope is in the config bucket.
func ParseDesiredKey(key string) (device string, sc core.Scope, err error) {
	parts := strings.Split(key, ".")
	if len(parts) != 3 {
		return "", core.Scope{}, fmt.Errorf("%w: %q is not device.type.subtype", ErrInvalidKey, key)
	}
	if device, err = DecodeToken(parts[0]); err != nil {
		return "", core.Scope{}, err
	}
	sc, err = scopeOf(core.Config, parts[1], parts[2])
	return device, sc, err
}

func scopeOf(b core.Bucket, typTok, subTok string) (core.Scope, error) {
	typ, err := DecodeToken(typTok)
	if err != nil {
		return core.Scope{}, err
	}
	sub, err := DecodeToken(subTok)
	if err != nil {
		return core.Scope{}, err
	}
	sc := core.Scope{Bucket: b, Type: typ, Subtype: sub}
	if err := sc.Validate(); err != nil {
		return core.Scope{}, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	return sc, nil
}
