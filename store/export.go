package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/fxamacker/cbor/v2"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/codec"
)

// Export and import (R45).
//
// An export holds config values as {"type": {"subtype": {key: value}}},
// the shape of a defaults file (R40), in one of two forms:
//
//   - JSON, as a person reads and edits it. Every value reads back as the
//     same R2 value: an integer is int64 (uint64 only above the int64
//     range), a float always has a '.' or an exponent. Values JSON cannot
//     hold that way — bytes, NaN and ±Inf, and a uint64 that fits int64
//     (it would come back as an int64) — make the JSON export fail with
//     ErrNotJSON naming the key: use the CBOR form.
//   - CBOR, which keeps every type exactly: the array
//     ["sysreg-export", 1, {type: {subtype: {key: value}}}] with values
//     encoded as internal/codec encodes them (uint64 tagged, floats as
//     float64) — the encoding of the journal and the socket.
//
// Import reads either form (it tells them apart by the first byte: '{' or
// white space is JSON) and applies it into the saved layer as one
// transaction (R15): all of it or, on any error, nothing.

var (
	// ErrNoMatch: an export whose pattern matches no config scope (in
	// the layer asked for). Nothing is written.
	ErrNoMatch = errors.New("store: export: no config scope matches")
	// ErrNotJSON: a value that JSON cannot hold exactly; export with CBOR.
	// It is core.ErrNotJSON.
	ErrNotJSON = core.ErrNotJSON
	// ErrBadImport: a file that is not an export of either form, or whose
	// values break R1/R2. Nothing is applied.
	ErrBadImport = errors.New("store: import: not a sysreg export")
)

// exportMagic and exportVersion open the CBOR form.
const (
	exportMagic   = "sysreg-export"
	exportVersion = 1
)

// ExportOptions say what Export writes. The zero value exports the
// effective config view as JSON.
type ExportOptions struct {
	// Layer exports one layer's own values (R37); 0: the effective view.
	Layer core.Layer
	// CBOR writes the CBOR form, which keeps every type; else JSON.
	CBOR bool
}

// Export writes the config of snap in the scopes p matches (a pattern with
// no bucket means config; the state bucket is never exported) as an export
// file (see above). A pattern that matches no scope is ErrNoMatch; a value
// JSON cannot hold, with JSON, ErrNotJSON naming it.
func Export(snap core.Snapshot, p core.Pattern, opts ExportOptions) ([]byte, error) {
	if p.Bucket == core.State {
		return nil, fmt.Errorf("%w: export: only config is exported, not state", core.ErrInvalidScope)
	}
	p.Bucket = core.Config
	if err := p.Validate(); err != nil {
		return nil, err
	}
	scopes, values := snap.Scopes(core.Config), snap.Values
	if opts.Layer != 0 {
		if opts.Layer > core.Override {
			return nil, fmt.Errorf("%w: export: layer %d", core.ErrInvalidLayer, opts.Layer)
		}
		scopes = snap.LayerScopes(opts.Layer)
		values = func(sc core.Scope) core.Values { return snap.LayerValues(opts.Layer, sc) }
	}
	doc := map[string]any{}
	for _, sc := range scopes {
		if !p.Matches(sc) {
			continue
		}
		subs, _ := doc[sc.Type].(map[string]any)
		if subs == nil {
			subs = map[string]any{}
			doc[sc.Type] = subs
		}
		subs[sc.Subtype] = map[string]any(values(sc))
	}
	if len(doc) == 0 {
		in := ""
		if opts.Layer != 0 {
			in = " in layer " + opts.Layer.String()
		}
		return nil, fmt.Errorf("%w %s%s", ErrNoMatch, p, in)
	}
	if opts.CBOR {
		body, err := codec.EncodeValue(doc)
		if err != nil {
			return nil, fmt.Errorf("store: export: %w", err)
		}
		return cbor.Marshal([]any{exportMagic, exportVersion, cbor.RawMessage(body)})
	}
	// JSON, exact (core.ExactJSON), assembled scope by scope so that an
	// error names the scope.
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, typ := range slices.Sorted(maps.Keys(doc)) {
		if i > 0 {
			buf.WriteByte(',')
		}
		b, _ := json.Marshal(typ) // a string always marshals
		buf.Write(b)
		buf.WriteString(":{")
		subs := doc[typ].(map[string]any)
		for j, sub := range slices.Sorted(maps.Keys(subs)) {
			if j > 0 {
				buf.WriteByte(',')
			}
			b, _ := json.Marshal(sub)
			buf.Write(b)
			buf.WriteByte(':')
			js, err := core.ExactJSON(subs[sub])
			if err != nil {
				return nil, fmt.Errorf("store: export %s: %w; export the CBOR form (ExportOptions.CBOR, sysregd export --cbor), which keeps every type",
					core.ConfigScope(typ, sub), err)
			}
			buf.Write(js)
		}
		buf.WriteByte('}')
	}
	buf.WriteString("}\n")
	return buf.Bytes(), nil
}

// ParseExport reads an export file of either form (data, named name in
// errors) into config values, checked and normalised as a write would be
// (R1, R2). Anything else is an error matching ErrBadImport.
func ParseExport(name string, data []byte) (map[core.Scope]core.Values, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '{' {
		out, err := parseConfigJSON(name, data, math.MaxInt, "an export")
		var de *DefaultsError
		if errors.As(err, &de) { // the same checks as a defaults file's, named as an import's
			at := de.Path
			if de.Line > 0 {
				at = fmt.Sprintf("%s:%d:%d", de.Path, de.Line, de.Column)
			}
			return nil, fmt.Errorf("%w: %s: %w", ErrBadImport, at, &reasonError{de.Reason, de.Err})
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadImport, err)
		}
		return out, nil
	}
	var env struct {
		_       struct{} `cbor:",toarray"`
		Magic   string
		Version uint64
		Body    cbor.RawMessage
	}
	if err := cbor.Unmarshal(data, &env); err != nil || env.Magic != exportMagic {
		return nil, fmt.Errorf(`%w: %s is neither JSON {"type": {"subtype": {"key": value}}} nor a CBOR export (sysregd export --cbor)`, ErrBadImport, name)
	}
	if env.Version != exportVersion {
		return nil, fmt.Errorf("%w: %s is a CBOR export of version %d; this build reads version %d", ErrBadImport, name, env.Version, exportVersion)
	}
	doc, err := codec.DecodeValue(env.Body)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadImport, name, err)
	}
	types, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: %s: the body is a %T, not a map of types", ErrBadImport, name, doc)
	}
	out := map[core.Scope]core.Values{}
	for typ, st := range types {
		subs, ok := st.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: %s: type %q is a %T, not a map of subtypes", ErrBadImport, name, typ, st)
		}
		for sub, vals := range subs {
			m, ok := vals.(map[string]any)
			sc := core.ConfigScope(typ, sub)
			if !ok {
				return nil, fmt.Errorf("%w: %s: %s is a %T, not a map of keys", ErrBadImport, name, sc, vals)
			}
			if err := sc.Validate(); err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrBadImport, name, err)
			}
			norm, _, err := core.NormalizeValues(m)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %s: %w", ErrBadImport, name, sc, err)
			}
			out[sc] = norm
		}
	}
	return out, nil
}

// Import applies config values (ParseExport's) into the saved layer as
// owner name, as one transaction (R15, R45): all or nothing. The owner
// session is opened with Layer Saved and closed again (its saved keys
// stay, R13). Keys that exist in saved keep their owner (R11). It returns
// the number of keys written. Nothing to import is a no-op.
func Import(ctx context.Context, reg Registry, name string, scopes map[core.Scope]core.Values) (int, error) {
	o, err := reg.Owner(ctx, name, core.OwnerOptions{Layer: core.Saved})
	if err != nil {
		return 0, fmt.Errorf("store: import: %w", err)
	}
	ops := make([]core.Op, 0, len(scopes))
	n := 0
	for _, sc := range slices.SortedFunc(func(yield func(core.Scope) bool) {
		for sc := range scopes {
			if !yield(sc) {
				return
			}
		}
	}, func(a, b core.Scope) int { return strings.Compare(a.String(), b.String()) }) {
		ops = append(ops, core.Put(sc, scopes[sc]))
		n += len(scopes[sc])
	}
	if len(ops) > 0 {
		err = o.Commit(ctx, ops...)
	}
	if cerr := o.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("store: import: %w", err)
	}
	return n, nil
}

// reasonError is a message that wraps its cause without repeating it.
type reasonError struct {
	msg string
	err error // may be nil
}

func (e *reasonError) Error() string { return e.msg }
func (e *reasonError) Unwrap() error { return e.err }
