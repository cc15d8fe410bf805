package core_test

import (
	"errors"
	"testing"

	"github.com/sysreg/sysreg/core"
)

// TestR21_PatternValidate: a pattern that could never match a valid scope
// is refused, by Validate, ParsePattern and Subscribe alike (R1, R21).
func TestR21_PatternValidate(t *testing.T) {
	r := rtRegistry(t, core.Options{})
	for _, tc := range []struct {
		name string
		p    core.Pattern
		ok   bool
	}{
		{"any", core.Pattern{}, true},
		{"bucket", core.Pattern{Bucket: core.Config}, true},
		{"subtype-with-slash", core.Pattern{Subtype: "eth0/1"}, true}, // R1: a subtype may hold '/'
		{"bucket=3", core.Pattern{Bucket: 3}, false},
		{"type-with-slash", core.Pattern{Type: "a/b"}, false},
		{"type-with-nul", core.Pattern{Type: "a\x00"}, false},
		{"subtype-with-nul", core.Pattern{Subtype: "\x00"}, false},
		{"type-not-utf8", core.Pattern{Type: "\xff"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Validate()
			sub, serr := r.Subscribe(t.Context(), core.SubscribeOptions{Match: tc.p})
			if tc.ok {
				if err != nil || serr != nil {
					t.Fatalf("Validate: %v; Subscribe: %v; want both nil", err, serr)
				}
				sub.Close()
				return
			}
			if !errors.Is(err, core.ErrInvalidScope) || !errors.Is(serr, core.ErrInvalidScope) {
				t.Fatalf("Validate: %v; Subscribe: %v; want both ErrInvalidScope", err, serr)
			}
		})
	}
}

// TestR21_ParsePatternSegments: the text form of a pattern follows the
// scope's (issue #8 item 8): no empty segment in the subtype.
func TestR21_ParsePatternSegments(t *testing.T) {
	for _, in := range []string{"config/wifi/wlan0/", "config/wifi//x", "config/*/a//b"} {
		if p, err := core.ParsePattern(in); !errors.Is(err, core.ErrInvalidScope) {
			t.Errorf("ParsePattern(%q) = %v, %v; want ErrInvalidScope", in, p, err)
		}
	}
	for _, in := range []string{"config/wifi/wlan0/extra", "state/net", "*/*/eth0"} {
		if _, err := core.ParsePattern(in); err != nil {
			t.Errorf("ParsePattern(%q): %v", in, err)
		}
	}
}
