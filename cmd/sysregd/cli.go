package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

// The client commands (get, set, delete, evict, watch, stats) talk to a
// running daemon. Every command writes exactly its result to stdout (JSON:
// compact, one document per line, or indented with -o pretty) and
// everything else — warnings, notes, errors — to stderr (R33, R52).

func getCmd() *cobra.Command {
	var cf clientFlags
	var out *outputFormat
	var meta, origin *bool
	cmd := command("get [flags] [SCOPE [KEY] | PATTERN]",
		"print the global view, a scope, a pattern's scopes, or one value",
		`Prints the global view {"state": {…}, "config": {…}} as JSON (R3).

  get SCOPE        the values object of that scope (bucket/type/subtype),
                   {} if it is empty
  get SCOPE KEY    one value, raw for shell scripts: a string without
                   quotes, bytes as they are, anything else as JSON; exits 1
                   (printing nothing) when the key is absent. With -o, JSON.
  get PATTERN      the global view restricted to the scopes PATTERN matches,
                   in the same shape: 'config/wifi' (every subtype),
                   'config/*/wlan0', 'state' ('*' or a missing part matches
                   any); {} when none matches
  get --meta SCOPE KEY
                   the key's metadata (R42) as JSON: {"layer", "owner",
                   "create_seq", "mod_seq", "version", "modified"}; mod_seq
                   is what 'set --if-mod-seq' guards on (R43)
  get --origin [SCOPE [KEY] | PATTERN]
                   where each value comes from (R38, R42): every key in
                   the same shape as above, as {"value", "layer", "owner",
                   "create_seq", "mod_seq", "version", "modified"} — the
                   layer (default, fleet, saved, runtime, override) and
                   owner of the highest layer holding the key ("" for
                   default and fleet; a state key has no layer). 'sysregd
                   reset SCOPE KEY' removes a saved value so the one
                   below shows again

JSON output: keys sorted; a float always has a '.' or an exponent (1.0), an
integer never (1); bytes are base64, NaN and ±Inf the strings "NaN", "+Inf",
"-Inf".`,
		func(cmd *cobra.Command, args []string) error {
			if len(args) > 2 {
				return usagef("get takes at most a SCOPE and a KEY, got %q", args)
			}
			var scope core.Scope
			var pat core.Pattern
			pattern := len(args) > 0 && isPattern(args[0])
			var err error
			switch {
			case pattern && len(args) == 2:
				return usagef("get: a KEY needs one SCOPE (bucket/type/subtype), not the pattern %q", args[0])
			case pattern:
				if pat, err = core.ParsePattern(args[0]); err != nil {
					return usagef("get: %v", err)
				}
			case len(args) > 0:
				if scope, err = core.ParseScope(args[0]); err != nil {
					return usagef("get: %v", err)
				}
			}
			if len(args) == 2 && args[1] == "" {
				return usagef("get: empty KEY")
			}
			if *meta && (len(args) != 2 || pattern) {
				return usagef("get --meta needs a SCOPE and a KEY")
			}
			if *meta && *origin {
				return usagef("get: --meta or --origin, not both")
			}
			return cf.run(cmd, func(ctx context.Context, c *store.Client) error {
				snap, err := c.Snapshot(ctx)
				if err != nil {
					return err
				}
				stdout := cmd.OutOrStdout()
				switch {
				case *origin && len(args) == 2:
					v, ok := snap.Get(scope, args[1])
					if !ok {
						return errSilent
					}
					m, _ := snap.Meta(scope, args[1])
					return out.write(stdout, valueJSON(originOf(v, m)))
				case *origin && len(args) == 1 && !pattern:
					return out.write(stdout, valueJSON(originView(snap, scope)))
				case *origin:
					// No argument: every scope, as 'get' shows the global view.
					return out.write(stdout, valueJSON(patternShape(snap, pat, func(sc core.Scope) map[string]any {
						return originView(snap, sc)
					})))
				case len(args) == 0:
					return out.write(stdout, snapshotJSON(snap))
				case pattern:
					return out.write(stdout, valueJSON(patternView(snap, pat)))
				case len(args) == 2 && *meta:
					m, ok := snap.Meta(scope, args[1])
					if !ok {
						return errSilent
					}
					return out.writeValue(stdout, metaJSON(m))
				case len(args) == 2:
					v, ok := snap.Get(scope, args[1])
					if !ok {
						return errSilent
					}
					if cmd.Flags().Changed("output") {
						return out.write(stdout, valueJSON(v))
					}
					return writeRaw(stdout, v)
				}
				vals := snap.Values(scope)
				if vals == nil {
					vals = core.Values{}
				}
				return out.write(stdout, valueJSON(map[string]any(vals)))
			})
		})
	cf = addClientFlags(cmd, true)
	out = outputFlag(cmd)
	meta = cmd.Flags().Bool("meta", false, "print a key's metadata (R42) instead of its value")
	origin = cmd.Flags().Bool("origin", false, "print each value with its layer, owner, mod seq and modification time (R38, R42)")
	return cmd
}

func ownersCmd() *cobra.Command {
	var cf clientFlags
	var out *outputFormat
	cmd := command("owners [flags]",
		"list the owner names, live or not, with their uid and key counts",
		`Prints a JSON array with one object per owner name that holds keys or has a
live session, sorted by name: {"name": N, "live": L, "grace": G, "uid": U,
"state_keys": S, "config_keys": C, "layers": {"saved": C}, "scopes": K}.
live: a session holds the name now; grace: its connection dropped and its keys
wait out a grace period (R48); uid: the uid the name is bound to (R35), absent
when unbound; layers counts config keys by the layer they show from. Config
restored after a restart belongs to its owner's name (R27); an evicted name
is gone (R14). Act as a name with 'set/delete --owner NAME', remove all it
holds with 'evict NAME'.`,
		func(cmd *cobra.Command, args []string) error {
			if err := noArgs(cmd, args); err != nil {
				return err
			}
			return cf.run(cmd, func(ctx context.Context, c *store.Client) error {
				list, err := c.Owners(ctx)
				if err != nil {
					return err
				}
				return out.writeValue(cmd.OutOrStdout(), list)
			})
		})
	cf = addClientFlags(cmd, true)
	out = outputFlag(cmd)
	return cmd
}

// layerFlag adds --layer (R39, R52): the config layer a command's owner
// writes; --keep-config stays accepted as --layer saved.
func layerFlag(cmd *cobra.Command) (layer *string, keep *bool) {
	layer = cmd.Flags().String("layer", "saved", "config layer to write: saved, runtime or override (R39; runtime and override keys die with the command's session, R13)")
	keep = cmd.Flags().Bool("keep-config", false, "same as --layer saved (kept for existing scripts)")
	return layer, keep
}

// writeLayer resolves --layer and --keep-config.
func writeLayer(cmd *cobra.Command, name string, keep bool) (core.Layer, error) {
	l, err := core.ParseLayer(name)
	if err != nil {
		return 0, usagef("--layer: %v", err)
	}
	if !l.Writable() {
		return 0, usagef("--layer %s: %v; write saved, runtime or override", l, core.ErrReadOnlyLayer)
	}
	if keep && cmd.Flags().Changed("layer") && l != core.Saved {
		return 0, usagef("--keep-config means --layer saved, and --layer %s was given", l)
	}
	return l, nil
}

func setCmd() *cobra.Command {
	var cf clientFlags
	var ownerName, layerName *string
	var keep, asBytes, createOnly *bool
	var ifModSeq *uint64
	var confirmWithin *time.Duration
	cmd := command("set [flags] SCOPE key=value…",
		"update keys of a scope",
		`Updates (deep-merges, R4) the keys of SCOPE. A value is parsed as JSON where it
parses (42, 1.5, true, null, "text", [1,2], {"a":1}); otherwise it is the
string as given. Integers are int64, or uint64 above the int64 range.
A key may not start with '-' (R52): flags go anywhere before '--'.
A number that no value type holds exactly (1e400, 2^64) is an error; quote
it ('"1e400"') to store the text.

key=@FILE takes the value from FILE, key=@- from stdin (for values too large
for the command line, up to the registry's limit of 1 MiB per update): its
text is read like a value on the command line, without one trailing newline;
with --bytes the file's bytes are stored as they are, as a bytes value.
A value that starts with '@' as text is written '@@…'.

Config goes to the saved layer unless --layer names runtime or override
(R39, R52): the command's owner session ends when it exits, and an owner's
state, runtime and override keys die with it (R13), so only saved config
outlives the command. Give an --owner name to be able to remove the keys
later with 'delete --owner' or 'evict'; 'sysregd reset' removes saved
values whoever wrote them. Keys that another owner created in the same layer
keep their owner and the new value (R11). Prints nothing on success;
warnings go to stderr.

A guarded edit (R43): --if-mod-seq N writes only if every key named still
has the mod seq N that 'sysregd get --meta SCOPE KEY' showed (nobody changed
it since); --create-only only if none of them exists. Otherwise nothing is
written and set fails (exit 1) saying what the key holds now.

A change that could cut you off (R44): --confirm-within 60s writes the keys
and prints an apply ID; unless 'sysregd confirm ID' follows within the time
given (at most 24h), the daemon undoes the change — and a restart of the
daemon before the confirm undoes it too. 'sysregd rollback ID' undoes it at
once, 'sysregd pending' lists what waits. Config only; the saved layer unless
--layer runtime (override is not journaled and cannot be undone).

  id=$(sysregd set --confirm-within 60s config/net/eth0 address=10.0.0.2)
  sysregd confirm "$id"`,
		func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usagef("set needs a SCOPE and at least one key=value")
			}
			scope, err := core.ParseScope(args[0])
			if err != nil {
				return usagef("set: %v", err)
			}
			vals, err := setValues(args[1:], cmd.InOrStdin(), *asBytes)
			if err != nil {
				return err
			}
			layer, err := writeLayer(cmd, *layerName, *keep)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("if-mod-seq") && *createOnly {
				return usagef("set: --if-mod-seq and --create-only exclude each other (--create-only is --if-mod-seq 0)")
			}

			ctx0 := cmd.Context()
			c, ctx, cancel, err := cf.dial(ctx0)
			if err != nil {
				return err
			}
			defer cancel()
			defer c.Close()
			o, err := c.Owner(ctx, *ownerName, core.OwnerOptions{Layer: layer})
			if err != nil {
				return fmt.Errorf("set: attach owner: %w", err)
			}
			ops := guardedPut(scope, vals, *ifModSeq, *createOnly || cmd.Flags().Changed("if-mod-seq"))
			if cmd.Flags().Changed("confirm-within") {
				id, err := o.Apply(ctx, *confirmWithin, ops...)
				if err != nil {
					o.Close()
					return fmt.Errorf("set %s: %w", scope, conflictHint(reservedHint(err)))
				}
				if id == 0 {
					fmt.Fprintln(cmd.ErrOrStderr(), "sysregd: note: the keys already held these values: nothing changed, nothing to confirm")
				} else {
					fmt.Fprintln(cmd.OutOrStdout(), id)
					fmt.Fprintf(cmd.ErrOrStderr(), "sysregd: confirm within %v with 'sysregd confirm %d', or the change is undone\n", *confirmWithin, id)
				}
			} else if err := o.Commit(ctx, ops...); err != nil {
				o.Close()
				return fmt.Errorf("set %s: %w", scope, conflictHint(reservedHint(err)))
			}
			// Say what the end of the session will take away (R13).
			stderr := cmd.ErrOrStderr()
			if snap, err := c.Snapshot(ctx); err == nil {
				switch {
				case snap.Holds(o.Name(), core.State):
					fmt.Fprintf(stderr, "sysregd: warning: state keys set from the command line are deleted when this command exits (their owner %q dies, R13)\n", o.Name())
				case layer != core.Saved && snap.HoldsIn(o.Name(), layer):
					fmt.Fprintf(stderr, "sysregd: warning: %s config keys are deleted when this command exits (owner %q dies, R13)\n", layer, o.Name())
				case layer == core.Saved && *ownerName == "" && snap.Holds(o.Name(), core.Config):
					fmt.Fprintf(stderr, "sysregd: note: the new config keys belong to owner %q; remove them with 'sysregd delete --owner %s %s KEY…' or 'sysregd evict %s'\n", o.Name(), o.Name(), scope, o.Name())
				}
			}
			if err := o.Close(); err != nil {
				return fmt.Errorf("set: end owner session: %w", err)
			}
			return nil
		})
	cf = addClientFlags(cmd, true)
	ownerName = cmd.Flags().String("owner", "", "owner name to write as (default: an anonymous owner)")
	layerName, keep = layerFlag(cmd)
	asBytes = cmd.Flags().Bool("bytes", false, "store key=@FILE values as bytes, exactly as read")
	ifModSeq = cmd.Flags().Uint64("if-mod-seq", 0, "write only if every key named has this mod seq ('get --meta SCOPE KEY'); 0: only if absent (R43)")
	createOnly = cmd.Flags().Bool("create-only", false, "write only keys that do not exist yet: all or none (R43)")
	confirmWithin = cmd.Flags().Duration("confirm-within", 0, "undo the change unless 'sysregd confirm ID' follows within this time (R44); prints the ID")
	return cmd
}

// setValues parses set's key=value arguments; @FILE and @- values are read
// from a file or stdin (once).
func setValues(args []string, stdin io.Reader, asBytes bool) (core.Values, error) {
	vals := core.Values{}
	files, stdinUsed := 0, false
	for _, kv := range args {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("set: %q is not key=value", kv)
		}
		if strings.HasPrefix(k, "-") {
			return nil, usagef("set: key %q starts with '-': flags go before '--', and keys may not look like flags (R52)", k)
		}
		if _, dup := vals[k]; dup {
			return nil, usagef("set: key %q given twice", k)
		}
		var err error
		switch {
		case strings.HasPrefix(v, "@@"):
			vals[k], err = parseValue(v[1:])
		case strings.HasPrefix(v, "@"):
			name := v[1:]
			switch {
			case name == "":
				return nil, usagef("set: %s=@ names no file (use @FILE, @- for stdin, or @@ for a text starting with '@')", k)
			case name == "-" && stdinUsed:
				return nil, usagef("set: stdin (@-) can give only one value")
			}
			stdinUsed = stdinUsed || name == "-"
			files++
			vals[k], err = readValue(name, stdin, asBytes)
			if err != nil && !errors.Is(err, errNumberRange) {
				return nil, fmt.Errorf("set: %s=@%s: %w", k, name, err)
			}
		default:
			vals[k], err = parseValue(v)
		}
		if err != nil {
			return nil, usagef("set: %s: %v", k, err)
		}
	}
	if asBytes && files == 0 {
		return nil, usagef("set: --bytes applies to key=@FILE values, and none is given")
	}
	return vals, nil
}

// keyCount is "1 key", "0 keys", "2 keys".
func keyCount(n int) string {
	if n == 1 {
		return "1 key"
	}
	return fmt.Sprintf("%d keys", n)
}

// keyList is ": a b c" for keys, "" for none.
func keyList(keys []string) string {
	if len(keys) == 0 {
		return ""
	}
	return ": " + strings.Join(keys, " ")
}

// reservedHint adds to a *core.ReservedKeysError which owner to act as.
func reservedHint(err error) error {
	var rk *core.ReservedKeysError
	if errors.As(err, &rk) {
		return fmt.Errorf("%w (keys belong to another owner: act as it with --owner NAME, see 'sysregd get' and 'sysregd inspect')", err)
	}
	return err
}

func deleteCmd() *cobra.Command {
	var cf clientFlags
	var ownerName, layerName *string
	var keep *bool
	cmd := command("delete [flags] SCOPE [key…]",
		"delete keys of a scope",
		`Deletes the named keys of SCOPE, or with no keys every key the owner holds in
SCOPE (R12), and prints what it deleted ("deleted 2 keys from SCOPE: a b",
"deleted 0 keys from SCOPE"). Only a key's owner may delete it (R10, R11): pass --owner with
its name; this also works for config restored after a restart (R27). The
owner must not have a live session elsewhere. A config delete touches only
the layer given by --layer (default saved, R39): where another layer holds
the key too, that value shows again ('sysregd reset' removes saved values
whoever wrote them). The command's session ends like any other: the
owner's state, runtime and override keys go with it (R13), its saved keys
stay. Use
'sysregd evict NAME' to delete everything a name holds.`,
		func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 {
				return usagef("delete needs a SCOPE")
			}
			scope, err := core.ParseScope(args[0])
			if err != nil {
				return usagef("delete: %v", err)
			}
			keys := args[1:]
			for _, k := range keys {
				if k == "" {
					return usagef("delete: empty key")
				}
			}
			return cf.run(cmd, func(ctx context.Context, c *store.Client) error {
				layer, err := writeLayer(cmd, *layerName, *keep)
				if err != nil {
					return err
				}
				o, err := c.Owner(ctx, *ownerName, core.OwnerOptions{Layer: layer})
				if err != nil {
					return fmt.Errorf("delete: attach owner: %w", err)
				}
				// What goes: the named keys that are there, or every key the
				// owner holds in the scope (R12), as the view shows them
				// just before; a delete is all or nothing.
				before, err := c.Snapshot(ctx)
				if err != nil {
					return err
				}
				var gone []string
				vals := before.Values(scope)
				if scope.Bucket == core.Config {
					vals = before.LayerValues(layer, scope)
				}
				for k := range vals {
					own, _ := before.Owner(scope, k)
					if scope.Bucket == core.Config {
						own, _ = before.LayerOwner(layer, scope, k)
					}
					if len(keys) == 0 && own == o.Name() || slices.Contains(keys, k) {
						gone = append(gone, k)
					}
				}
				if err := o.Delete(ctx, scope, keys...); err != nil {
					o.Close()
					return fmt.Errorf("delete %s: %w", scope, reservedHint(err))
				}
				if err := o.Close(); err != nil {
					return fmt.Errorf("delete: end owner session: %w", err)
				}
				slices.Sort(gone)
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "deleted %s from %s%s\n", keyCount(len(gone)), scope, keyList(gone))
				return err
			})
		})
	cf = addClientFlags(cmd, true)
	ownerName = cmd.Flags().String("owner", "", "owner name to act as: the owner of the keys (default: an anonymous owner, which owns nothing)")
	layerName, keep = layerFlag(cmd)
	return cmd
}

func evictCmd() *cobra.Command {
	var cf clientFlags
	cmd := command("evict [flags] NAME",
		"delete everything an owner name holds",
		`Deletes everything the owner NAME holds, config included (R14): for keys left
by an owner that never comes back. Fails while NAME has a live session.
Prints what it deleted: "evicted NAME: 3 keys" and one line per scope with
its keys ("evicted NAME: 0 keys" when the name held nothing).`,
		func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("evict needs exactly one NAME")
			}
			return cf.run(cmd, func(ctx context.Context, c *store.Client) error {
				before, err := c.Snapshot(ctx)
				if err != nil {
					return err
				}
				held, n := heldBy(before, args[0])
				if err := c.Evict(ctx, args[0]); err != nil {
					return fmt.Errorf("evict %q: %w", args[0], err)
				}
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "evicted %s: %s\n", args[0], keyCount(n))
				for _, sc := range slices.Sorted(maps.Keys(held)) {
					fmt.Fprintf(w, "  %s%s\n", sc, keyList(held[sc]))
				}
				return nil
			})
		})
	cf = addClientFlags(cmd, true)
	return cmd
}

func watchCmd() *cobra.Command {
	var cf clientFlags
	var out *outputFormat
	var minInterval, hysteresis *time.Duration
	var match *string
	var whole, diff *bool
	cmd := command("watch [flags]",
		"print one JSON line per delivery",
		`Subscribes and prints one line per delivery, {"seq": N, "view": {…}}: the
current view at once, then the latest view after changes, rate limited by
the daemon (R16–R21). With --match only changes in matching scopes wake it,
and it prints only those scopes (--whole: the whole view). With --diff each
line is {"seq": N, "changes": [{"scope", "key", "op": "add"|"change"|"delete",
"value", "old", "owner"}, …]}: the changes since the previous delivery (the
first: everything there is). Runs until interrupted (exit 0) or until the
daemon goes away (exit 1).`,
		func(cmd *cobra.Command, args []string) error {
			if err := noArgs(cmd, args); err != nil {
				return err
			}
			if *minInterval < 0 || *hysteresis < 0 {
				return usagef("watch: negative duration")
			}
			pat, err := core.ParsePattern(*match)
			if err != nil {
				return usagef("watch: --match: %v", err)
			}
			ctx := cmd.Context()
			c, _, cancel, err := cf.dial(ctx)
			if err != nil {
				return err
			}
			defer cancel()
			defer c.Close()
			sub, err := c.Subscribe(ctx, core.SubscribeOptions{MinInterval: *minInterval, Hysteresis: *hysteresis, Match: pat})
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("watch: %w", err)
			}
			defer sub.Close()
			var last core.Snapshot // the previous delivery, for --diff
			bw := bufio.NewWriter(cmd.OutOrStdout())
			for {
				select {
				case <-ctx.Done():
					return nil
				case snap, ok := <-sub.C():
					if !ok {
						if ctx.Err() != nil {
							return nil
						}
						return fmt.Errorf("watch: %w: the daemon ended the subscription", store.ErrConnLost)
					}
					var doc []byte
					switch {
					case *diff:
						doc, last = diffJSON(last, snap, pat, *whole), snap
					case *whole:
						doc = fmt.Appendf(nil, `{"seq":%d,"view":%s}`, snap.Seq(), snapshotJSON(snap))
					default:
						doc = fmt.Appendf(nil, `{"seq":%d,"view":%s}`, snap.Seq(), valueJSON(patternView(snap, pat)))
					}
					if err := out.write(bw, doc); err != nil {
						return fmt.Errorf("watch: %w", err)
					}
					if err := bw.Flush(); err != nil {
						return fmt.Errorf("watch: %w", err)
					}
				}
			}
		})
	cf = addClientFlags(cmd, false)
	out = outputFlag(cmd)
	fs := cmd.Flags()
	minInterval = durationFlag(fs, "min-interval", 0, "at least this long between deliveries (R17)")
	hysteresis = durationFlag(fs, "hysteresis", 0, "wait this long after a change before delivering (R20)")
	match = fs.String("match", "", "wake only for changes in bucket/type/subtype, and print only those scopes; '*' or a missing part matches any (R21)")
	whole = fs.Bool("whole", false, "with --match: print the whole view (or every change), not only the matching scopes")
	diff = fs.Bool("diff", false, "print the changes since the previous delivery instead of the view")
	return cmd
}

func statsCmd() *cobra.Command {
	var cf clientFlags
	var out *outputFormat
	cmd := command("stats [flags]",
		"print the daemon's counters as JSON",
		`Prints the daemon's figures as JSON (store.Stats, the figures the metrics
show): sequence, mutations per bucket, sessions, keys, subscribers, journal
(records, fsyncs, batches, checkpoints, their histograms), last recovery,
connections. Keys sorted; a float figure always has a '.' (0.0, 1.0), a count
never has one.`,
		func(cmd *cobra.Command, args []string) error {
			if err := noArgs(cmd, args); err != nil {
				return err
			}
			return cf.run(cmd, func(ctx context.Context, c *store.Client) error {
				st, err := c.Stats(ctx)
				if err != nil {
					return err
				}
				return out.writeValue(cmd.OutOrStdout(), markFloats(figuresTree(st)))
			})
		})
	cf = addClientFlags(cmd, true)
	out = outputFlag(cmd)
	return cmd
}
