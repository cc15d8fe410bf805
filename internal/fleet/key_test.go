package fleet_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/fleet"
)

// kvToken is what one token of a NATS KV key may hold: the KV key alphabet
// [-/_=.a-zA-Z0-9] without the separator '.'.
var kvToken = regexp.MustCompile(`^[-/_=a-zA-Z0-9]+$`)

// TestTokenEncoding: scope parts encode reversibly into KV key tokens, for
// every character class (R53).
func TestTokenEncoding(t *testing.T) {
	tests := []struct {
		class, in, want string
	}{
		{"lower", "eth", "eth"},
		{"upper", "ETH", "ETH"},
		{"digits", "0123456789", "0123456789"},
		{"hyphen underscore slash", "a-b_c/d", "a-b_c/d"},
		{"dot (the separator)", "a.b", "a=2Eb"},
		{"equals (the escape)", "x=1", "x=3D1"},
		{"escape look-alike", "=2E", "=3D2E"},
		{"space", "wlan 0", "wlan=200"},
		{"subject wildcards", "*>", "=2A=3E"},
		{"punctuation", `!"#$%&'()+,:;<?@[\]^{|}~` + "`", "=21=22=23=24=25=26=27=28=29=2B=2C=3A=3B=3C=3F=40=5B=5C=5D=5E=7B=7C=7D=7E=60"},
		{"control", "\t\n\x7f", "=09=0A=7F"},
		{"2-byte UTF-8", "é", "=C3=A9"},
		{"3-byte UTF-8", "€", "=E2=82=AC"},
		{"4-byte UTF-8", "😀", "=F0=9F=98=80"},
		{"mixed", "Wi-Fi .2,4 GHz/é", "Wi-Fi=20=2E2=2C4=20GHz/=C3=A9"},
	}
	for _, tt := range tests {
		t.Run(tt.class, func(t *testing.T) {
			got := fleet.EncodeToken(tt.in)
			if got != tt.want {
				t.Fatalf("EncodeToken(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if !kvToken.MatchString(got) {
				t.Fatalf("EncodeToken(%q) = %q: not a KV key token", tt.in, got)
			}
			back, err := fleet.DecodeToken(got)
			if err != nil || back != tt.in {
				t.Fatalf("DecodeToken(%q) = %q, %v; want %q", got, back, err, tt.in)
			}
		})
	}
}

// TestTokenDecodeRefuses: only the canonical encoding of a valid scope part
// decodes; anything else is ErrInvalidKey (R1, R53).
func TestTokenDecodeRefuses(t *testing.T) {
	for _, tok := range []string{
		"",          // empty part
		"a.b",       // separator inside
		"a b",       // not in the alphabet
		"é",         // raw non-ASCII
		"=",         // short escape
		"a=4",       // short escape
		"=2e",       // lower-case hex
		"=G0",       // not hex
		"=41",       // 'A' needs no escape: not canonical
		"=2D",       // '-' needs no escape
		"=00",       // NUL (R1)
		"=C3",       // truncated UTF-8
		"=FF",       // invalid UTF-8
		"=ED=A0=80", // surrogate: invalid UTF-8
		"*", ">",    // wildcards
	} {
		if got, err := fleet.DecodeToken(tok); !errors.Is(err, fleet.ErrInvalidKey) {
			t.Errorf("DecodeToken(%q) = %q, %v; want ErrInvalidKey", tok, got, err)
		}
	}
}

// TestKeys: the reported and desired key layouts (R53) round-trip.
func TestKeys(t *testing.T) {
	sc := core.StateScope("net.if", "eth0/1 é")
	k := fleet.ReportedKey("dev 7", sc)
	if k != "dev=207.state.net=2Eif.eth0/1=20=C3=A9" {
		t.Fatalf("ReportedKey = %q", k)
	}
	dev, got, err := fleet.ParseReportedKey(k)
	if err != nil || dev != "dev 7" || got != sc {
		t.Fatalf("ParseReportedKey(%q) = %q, %v, %v", k, dev, got, err)
	}
	k = fleet.DesiredKey(fleet.AllDevices, "wifi", "wlan0")
	if k != "all.wifi.wlan0" {
		t.Fatalf("DesiredKey = %q", k)
	}
	dev, got, err = fleet.ParseDesiredKey(k)
	if err != nil || dev != "all" || got != core.ConfigScope("wifi", "wlan0") {
		t.Fatalf("ParseDesiredKey(%q) = %q, %v, %v", k, dev, got, err)
	}
	for _, bad := range []string{"all.wifi", "all.wifi.wlan0.x", "all..x", ".a.b", "a=41.b.c"} {
		if _, _, err := fleet.ParseDesiredKey(bad); !errors.Is(err, fleet.ErrInvalidKey) {
			t.Errorf("ParseDesiredKey(%q) = %v, want ErrInvalidKey", bad, err)
		}
	}
	for _, bad := range []string{"d.config.a", "d.other.a.b", "d.state.a.b.c"} {
		if _, _, err := fleet.ParseReportedKey(bad); !errors.Is(err, fleet.ErrInvalidKey) {
			t.Errorf("ParseReportedKey(%q) = %v, want ErrInvalidKey", bad, err)
		}
	}
}

// FuzzToken: every string encodes to a KV key token; every valid scope part
// comes back unchanged; whatever decodes is canonical (re-encodes to the
// same token), so two keys never name one scope.
func FuzzToken(f *testing.F) {
	for _, s := range []string{"eth0", "a.b", "x=1", "=2E", "é€😀", "\x00", "\xff", " *>", "=41", "=c3=a9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		enc := fleet.EncodeToken(s)
		if s != "" && !kvToken.MatchString(enc) {
			t.Fatalf("EncodeToken(%q) = %q: not a KV key token", s, enc)
		}
		dec, err := fleet.DecodeToken(enc)
		valid := s != "" && utf8.ValidString(s) && !strings.Contains(s, "\x00")
		if valid && (err != nil || dec != s) {
			t.Fatalf("DecodeToken(EncodeToken(%q)) = %q, %v", s, dec, err)
		}
		if !valid && err == nil {
			t.Fatalf("DecodeToken(%q) accepted invalid part %q", enc, s)
		}
		if dec, err := fleet.DecodeToken(s); err == nil {
			if back := fleet.EncodeToken(dec); back != s {
				t.Fatalf("DecodeToken(%q) = %q, which encodes to %q: not canonical", s, dec, back)
			}
		}
	})
}
