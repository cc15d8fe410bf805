package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestParseValue: set's values are JSON where they parse, with R2's
// integer types, else the string as given (R33); a number no type holds is
// an error, never +Inf or a float that lost digits (issue 8 item 7).
func TestParseValue(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want any // an error when errNumberRange
	}{
		{"42", int64(42)},
		{"-9223372036854775808", int64(math.MinInt64)},
		{"9223372036854775807", int64(math.MaxInt64)},
		{"9223372036854775808", uint64(1 << 63)},
		{"18446744073709551615", uint64(math.MaxUint64)},
		{"18446744073709551616", errNumberRange},
		{"-9223372036854775809", errNumberRange},
		{"[1,18446744073709551616]", errNumberRange},
		{`{"a":1e400}`, errNumberRange},
		{"1e400", errNumberRange},
		{"-1e400", errNumberRange},
		{`"1e400"`, "1e400"},
		{"1.5", 1.5},
		{"1.0", 1.0},
		{"2e3", 2000.0},
		{"1e308", 1e308},
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
		got, err := parseValue(tc.in)
		if tc.want == errNumberRange {
			if !errors.Is(err, errNumberRange) {
				t.Errorf("parseValue(%q) = %#v, %v; want an out-of-range error", tc.in, got, err)
			}
			continue
		}
		if err != nil || fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", tc.want) {
			t.Errorf("parseValue(%q) = %#v, %v; want %#v", tc.in, got, err, tc.want)
		}
	}
}

// TestValueJSON: a float always reads as a float in the output, an integer
// as an integer, so that scripts can tell 1.0 from 1 (issue 8 item 7).
func TestValueJSON(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want string
	}{
		{int64(1), "1"},
		{uint64(math.MaxUint64), "18446744073709551615"},
		{1.0, "1.0"},
		{-3.0, "-3.0"},
		{2.5, "2.5"},
		{1e21, "1e+21"},
		{1e-7, "1e-7"},
		{math.Inf(1), `"+Inf"`},
		{math.NaN(), `"NaN"`},
		{[]any{1.0, int64(1)}, "[1.0,1]"},
		{map[string]any{"f": 0.0, "i": int64(0), "s": "1.0"}, `{"f":0.0,"i":0,"s":"1.0"}`},
	} {
		if got := string(valueJSON(tc.in)); got != tc.want {
			t.Errorf("valueJSON(%#v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestFlagsAnywhere: every flag of every command parses before, between
// and after the positional arguments, and the arguments stay arguments;
// after "--" everything is an argument (R52).
func TestFlagsAnywhere(t *testing.T) {
	sample := map[string]string{"duration": "1.5s", "int": "7", "string": "x", "format": "pretty", "float": "2.5", "file": "f", "directory": "d", "ADDR": "127.0.0.1:0", "ID": "dev-1", "uint": "7", "uint64": "7", "int64": "7", "strings": "x", "stringArray": "x", "URL": "nats://127.0.0.1:4222"}
	pos := []string{"config/a/b", "k=v"}
	for _, c := range newRoot(io.Discard, io.Discard).Commands() {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" {
				return
			}
			var flagArgs []string
			want := "true"
			if typ := f.Value.Type(); typ == "bool" {
				flagArgs = []string{"--" + f.Name}
			} else {
				name, _ := pflag.UnquoteUsage(f)
				v, ok := sample[name]
				if !ok {
					t.Fatalf("%s --%s: no sample value for type %q", c.Name(), f.Name, name)
				}
				flagArgs, want = []string{"--" + f.Name + "=" + v}, v
				if strings.HasSuffix(typ, "Slice") || strings.HasSuffix(typ, "Array") {
					want = "[" + v + "]" // how pflag prints a repeatable flag
				}
			}
			for at := 0; at <= len(pos); at++ {
				args := append(append(append([]string{c.Name()}, pos[:at]...), flagArgs...), pos[at:]...)
				t.Run(strings.Join(args, " "), func(t *testing.T) {
					root := newRoot(io.Discard, io.Discard)
					cmd, rest, err := root.Find(args)
					if err != nil || cmd.Name() != c.Name() {
						t.Fatalf("find: %v %v", cmd.Name(), err)
					}
					if err := cmd.ParseFlags(rest); err != nil {
						t.Fatal(err)
					}
					g := cmd.Flags().Lookup(f.Name)
					if !g.Changed || g.Value.String() != want {
						t.Errorf("--%s = %q (changed %v), want %q", f.Name, g.Value.String(), g.Changed, want)
					}
					if got := cmd.Flags().Args(); fmt.Sprint(got) != fmt.Sprint(pos) {
						t.Errorf("args %q, want %q", got, pos)
					}
				})
			}
		})
	}
	t.Run("dash-dash", func(t *testing.T) {
		root := newRoot(io.Discard, io.Discard)
		cmd, rest, _ := root.Find([]string{"set", "--owner", "me", "config/a/b", "--", "--owner=x"})
		if err := cmd.ParseFlags(rest); err != nil {
			t.Fatal(err)
		}
		if got := cmd.Flags().Args(); fmt.Sprint(got) != "[config/a/b --owner=x]" {
			t.Errorf("args %q", got)
		}
	})
}

// TestKeyLikeFlagRefused: a key=value whose key starts with '-' is a usage
// error, before anything is dialled (R52, issue 8 item 3).
func TestKeyLikeFlagRefused(t *testing.T) {
	for _, args := range [][]string{
		{"set", "config/a/b", "--", "--owner=me"},
		{"set", "config/a/b", "k=v", "--", "-x=1"},
	} {
		err := run(t.Context(), append(args, "--socket", "/nonexistent/s"), io.Discard, io.Discard)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "starts with '-'") {
			t.Errorf("%q: %v, want a usage error about the key", args, err)
		}
	}
}

// TestDurationNeedsUnit: a bare number is refused with a hint (R52).
func TestDurationNeedsUnit(t *testing.T) {
	err := run(t.Context(), []string{"watch", "--min-interval", "100"}, io.Discard, io.Discard)
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "missing unit, e.g. 100ms") {
		t.Fatalf("err = %v", err)
	}
	for _, ok := range []string{"0", "100ms", "1.5s"} {
		var d durationValue
		if err := d.Set(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

// TestSetValues: key=value, key=@FILE, key=@- and --bytes (R52).
func TestSetValues(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	text := file("text", "hello world\n")
	num := file("num", "42\n")
	bin := file("bin", "\x00\xff\n")
	big := strings.Repeat("x", 1<<20)
	for _, tc := range []struct {
		args  []string
		stdin string
		bytes bool
		want  any // core.Values, or an error: usageError{} or errAny
	}{
		{[]string{"a=1", "b=x"}, "", false, map[string]any{"a": int64(1), "b": "x"}},
		{[]string{"t=@" + text, "n=@" + num}, "", false, map[string]any{"t": "hello world", "n": int64(42)}},
		{[]string{"s=@-"}, big, false, map[string]any{"s": big}},
		{[]string{"s=@-"}, "[1, 2.5]\n", false, map[string]any{"s": []any{int64(1), 2.5}}},
		{[]string{"b=@" + bin}, "", true, map[string]any{"b": []byte("\x00\xff\n")}},
		{[]string{"b=@-", "x=2"}, "raw", true, map[string]any{"b": []byte("raw"), "x": int64(2)}},
		{[]string{"at=@@home"}, "", false, map[string]any{"at": "@home"}},
		{[]string{"a=@-", "b=@-"}, "x", false, usageError{}},
		{[]string{"a=@"}, "", false, usageError{}},
		{[]string{"a=1"}, "", true, usageError{}},
		{[]string{"a=@-"}, "1e400", false, usageError{}},
		{[]string{"a=@" + filepath.Join(dir, "missing")}, "", false, os.ErrNotExist},
	} {
		got, err := setValues(tc.args, strings.NewReader(tc.stdin), tc.bytes)
		switch want := tc.want.(type) {
		case usageError:
			var ue usageError
			if !errors.As(err, &ue) {
				t.Errorf("%q: %v, want a usage error", tc.args, err)
			}
		case error:
			var ue usageError
			if !errors.Is(err, want) || errors.As(err, &ue) {
				t.Errorf("%q: %v, want %v (exit 1)", tc.args, err, want)
			}
		default:
			if err != nil || fmt.Sprintf("%#v", map[string]any(got)) != fmt.Sprintf("%#v", want) {
				t.Errorf("%q: %.200v, %v; want %.200v", tc.args, got, err, want)
			}
		}
	}
}
