package core

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Bucket is the top level of the view: State or Config.
type Bucket uint8

// The two buckets. State is volatile and owner-exclusive; Config is durable and
// writable by anyone (R10, R11).
const (
	State Bucket = iota + 1
	Config
)

// String returns "state" or "config" (or "bucket(N)" for an invalid value).
func (b Bucket) String() string {
	switch b {
	case State:
		return "state"
	case Config:
		return "config"
	}
	return fmt.Sprintf("bucket(%d)", uint8(b))
}

// ParseBucket parses "state" or "config".
func ParseBucket(s string) (Bucket, error) {
	switch s {
	case "state":
		return State, nil
	case "config":
		return Config, nil
	}
	return 0, fmt.Errorf("%w: bucket %q is neither state nor config", ErrInvalidScope, s)
}

func (b Bucket) valid() bool { return b == State || b == Config }

// Scope addresses one values map: {bucket, type, subtype} (R1).
type Scope struct {
	Bucket  Bucket
	Type    string
	Subtype string
}

// StateScope returns the scope state/typ/subtype.
func StateScope(typ, subtype string) Scope { return Scope{State, typ, subtype} }

// ConfigScope returns the scope config/typ/subtype.
func ConfigScope(typ, subtype string) Scope { return Scope{Config, typ, subtype} }

// ParseScope parses the text form "bucket/type/subtype", split at the first two
// slashes, so a subtype may contain "/" and a type may not (R1). In the text
// form a subtype's "/"-separated segments may not be empty: a leading or
// trailing "/" or a "//" ("config/wifi/wlan0/") is ErrInvalidScope, a typo
// rather than another scope.
func ParseScope(s string) (Scope, error) {
	b, rest, ok := strings.Cut(s, "/")
	if !ok {
		return Scope{}, fmt.Errorf("%w: %q is not bucket/type/subtype", ErrInvalidScope, s)
	}
	typ, sub, ok := strings.Cut(rest, "/")
	if !ok {
		return Scope{}, fmt.Errorf("%w: %q is not bucket/type/subtype", ErrInvalidScope, s)
	}
	bk, err := ParseBucket(b)
	if err != nil {
		return Scope{}, err
	}
	sc := Scope{bk, typ, sub}
	if err := sc.Validate(); err != nil {
		return Scope{}, err
	}
	if err := subtypeSegments(sub); err != nil {
		return Scope{}, fmt.Errorf("%w: %q: %s", ErrInvalidScope, s, err)
	}
	return sc, nil
}

// subtypeSegments checks the text form's rule for a subtype: no empty
// "/"-separated segment.
func subtypeSegments(sub string) error {
	switch {
	case strings.HasPrefix(sub, "/"):
		return errors.New("subtype starts with '/'")
	case strings.HasSuffix(sub, "/"):
		return errors.New("subtype ends with '/'")
	case strings.Contains(sub, "//"):
		return errors.New("subtype contains '//' (an empty segment)")
	}
	return nil
}

// String returns the text form "bucket/type/subtype".
func (s Scope) String() string { return s.Bucket.String() + "/" + s.Type + "/" + s.Subtype }

// Validate returns nil or an error matching ErrInvalidScope.
func (s Scope) Validate() error {
	if s.Bucket.valid() && plainName(s.Type, true) && plainName(s.Subtype, false) {
		return nil // the common case, in one pass over each name
	}
	if !s.Bucket.valid() {
		return fmt.Errorf("%w: %s: unknown bucket", ErrInvalidScope, s)
	}
	if err := validName("type", s.Type); err != nil {
		return fmt.Errorf("%w: %s: %s", ErrInvalidScope, s, err)
	}
	if strings.Contains(s.Type, "/") {
		return fmt.Errorf("%w: %s: type contains '/'", ErrInvalidScope, s)
	}
	if err := validName("subtype", s.Subtype); err != nil {
		return fmt.Errorf("%w: %s: %s", ErrInvalidScope, s, err)
	}
	return nil
}

// plainName reports whether v is a valid type (type: no '/') or subtype
// made only of ASCII, checked in one pass; false says nothing (validName
// then checks it).
func plainName(v string, typ bool) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == 0 || c >= utf8.RuneSelf || (typ && c == '/') {
			return false
		}
	}
	return true
}

// validName checks a type or subtype: non-empty UTF-8 without NUL.
func validName(what, v string) error {
	switch {
	case v == "":
		return fmt.Errorf("empty %s", what)
	case !utf8.ValidString(v):
		return fmt.Errorf("%s is not valid UTF-8", what)
	case strings.IndexByte(v, 0) >= 0:
		return fmt.Errorf("%s contains NUL", what)
	}
	return nil
}

// compareScopes orders scopes by their text form.
func compareScopes(a, b Scope) int {
	if a.Bucket != b.Bucket {
		return strings.Compare(a.Bucket.String(), b.Bucket.String())
	}
	// Type may not contain '/', so comparing "type/subtype" is comparing
	// type, then (on equal types) subtype, except where one type is a prefix
	// of the other: then the byte after the prefix decides against '/'.
	return strings.Compare(a.Type+"/"+a.Subtype, b.Type+"/"+b.Subtype)
}

// Pattern selects scopes for a scoped subscription (R21). A zero field matches
// any value.
type Pattern struct {
	Bucket        Bucket
	Type, Subtype string
}

// Validate returns nil or an error matching ErrInvalidScope for a pattern
// that could never match a valid scope: an unknown bucket, a type holding
// '/', a type or subtype holding NUL or invalid UTF-8 (R1, R21). Subscribe
// refuses such patterns rather than wait forever.
func (p Pattern) Validate() error {
	if p.Bucket != 0 && !p.Bucket.valid() {
		return fmt.Errorf("%w: pattern %s: unknown bucket", ErrInvalidScope, p)
	}
	if p.Type != "" {
		if err := validName("type", p.Type); err != nil {
			return fmt.Errorf("%w: pattern %q: %s", ErrInvalidScope, p, err)
		}
		if strings.Contains(p.Type, "/") {
			return fmt.Errorf("%w: pattern %q: type contains '/'", ErrInvalidScope, p)
		}
	}
	if p.Subtype != "" {
		if err := validName("subtype", p.Subtype); err != nil {
			return fmt.Errorf("%w: pattern %q: %s", ErrInvalidScope, p, err)
		}
	}
	return nil
}

// Matches reports whether s lies inside the pattern.
func (p Pattern) Matches(s Scope) bool {
	return (p.Bucket == 0 || p.Bucket == s.Bucket) &&
		(p.Type == "" || p.Type == s.Type) &&
		(p.Subtype == "" || p.Subtype == s.Subtype)
}

// ParsePattern parses the CLI text form of a pattern: "bucket/type/subtype"
// where "*", an empty part or a missing trailing part matches any value
// ("state/net", "config/*/eth0", "*"). As with scopes, the subtype is
// everything after the second slash.
func ParsePattern(s string) (Pattern, error) {
	var p Pattern
	if s == "" || s == "*" {
		return p, nil
	}
	parts := strings.SplitN(s, "/", 3)
	if parts[0] != "*" && parts[0] != "" {
		b, err := ParseBucket(parts[0])
		if err != nil {
			return Pattern{}, err
		}
		p.Bucket = b
	}
	if len(parts) > 1 && parts[1] != "*" {
		p.Type = parts[1]
	}
	if len(parts) > 2 && parts[2] != "*" {
		p.Subtype = parts[2]
	}
	if err := p.Validate(); err != nil {
		return Pattern{}, err
	}
	if p.Subtype != "" {
		if err := subtypeSegments(p.Subtype); err != nil {
			return Pattern{}, fmt.Errorf("%w: pattern %q: %s", ErrInvalidScope, s, err)
		}
	}
	return p, nil
}

// String returns the text form of the pattern, "*" for a wildcard part.
func (p Pattern) String() string {
	star := func(v string) string {
		if v == "" {
			return "*"
		}
		return v
	}
	b := "*"
	if p.Bucket != 0 {
		b = p.Bucket.String()
	}
	return b + "/" + star(p.Type) + "/" + star(p.Subtype)
}
