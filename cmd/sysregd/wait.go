package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

// waitCmd is "sysregd wait SCOPE key[=value]…" (R49): a boot script's
// wait_for_prop. It subscribes to SCOPE and checks every delivery — the
// first is the current view (R16), so a condition that already holds
// returns at once and nothing is polled.
func waitCmd() *cobra.Command {
	var cf clientFlags
	cmd := command("wait [flags] SCOPE key[=value]…",
		"wait until a scope holds keys (with values)",
		`Waits until SCOPE (bucket/type/subtype) holds every named key, and exits 0 as
soon as it does (R49). 'key' alone waits for the key to exist, with any value;
'key=value' waits for that value, compared as JSON: value is read as 'set'
reads it (JSON where it parses, else a string), so up=true wants the boolean
true and name=eth0 the string "eth0"; numbers compare by value (1 and 1.0
are equal), objects by their members, whatever their order.

It subscribes to the scope: the first delivery is the current view, so a
condition that already holds returns at once, and later changes wake it
without polling. At --timeout (default 30s; 0: wait forever) it exits 1 and
says on stderr what is still missing; a daemon that is not running is exit
1 at once. Prints nothing on success.

examples:
  sysregd wait state/net/wan up=true --timeout 30s
  sysregd wait config/ntp/main servers`,
		nil)
	cf = addClientFlags(cmd, true)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		scope, conds, err := waitArgs(args)
		if err != nil {
			return err
		}
		if *cf.timeout < 0 {
			return usagef("wait: negative --timeout")
		}
		c, ctx, cancel, err := cf.dial(cmd.Context())
		if err != nil {
			return err
		}
		defer cancel()
		defer c.Close()
		sub, err := c.Subscribe(ctx, core.SubscribeOptions{
			Match: core.Pattern(scope),
		})
		if err != nil {
			if ctx.Err() != nil {
				return waitTimeout(*cf.timeout, scope, conds, core.Snapshot{})
			}
			return fmt.Errorf("wait: %w", err)
		}
		defer sub.Close()
		var last core.Snapshot
		for {
			select {
			case <-ctx.Done():
				if cmd.Context().Err() != nil {
					return fmt.Errorf("wait: %w", cmd.Context().Err())
				}
				return waitTimeout(*cf.timeout, scope, conds, last)
			case snap, ok := <-sub.C():
				if !ok {
					if ctx.Err() != nil {
						continue // the timeout, reported above
					}
					return fmt.Errorf("wait: %w: the daemon ended the subscription", store.ErrConnLost)
				}
				last = snap
				if len(unmet(snap, scope, conds)) == 0 {
					return nil
				}
			}
		}
	}
	return cmd
}

// waitCond is one key[=value] argument of wait.
type waitCond struct {
	key      string
	want     any
	hasValue bool
	text     string // the value as given, for messages
}

// waitArgs parses wait's arguments: a scope and at least one condition.
func waitArgs(args []string) (core.Scope, []waitCond, error) {
	if len(args) < 2 {
		return core.Scope{}, nil, usagef("wait needs a SCOPE and at least one key or key=value")
	}
	scope, err := core.ParseScope(args[0])
	if err != nil {
		return core.Scope{}, nil, usagef("wait: %v", err)
	}
	var conds []waitCond
	for _, a := range args[1:] {
		k, v, hasValue := strings.Cut(a, "=")
		switch {
		case k == "":
			return core.Scope{}, nil, usagef("wait: %q names no key", a)
		case strings.HasPrefix(k, "-"):
			return core.Scope{}, nil, usagef("wait: key %q starts with '-': flags go before '--', and keys may not look like flags (R52)", k)
		case slices.ContainsFunc(conds, func(c waitCond) bool { return c.key == k }):
			return core.Scope{}, nil, usagef("wait: key %q given twice", k)
		}
		c := waitCond{key: k, hasValue: hasValue, text: v}
		if hasValue {
			if c.want, err = parseValue(v); err != nil {
				return core.Scope{}, nil, usagef("wait: %s: %v", k, err)
			}
		}
		conds = append(conds, c)
	}
	return scope, conds, nil
}

// unmet returns what of conds snap does not hold, one phrase each.
func unmet(snap core.Snapshot, scope core.Scope, conds []waitCond) []string {
	var out []string
	for _, c := range conds {
		v, ok := snap.Get(scope, c.key)
		switch {
		case !ok:
			out = append(out, c.key+" is absent")
		case c.hasValue && !jsonEqual(v, c.want):
			out = append(out, fmt.Sprintf("%s is %s, want %s", c.key, valueJSON(v), valueJSON(c.want)))
		}
	}
	return out
}

// waitTimeout is wait's error at the timeout: exit 1, naming what is missing.
func waitTimeout(d time.Duration, scope core.Scope, conds []waitCond, last core.Snapshot) error {
	missing := unmet(last, scope, conds)
	return fmt.Errorf("wait: timed out after %v: %s: %s", d, scope, strings.Join(missing, "; "))
}

// jsonEqual compares two values as JSON documents: numbers by value (an
// int64 1, a uint64 1 and a float 1.0 are equal), objects by their members.
func jsonEqual(a, b any) bool {
	ja, jb := valueJSON(a), valueJSON(b)
	if bytes.Equal(ja, jb) {
		return true
	}
	da, erra := decodeJSON(ja)
	db, errb := decodeJSON(jb)
	return erra == nil && errb == nil && jsonValuesEqual(da, db)
}

func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data")
	}
	return v, nil
}

func jsonValuesEqual(a, b any) bool {
	switch x := a.(type) {
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		rx, okx := new(big.Rat).SetString(string(x))
		ry, oky := new(big.Rat).SetString(string(y))
		return okx && oky && rx.Cmp(ry) == 0
	case []any:
		y, ok := b.([]any)
		return ok && slices.EqualFunc(x, y, jsonValuesEqual)
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !jsonValuesEqual(v, w) {
				return false
			}
		}
		return true
	}
	return a == b
}
