package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

// The commands of safe changes (R43–R46): backup, export, import, reset,
// confirm, rollback, pending. The logic lives in store; these only parse
// flags and print.

func backupCmd() *cobra.Command {
	var cf clientFlags
	var out *outputFormat
	cmd := command("backup [flags] FILE",
		"write a consistent copy of the running daemon's journal to FILE",
		`Writes a consistent copy of the running daemon's journal to FILE (R45):
every config mutation acknowledged before the command began, none half. The
file is written beside FILE, fsynced and renamed over it, so FILE is never
half a backup. Placed as DIR/journal.db, the copy makes DIR a data directory
that 'sysregd serve --data-dir DIR' starts from and 'sysregd check
--data-dir DIR' accepts:

  sysregd backup /mnt/usb/sysreg-backup.db
  mkdir -p /var/lib/sysreg-restored
  cp /mnt/usb/sysreg-backup.db /var/lib/sysreg-restored/journal.db
  sysregd check --data-dir /var/lib/sysreg-restored

Only root and the daemon's own uid may take a backup: it holds the whole
journal, values since overwritten included. Prints {"file": FILE, "bytes": N}.`,
		func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 || args[0] == "" {
				return usagef("backup takes one FILE, got %q", args)
			}
			return cf.run(cmd, func(ctx context.Context, c *store.Client) error {
				n, err := store.WriteBackup(ctx, c, args[0])
				if err != nil {
					return err
				}
				return out.writeValue(cmd.OutOrStdout(), struct {
					File  string `json:"file"`
					Bytes int64  `json:"bytes"`
				}{args[0], n})
			})
		})
	cf = addClientFlags(cmd, true)
	out = outputFlag(cmd)
	return cmd
}

// guardedPut is set's transaction: with guard, the condition IfModSeq(seq)
// (--if-mod-seq, or --create-only with seq 0) on every key named, in key
// order; then the put (R43).
func guardedPut(scope core.Scope, vals core.Values, seq uint64, guard bool) []core.Op {
	var ops []core.Op
	if guard {
		for _, k := range slices.Sorted(maps.Keys(vals)) {
			ops = append(ops, core.IfModSeq(scope, k, seq))
		}
	}
	return append(ops, core.Put(scope, vals))
}

// conflictHint adds what to do to a conflict (R43).
func conflictHint(err error) error {
	if errors.Is(err, core.ErrConflict) {
		return fmt.Errorf("%w (nothing was written; read the key again with 'sysregd get --meta SCOPE KEY')", err)
	}
	return err
}

// metaOut is a key's metadata as get --meta prints it (R42).
type metaOut struct {
	Layer     string `json:"layer"` // "" for a state key
	Owner     string `json:"owner"`
	CreateSeq uint64 `json:"create_seq"`
	ModSeq    uint64 `json:"mod_seq"`
	Version   uint64 `json:"version"`
	Modified  string `json:"modified"` // RFC 3339, UTC
}

func metaJSON(m core.KeyMeta) metaOut {
	out := metaOut{Owner: m.Owner, CreateSeq: m.CreateSeq, ModSeq: m.ModSeq, Version: m.Version}
	if m.Layer != 0 {
		out.Layer = m.Layer.String()
	}
	if !m.Modified.IsZero() {
		out.Modified = m.Modified.UTC().Format(time.RFC3339Nano)
	}
	return out
}

func resetCmd() *cobra.Command {
	var cf clientFlags
	var out *outputFormat
	var all *bool
	var layerNames *[]string
	cmd := command("reset [flags] --all | PATTERN | SCOPE KEY…",
		"delete config keys of the saved and runtime layers so the defaults show (factory reset)",
		`Deletes every key of the saved and runtime config layers (or of the layers
named with --layer: saved, runtime, override) in the config scopes PATTERN
matches, whoever owns them, as one change (R46). What the defaults (and the
fleet layer) hold shows again: 'reset --all' is a factory reset.

  sysregd reset --all                     every config scope
  sysregd reset config/wifi               every subtype of wifi
  sysregd reset --layer override 'config/*/eth0'
  sysregd reset config/wifi/wlan0 channel back to the default channel
                                          (only the keys named)

The default and fleet layers and the state bucket are never reset. Only root
and the daemon's own uid may reset. Prints what it removed, as JSON:
[{"layer": L, "scope": S, "keys": [K…]}…] ([] when nothing matched).`,
		func(cmd *cobra.Command, args []string) error {
			var p core.Pattern
			var scope core.Scope // reset SCOPE KEY…: the keys' scope
			keys := args[min(1, len(args)):]
			switch {
			case *all && len(args) > 0:
				return usagef("reset: --all or a PATTERN, not both")
			case !*all && len(args) == 0:
				return usagef("reset needs --all, a PATTERN, or a SCOPE and keys (see 'sysregd help reset')")
			case len(keys) > 0:
				var err error
				if scope, err = core.ParseScope(args[0]); err != nil {
					return usagef("reset: keys need one SCOPE (bucket/type/subtype): %v", err)
				}
				if scope.Bucket != core.Config {
					return usagef("reset: the state bucket is never reset (R46); give a config scope")
				}
				if slices.Contains(keys, "") {
					return usagef("reset: empty key")
				}
				p = core.Pattern{Bucket: core.Config, Type: scope.Type, Subtype: scope.Subtype}
			case !*all:
				var err error
				if p, err = core.ParsePattern(args[0]); err != nil {
					return usagef("reset: %v", err)
				}
				if p.Bucket == core.State {
					return usagef("reset: the state bucket is never reset (R46); give a config pattern")
				}
				p.Bucket = core.Config
			}
			layers := []core.Layer{core.Saved, core.Runtime}
			if len(*layerNames) > 0 {
				layers = layers[:0]
				for _, n := range *layerNames {
					l, err := core.ParseLayer(n)
					if err != nil {
						return usagef("reset --layer: %v", err)
					}
					if !l.Writable() {
						return usagef("reset --layer %s: the default and fleet layers are never reset (R46)", l)
					}
					layers = append(layers, l)
				}
			}
			return cf.run(cmd, func(ctx context.Context, c *store.Client) error {
				before, err := c.Snapshot(ctx)
				if err != nil {
					return err
				}
				if len(keys) > 0 {
					err = c.ResetKeys(ctx, scope, keys, layers...)
				} else {
					err = c.Reset(ctx, p, layers...)
				}
				if err != nil {
					return fmt.Errorf("reset: %w", err)
				}
				after, err := c.Snapshot(ctx)
				if err != nil {
					return err
				}
				return out.writeValue(cmd.OutOrStdout(), removedKeys(before, after, p, layers))
			})
		})
	cf = addClientFlags(cmd, true)
	out = outputFlag(cmd)
	all = cmd.Flags().Bool("all", false, "every config scope: a factory reset")
	layerNames = cmd.Flags().StringSlice("layer", nil, "a layer to reset: saved, runtime or override (repeatable; default saved and runtime)")
	return cmd
}

// removedOut is one scope of one layer that reset emptied, in part or whole.
type removedOut struct {
	Layer string   `json:"layer"`
	Scope string   `json:"scope"`
	Keys  []string `json:"keys"`
}

// removedKeys lists the keys of layers in the scopes p matches that before
// holds and after does not.
func removedKeys(before, after core.Snapshot, p core.Pattern, layers []core.Layer) []removedOut {
	out := []removedOut{}
	for _, l := range layers {
		for _, sc := range before.LayerScopes(l) {
			if !p.Matches(sc) {
				continue
			}
			now := after.LayerValues(l, sc)
			var gone []string
			for _, k := range slices.Sorted(maps.Keys(before.LayerValues(l, sc))) {
				if _, ok := now[k]; !ok {
					gone = append(gone, k)
				}
			}
			if len(gone) > 0 {
				out = append(out, removedOut{Layer: l.String(), Scope: sc.String(), Keys: gone})
			}
		}
	}
	return out
}

func exportCmd() *cobra.Command {
	var cf clientFlags
	var layerName *string
	var asCBOR *bool
	cmd := command("export [flags] [PATTERN]",
		"print config as JSON {\"type\": {\"subtype\": {key: value}}} (or CBOR)",
		`Prints the config of the scopes PATTERN matches (default: all) as one JSON
document {"type": {"subtype": {"key": value}}} — the effective view, or one
layer's own values with --layer (R45). 'sysregd import' reads it back, and
so does a defaults directory (R40).

Every value in the JSON reads back as the same value: a float always has a
'.' or an exponent, an integer never. Bytes, NaN, ±Inf and a uint64 that fits
an int64 have no such JSON form: the export then fails naming the key, and
--cbor writes the CBOR form, which keeps every type (binary, to stdout:
redirect it to a file). A PATTERN that matches nothing is an error.

  sysregd export > config.json
  sysregd export config/wifi --layer saved
  sysregd export --cbor > config.cbor`,
		func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("export takes at most one PATTERN, got %q", args)
			}
			var p core.Pattern
			if len(args) == 1 {
				var err error
				if p, err = core.ParsePattern(args[0]); err != nil {
					return usagef("export: %v", err)
				}
				if p.Bucket == core.State {
					return usagef("export: only config is exported; give a config pattern")
				}
			}
			opts := store.ExportOptions{CBOR: *asCBOR}
			if *layerName != "" {
				l, err := core.ParseLayer(*layerName)
				if err != nil {
					return usagef("export --layer: %v", err)
				}
				opts.Layer = l
			}
			return cf.run(cmd, func(ctx context.Context, c *store.Client) error {
				snap, err := c.Snapshot(ctx)
				if err != nil {
					return err
				}
				data, err := store.Export(snap, p, opts)
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(data)
				return err
			})
		})
	cf = addClientFlags(cmd, true)
	layerName = cmd.Flags().String("layer", "", "export one layer's own values: default, fleet, saved, runtime or override (default: the effective view)")
	asCBOR = cmd.Flags().Bool("cbor", false, "write the CBOR form, which keeps every type exactly")
	return cmd
}

func importCmd() *cobra.Command {
	var cf clientFlags
	var ownerName *string
	cmd := command("import [flags] FILE",
		"apply an export (JSON or CBOR) into the saved layer, as one transaction",
		`Applies FILE, written by 'sysregd export' in either form ('-': stdin), into
the saved config layer as owner --owner, as one transaction: all of it or,
on any error, nothing (R45). Keys that exist keep their owner (R11). A file
that is not an export — malformed JSON, another program's file — is an
error naming the position where there is one. One transaction is limited
like any (1 MiB by default, R2). Prints {"keys": N}.`,
		func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 || args[0] == "" {
				return usagef("import takes one FILE, got %q", args)
			}
			if *ownerName == "" {
				return usagef("import needs --owner NAME: the imported keys belong to it (remove them with 'evict NAME')")
			}
			data, err := readExportFile(args[0], cmd.InOrStdin())
			if err != nil {
				return fmt.Errorf("import: %w", err)
			}
			scopes, err := store.ParseExport(args[0], data)
			if err != nil {
				return err
			}
			return cf.run(cmd, func(ctx context.Context, c *store.Client) error {
				n, err := store.Import(ctx, c, *ownerName, scopes)
				if err != nil {
					return err
				}
				return outputFormat("json").writeValue(cmd.OutOrStdout(), struct {
					Keys int `json:"keys"`
				}{n})
			})
		})
	cf = addClientFlags(cmd, true)
	ownerName = cmd.Flags().String("owner", "", "the owner name the imported keys belong to (required)")
	return cmd
}

// readExportFile reads an import's FILE, or stdin for "-".
func readExportFile(name string, stdin io.Reader) ([]byte, error) {
	r := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxValueFile+1))
	if err == nil && len(data) > maxValueFile {
		err = fmt.Errorf("%s is larger than %d MiB", name, maxValueFile>>20)
	}
	return data, err
}
