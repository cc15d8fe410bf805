package core_test

// Table tests named by SPEC rule (R1–R15, R22) and for Snapshot's accessors.

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sysreg/sysreg/core"
)

// newRegistry returns a registry that the test closes (with its log).
func rtRegistry(t *testing.T, opts core.Options) *core.Registry {
	t.Helper()
	r := core.New(opts)
	t.Cleanup(func() {
		r.Close()
		if l, ok := opts.Log.(*recLog); ok {
			l.Close()
		}
	})
	return r
}

func rtOwner(t *testing.T, r *core.Registry, name string, opts core.OwnerOptions) *core.Owner {
	t.Helper()
	o, err := r.Owner(t.Context(), name, opts)
	if err != nil {
		t.Fatalf("Owner(%q): %v", name, err)
	}
	return o
}

func rtUpdate(t *testing.T, o *core.Owner, sc core.Scope, vals core.Values) {
	t.Helper()
	if err := o.Update(t.Context(), sc, vals); err != nil {
		t.Fatalf("%s.Update(%s, %v): %v", o.Name(), sc, vals, err)
	}
}

func rtWantReserved(t *testing.T, err error, sc core.Scope, keys ...string) {
	t.Helper()
	if !errors.Is(err, core.ErrReservedKeys) {
		t.Fatalf("error %v, want ErrReservedKeys", err)
	}
	var rk *core.ReservedKeysError
	if !errors.As(err, &rk) {
		t.Fatalf("error %v is not a *ReservedKeysError", err)
	}
	if rk.Scope != sc || !slices.Equal(rk.Keys, keys) {
		t.Fatalf("ReservedKeysError{%s %q}, want {%s %q}", rk.Scope, rk.Keys, sc, keys)
	}
}

// unchanged fails unless the registry still shows snap (same Seq, same view).
func rtUnchanged(t *testing.T, r *core.Registry, snap core.Snapshot) {
	t.Helper()
	now := r.Snapshot()
	if now.Seq() != snap.Seq() {
		t.Fatalf("Seq went from %d to %d", snap.Seq(), now.Seq())
	}
	if d := core.Diff(snap, now); len(d) != 0 {
		t.Fatalf("view changed: %+v", d)
	}
}

var (
	rtS0 = core.StateScope("net", "eth0")
	rtS1 = core.StateScope("net", "eth1")
	rtC0 = core.ConfigScope("net", "eth0")
	rtC1 = core.ConfigScope("net", "eth1")
)

// ---------------------------------------------------------------------------
// R1

func TestR1_ParseScope(t *testing.T) {
	ok := []struct {
		in   string
		want core.Scope
	}{
		{"config/wifi/wlan0", core.ConfigScope("wifi", "wlan0")},
		{"state/network_interface/eth0", core.StateScope("network_interface", "eth0")},
		{"state/net/eth0/1", core.StateScope("net", "eth0/1")}, // subtype may contain '/'
		{"config/a/b/c/d", core.ConfigScope("a", "b/c/d")},     // split at the first two
		{"state/ü/ß", core.StateScope("ü", "ß")},               // UTF-8
		{"state/ /x", core.StateScope(" ", "x")},               // non-empty is all R1 asks
	}
	for _, tc := range ok {
		t.Run(tc.in, func(t *testing.T) {
			got, err := core.ParseScope(tc.in)
			if err != nil {
				t.Fatalf("ParseScope(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Fatalf("ParseScope(%q) = %#v, want %#v", tc.in, got, tc.want)
			}
			if got.String() != tc.in {
				t.Fatalf("String() = %q, want %q", got.String(), tc.in)
			}
			if err := got.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
	bad := []string{
		"", "state", "state/", "state/net", "state/net/", "state//eth0", "//", "/net/eth0",
		"State/net/eth0", "STATE/net/eth0", " state/net/eth0", "states/net/eth0", "bucket/net/eth0",
		"state/n\x00et/eth0", "state/net/eth\x000", "\x00/net/eth0",
		"state/\xff/eth0", "state/net/\xffe", "state/net/eth0\xc3",
		// Empty segments in the subtype's text form: a typo, not a scope
		// (issue #8 item 8).
		"config/wifi/wlan0/", "config/wifi/wlan0/extra/", "config/a//", "config/a///b",
		"config/wifi//wlan0", "config/wifi/wlan0//extra",
	}
	for _, in := range bad {
		t.Run("bad="+strings.ToValidUTF8(strings.ReplaceAll(in, "\x00", `\0`), "?"), func(t *testing.T) {
			sc, err := core.ParseScope(in)
			if !errors.Is(err, core.ErrInvalidScope) {
				t.Fatalf("ParseScope(%q) = %v, %v; want ErrInvalidScope", in, sc, err)
			}
			if sc != (core.Scope{}) {
				t.Fatalf("ParseScope(%q) returned %#v with its error", in, sc)
			}
		})
	}
}

func TestR1_ScopeValidate(t *testing.T) {
	tests := []struct {
		name string
		sc   core.Scope
		ok   bool
	}{
		{"state", core.StateScope("a", "b"), true},
		{"config", core.ConfigScope("a", "b"), true},
		{"subtype with slash", core.StateScope("a", "b/c"), true},
		{"zero", core.Scope{}, false},
		{"bucket 0", core.Scope{Bucket: 0, Type: "a", Subtype: "b"}, false},
		{"bucket 3", core.Scope{Bucket: 3, Type: "a", Subtype: "b"}, false},
		{"type with slash", core.StateScope("a/b", "c"), false},
		{"empty type", core.StateScope("", "b"), false},
		{"empty subtype", core.StateScope("a", ""), false},
		{"NUL type", core.StateScope("a\x00", "b"), false},
		{"NUL subtype", core.ConfigScope("a", "\x00"), false},
		{"bad UTF-8 type", core.StateScope("\xc3\x28", "b"), false},
		{"bad UTF-8 subtype", core.ConfigScope("a", "\xed\xa0\x80"), false}, // surrogate
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.sc.Validate()
			if tc.ok && err != nil {
				t.Fatalf("Validate(%#v) = %v", tc.sc, err)
			}
			if !tc.ok && !errors.Is(err, core.ErrInvalidScope) {
				t.Fatalf("Validate(%#v) = %v, want ErrInvalidScope", tc.sc, err)
			}
		})
	}
	if core.State.String() != "state" || core.Config.String() != "config" {
		t.Fatalf("Bucket.String: %q %q", core.State, core.Config)
	}
}

// Every entry point refuses an invalid scope with ErrInvalidScope and
// changes nothing.
func TestR1_InvalidScopeRefused(t *testing.T) {
	r := rtRegistry(t, core.Options{})
	o := rtOwner(t, r, "a", core.OwnerOptions{})
	rtUpdate(t, o, rtS0, core.Values{"k": 1})
	before := r.Snapshot()
	for _, sc := range []core.Scope{{}, core.StateScope("a/b", "c"), core.StateScope("", "c"), {Bucket: 9, Type: "a", Subtype: "b"}} {
		ctx := t.Context()
		for name, err := range map[string]error{
			"Update":     o.Update(ctx, sc, core.Values{"k": 1}),
			"Delete":     o.Delete(ctx, sc, "k"),
			"DeleteAll":  o.Delete(ctx, sc),
			"Commit/Put": o.Commit(ctx, core.Put(rtS0, core.Values{"x": 1}), core.Put(sc, core.Values{"k": 1})),
			"Commit/Del": o.Commit(ctx, core.Put(rtS0, core.Values{"x": 1}), core.Del(sc, "k")),
		} {
			if !errors.Is(err, core.ErrInvalidScope) {
				t.Errorf("%s(%#v) = %v, want ErrInvalidScope", name, sc, err)
			}
		}
		if _, ok := before.Get(sc, "k"); ok {
			t.Errorf("Get(%#v) found a key", sc)
		}
	}
	rtUnchanged(t, r, before)
}

// ---------------------------------------------------------------------------
// R2

type (
	rtString string
	rtBytes  []byte
	rtMap    map[string]int
	rtSlice  []string
)

func TestR2_Normalize(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want any
	}{
		{"nil", nil, nil},
		{"bool", true, true},
		{"int", int(-7), int64(-7)},
		{"int8", int8(-128), int64(-128)},
		{"int16", int16(-32768), int64(-32768)},
		{"int32", int32(math.MinInt32), int64(math.MinInt32)},
		{"int64", int64(math.MinInt64), int64(math.MinInt64)},
		{"uint", uint(7), int64(7)},
		{"uint8", uint8(255), int64(255)},
		{"uint16", uint16(65535), int64(65535)},
		{"uint32", uint32(math.MaxUint32), int64(math.MaxUint32)},
		{"uint64 small stays uint64", uint64(1), uint64(1)},
		{"uint64 max", uint64(math.MaxUint64), uint64(math.MaxUint64)},
		{"float32", float32(1.5), float64(1.5)},
		{"float32 inexact", float32(0.1), float64(float32(0.1))},
		{"float64", 0.1, 0.1},
		{"NaN", math.NaN(), math.NaN()},
		{"string", "é", "é"},
		{"named string", rtString("x"), "x"},
		{"bytes", []byte{0, 1}, []byte{0, 1}},
		{"named bytes", rtBytes{2}, []byte{2}},
		{"[]string", []string{"a", "b"}, []any{"a", "b"}},
		{"named slice", rtSlice{"a"}, []any{"a"}},
		{"[]int", []int{1, 2}, []any{int64(1), int64(2)}},
		{"[]float32", []float32{0.5}, []any{0.5}},
		{"[]any", []any{int8(1), "x", nil}, []any{int64(1), "x", nil}},
		{"map[string]int", map[string]int{"a": 1}, map[string]any{"a": int64(1)}},
		{"named map", rtMap{"a": 1}, map[string]any{"a": int64(1)}},
		{"map[named]any", map[rtString]any{"k": uint16(3)}, map[string]any{"k": int64(3)}},
		{"map[string]any", map[string]any{"a": []uint32{1}}, map[string]any{"a": []any{int64(1)}}},
		{"nested", map[string][]map[string]float32{"a": {{"b": 2}}}, map[string]any{"a": []any{map[string]any{"b": 2.0}}}},
		{"empty map", map[string]any{}, map[string]any{}},
		{"empty list", []string{}, []any{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := core.NormalizeValue(tc.in)
			if err != nil {
				t.Fatalf("NormalizeValue(%#v): %v", tc.in, err)
			}
			if !rtSameValue(got, tc.want) {
				t.Fatalf("NormalizeValue(%#v) = %#v, want %#v", tc.in, got, tc.want)
			}
			// And through a registry: what Get returns is what went in, types
			// included (R2's round trip within the process).
			r := rtRegistry(t, core.Options{})
			o := rtOwner(t, r, "a", core.OwnerOptions{})
			rtUpdate(t, o, rtC0, core.Values{"v": tc.in})
			v, ok := r.Snapshot().Get(rtC0, "v")
			if !ok || !rtSameValue(v, tc.want) {
				t.Fatalf("Get = %#v, %v; want %#v", v, ok, tc.want)
			}
		})
	}
}

// sameValue is reflect.DeepEqual with NaN equal to NaN.
func rtSameValue(a, b any) bool {
	if x, ok := a.(float64); ok {
		y, ok := b.(float64)
		return ok && math.Float64bits(x) == math.Float64bits(y)
	}
	return reflect.DeepEqual(a, b)
}

func TestR2_InvalidValue(t *testing.T) {
	x := 1
	cyclic := []any{nil}
	cyclic[0] = cyclic
	cyclicMap := map[string]any{}
	cyclicMap["self"] = cyclicMap
	tests := []struct {
		name string
		vals core.Values
		path string // must appear in the message
	}{
		{"func", core.Values{"f": func() {}}, "f"},
		{"chan", core.Values{"c": make(chan int)}, "c"},
		{"struct", core.Values{"s": struct{ A int }{1}}, "s"},
		{"pointer", core.Values{"p": &x}, "p"},
		{"nil pointer", core.Values{"p": (*int)(nil)}, "p"},
		{"complex", core.Values{"z": complex(1, 2)}, "z"},
		{"map with int keys", core.Values{"m": map[int]string{1: "a"}}, "m"},
		{"invalid UTF-8 string", core.Values{"s": "\xff"}, "s"},
		{"invalid UTF-8 nested key", core.Values{"m": map[string]any{"\xff": 1}}, "m"},
		{"invalid UTF-8 top-level key", core.Values{"\xfe": 1}, ""},
		{"empty top-level key", core.Values{"": 1}, ""},
		{"deep path", core.Values{"top": map[string]any{"inner": []any{1, map[string]any{"leaf": func() {}}}}}, "top.inner[1].leaf"},
		{"typed slice element", core.Values{"l": []any{"ok", struct{}{}}}, "l[1]"},
		{"cyclic list", core.Values{"c": cyclic}, "c"},
		{"cyclic map", core.Values{"c": cyclicMap}, "c.self"},
	}
	r := rtRegistry(t, core.Options{})
	o := rtOwner(t, r, "a", core.OwnerOptions{})
	before := r.Snapshot()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := core.NormalizeValues(tc.vals)
			if !errors.Is(err, core.ErrInvalidValue) {
				t.Fatalf("NormalizeValues: %v, want ErrInvalidValue", err)
			}
			if !strings.Contains(err.Error(), tc.path) {
				t.Fatalf("message %q does not name the key path %q", err, tc.path)
			}
			for _, sc := range []core.Scope{rtS0, rtC0} {
				if err := o.Update(t.Context(), sc, tc.vals); !errors.Is(err, core.ErrInvalidValue) {
					t.Fatalf("Update(%s): %v, want ErrInvalidValue", sc, err)
				}
				if err := o.Commit(t.Context(), core.Put(sc, core.Values{"ok": 1}), core.Put(sc, tc.vals)); !errors.Is(err, core.ErrInvalidValue) {
					t.Fatalf("Commit(%s): %v, want ErrInvalidValue", sc, err)
				}
			}
			rtUnchanged(t, r, before)
		})
	}
}

// nest wraps v in n lists.
func rtNest(n int, v any) any {
	for range n {
		v = []any{v}
	}
	return v
}

// Depth counts every level of a value, the leaf included: a top-level scalar
// is at depth 1, as internal/codec counts it.
func TestR2_MaxDepth(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    any
		ok   bool
	}{
		{"scalar at MaxDepth", rtNest(core.MaxDepth-1, 1), true},
		{"empty list at MaxDepth", rtNest(core.MaxDepth-1, []any{}), true},
		{"scalar below MaxDepth", rtNest(core.MaxDepth, 1), false},
		{"map levels", rtNestMaps(core.MaxDepth + 1), false},
		{"far too deep", rtNest(5*core.MaxDepth, nil), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := core.NormalizeValues(core.Values{"deep": tc.v})
			if tc.ok && err != nil {
				t.Fatalf("NormalizeValues: %v", err)
			}
			if !tc.ok && !errors.Is(err, core.ErrInvalidValue) {
				t.Fatalf("NormalizeValues: %v, want ErrInvalidValue", err)
			}
		})
	}
}

func rtNestMaps(n int) any {
	var v any = 1
	for range n - 1 {
		v = map[string]any{"m": v}
	}
	return v
}

func TestR2_InputNotRetained(t *testing.T) {
	r := rtRegistry(t, core.Options{})
	o := rtOwner(t, r, "a", core.OwnerOptions{})
	b := []byte{1, 2}
	l := []any{"x"}
	m := map[string]any{"y": 1}
	vals := core.Values{"b": b, "l": l, "m": m}
	rtUpdate(t, o, rtC0, vals)
	b[0], l[0], m["y"], vals["new"] = 9, "changed", 2, 3
	want := core.Values{"b": []byte{1, 2}, "l": []any{"x"}, "m": map[string]any{"y": int64(1)}}
	if got := r.Snapshot().Values(rtC0); !reflect.DeepEqual(got, want) {
		t.Fatalf("after changing the caller's input: %#v, want %#v", got, want)
	}
}

func TestR2_TooLarge(t *testing.T) {
	const limit = 64
	big := strings.Repeat("x", limit)
	for _, sc := range []core.Scope{rtS0, rtC0} {
		t.Run(sc.String(), func(t *testing.T) {
			log := newRecLog()
			r := rtRegistry(t, core.Options{MaxUpdateBytes: limit, Log: log})
			o := rtOwner(t, r, "a", core.OwnerOptions{})
			rtUpdate(t, o, sc, core.Values{"small": "x"})
			before := r.Snapshot()
			nrec := len(log.Records())
			ctx := t.Context()
			if err := o.Update(ctx, sc, core.Values{"big": big}); !errors.Is(err, core.ErrTooLarge) {
				t.Fatalf("Update: %v, want ErrTooLarge", err)
			}
			rtUnchanged(t, r, before)
			if n := len(log.Records()); n != nrec {
				t.Fatalf("a refused Update wrote %d log records", n-nrec)
			}
			// A transaction is limited as a whole: two puts, each small
			// enough alone.
			half := core.Values{"h": strings.Repeat("y", limit/2)}
			if err := o.Update(ctx, sc, half); err != nil {
				t.Fatalf("Update(half): %v", err)
			}
			if err := o.Delete(ctx, sc, "h"); err != nil {
				t.Fatal(err)
			}
			before = r.Snapshot()
			nrec = len(log.Records())
			if err := o.Commit(ctx, core.Put(sc, half), core.Put(rtS1, half)); !errors.Is(err, core.ErrTooLarge) {
				t.Fatalf("Commit: %v, want ErrTooLarge", err)
			}
			if err := o.Commit(ctx, core.Del(sc, big)); !errors.Is(err, core.ErrTooLarge) {
				t.Fatalf("Commit(Del of a huge key): %v, want ErrTooLarge", err)
			}
			rtUnchanged(t, r, before)
			if n := len(log.Records()); n != nrec {
				t.Fatalf("a refused update wrote %d log records", n-nrec)
			}
		})
	}
}

// The limit is on the encoded size (R2): exactly at the limit passes, one
// byte more fails.
func TestR2_TooLargeBoundary(t *testing.T) {
	// {"k": "xxx…"} with a 30-byte string: map head 1 + key 2 + string head 2 + 30.
	vals := core.Values{"k": strings.Repeat("x", 30)}
	_, size, err := core.NormalizeValues(vals)
	if err != nil || size != 35 {
		t.Fatalf("NormalizeValues: size %d, %v; want 35", size, err)
	}
	for _, tc := range []struct {
		limit int
		ok    bool
	}{{35, true}, {34, false}} {
		r := rtRegistry(t, core.Options{MaxUpdateBytes: tc.limit})
		o := rtOwner(t, r, "a", core.OwnerOptions{})
		err := o.Update(t.Context(), rtC0, vals)
		if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, core.ErrTooLarge)) {
			t.Errorf("limit %d: Update = %v", tc.limit, err)
		}
		err = o.Commit(t.Context(), core.Put(rtC1, vals))
		if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, core.ErrTooLarge)) {
			t.Errorf("limit %d: Commit = %v", tc.limit, err)
		}
	}
}

// ---------------------------------------------------------------------------
// R3, R4, R5

func TestR3_GlobalView(t *testing.T) {
	r := rtRegistry(t, core.Options{})
	o := rtOwner(t, r, "netd", core.OwnerOptions{})
	rtUpdate(t, o, core.StateScope("network_interface", "eth0"), core.Values{"address": "192.168.1.100"})
	rtUpdate(t, o, core.ConfigScope("network_interface", "eth0/v"), core.Values{"mtu": 1500})
	want := map[string]any{
		"state":  map[string]any{"network_interface": map[string]any{"eth0": map[string]any{"address": "192.168.1.100"}}},
		"config": map[string]any{"network_interface": map[string]any{"eth0/v": map[string]any{"mtu": int64(1500)}}},
	}
	if got := r.Snapshot().Map(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Map() = %#v, want %#v", got, want)
	}
}

func TestR4_Merge(t *testing.T) {
	tests := []struct {
		name  string
		steps []core.Values
		want  core.Values
	}{
		{"spec example", []core.Values{{"a": map[string]any{"b": 1}}, {"a": map[string]any{"c": 2}}},
			core.Values{"a": map[string]any{"b": int64(1), "c": int64(2)}}},
		{"deep", []core.Values{
			{"a": map[string]any{"b": map[string]any{"c": 1, "d": 2}}},
			{"a": map[string]any{"b": map[string]any{"d": 3, "e": 4}}}},
			core.Values{"a": map[string]any{"b": map[string]any{"c": int64(1), "d": int64(3), "e": int64(4)}}}},
		{"scalar replaces map", []core.Values{{"a": map[string]any{"b": 1}}, {"a": 5}}, core.Values{"a": int64(5)}},
		{"map replaces scalar", []core.Values{{"a": 5}, {"a": map[string]any{"b": 1}}}, core.Values{"a": map[string]any{"b": int64(1)}}},
		{"lists are replaced, not merged", []core.Values{{"a": []int{1, 2}}, {"a": []int{3}}}, core.Values{"a": []any{int64(3)}}},
		{"nil is stored", []core.Values{{"a": 1}, {"a": nil}}, core.Values{"a": nil}},
		{"nil inside a map is stored", []core.Values{{"a": map[string]any{"b": 1}}, {"a": map[string]any{"b": nil}}},
			core.Values{"a": map[string]any{"b": nil}}},
		{"map replaces nil", []core.Values{{"a": nil}, {"a": map[string]any{"b": 1}}}, core.Values{"a": map[string]any{"b": int64(1)}}},
		{"typed map merges", []core.Values{{"a": map[string]int{"b": 1}}, {"a": map[string]string{"c": "x"}}},
			core.Values{"a": map[string]any{"b": int64(1), "c": "x"}}},
		{"other keys untouched", []core.Values{{"a": 1, "b": 2}, {"b": 3}}, core.Values{"a": int64(1), "b": int64(3)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, sc := range []core.Scope{rtS0, rtC0} {
				r := rtRegistry(t, core.Options{})
				o := rtOwner(t, r, "a", core.OwnerOptions{})
				for _, v := range tc.steps {
					rtUpdate(t, o, sc, v)
				}
				if got := r.Snapshot().Values(sc); !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("%s: %#v, want %#v", sc, got, tc.want)
				}
			}
		})
	}
}

func TestR5_Pruning(t *testing.T) {
	r := rtRegistry(t, core.Options{})
	a := rtOwner(t, r, "a", core.OwnerOptions{})
	b := rtOwner(t, r, "b", core.OwnerOptions{})
	ctx := t.Context()
	rtUpdate(t, a, rtS0, core.Values{"k": 1})
	rtUpdate(t, a, rtC0, core.Values{"k": 1, "e": map[string]any{}})
	rtUpdate(t, b, rtS1, core.Values{"k": 1})
	if err := a.Delete(ctx, rtS0, "k"); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"state":  map[string]any{"net": map[string]any{"eth1": map[string]any{"k": int64(1)}}},
		"config": map[string]any{"net": map[string]any{"eth0": map[string]any{"k": int64(1), "e": map[string]any{}}}},
	}
	if got := r.Snapshot().Map(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after deleting state/net/eth0's last key: %#v, want %#v", got, want)
	}
	if v := r.Snapshot().Values(rtS0); v != nil {
		t.Fatalf("Values of an empty scope = %#v, want nil", v)
	}
	if err := b.Close(); err != nil { // the last state key: the bucket goes
		t.Fatal(err)
	}
	if err := a.Delete(ctx, rtC0); err != nil {
		t.Fatal(err)
	}
	if got := r.Snapshot().Map(); len(got) != 0 {
		t.Fatalf("empty registry: Map() = %#v, want an empty map", got)
	}
	if s := r.Snapshot().Scopes(0); len(s) != 0 {
		t.Fatalf("Scopes = %v", s)
	}
	if js, _ := r.Snapshot().MarshalJSON(); string(js) != "{}" {
		t.Fatalf("MarshalJSON = %s", js)
	}
}

// ---------------------------------------------------------------------------
// R6, R7

func TestR6_NoOp(t *testing.T) {
	type step func(t *testing.T, a, b *core.Owner) error
	ctx := context.Background()
	tests := []struct {
		name  string
		setup step
		noop  step
	}{
		{"same update twice", func(t *testing.T, a, b *core.Owner) error {
			return a.Update(ctx, rtC0, core.Values{"k": map[string]any{"x": []int{1}}})
		}, func(t *testing.T, a, b *core.Owner) error {
			return a.Update(ctx, rtC0, core.Values{"k": map[string]any{"x": []any{int64(1)}}})
		}},
		{"sub-map already merged", func(t *testing.T, a, b *core.Owner) error {
			return a.Update(ctx, rtS0, core.Values{"k": map[string]any{"x": 1, "y": 2}})
		}, func(t *testing.T, a, b *core.Owner) error {
			return a.Update(ctx, rtS0, core.Values{"k": map[string]any{"y": 2}})
		}},
		{"empty sub-map", func(t *testing.T, a, b *core.Owner) error {
			return a.Update(ctx, rtS0, core.Values{"k": map[string]any{"x": 1}})
		}, func(t *testing.T, a, b *core.Owner) error {
			return a.Update(ctx, rtS0, core.Values{"k": map[string]any{}})
		}},
		{"empty update", nil, func(t *testing.T, a, b *core.Owner) error {
			return a.Update(ctx, rtS0, core.Values{})
		}},
		{"other owner writes the same config value", func(t *testing.T, a, b *core.Owner) error {
			return a.Update(ctx, rtC0, core.Values{"k": "v"})
		}, func(t *testing.T, a, b *core.Owner) error {
			return b.Update(ctx, rtC0, core.Values{"k": "v"})
		}},
		{"delete a missing key", func(t *testing.T, a, b *core.Owner) error {
			return a.Update(ctx, rtS0, core.Values{"k": 1})
		}, func(t *testing.T, a, b *core.Owner) error {
			return a.Delete(ctx, rtS0, "missing")
		}},
		{"delete all with nothing owned", func(t *testing.T, a, b *core.Owner) error {
			return b.Update(ctx, rtC0, core.Values{"k": 1})
		}, func(t *testing.T, a, b *core.Owner) error {
			return a.Delete(ctx, rtC0)
		}},
		{"empty transaction", nil, func(t *testing.T, a, b *core.Owner) error {
			return a.Commit(ctx)
		}},
		{"transaction: put then delete a new key", nil, func(t *testing.T, a, b *core.Owner) error {
			return a.Commit(ctx, core.Put(rtC0, core.Values{"new": 1}), core.Del(rtC0, "new"))
		}},
		{"transaction: put then delete-all in a new scope", nil, func(t *testing.T, a, b *core.Owner) error {
			return a.Commit(ctx, core.Put(rtS0, core.Values{"new": 1}), core.Put(rtC1, core.Values{"x": 1}), core.Del(rtS0), core.Del(rtC1))
		}},
		{"transaction: change another's config value and put it back", func(t *testing.T, a, b *core.Owner) error {
			return b.Update(ctx, rtC0, core.Values{"k": "v"})
		}, func(t *testing.T, a, b *core.Owner) error {
			return a.Commit(ctx, core.Put(rtC0, core.Values{"k": "tmp"}), core.Put(rtC0, core.Values{"k": "v"}))
		}},
		{"transaction: delete own key and put it back", func(t *testing.T, a, b *core.Owner) error {
			return a.Update(ctx, rtS0, core.Values{"k": 1})
		}, func(t *testing.T, a, b *core.Owner) error {
			return a.Commit(ctx, core.Del(rtS0, "k"), core.Put(rtS0, core.Values{"k": 1}))
		}},
		{"close an owner that holds nothing", nil, func(t *testing.T, a, b *core.Owner) error {
			return a.Close()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := newRecLog()
			r := rtRegistry(t, core.Options{Log: log})
			a := rtOwner(t, r, "a", core.OwnerOptions{})
			b := rtOwner(t, r, "b", core.OwnerOptions{})
			if tc.setup != nil {
				if err := tc.setup(t, a, b); err != nil {
					t.Fatalf("setup: %v", err)
				}
			}
			before, nrec := r.Snapshot(), len(log.Records())
			if err := tc.noop(t, a, b); err != nil {
				t.Fatalf("no-op: %v", err)
			}
			rtUnchanged(t, r, before)
			if n := len(log.Records()) - nrec; n != 0 {
				t.Fatalf("a no-op wrote %d log records: %+v", n, log.Records()[nrec:])
			}
		})
	}
}

// Values compare with their types and exact bits (R2: values round-trip
// exactly), so these are changes, not no-ops.
func TestR6_TypedChangesAreChanges(t *testing.T) {
	for _, tc := range []struct {
		name     string
		old, new any
	}{
		{"int64 to uint64", 1, uint64(1)},
		{"int64 to float64", 1, 1.0},
		{"0 to -0", 0.0, math.Copysign(0, -1)},
		{"string to bytes", "a", []byte("a")},
		{"nil to empty map", nil, map[string]any{}},
		{"empty list to nil", []any{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rtRegistry(t, core.Options{})
			o := rtOwner(t, r, "a", core.OwnerOptions{})
			rtUpdate(t, o, rtC0, core.Values{"k": tc.old})
			seq := r.Snapshot().Seq()
			rtUpdate(t, o, rtC0, core.Values{"k": tc.new})
			if got := r.Snapshot().Seq(); got != seq+1 {
				t.Fatalf("Seq %d → %d, want a change", seq, got)
			}
		})
	}
}

func TestR7_Sequence(t *testing.T) {
	ctx := t.Context()
	r := rtRegistry(t, core.Options{})
	if s := r.Snapshot().Seq(); s != 0 {
		t.Fatalf("new registry: Seq %d", s)
	}
	a := rtOwner(t, r, "a", core.OwnerOptions{})
	b := rtOwner(t, r, "b", core.OwnerOptions{})
	want := uint64(0)
	expect := func(what string, err error, inc uint64) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		want += inc
		if got := r.Snapshot().Seq(); got != want {
			t.Fatalf("after %s: Seq %d, want %d", what, got, want)
		}
	}
	expect("state update", a.Update(ctx, rtS0, core.Values{"k": 1}), 1)
	expect("config update", a.Update(ctx, rtC0, core.Values{"k": 1}), 1)
	expect("update of both keys", b.Update(ctx, rtC0, core.Values{"k": 2, "j": 1}), 1)
	expect("delete", a.Delete(ctx, rtS0, "k"), 1)
	expect("transaction", a.Commit(ctx, core.Put(rtS0, core.Values{"x": 1}), core.Put(rtC1, core.Values{"x": 1}), core.Del(rtC0, "k")), 1)
	_, err := r.Owner(ctx, "c", core.OwnerOptions{})
	expect("opening an owner", err, 0)
	expect("owner death in both buckets", a.Close(), 1)
	if err := r.Evict(ctx, "b"); !errors.Is(err, core.ErrOwnerInUse) {
		t.Fatalf("Evict of a live owner: %v", err)
	}
	expect("failed evict", nil, 0)
	expect("close b", b.Close(), 1)
	expect("evict of nothing", r.Evict(ctx, "b"), 0)
}

func TestR7_SeqFloorAndInitial(t *testing.T) {
	init, err := core.Snapshot{}.Apply(&core.Mutation{Seq: 40, Ops: []core.MutationOp{
		{Kind: core.MutSet, Layer: core.Saved, Scope: rtC0, Owner: "x", Values: core.Values{"k": int64(1)}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		init  core.Snapshot
		floor uint64
		want  uint64
	}{{core.Snapshot{}, 0, 0}, {core.Snapshot{}, 7, 7}, {init, 0, 40}, {init, 100, 100}, {init, 10, 40}} {
		r := rtRegistry(t, core.Options{Initial: tc.init, SeqFloor: tc.floor})
		if got := r.Snapshot().Seq(); got != tc.want {
			t.Errorf("Initial %d, floor %d: Seq %d, want %d", tc.init.Seq(), tc.floor, got, tc.want)
		}
		o := rtOwner(t, r, "", core.OwnerOptions{})
		rtUpdate(t, o, rtS0, core.Values{"k": 1})
		if got := r.Snapshot().Seq(); got != tc.want+1 {
			t.Errorf("Initial %d, floor %d: first mutation got Seq %d, want %d", tc.init.Seq(), tc.floor, got, tc.want+1)
		}
	}
}

// ---------------------------------------------------------------------------
// R8, R9

func TestR8_OwnerNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{strings.Repeat("n", 128), true},
		{strings.Repeat("é", 64), true}, // 128 bytes
		{strings.Repeat("n", 129), false},
		{strings.Repeat("é", 64) + "x", false},
		{"a\x00b", false},
		{"\x00", false},
		{"\xff", false},
		{"a\xc3", false},
		{"with space/and slash", true},
	} {
		r := rtRegistry(t, core.Options{})
		if err := r.Evict(t.Context(), tc.name); tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, core.ErrInvalidOwner)) {
			t.Errorf("Evict(%q) = %v", tc.name, err)
		}
		o, err := r.Owner(t.Context(), tc.name, core.OwnerOptions{})
		if tc.ok && (err != nil || o.Name() != tc.name) {
			t.Errorf("Owner(%q) = %v", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, core.ErrInvalidOwner) {
			t.Errorf("Owner(%q) = %v, want ErrInvalidOwner", tc.name, err)
		}
	}
}

func TestR8_OneLiveSession(t *testing.T) {
	ctx := t.Context()
	r := rtRegistry(t, core.Options{})
	a := rtOwner(t, r, "a", core.OwnerOptions{})
	if _, err := r.Owner(ctx, "a", core.OwnerOptions{KeepConfig: true}); !errors.Is(err, core.ErrOwnerInUse) {
		t.Fatalf("second session: %v, want ErrOwnerInUse", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil { // idempotent
		t.Fatalf("second Close: %v", err)
	}
	a2 := rtOwner(t, r, "a", core.OwnerOptions{})
	rtUpdate(t, a2, rtS0, core.Values{"k": 1})
	// The old handle stays dead and cannot touch the new session.
	if err := a.Update(ctx, rtS0, core.Values{"k": 2}); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("Update through a closed handle: %v, want ErrClosed", err)
	}
	if err := a.Delete(ctx, rtS0); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("Delete through a closed handle: %v", err)
	}
	if err := a.Commit(ctx, core.Del(rtS0)); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("Commit through a closed handle: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Snapshot().Get(rtS0, "k"); !ok {
		t.Fatal("closing the old handle killed the new session's keys")
	}
}

func TestR8_Anonymous(t *testing.T) {
	ctx := t.Context()
	// Restored config held by names that look generated (R27 + R8).
	init, err := core.Snapshot{}.Apply(&core.Mutation{Seq: 3, Ops: []core.MutationOp{
		{Kind: core.MutSet, Layer: core.Runtime, Scope: rtC0, Owner: "anonymous-1", Values: core.Values{"k": int64(1)}},
		{Kind: core.MutSet, Layer: core.Runtime, Scope: rtC1, Owner: "anonymous-3", Values: core.Values{"k": int64(1)}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	r := rtRegistry(t, core.Options{Initial: init})
	live := rtOwner(t, r, "anonymous-2", core.OwnerOptions{}) // a live named session
	_ = live
	seen := map[string]bool{"anonymous-1": true, "anonymous-2": true, "anonymous-3": true}
	var owners []*core.Owner
	for range 5 {
		o := rtOwner(t, r, "", core.OwnerOptions{})
		if seen[o.Name()] {
			t.Fatalf("anonymous owner got %q, which is taken", o.Name())
		}
		seen[o.Name()] = true
		owners = append(owners, o)
	}
	// The restored keys are untouched, and the anonymous owners cannot
	// delete them (they are not theirs).
	if err := owners[0].Delete(ctx, rtC0, "k"); !errors.Is(err, core.ErrReservedKeys) {
		t.Fatalf("anonymous owner deleted a restored key: %v", err)
	}
	if o, _ := r.Snapshot().Owner(rtC0, "k"); o != "anonymous-1" {
		t.Fatalf("restored key owner %q", o)
	}
	// An explicit session may take a restored name and delete its keys.
	a1 := rtOwner(t, r, "anonymous-1", core.OwnerOptions{})
	if err := a1.Delete(ctx, rtC0, "k"); err != nil {
		t.Fatal(err)
	}
}

func TestR9_Ownership(t *testing.T) {
	ctx := t.Context()
	r := rtRegistry(t, core.Options{})
	a := rtOwner(t, r, "a", core.OwnerOptions{})
	b := rtOwner(t, r, "b", core.OwnerOptions{})
	rtUpdate(t, a, rtC0, core.Values{"k": 1})
	rtUpdate(t, b, rtC0, core.Values{"k": 2, "j": 1}) // R11: anyone may update
	snap := r.Snapshot()
	for key, want := range map[string]string{"k": "a", "j": "b"} {
		if o, ok := snap.Owner(rtC0, key); !ok || o != want {
			t.Fatalf("Owner(%s) = %q, want %q", key, o, want)
		}
	}
	if err := a.Delete(ctx, rtC0, "k"); err != nil {
		t.Fatal(err)
	}
	rtUpdate(t, b, rtC0, core.Values{"k": 3}) // re-inserted: b's now
	if o, _ := r.Snapshot().Owner(rtC0, "k"); o != "b" {
		t.Fatalf("re-inserted key owned by %q, want b", o)
	}
}

// ---------------------------------------------------------------------------
// R10, R11, R12

func TestR10_StatePermissions(t *testing.T) {
	ctx := t.Context()
	r := rtRegistry(t, core.Options{})
	a := rtOwner(t, r, "a", core.OwnerOptions{})
	b := rtOwner(t, r, "b", core.OwnerOptions{})
	rtUpdate(t, a, rtS0, core.Values{"k2": 1, "k1": 1, "mine": 1})
	rtUpdate(t, b, rtS0, core.Values{"theirs": 1})
	before := r.Snapshot()
	// Foreign keys fail the whole update, the free key included; keys sorted.
	rtWantReserved(t, b.Update(ctx, rtS0, core.Values{"k2": 2, "k1": 2, "free": 1, "theirs": 2}), rtS0, "k1", "k2")
	rtWantReserved(t, b.Delete(ctx, rtS0, "theirs", "k2", "missing"), rtS0, "k2")
	rtWantReserved(t, b.Delete(ctx, rtS0, "mine", "mine"), rtS0, "mine")
	rtUnchanged(t, r, before)
	// Delete without keys is not a foreign delete.
	if err := b.Delete(ctx, rtS0); err != nil {
		t.Fatal(err)
	}
	if got := r.Snapshot().Values(rtS0); len(got) != 3 {
		t.Fatalf("b's delete-all left %v", got)
	}
}

func TestR11_ConfigPermissions(t *testing.T) {
	ctx := t.Context()
	r := rtRegistry(t, core.Options{})
	a := rtOwner(t, r, "a", core.OwnerOptions{})
	b := rtOwner(t, r, "b", core.OwnerOptions{})
	rtUpdate(t, a, rtC0, core.Values{"k": map[string]any{"x": 1}, "z": 1})
	rtUpdate(t, b, rtC0, core.Values{"k": map[string]any{"y": 2}, "new": 1})
	snap := r.Snapshot()
	if v, _ := snap.Get(rtC0, "k"); !reflect.DeepEqual(v, map[string]any{"x": int64(1), "y": int64(2)}) {
		t.Fatalf("k = %#v", v)
	}
	if o, _ := snap.Owner(rtC0, "k"); o != "a" {
		t.Fatalf("k owned by %q after b's update, want a", o)
	}
	if o, _ := snap.Owner(rtC0, "new"); o != "b" {
		t.Fatalf("new owned by %q, want b", o)
	}
	rtWantReserved(t, b.Delete(ctx, rtC0, "z", "new", "k"), rtC0, "k", "z")
	rtUnchanged(t, r, snap)
	if err := a.Delete(ctx, rtC0, "k", "z"); err != nil {
		t.Fatal(err)
	}
}

func TestR12_Delete(t *testing.T) {
	ctx := t.Context()
	for _, sc := range []core.Scope{rtS0, rtC0} {
		t.Run(sc.String(), func(t *testing.T) {
			r := rtRegistry(t, core.Options{})
			a := rtOwner(t, r, "a", core.OwnerOptions{})
			b := rtOwner(t, r, "b", core.OwnerOptions{})
			rtUpdate(t, a, sc, core.Values{"a1": 1, "a2": 2, "a3": 3})
			rtUpdate(t, b, sc, core.Values{"b1": 1})
			other := core.Scope{Bucket: sc.Bucket, Type: "net", Subtype: "other"}
			rtUpdate(t, a, other, core.Values{"a1": 1})
			seq := r.Snapshot().Seq()
			if err := a.Delete(ctx, sc, "a1", "a1", "missing"); err != nil {
				t.Fatal(err)
			}
			if err := a.Delete(ctx, sc); err != nil { // all of a's keys, in sc only
				t.Fatal(err)
			}
			snap := r.Snapshot()
			if got := snap.Values(sc); !reflect.DeepEqual(got, core.Values{"b1": int64(1)}) {
				t.Fatalf("after deletes: %#v", got)
			}
			if _, ok := snap.Get(other, "a1"); !ok {
				t.Fatal("Delete(scope) removed a key of another scope")
			}
			if snap.Seq() != seq+2 {
				t.Fatalf("Seq %d, want %d", snap.Seq(), seq+2)
			}
			// Missing keys, missing scopes, missing types: no-ops.
			for _, m := range []core.Scope{
				{Bucket: sc.Bucket, Type: "net", Subtype: "missing"},
				{Bucket: sc.Bucket, Type: "missing", Subtype: "eth0"},
			} {
				if err := a.Delete(ctx, m, "x"); err != nil {
					t.Fatalf("Delete(%s, x): %v", m, err)
				}
				if err := a.Delete(ctx, m); err != nil {
					t.Fatalf("Delete(%s): %v", m, err)
				}
			}
			if err := a.Delete(ctx, sc, "a1"); err != nil {
				t.Fatal(err)
			}
			rtUnchanged(t, r, snap)
		})
	}
}

// ---------------------------------------------------------------------------
// R13, R14

func TestR13_OwnerDeath(t *testing.T) {
	ctx := t.Context()
	log := newRecLog()
	r := rtRegistry(t, core.Options{Log: log})
	a := rtOwner(t, r, "a", core.OwnerOptions{})
	b := rtOwner(t, r, "b", core.OwnerOptions{})
	rtUpdate(t, a, rtS0, core.Values{"s": 1})
	rtUpdate(t, a, rtC0, core.Values{"c": map[string]any{"x": 1}})
	rtUpdate(t, a, rtC1, core.Values{"c": 1})
	rtUpdate(t, b, rtC0, core.Values{"c": map[string]any{"y": 2}, "bk": 1}) // b changes a's value
	rtUpdate(t, b, rtS0, core.Values{"bs": 1})
	seq, nrec := r.Snapshot().Seq(), len(log.Records())
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	snap := r.Snapshot()
	want := map[string]any{
		"state":  map[string]any{"net": map[string]any{"eth0": map[string]any{"bs": int64(1)}}},
		"config": map[string]any{"net": map[string]any{"eth0": map[string]any{"bk": int64(1)}}},
	}
	if got := snap.Map(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after a's death: %#v, want %#v", got, want)
	}
	if snap.Seq() != seq+1 {
		t.Fatalf("owner death took Seq %d → %d, want one mutation", seq, snap.Seq())
	}
	if n := len(log.Records()) - nrec; n != 1 {
		t.Fatalf("owner death wrote %d records, want 1", n)
	}
	if err := a.Update(ctx, rtS0, core.Values{"s": 1}); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("Update after Close: %v, want ErrClosed", err)
	}
}

func TestR13_KeepConfig(t *testing.T) {
	ctx := t.Context()
	r := rtRegistry(t, core.Options{})
	tool := rtOwner(t, r, "tool", core.OwnerOptions{KeepConfig: true})
	rtUpdate(t, tool, rtS0, core.Values{"s": 1})
	rtUpdate(t, tool, rtC0, core.Values{"c": 1})
	if err := tool.Close(); err != nil {
		t.Fatal(err)
	}
	snap := r.Snapshot()
	if _, ok := snap.Get(rtS0, "s"); ok {
		t.Fatal("KeepConfig kept a state key")
	}
	if o, ok := snap.Owner(rtC0, "c"); !ok || o != "tool" {
		t.Fatalf("KeepConfig: config key %q %v", o, ok)
	}
	if l, _, _ := snap.Origin(rtC0, "c"); l != core.Saved {
		t.Fatalf("R39: KeepConfig wrote to %s, want saved", l)
	}
	// Another owner still may not delete it (R11).
	x := rtOwner(t, r, "x", core.OwnerOptions{Layer: core.Saved})
	rtWantReserved(t, x.Delete(ctx, rtC0, "c"), rtC0, "c")

	// A later session with KeepConfig again keeps it.
	tool = rtOwner(t, r, "tool", core.OwnerOptions{KeepConfig: true})
	rtUpdate(t, tool, rtC1, core.Values{"c": 2})
	if err := tool.Close(); err != nil {
		t.Fatal(err)
	}
	if r.Snapshot().Len(core.Config) != 2 {
		t.Fatalf("config after the second KeepConfig session: %v", r.Snapshot().Map())
	}
	// R13 revised (issue #8 item 1): a later session without KeepConfig
	// takes only its own runtime keys with it; the kept config stays,
	// although the name is the same.
	tool = rtOwner(t, r, "tool", core.OwnerOptions{})
	rtUpdate(t, tool, rtC1, core.Values{"r": 3})
	seq := r.Snapshot().Seq()
	if err := tool.Close(); err != nil {
		t.Fatal(err)
	}
	got := r.Snapshot()
	want := map[string]any{"config": map[string]any{
		"net": map[string]any{"eth0": map[string]any{"c": int64(1)}, "eth1": map[string]any{"c": int64(2)}},
	}}
	if !reflect.DeepEqual(got.Map(), want) || got.Seq() != seq+1 {
		t.Fatalf("after the plain session: Seq %d (want %d), view %v, want %v", got.Seq(), seq+1, got.Map(), want)
	}
}

// R27: closing the registry ends sessions without owner deaths.
func TestR13_RegistryCloseIsNoDeath(t *testing.T) {
	ctx := t.Context()
	r := core.New(core.Options{})
	a := rtOwner(t, r, "a", core.OwnerOptions{})
	rtUpdate(t, a, rtS0, core.Values{"s": 1})
	rtUpdate(t, a, rtC0, core.Values{"c": 1})
	before := r.Snapshot()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("owner Close after registry Close: %v", err)
	}
	rtUnchanged(t, r, before)
	if err := a.Update(ctx, rtS0, core.Values{"s": 2}); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("Update after registry Close: %v", err)
	}
	if _, err := r.Owner(ctx, "b", core.OwnerOptions{}); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("Owner after registry Close: %v", err)
	}
	if err := r.Evict(ctx, "a"); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("Evict after registry Close: %v", err)
	}
}

func TestR14_Evict(t *testing.T) {
	ctx := t.Context()
	log := newRecLog()
	r := rtRegistry(t, core.Options{Log: log})
	tool := rtOwner(t, r, "tool", core.OwnerOptions{KeepConfig: true})
	rtUpdate(t, tool, rtC0, core.Values{"c": 1})
	rtUpdate(t, tool, rtC1, core.Values{"c": 1})
	rtUpdate(t, tool, rtS0, core.Values{"s": 1})
	other := rtOwner(t, r, "other", core.OwnerOptions{})
	rtUpdate(t, other, rtC0, core.Values{"o": 1})
	before := r.Snapshot()
	if err := r.Evict(ctx, "tool"); !errors.Is(err, core.ErrOwnerInUse) {
		t.Fatalf("Evict of a live owner: %v, want ErrOwnerInUse", err)
	}
	rtUnchanged(t, r, before)
	if err := tool.Close(); err != nil {
		t.Fatal(err)
	}
	seq, nrec := r.Snapshot().Seq(), len(log.Records())
	if err := r.Evict(ctx, "tool"); err != nil {
		t.Fatal(err)
	}
	snap := r.Snapshot()
	if got := snap.Values(rtC0); !reflect.DeepEqual(got, core.Values{"o": int64(1)}) || snap.Values(rtC1) != nil {
		t.Fatalf("after Evict: %v", snap.Map())
	}
	if snap.Seq() != seq+1 || len(log.Records()) != nrec+1 {
		t.Fatalf("Evict: Seq %d → %d, %d records; want one mutation", seq, snap.Seq(), len(log.Records())-nrec)
	}
	if err := r.Evict(ctx, "tool"); err != nil { // nothing left: a no-op
		t.Fatal(err)
	}
	if err := r.Evict(ctx, "never-seen"); err != nil {
		t.Fatal(err)
	}
	rtUnchanged(t, r, snap)
	for _, bad := range []string{"", "a\x00", strings.Repeat("x", 129)} {
		if err := r.Evict(ctx, bad); !errors.Is(err, core.ErrInvalidOwner) {
			t.Fatalf("Evict(%q): %v, want ErrInvalidOwner", bad, err)
		}
	}
}

// ---------------------------------------------------------------------------
// R15

func TestR15_Transactions(t *testing.T) {
	ctx := context.Background()
	netx := core.StateScope("net-x", "eth0")
	cnetx := core.ConfigScope("net-x", "eth0")
	setup := func(t *testing.T) (r *core.Registry, log *recLog, a, b *core.Owner) {
		log = newRecLog()
		r = rtRegistry(t, core.Options{Log: log})
		a = rtOwner(t, r, "a", core.OwnerOptions{})
		b = rtOwner(t, r, "b", core.OwnerOptions{})
		for _, sc := range []core.Scope{rtS0, rtS1, netx, rtC0, rtC1, cnetx} {
			rtUpdate(t, b, sc, core.Values{"b1": 1, "b2": 2})
			rtUpdate(t, a, sc, core.Values{"a1": 1})
		}
		return r, log, a, b
	}
	t.Run("all or nothing", func(t *testing.T) {
		r, log, a, _ := setup(t)
		before, nrec := r.Snapshot(), len(log.Records())
		err := a.Commit(ctx,
			core.Put(rtC0, core.Values{"new": 1}),
			core.Del(rtS0, "a1"),
			core.Put(rtS1, core.Values{"a1": 2, "b2": 3}), // foreign state key
			core.Put(rtC1, core.Values{"new": 1}))
		rtWantReserved(t, err, rtS1, "b2")
		rtUnchanged(t, r, before)
		if len(log.Records()) != nrec {
			t.Fatal("a failed transaction wrote a log record")
		}
	})
	t.Run("first scope in text order", func(t *testing.T) {
		r, _, a, _ := setup(t)
		before := r.Snapshot()
		// Foreign keys in state/net/eth0, config/net/eth0 and config/net-x/eth0:
		// "config/net-x/eth0" < "config/net/eth0" < "state/…" in text order
		// ('-' sorts before '/'), although "net" < "net-x".
		err := a.Commit(ctx,
			core.Put(rtS0, core.Values{"b1": 9}),
			core.Del(rtC0, "b2"),
			core.Del(cnetx, "b2", "a1"),
			core.Put(netx, core.Values{"b1": 9}),
			core.Del(cnetx, "b1", "missing"), // same scope again: its keys join
		)
		rtWantReserved(t, err, cnetx, "b1", "b2")
		rtUnchanged(t, r, before)
	})
	t.Run("config puts are never foreign", func(t *testing.T) {
		r, _, a, _ := setup(t)
		seq := r.Snapshot().Seq()
		if err := a.Commit(ctx, core.Put(rtC0, core.Values{"b1": 5}), core.Put(cnetx, core.Values{"b2": 5})); err != nil {
			t.Fatal(err)
		}
		snap := r.Snapshot()
		if v, _ := snap.Get(rtC0, "b1"); v != int64(5) {
			t.Fatalf("b1 = %v", v)
		}
		if o, _ := snap.Owner(rtC0, "b1"); o != "b" {
			t.Fatalf("b1 owned by %q", o)
		}
		if snap.Seq() != seq+1 {
			t.Fatalf("Seq %d → %d, want one per transaction", seq, snap.Seq())
		}
	})
	t.Run("ops see the working copy", func(t *testing.T) {
		r, log, a, _ := setup(t)
		seq, nrec := r.Snapshot().Seq(), len(log.Records())
		err := a.Commit(ctx,
			core.Put(rtS0, core.Values{"tmp": 1, "keep": 1}),
			core.Del(rtS0, "tmp"), // own new key: fine
			core.Put(rtC1, core.Values{"n": map[string]any{"x": 1}}),
			core.Put(rtC1, core.Values{"n": map[string]any{"y": 2}}), // merges with the previous op
			core.Put(cnetx, core.Values{"gone": 1}),
			core.Del(cnetx), // all of a's keys in cnetx as they stand: a1 and gone
		)
		if err != nil {
			t.Fatal(err)
		}
		snap := r.Snapshot()
		if snap.Seq() != seq+1 || len(log.Records()) != nrec+1 {
			t.Fatalf("Seq %d → %d with %d records; want one of each", seq, snap.Seq(), len(log.Records())-nrec)
		}
		want := map[core.Scope]core.Values{
			rtS0:  {"a1": int64(1), "b1": int64(1), "b2": int64(2), "keep": int64(1)},
			rtC1:  {"a1": int64(1), "b1": int64(1), "b2": int64(2), "n": map[string]any{"x": int64(1), "y": int64(2)}},
			cnetx: {"b1": int64(1), "b2": int64(2)},
		}
		for sc, w := range want {
			if got := snap.Values(sc); !reflect.DeepEqual(got, w) {
				t.Errorf("%s = %#v, want %#v", sc, got, w)
			}
		}
	})
	t.Run("later ops checked after earlier ones", func(t *testing.T) {
		// b's key is foreign however the transaction gets to it.
		r, _, a, _ := setup(t)
		before := r.Snapshot()
		rtWantReserved(t, a.Commit(ctx, core.Del(rtS0, "a1"), core.Put(rtS0, core.Values{"a1": 1, "b1": 1})), rtS0, "b1")
		rtUnchanged(t, r, before)
	})
	t.Run("a bad op fails the transaction", func(t *testing.T) {
		r, _, a, _ := setup(t)
		before := r.Snapshot()
		for _, op := range []core.Op{{}, core.Put(core.Scope{}, core.Values{"x": 1}), core.Put(rtS0, core.Values{"": 1}), core.Del(core.StateScope("a/b", "c"))} {
			if err := a.Commit(ctx, core.Put(rtS0, core.Values{"x": 1}), op); err == nil {
				t.Fatalf("Commit with %+v succeeded", op)
			}
		}
		rtUnchanged(t, r, before)
	})
}

// ---------------------------------------------------------------------------
// R22

func TestR22_Diff(t *testing.T) {
	ctx := t.Context()
	r := rtRegistry(t, core.Options{})
	a := rtOwner(t, r, "a", core.OwnerOptions{})
	b := rtOwner(t, r, "b", core.OwnerOptions{})
	cnetx := core.ConfigScope("net-x", "eth0")
	rtUpdate(t, a, rtS0, core.Values{"same": 1, "change": 1, "gone": "x", "reown": 1})
	rtUpdate(t, a, rtC0, core.Values{"n": map[string]any{"x": 1}})
	s1 := r.Snapshot()
	rtUpdate(t, a, rtS0, core.Values{"change": 2, "nil": nil})
	if err := a.Delete(ctx, rtS0, "gone", "reown"); err != nil {
		t.Fatal(err)
	}
	rtUpdate(t, b, rtS0, core.Values{"reown": 1}) // same value, new owner
	rtUpdate(t, b, rtC0, core.Values{"n": map[string]any{"y": 2}})
	rtUpdate(t, b, cnetx, core.Values{"z": []byte{1}})
	s2 := r.Snapshot()
	want := []core.Change{
		{Scope: cnetx, Key: "z", New: []byte{1}, Exists: true, NewOwner: "b", Layer: core.Runtime},
		{Scope: rtC0, Key: "n", Old: map[string]any{"x": int64(1)}, New: map[string]any{"x": int64(1), "y": int64(2)}, Existed: true, Exists: true, OldOwner: "a", NewOwner: "a", Layer: core.Runtime},
		{Scope: rtS0, Key: "change", Old: int64(1), New: int64(2), Existed: true, Exists: true, OldOwner: "a", NewOwner: "a"},
		{Scope: rtS0, Key: "gone", Old: "x", Existed: true, OldOwner: "a"},
		{Scope: rtS0, Key: "nil", New: nil, Exists: true, NewOwner: "a"},
		{Scope: rtS0, Key: "reown", Old: int64(1), New: int64(1), Existed: true, Exists: true, OldOwner: "a", NewOwner: "b"},
	}
	got := core.Diff(s1, s2)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Diff:\n got  %+v\n want %+v", got, want)
	}
	// Reversed, every change flips.
	back := core.Diff(s2, s1)
	if len(back) != len(want) {
		t.Fatalf("reverse Diff has %d changes, want %d", len(back), len(want))
	}
	for i, c := range back {
		w := want[i]
		if c.Scope != w.Scope || c.Key != w.Key || c.Existed != w.Exists || c.Exists != w.Existed || c.OldOwner != w.NewOwner || !reflect.DeepEqual(c.Old, w.New) {
			t.Fatalf("reverse change %d = %+v, want the flip of %+v", i, c, w)
		}
	}
	if d := core.Diff(s2, s2); len(d) != 0 {
		t.Fatalf("Diff(s, s) = %+v", d)
	}
	if d := core.Diff(core.Snapshot{}, core.Snapshot{}); len(d) != 0 {
		t.Fatalf("Diff of zero snapshots = %+v", d)
	}
	if d := core.Diff(core.Snapshot{}, s2); len(d) != s2.Len(0) {
		t.Fatalf("Diff from zero lists %d changes, want %d", len(d), s2.Len(0))
	}
	// Changes carry copies.
	got[0].New.([]byte)[0] = 9
	if v, _ := s2.Get(cnetx, "z"); !reflect.DeepEqual(v, []byte{1}) {
		t.Fatalf("changing a Diff value changed the snapshot: %v", v)
	}
}

// ---------------------------------------------------------------------------
// Snapshot

func TestSnapshot_Zero(t *testing.T) {
	var s core.Snapshot
	if s.Seq() != 0 || len(s.Map()) != 0 || s.Values(rtS0) != nil || s.Len(0) != 0 || len(s.Owners()) != 0 || len(s.Scopes(0)) != 0 {
		t.Fatalf("zero Snapshot: seq %d, map %v", s.Seq(), s.Map())
	}
	if _, ok := s.Get(rtS0, "k"); ok {
		t.Fatal("Get on the zero Snapshot")
	}
	if _, ok := s.Owner(rtS0, "k"); ok {
		t.Fatal("Owner on the zero Snapshot")
	}
	if js, err := s.MarshalJSON(); err != nil || string(js) != "{}" {
		t.Fatalf("MarshalJSON = %s, %v", js, err)
	}
	// Invalid scopes are simply absent.
	if _, ok := s.Get(core.Scope{}, ""); ok {
		t.Fatal("Get(zero scope)")
	}
}

func TestSnapshot_AccessorsCopy(t *testing.T) {
	r := rtRegistry(t, core.Options{})
	o := rtOwner(t, r, "a", core.OwnerOptions{})
	rtUpdate(t, o, rtC0, core.Values{"b": []byte{1}, "l": []any{"x", map[string]any{"m": 1}}, "m": map[string]any{"x": []byte{2}}})
	snap := r.Snapshot()
	want := snap.Map()

	v, _ := snap.Get(rtC0, "b")
	v.([]byte)[0] = 9
	l, _ := snap.Get(rtC0, "l")
	l.([]any)[0] = "changed"
	l.([]any)[1].(map[string]any)["m"] = 2
	vals := snap.Values(rtC0)
	vals["new"] = 1
	vals["m"].(map[string]any)["x"].([]byte)[0] = 9
	m := snap.Map()
	m["config"].(map[string]any)["net"].(map[string]any)["eth0"].(map[string]any)["b"] = "changed"
	m["state"] = 1
	snap.Walk(0, func(_ core.Scope, _, _ string, _ any) error { return nil })

	for _, s := range []core.Snapshot{snap, r.Snapshot()} {
		if got := s.Map(); !reflect.DeepEqual(got, want) {
			t.Fatalf("after changing returned values: %#v, want %#v", got, want)
		}
	}
}

func TestSnapshot_MarshalJSON(t *testing.T) {
	r := rtRegistry(t, core.Options{})
	o := rtOwner(t, r, "a", core.OwnerOptions{})
	rtUpdate(t, o, rtC0, core.Values{
		"z":     1,
		"b":     []byte("hi"),
		"u":     uint64(math.MaxUint64),
		"i":     int64(math.MinInt64),
		"f":     1.5,
		"nan":   math.NaN(),
		"inf":   math.Inf(-1),
		"s":     "<é\"\n>",
		"nil":   nil,
		"l":     []any{true, map[string]any{"y": 1, "x": 2}},
		"empty": map[string]any{},
	})
	rtUpdate(t, o, core.StateScope("a", "b/c"), core.Values{"k": false})
	js, err := r.Snapshot().MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"config":{"net":{"eth0":{"b":"aGk=","empty":{},"f":1.5,"i":-9223372036854775808,"inf":"-Inf",` +
		`"l":[true,{"x":2,"y":1}],"nan":"NaN","nil":null,"s":"\u003cé\"\n\u003e","u":18446744073709551615,"z":1}}},` +
		`"state":{"a":{"b/c":{"k":false}}}}`
	if string(js) != want {
		t.Fatalf("MarshalJSON:\n got  %s\n want %s", js, want)
	}
	if !json.Valid(js) {
		t.Fatal("not valid JSON")
	}
	// json.Marshal uses the method too.
	viaJSON, err := json.Marshal(r.Snapshot())
	if err != nil || string(viaJSON) != want {
		t.Fatalf("json.Marshal = %s, %v", viaJSON, err)
	}
}

// ---------------------------------------------------------------------------
// The Log (R24's ordering as core sees it)

// Concurrent writers through a Log: records carry strictly increasing
// sequence numbers, and replaying them rebuilds the live config exactly.
func TestLog_ReplayConcurrent(t *testing.T) {
	log := newRecLog()
	r := rtRegistry(t, core.Options{Log: log})
	ctx := t.Context()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			name := []string{"a", "b", "c", "d", "e", "f", "g", "h"}[w]
			for round := range 20 {
				o, err := r.Owner(ctx, name, core.OwnerOptions{KeepConfig: round%3 == 0})
				if err != nil {
					t.Error(err)
					return
				}
				for i := range 10 {
					sc := []core.Scope{rtC0, rtC1, rtS0}[i%3]
					_ = o.Update(ctx, sc, core.Values{name: i, "shared": map[string]any{name: i}})
					if i%4 == 0 {
						_ = o.Commit(ctx, core.Put(rtC1, core.Values{name + "t": i}), core.Del(rtC0, name), core.Put(rtS0, core.Values{name: i}))
					}
				}
				if err := o.Close(); err != nil {
					t.Error(err)
				}
				if round%5 == 4 {
					_ = r.Evict(ctx, name)
				}
			}
		})
	}
	wg.Wait()
	var replay core.Snapshot
	var last uint64
	for _, rec := range log.Records() {
		if rec.Seq <= last {
			t.Fatalf("record seq %d after %d", rec.Seq, last)
		}
		last = rec.Seq
		var err error
		if replay, err = replay.Apply(rec); err != nil {
			t.Fatal(err)
		}
	}
	fail := func(format string, args ...any) bool { t.Helper(); t.Errorf(format, args...); return false }
	mtCheckConfigReplay(replay, r.Snapshot(), fail)
}

// A failed append fails the call with nothing applied, then config writes
// are refused while state keeps working (R29 as far as core goes).
func TestLog_Failure(t *testing.T) {
	ctx := t.Context()
	log := newRecLog()
	boom := errors.New("disk on fire")
	log.failFrom, log.failErr = 2, boom
	r := rtRegistry(t, core.Options{Log: log})
	a := rtOwner(t, r, "a", core.OwnerOptions{})
	rtUpdate(t, a, rtC0, core.Values{"k": 1}) // append 1: fine
	before := r.Snapshot()
	if err := a.Update(ctx, rtC0, core.Values{"k": 2}); !errors.Is(err, boom) || !errors.Is(err, core.ErrLog) {
		t.Fatalf("failed append: %v", err)
	}
	if got := r.Snapshot(); !reflect.DeepEqual(got.Map(), before.Map()) {
		t.Fatalf("a failed append was applied: %v", got.Map())
	}
	if err := a.Update(ctx, rtC1, core.Values{"k": 1}); !errors.Is(err, core.ErrLog) {
		t.Fatalf("config write after the failure: %v, want ErrLog", err)
	}
	rtUpdate(t, a, rtS0, core.Values{"s": 1})
	if v, ok := r.Snapshot().Get(rtS0, "s"); !ok || v != int64(1) {
		t.Fatal("state write after a log failure not visible")
	}
	// Mutations per bucket (R50) count what was published: the failed
	// append and the refused write do not count.
	if st := r.Stats(); st.Mutations != 2 || st.ConfigMutations != 1 || st.StateMutations != 1 {
		t.Errorf("stats after a failed append: %d mutations, %d config, %d state; want 2, 1, 1",
			st.Mutations, st.ConfigMutations, st.StateMutations)
	}
}
