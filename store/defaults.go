package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/sysreg/sysreg/core"
)

// ErrNoDefaults: ReloadDefaults on a store opened without DefaultsDir.
var ErrNoDefaults = errors.New("store: no defaults directory (Options.DefaultsDir) configured")

// DefaultsError is a defaults file that cannot be loaded (R40): the file,
// the position (line and column, 1-based; 0 when the problem is the shape
// or a value rather than the syntax), and what is wrong.
type DefaultsError struct {
	Path         string
	Line, Column int
	Reason       string
	Err          error // the underlying error, if any (core.ErrInvalidValue, …)
}

func (e *DefaultsError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("store: defaults file %s:%d:%d: %s", e.Path, e.Line, e.Column, e.Reason)
	}
	return fmt.Sprintf("store: defaults file %s: %s", e.Path, e.Reason)
}

func (e *DefaultsError) Unwrap() error { return e.Err }

// maxDefaultsFile bounds what one defaults file may hold.
const maxDefaultsFile = 64 << 20

// loadDefaults reads the defaults directory dir (R40): its *.json files in
// name order, each {"type": {"subtype": {key: value}}}, deep-merged (R4),
// a later file winning where both hold a non-map value (logged at debug).
// Every problem is an error naming the file; nothing is returned half.
// Subdirectories and files of other names are ignored.
func loadDefaults(dir string, maxBytes int, logger hclog.Logger) (map[core.Scope]core.Values, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("store: defaults directory: %w", err)
	}
	out := map[core.Scope]core.Values{}
	from := map[core.Scope]map[string]string{} // scope → key → the file that set it
	for _, e := range entries {                // os.ReadDir sorts by name
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		file, err := readDefaultsFile(path, maxBytes)
		if err != nil {
			return nil, err
		}
		for _, sc := range sortedScopes(file) {
			vals := file[sc]
			if out[sc] == nil {
				out[sc], from[sc] = core.Values{}, map[string]string{}
			}
			for k, v := range vals {
				if old, ok := out[sc][k]; ok {
					logger.Debug("defaults key set again by a later file", "scope", sc, "key", k, "file", path, "previous", from[sc][k])
					v = core.MergeValue(old, v)
				}
				out[sc][k], from[sc][k] = v, path
			}
		}
	}
	return out, nil
}

func sortedScopes(m map[core.Scope]core.Values) []core.Scope {
	out := make([]core.Scope, 0, len(m))
	for sc := range m {
		out = append(out, sc)
	}
	slices.SortFunc(out, func(a, b core.Scope) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// readDefaultsFile reads and checks one defaults file.
func readDefaultsFile(path string, maxBytes int) (map[core.Scope]core.Values, error) {
	data, err := readLimited(path, maxDefaultsFile)
	if err != nil {
		return nil, &DefaultsError{Path: path, Reason: err.Error(), Err: err}
	}
	return parseConfigJSON(path, data, maxBytes, "a defaults file")
}

// parseConfigJSON reads data, the JSON document {"type": {"subtype":
// {"key": value}}} of the file path — a defaults file (R40) or an export
// (R45), what names it in errors — into normalised config values. Every
// problem is a *DefaultsError with the position where there is one.
func parseConfigJSON(path string, data []byte, maxBytes int, what string) (map[core.Scope]core.Values, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, syntaxError(path, data, dec.InputOffset(), err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, syntaxError(path, data, dec.InputOffset(), errors.New("data after the top-level object"))
	}
	shape := func(format string, args ...any) error {
		return &DefaultsError{Path: path, Reason: fmt.Sprintf(format, args...) +
			"; " + what + ` is {"type": {"subtype": {"key": value}}}`}
	}
	types, ok := doc.(map[string]any)
	if !ok {
		return nil, shape("the top level is %s, not an object", jsonKind(doc))
	}
	out := map[core.Scope]core.Values{}
	for typ, st := range types {
		subs, ok := st.(map[string]any)
		if !ok {
			return nil, shape("type %q is %s, not an object", typ, jsonKind(st))
		}
		for sub, kv := range subs {
			vals, ok := kv.(map[string]any)
			if !ok {
				return nil, shape("%s/%s is %s, not an object", typ, sub, jsonKind(kv))
			}
			sc := core.ConfigScope(typ, sub)
			if err := sc.Validate(); err != nil {
				return nil, &DefaultsError{Path: path, Reason: err.Error(), Err: err}
			}
			conv, err := core.FromJSON(map[string]any(vals))
			if err != nil {
				return nil, &DefaultsError{Path: path, Reason: fmt.Sprintf("%s: %v", sc, err), Err: err}
			}
			// conv is this document's own: normalised in place, not copied.
			norm, size, err := core.NormalizeOwnedValues(conv.(map[string]any))
			if err != nil {
				return nil, &DefaultsError{Path: path, Reason: fmt.Sprintf("%s: %v", sc, err), Err: err}
			}
			if size > maxBytes {
				err := fmt.Errorf("%w: %d bytes in %s, the limit is %d", core.ErrTooLarge, size, sc, maxBytes)
				return nil, &DefaultsError{Path: path, Reason: err.Error(), Err: err}
			}
			out[sc] = norm
		}
	}
	return out, nil
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}

// syntaxError turns a JSON decoding error into a DefaultsError with the
// line and column of the offset where it was found.
func syntaxError(path string, data []byte, off int64, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off = se.Offset - 1 // Offset counts the offending byte
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		off, err = int64(len(data)), errors.New("unexpected end of file")
	}
	off = min(max(off, 0), int64(len(data)))
	line, col := 1, 1
	for _, c := range data[:off] {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return &DefaultsError{Path: path, Line: line, Column: col, Reason: err.Error(), Err: err}
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	}
	return "an object"
}

// ReloadDefaults reads the defaults directory again and replaces the
// default layer with what it holds (R40), as one mutation with one
// notification — or none at all if nothing changed (R6). A file that
// cannot be loaded fails the reload with a *DefaultsError naming it and
// the position; the previous defaults stay. Reloads are serialised.
func (s *Store) ReloadDefaults(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return ErrClosed
	}
	if s.defaultsDir == "" {
		return ErrNoDefaults
	}
	s.defaultsMu.Lock()
	defer s.defaultsMu.Unlock()
	d, err := loadDefaults(s.defaultsDir, s.maxBytes, s.logger)
	if err != nil {
		return err
	}
	if err := s.reg.SetDefaultsOwned(ctx, d); err != nil {
		return err
	}
	s.logger.Info("defaults reloaded", "dir", s.defaultsDir, "scopes", len(d))
	return nil
}

// SetFleet replaces the fleet layer's values of the given scopes (R37,
// R53), journaled; see core.Registry.SetFleet. The fleet bridge calls it.
func (s *Store) SetFleet(ctx context.Context, scopes map[core.Scope]core.Values) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return s.reg.SetFleet(ctx, scopes)
}
