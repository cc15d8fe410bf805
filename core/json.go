package core

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrNumberRange: a JSON number that no value type of R2 holds exactly.
var ErrNumberRange = errors.New("out of range")

// FromJSON turns a value decoded by encoding/json with UseNumber into R2's
// types, in place: a json.Number without fraction or exponent becomes int64,
// or uint64 above the int64 range; any other number float64. A number that
// fits none of them exactly enough — an integer beyond uint64 or below
// int64, a float beyond ±1.8e308 — is an error matching ErrNumberRange,
// never a silent +Inf or a float that lost digits. The command line and
// defaults files (R40) read values with it.
func FromJSON(v any) (any, error) {
	var err error
	switch x := v.(type) {
	case json.Number:
		s := string(x)
		if !strings.ContainsAny(s, ".eE") {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil {
				return i, nil
			}
			if u, err := strconv.ParseUint(s, 10, 64); err == nil {
				return u, nil
			}
			return nil, fmt.Errorf("integer %s is %w: integers are int64 or uint64 (−2^63 … 2^64−1); quote it to store it as a string", s, ErrNumberRange)
		}
		f, perr := strconv.ParseFloat(s, 64)
		if perr != nil || math.IsInf(f, 0) {
			return nil, fmt.Errorf("number %s is %w of float64 (±1.8e308); quote it to store it as a string", s, ErrNumberRange)
		}
		return f, nil
	case []any:
		for i, e := range x {
			if x[i], err = FromJSON(e); err != nil {
				return nil, err
			}
		}
	case map[string]any:
		for k, e := range x {
			if x[k], err = FromJSON(e); err != nil {
				return nil, err
			}
		}
	}
	return v, nil
}

// MergeValue is R4's deep merge of nv over old: where both are maps they
// merge recursively, otherwise nv replaces old. Neither input is modified.
func MergeValue(old, nv any) any { return mergeValue(old, nv) }
