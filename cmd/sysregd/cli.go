package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
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
	cmd := command("get [flags] [SCOPE]",
		"print the global view, or the values of one scope, as JSON",
		`Prints the global view {"state": {…}, "config": {…}} as JSON (R3), or with
SCOPE (bucket/type/subtype) the values object of that scope ({} if it is empty).`,
		func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("get takes at most one SCOPE, got %q", args)
			}
			var scope core.Scope
			if len(args) == 1 {
				var err error
				if scope, err = core.ParseScope(args[0]); err != nil {
					return usagef("get: %v", err)
				}
			}
			c, ctx, cancel, err := cf.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			defer c.Close()
			snap, err := c.Snapshot(ctx)
			if err != nil {
				return err
			}
			if len(args) == 0 {
				return out.write(cmd.OutOrStdout(), snapshotJSON(snap))
			}
			vals := snap.Values(scope)
			if vals == nil {
				vals = core.Values{}
			}
			return out.write(cmd.OutOrStdout(), valueJSON(map[string]any(vals)))
		})
	cf = addClientFlags(cmd, true)
	out = outputFlag(cmd)
	return cmd
}

func setCmd() *cobra.Command {
	var cf clientFlags
	var ownerName *string
	var keep, asBytes *bool
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

The command's owner session ends when it exits, and an owner's keys die
with it (R13): state keys always, config keys unless --keep-config is given.
So to set persistent config, pass --keep-config (and best an --owner name,
with which 'delete --owner' or 'evict' can remove the keys again). Keys that
another owner created keep their owner and the new value (R11). Prints
nothing on success; warnings go to stderr.`,
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

			ctx0 := cmd.Context()
			c, ctx, cancel, err := cf.dial(ctx0)
			if err != nil {
				return err
			}
			defer cancel()
			defer c.Close()
			o, err := c.Owner(ctx, *ownerName, core.OwnerOptions{KeepConfig: *keep})
			if err != nil {
				return fmt.Errorf("set: attach owner: %w", err)
			}
			if err := o.Update(ctx, scope, vals); err != nil {
				o.Close()
				return fmt.Errorf("set %s: %w", scope, reservedHint(err))
			}
			// Say what the end of the session will take away (R13).
			stderr := cmd.ErrOrStderr()
			if snap, err := c.Snapshot(ctx); err == nil {
				switch {
				case snap.Holds(o.Name(), core.State):
					fmt.Fprintf(stderr, "sysregd: warning: state keys set from the command line are deleted when this command exits (their owner %q dies, R13)\n", o.Name())
				case !*keep && snap.Holds(o.Name(), core.Config):
					fmt.Fprintf(stderr, "sysregd: warning: config keys set without --keep-config are deleted when this command exits (owner %q dies, R13)\n", o.Name())
				case *keep && *ownerName == "" && snap.Holds(o.Name(), core.Config):
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
	keep = cmd.Flags().Bool("keep-config", false, "keep the config keys this command creates after it exits (R13)")
	asBytes = cmd.Flags().Bool("bytes", false, "store key=@FILE values as bytes, exactly as read")
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
	var ownerName *string
	cmd := command("delete [flags] SCOPE [key…]",
		"delete keys of a scope",
		`Deletes the named keys of SCOPE, or with no keys every key the owner holds in
SCOPE (R12). Only a key's owner may delete it (R10, R11): pass --owner with
its name; this also works for config restored after a restart (R27). The
owner must not have a live session elsewhere. The command attaches the
owner with KeepConfig, so the owner's other config keys survive the end of
the command's session (its state keys, if any, would not: R13). Use
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
			c, ctx, cancel, err := cf.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			defer c.Close()
			// KeepConfig: ending this session must not take the owner's
			// other config keys with it.
			o, err := c.Owner(ctx, *ownerName, core.OwnerOptions{KeepConfig: true})
			if err != nil {
				return fmt.Errorf("delete: attach owner: %w", err)
			}
			if err := o.Delete(ctx, scope, keys...); err != nil {
				o.Close()
				return fmt.Errorf("delete %s: %w", scope, reservedHint(err))
			}
			if err := o.Close(); err != nil {
				return fmt.Errorf("delete: end owner session: %w", err)
			}
			return nil
		})
	cf = addClientFlags(cmd, true)
	ownerName = cmd.Flags().String("owner", "", "owner name to act as: the owner of the keys (default: an anonymous owner, which owns nothing)")
	return cmd
}

func evictCmd() *cobra.Command {
	var cf clientFlags
	cmd := command("evict [flags] NAME",
		"delete everything an owner name holds",
		`Deletes everything the owner NAME holds, config included (R14): for keys left
by an owner that never comes back. Fails while NAME has a live session.`,
		func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("evict needs exactly one NAME")
			}
			c, ctx, cancel, err := cf.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			defer c.Close()
			if err := c.Evict(ctx, args[0]); err != nil {
				return fmt.Errorf("evict %q: %w", args[0], err)
			}
			return nil
		})
	cf = addClientFlags(cmd, true)
	return cmd
}

func watchCmd() *cobra.Command {
	var cf clientFlags
	var out *outputFormat
	var minInterval, hysteresis *time.Duration
	var match *string
	cmd := command("watch [flags]",
		"print one JSON line per delivery",
		`Subscribes and prints one line per delivery, {"seq": N, "view": {…}}: the
current view at once, then the latest view after changes, rate limited by
the daemon (R16–R21). Runs until interrupted (exit 0) or until the daemon
goes away (exit 1).`,
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
					doc := fmt.Appendf(nil, `{"seq":%d,"view":%s}`, snap.Seq(), snapshotJSON(snap))
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
	match = fs.String("match", "", "wake only for changes in bucket/type/subtype; '*' or a missing part matches any (R21)")
	return cmd
}

func statsCmd() *cobra.Command {
	var cf clientFlags
	var out *outputFormat
	cmd := command("stats [flags]",
		"print the daemon's counters as JSON",
		`Prints the daemon's counters as JSON: sequence, sessions, keys, journal
(records, fsyncs, batches, checkpoints), last recovery, connections.`,
		func(cmd *cobra.Command, args []string) error {
			if err := noArgs(cmd, args); err != nil {
				return err
			}
			c, ctx, cancel, err := cf.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			defer c.Close()
			m, err := c.Stats(ctx)
			if err != nil {
				return err
			}
			return out.write(cmd.OutOrStdout(), core.ValueJSON(m))
		})
	cf = addClientFlags(cmd, true)
	out = outputFlag(cmd)
	return cmd
}
