package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/sysreg/sysreg/core"
)

// What the reading commands compute from a snapshot: a view restricted to
// a pattern, one raw value, the owners, and the changes between two views.

// isPattern reports whether get's argument is a pattern rather than one
// scope: it has a '*' or fewer than three parts ("config/wifi").
func isPattern(arg string) bool {
	if strings.Contains(arg, "*") {
		return true
	}
	_, err := core.ParseScope(arg)
	return err != nil
}

// patternView is the global view's shape (R3) restricted to the scopes p
// matches: {"config": {"wifi": {"wlan0": {…}}}}; {} when none matches.
func patternView(s core.Snapshot, p core.Pattern) map[string]any {
	return patternShape(s, p, func(sc core.Scope) map[string]any { return s.Values(sc) })
}

// patternShape is patternView with each scope's object made by vals.
func patternShape(s core.Snapshot, p core.Pattern, vals func(core.Scope) map[string]any) map[string]any {
	out := map[string]any{}
	for _, sc := range s.Scopes(0) {
		if !p.Matches(sc) {
			continue
		}
		b := sc.Bucket.String()
		types, _ := out[b].(map[string]any)
		if types == nil {
			types = map[string]any{}
			out[b] = types
		}
		subs, _ := types[sc.Type].(map[string]any)
		if subs == nil {
			subs = map[string]any{}
			types[sc.Type] = subs
		}
		subs[sc.Subtype] = vals(sc)
	}
	return out
}

// originView is what get --origin prints for a scope (R38, R42): per key,
// the effective value and where it comes from — {"value", "layer",
// "owner", "create_seq", "mod_seq", "version", "modified"}; a state key has
// no "layer".
func originView(s core.Snapshot, sc core.Scope) map[string]any {
	out := map[string]any{}
	for k, v := range s.Values(sc) {
		m, _ := s.Meta(sc, k)
		out[k] = originOf(v, m)
	}
	return out
}

// originOf is one key of originView.
func originOf(v any, m core.KeyMeta) map[string]any {
	mo := metaJSON(m)
	o := map[string]any{
		"value":      v,
		"owner":      mo.Owner,
		"create_seq": mo.CreateSeq,
		"mod_seq":    mo.ModSeq,
		"version":    mo.Version,
		"modified":   mo.Modified,
	}
	if mo.Layer != "" {
		o["layer"] = mo.Layer
	}
	return o
}

// writeRaw writes one value for shell scripts (get SCOPE KEY): a string as
// it is, bytes as they are (no newline: 'get … > file' round-trips with
// 'set --bytes key=@file'), anything else as JSON; text ends with a
// newline.
func writeRaw(w io.Writer, v any) error {
	var err error
	switch x := v.(type) {
	case string:
		_, err = io.WriteString(w, x+"\n")
	case []byte:
		_, err = w.Write(x)
	default:
		_, err = w.Write(append(valueJSON(x), '\n'))
	}
	return err
}

// heldBy is what name holds in s: scope text → sorted keys, and the count.
func heldBy(s core.Snapshot, name string) (map[string][]string, int) {
	held, n := map[string][]string{}, 0
	s.Walk(0, func(sc core.Scope, key, owner string, _ any) error {
		if owner == name {
			held[sc.String()] = append(held[sc.String()], key)
			n++
		}
		return nil
	})
	return held, n
}

// changeOut is one change in 'watch --diff'.
type changeOut struct {
	Scope string `json:"scope"`
	Key   string `json:"key"`
	Op    string `json:"op"`              // "add", "change" or "delete"
	Value any    `json:"value,omitempty"` // the new value (add, change)
	Old   any    `json:"old,omitempty"`   // the old value (change, delete)
	Owner string `json:"owner"`
}

// diffJSON renders the changes from old to new in the scopes p matches
// (every scope with whole) as {"seq": N, "changes": […]}.
func diffJSON(old, new core.Snapshot, p core.Pattern, whole bool) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `{"seq":%d,"changes":[`, new.Seq())
	n := 0
	for _, c := range core.Diff(old, new) {
		if !whole && !p.Matches(c.Scope) {
			continue
		}
		co := changeOut{Scope: c.Scope.String(), Key: c.Key, Owner: c.NewOwner}
		switch {
		case !c.Existed:
			co.Op, co.Value = "add", c.New
		case !c.Exists:
			co.Op, co.Old, co.Owner = "delete", c.Old, c.OldOwner
		default:
			co.Op, co.Value, co.Old = "change", c.New, c.Old
		}
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		fmt.Fprintf(&b, `{"scope":%s,"key":%s,"op":"%s"`, valueJSON(co.Scope), valueJSON(co.Key), co.Op)
		if co.Op != "delete" {
			fmt.Fprintf(&b, `,"value":%s`, valueJSON(co.Value))
		}
		if co.Op != "add" {
			fmt.Fprintf(&b, `,"old":%s`, valueJSON(co.Old))
		}
		fmt.Fprintf(&b, `,"owner":%s}`, valueJSON(co.Owner))
	}
	b.WriteString("]}")
	return []byte(b.String())
}
