package core

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestR1_ValidateFastPathAgreesWithRule: Scope.Validate's one-pass check of
// all-ASCII names (plainName) accepts only what the R1 rule accepts — a
// non-empty UTF-8 type without NUL or '/', a non-empty UTF-8 subtype
// without NUL — and Validate gives the rule's answer for every case, fast
// path or not.
func TestR1_ValidateFastPathAgreesWithRule(t *testing.T) {
	// rule is R1 written out, independently of scope.go.
	rule := func(v string, typ bool) bool {
		return v != "" && utf8.ValidString(v) && !strings.ContainsRune(v, 0) && (!typ || !strings.Contains(v, "/"))
	}
	names := []string{
		"", "a", "eth0", "wlan0/ipv6", "/", "a/", "/a", "//",
		"\x00", "a\x00", "\x00a", "a\x00b",
		"\x7f", "a\x7f", "\x01", " ", "\t\n",
		"é", "aé", "日本", "\u2028", "\U0001F600",
		"\x80", "a\xff", "\xc3", "a\xc3\x28", "\xed\xa0\x80", "\xf4\x90\x80\x80",
		"é/x", "\x00/", "a/\x00", "\xff/",
		strings.Repeat("x", 4096), strings.Repeat("x", 4095) + "/",
	}
	for _, v := range names {
		for _, typ := range []bool{true, false} {
			if plainName(v, typ) && !rule(v, typ) {
				t.Errorf("plainName(%q, type=%v) accepts what R1 refuses", v, typ)
			}
			if plainName(v, typ) != (rule(v, typ) && isASCII(v)) {
				t.Errorf("plainName(%q, type=%v) = %v: want true for every valid ASCII name (the fast path), false otherwise", v, typ, plainName(v, typ))
			}
		}
	}
	for _, b := range []Bucket{0, State, Config, Config + 1} {
		for _, ty := range names {
			for _, sub := range names {
				sc := Scope{Bucket: b, Type: ty, Subtype: sub}
				want := (b == State || b == Config) && rule(ty, true) && rule(sub, false)
				if got := sc.Validate() == nil; got != want {
					t.Errorf("%+q.Validate() == nil is %v, want %v", sc, got, want)
				}
			}
		}
	}
}

func isASCII(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
