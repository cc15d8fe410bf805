package core

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Reset deletes every key of the named config layers in the config scopes
// that p matches, whoever owns them, as one mutation with one notification
// (R46): a factory reset is Reset(ctx, Pattern{}) — what is left is the
// defaults (and the fleet layer). Layers may be Saved, Runtime and
// Override; none named means Saved and Runtime. The default and fleet
// layers are never reset (ErrReadOnlyLayer), nor is the state bucket: a
// pattern with no bucket means config, one naming the state bucket is
// ErrInvalidScope. Resetting what holds nothing is a no-op (R6).
func (r *Registry) Reset(ctx context.Context, p Pattern, layers ...Layer) error {
	return r.reset(ctx, p, nil, layers)
}

// ResetKeys is Reset of the named keys of one config scope only (R46):
// "back to the default" for single settings ('sysregd reset SCOPE KEY…').
// Keys the layers do not hold are skipped; no keys means every key of the
// scope, as Reset of the scope.
func (r *Registry) ResetKeys(ctx context.Context, scope Scope, keys []string, layers ...Layer) error {
	if scope.Bucket != Config {
		return fmt.Errorf("%w: reset: %s: only config scopes are reset (R46)", ErrInvalidScope, scope)
	}
	if err := scope.Validate(); err != nil {
		return err
	}
	for _, k := range keys {
		if k == "" {
			return fmt.Errorf("%w: reset: empty key", ErrInvalidValue)
		}
	}
	return r.reset(ctx, Pattern{Bucket: Config, Type: scope.Type, Subtype: scope.Subtype}, keys, layers)
}

// reset is Reset restricted to keys (none: every key).
func (r *Registry) reset(ctx context.Context, p Pattern, only []string, layers []Layer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.Bucket == State {
		return fmt.Errorf("%w: reset: the state bucket is never reset (R46)", ErrInvalidScope)
	}
	p.Bucket = Config
	if err := p.Validate(); err != nil {
		return err
	}
	if len(layers) == 0 {
		layers = []Layer{Saved, Runtime}
	}
	for _, l := range layers {
		switch {
		case l == Default || l == Fleet:
			return fmt.Errorf("%w: reset: the %s layer is never reset (R46)", ErrReadOnlyLayer, l)
		case !l.Writable():
			return fmt.Errorf("%w: reset: layer %d", ErrInvalidLayer, l)
		}
	}
	layers = slices.Compact(slices.Sorted(slices.Values(layers)))
	return r.mutate(func(t *txn) error {
		for _, l := range layers {
			type scopeKeys struct {
				sc   Scope
				keys []string
			}
			var found []scopeKeys
			t.st.tree(Config, l).each(func(lf *hleaf[keysMap]) bool {
				if sc := splitScopeKey(Config, lf.key); p.Matches(sc) {
					keys := make([]string, 0, lf.val.len())
					lf.val.each(func(kl *hleaf[entry]) bool {
						if len(only) > 0 && !slices.Contains(only, kl.key) {
							return true
						}
						keys = append(keys, kl.key)
						return true
					})
					if len(keys) > 0 {
						slices.Sort(keys)
						found = append(found, scopeKeys{sc, keys})
					}
				}
				return true
			})
			slices.SortFunc(found, func(a, b scopeKeys) int { return strings.Compare(a.sc.String(), b.sc.String()) })
			for _, f := range found {
				t.remove(f.sc, l, f.keys)
			}
		}
		return nil
	})
}
