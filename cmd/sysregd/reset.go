package main

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/spf13/cobra"

	"github.com/sysreg/sysreg/core"
)

// resetCmd is "sysregd reset SCOPE [KEY…]" (R38, R46): the saved values go
// so that what is below them (the fleet layer, the defaults) shows again.
//
// Until Registry.Reset (R46) is on the socket, reset is a delete in the
// saved layer made as each key's owner: one transaction per owner name, so
// a reset of keys held by several names is not atomic, and a key whose
// owner has a live session elsewhere is refused (core.ErrOwnerInUse) with
// the keys of the other names already reset.
func resetCmd() *cobra.Command {
	var cf clientFlags
	var out *outputFormat
	cmd := command("reset [flags] SCOPE [KEY…]",
		"remove saved config values so the defaults show again",
		`Removes the saved values (R37) of the named keys of the config SCOPE, or of
every key saved in SCOPE when no key is named, whoever saved them, so that
the value below — the fleet layer or the defaults — shows again (R38):

  sysregd reset config/wifi/wlan0 channel   back to the default channel
  sysregd reset config/wifi/wlan0           every saved wifi setting

Runtime and override values stay (they die with their session, R13), and
a key with no saved value is left alone. Keys saved by a name that has a
live session elsewhere cannot be reset (owner in use). Prints what it
removed, as JSON: [{"layer": "saved", "scope": S, "keys": [K…]}] ([] when
nothing was saved there).`,
		func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 {
				return usagef("reset needs a config SCOPE (see 'sysregd help reset')")
			}
			scope, err := core.ParseScope(args[0])
			if err != nil {
				return usagef("reset: %v", err)
			}
			if scope.Bucket != core.Config {
				return usagef("reset: %s: only config has saved values; state is never reset (R46)", scope)
			}
			keys := args[1:]
			if slices.Contains(keys, "") {
				return usagef("reset: empty key")
			}
			c, ctx, cancel, err := cf.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			defer c.Close()
			before, err := c.Snapshot(ctx)
			if err != nil {
				return err
			}
			// The saved keys to remove, by the name that owns them.
			byOwner := map[string][]string{}
			for k := range before.LayerValues(core.Saved, scope) {
				if len(keys) > 0 && !slices.Contains(keys, k) {
					continue
				}
				own, _ := before.LayerOwner(core.Saved, scope, k)
				byOwner[own] = append(byOwner[own], k)
			}
			var gone []string
			var errs []error
			for _, name := range slices.Sorted(maps.Keys(byOwner)) {
				ks := byOwner[name]
				slices.Sort(ks)
				o, err := c.Owner(ctx, name, core.OwnerOptions{Layer: core.Saved})
				if err != nil {
					errs = append(errs, fmt.Errorf("reset %s %v: saved by %q: %w", scope, ks, name, err))
					continue
				}
				err = o.Delete(ctx, scope, ks...)
				if cerr := o.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("reset %s %v: %w", scope, ks, err))
					continue
				}
				gone = append(gone, ks...)
			}
			removed := []removedOut{}
			if len(gone) > 0 {
				slices.Sort(gone)
				removed = append(removed, removedOut{Layer: core.Saved.String(), Scope: scope.String(), Keys: gone})
			}
			if err := out.writeValue(cmd.OutOrStdout(), removed); err != nil {
				return err
			}
			return errors.Join(errs...)
		})
	cf = addClientFlags(cmd, true)
	out = outputFlag(cmd)
	return cmd
}

// removedOut is one scope of one layer that reset emptied, in part or whole.
type removedOut struct {
	Layer string   `json:"layer"`
	Scope string   `json:"scope"`
	Keys  []string `json:"keys"`
}
