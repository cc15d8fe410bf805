package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"strings"

	"github.com/sysreg/sysreg/core"
)

// Values on the command line and in the output.
//
// In: a value is JSON where it is one JSON value, else the string as given
// (R33). A JSON integer is int64, or uint64 above the int64 range; a number
// with a fraction or an exponent is float64. A number that fits none of
// them exactly enough — an integer beyond uint64 or below int64, a float
// beyond ±1.8e308 — is an error, never a silent +Inf or a float that lost
// digits (issue 8 item 7); quote it ('"1e400"') to store the text.
//
// Out: JSON as core.ValueJSON writes it (keys sorted, []byte as base64, NaN
// and ±Inf as strings), with one rule added so that scripts can tell the
// types apart: a float always has a '.' or an exponent (1.0, 2.5, 1e+21),
// an integer never does (1).

// parseValue reads a command line value.
func parseValue(s string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return s, nil
	}
	if _, err := dec.Token(); err != io.EOF {
		return s, nil // trailing data: "1 2", "{} x"
	}
	return convertNumbers(v)
}

// errNumberRange: a number on the command line that no value type holds.
var errNumberRange = core.ErrNumberRange

// convertNumbers turns json.Numbers into R2 integers and floats, in place.
func convertNumbers(v any) (any, error) { return core.FromJSON(v) }

// maxValueFile bounds what set reads for one @FILE value; the registry
// refuses updates above its limit (1 MiB by default, R2) anyway.
const maxValueFile = 64 << 20

// readValue reads the value of key=@FILE or key=@- (stdin): []byte with
// asBytes, else the text parsed as a command line value, without one
// trailing newline (as the shell's $(cat FILE) would drop it).
func readValue(name string, stdin io.Reader, asBytes bool) (any, error) {
	var r io.Reader
	if name == "-" {
		r = stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxValueFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxValueFile {
		return nil, fmt.Errorf("more than %d MiB", maxValueFile>>20)
	}
	if asBytes {
		return data, nil
	}
	data = bytes.TrimSuffix(data, []byte("\n"))
	data = bytes.TrimSuffix(data, []byte("\r"))
	return parseValue(string(data))
}

// valueJSON renders v as compact JSON with the float rule above. It does
// not modify v.
func valueJSON(v any) []byte { return core.ValueJSON(markFloats(v)) }

// snapshotJSON renders a whole view (R3).
func snapshotJSON(s core.Snapshot) []byte { return valueJSON(s.Map()) }

// markFloats returns v with each finite float64 replaced by a json.Number
// that reads as a float, so that core.ValueJSON writes 1.0 rather than 1.
// Maps and slices are copied, v is left alone (it may be a snapshot's).
func markFloats(v any) any {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return x // core writes them as strings
		}
		b, _ := json.Marshal(x)
		if !bytes.ContainsAny(b, ".eE") {
			b = append(b, ".0"...)
		}
		return json.Number(b)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = markFloats(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = markFloats(e)
		}
		return out
	}
	return v
}

// figuresTree returns v (a struct of figures, such as store.Stats) as maps,
// slices and scalars, keyed by the fields' JSON names, so that markFloats
// can apply the float rule to it: a figure that is a float prints as one
// (0.0, 1.0) and a count never does. A nil pointer, and an empty field
// tagged omitempty, are left out, as encoding/json leaves them; a type with
// its own MarshalJSON (time.Time) is kept as it is.
func figuresTree(v any) any { return figuresValue(reflect.ValueOf(v)) }

var jsonMarshaler = reflect.TypeFor[json.Marshaler]()

func figuresValue(v reflect.Value) any {
	if !v.IsValid() {
		return nil
	}
	if v.Type().Implements(jsonMarshaler) {
		return v.Interface()
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return figuresValue(v.Elem())
	case reflect.Struct:
		out := map[string]any{}
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			fv := v.Field(i)
			if (strings.Contains(opts, "omitempty") || fv.Kind() == reflect.Pointer) && fv.IsZero() {
				continue
			}
			out[name] = figuresValue(fv)
		}
		return out
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return nil
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = figuresValue(v.Index(i))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		out := make(map[string]any, v.Len())
		for it := v.MapRange(); it.Next(); {
			out[fmt.Sprint(it.Key().Interface())] = figuresValue(it.Value())
		}
		return out
	case reflect.Float32, reflect.Float64:
		return v.Float()
	}
	return v.Interface()
}
