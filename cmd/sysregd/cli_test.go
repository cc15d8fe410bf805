package main

import (
	"fmt"
	"math"
	"testing"
)

// TestParseValue: set's values are JSON where they parse, with R2's
// integer types, else the string as given (R33).
func TestParseValue(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want any
	}{
		{"42", int64(42)},
		{"-9223372036854775808", int64(math.MinInt64)},
		{"9223372036854775807", int64(math.MaxInt64)},
		{"9223372036854775808", uint64(1 << 63)},
		{"18446744073709551615", uint64(math.MaxUint64)},
		{"18446744073709551616", 18446744073709551616.0},
		{"-9223372036854775809", -9223372036854775809.0},
		{"1.5", 1.5},
		{"1.0", 1.0},
		{"2e3", 2000.0},
		{"1e400", math.Inf(1)},
		{" 7 ", int64(7)},
		{"true", true},
		{"null", nil},
		{`"x y"`, "x y"},
		{`[1,[2.5,"a"]]`, []any{int64(1), []any{2.5, "a"}}},
		{`{"a":{"b":18446744073709551615}}`, map[string]any{"a": map[string]any{"b": uint64(math.MaxUint64)}}},
		{"", ""},
		{"hello", "hello"},
		{"NaN", "NaN"},
		{"1 2", "1 2"},
		{"{} x", "{} x"},
		{"{", "{"},
		{"0x10", "0x10"},
		{"01", "01"},
	} {
		got := parseValue(tc.in)
		if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", tc.want) {
			t.Errorf("parseValue(%q) = %#v, want %#v", tc.in, got, tc.want)
		}
	}
}
