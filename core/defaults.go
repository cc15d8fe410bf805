package core

import (
	"context"
	"fmt"
	"slices"
)

// normalizeLayer checks and normalises the scopes and values of a whole
// layer write (SetDefaults, SetFleet): config scopes only, values as R2
// says, each scope's values within the update size limit.
//
// owned: the caller hands the values over; values already in normal form
// are kept as they are, checked but not copied.
func (r *Registry) normalizeLayer(what string, in map[Scope]Values, owned bool) (map[Scope]Values, error) {
	out := make(map[Scope]Values, len(in))
	for sc, vals := range in {
		if err := sc.Validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if sc.Bucket != Config {
			return nil, fmt.Errorf("%s: %w: %s: only config scopes have layers", what, ErrInvalidScope, sc)
		}
		normalize := NormalizeValues
		if owned {
			normalize = NormalizeOwnedValues
		}
		nv, size, err := normalize(vals)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", what, sc, err)
		}
		if size > r.maxBytes {
			return nil, fmt.Errorf("%s: %w: %d bytes in %s, the limit is %d", what, ErrTooLarge, size, sc, r.maxBytes)
		}
		out[sc] = nv
	}
	return out, nil
}

// SetDefaults replaces the whole default layer (R40) with defaults, as one
// mutation: the keys whose effective value changes take its sequence
// number (R42) and subscribers get one notification. Defaults are never
// journaled (R41). Replacing them with what they already are is no
// mutation at all (R6) — except that right after a recovery whose
// checkpoint held values of unjournaled layers, the first SetDefaults also
// renews the metadata of those keys. Bad input (a state scope, an invalid
// value, a scope beyond the size limit) fails as a whole and changes
// nothing.
func (r *Registry) SetDefaults(ctx context.Context, defaults map[Scope]Values) error {
	return r.setDefaults(ctx, defaults, false)
}

// SetDefaultsOwned is SetDefaults for values that the caller hands over
// and never touches again — typically just decoded from a defaults file
// and normalised (NormalizeValues) while checking it: values already in
// normal form are checked in place and kept as they are, not normalised
// and copied a second time. Values not in normal form are normalised as
// SetDefaults does.
func (r *Registry) SetDefaultsOwned(ctx context.Context, defaults map[Scope]Values) error {
	return r.setDefaults(ctx, defaults, true)
}

func (r *Registry) setDefaults(ctx context.Context, defaults map[Scope]Values, owned bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	norm, err := r.normalizeLayer("defaults", defaults, owned)
	if err != nil {
		return err
	}
	// The layer is built in bulk: each map once from its whole key set.
	scopes := make([]hleaf[keysMap], 0, len(norm))
	var ls []hleaf[entry]
	for sc, vals := range norm {
		if len(vals) == 0 {
			continue
		}
		ls = ls[:0]
		for k, v := range vals {
			ls = append(ls, hleaf[entry]{key: k, val: entry{val: v}})
		}
		km, _, _ := buildHmap(ls) // a map's keys are distinct
		k := scopeKey(sc.Type, sc.Subtype)
		scopes = append(scopes, hleaf[keysMap]{key: k, val: km})
	}
	layer, _, _ := buildHmap(scopes) // distinct scopes: distinct keys

	return r.mutate(func(t *txn) error {
		old := t.st.lay().layers[Default-1]
		type change struct {
			k    string
			keys []string
		}
		var changes []change
		diffMaps(old, layer, func(x, y *hleaf[keysMap]) bool {
			k, ka, kb := leafKV(x, y)
			var keys []string
			diffMaps(ka, kb, func(x, y *hleaf[entry]) bool {
				if x != nil && y != nil && equalValue(x.val.val, y.val.val) {
					return true
				}
				key, _, _ := leafKV(x, y)
				keys = append(keys, key)
				return true
			})
			if len(keys) > 0 {
				changes = append(changes, change{k, keys})
			}
			return true
		})
		if len(changes) > 0 {
			t.layW().layers[Default-1] = layer
			t.changed = true
			for _, c := range changes {
				t.settle(splitScopeKey(Config, c.k), c.k, hashKey(c.k), c.keys)
			}
		}
		t.settleStale()
		return nil
	})
}

// SetFleet replaces the fleet layer's values (R37, R53) of each scope in
// scopes as one mutation, journaled (R41): afterwards the layer holds
// exactly vals in that scope; nil or empty vals remove the scope from the
// layer. Scopes not named are left alone. Fleet keys have the owner "".
// It is what a fleet bridge calls; owners cannot write the fleet layer
// (ErrReadOnlyLayer). Bad input fails as a whole and changes nothing.
func (r *Registry) SetFleet(ctx context.Context, scopes map[Scope]Values) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	norm, err := r.normalizeLayer("fleet", scopes, false)
	if err != nil {
		return err
	}
	order := make([]Scope, 0, len(norm))
	for sc := range norm {
		order = append(order, sc)
	}
	slices.SortFunc(order, compareScopes) // records list ops in a stable order
	return r.mutate(func(t *txn) error {
		for _, sc := range order {
			vals := norm[sc]
			var gone []string
			t.st.layerScope(Fleet, sc).each(func(l *hleaf[entry]) bool {
				if _, ok := vals[l.key]; !ok {
					gone = append(gone, l.key)
				}
				return true
			})
			slices.Sort(gone)
			t.remove(sc, Fleet, gone)
			if len(vals) > 0 {
				t.set("", sc, Fleet, vals)
			}
		}
		return nil
	})
}
