package main

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

// The commands of confirmed applies (R44): confirm, rollback, pending;
// 'set --confirm-within' starts one.

// parseApplyID parses the ID argument of confirm and rollback.
func parseApplyID(name string, args []string) (uint64, error) {
	if len(args) != 1 {
		return 0, usagef("%s takes one apply ID (as 'set --confirm-within' printed it), got %q", name, args)
	}
	id, err := strconv.ParseUint(args[0], 10, 64)
	if err != nil || id == 0 {
		return 0, usagef("%s: %q is not an apply ID (a positive integer; 'sysregd pending' lists them)", name, args[0])
	}
	return id, nil
}

func confirmCmd() *cobra.Command {
	var cf clientFlags
	cmd := command("confirm [flags] ID",
		"make a change made with 'set --confirm-within' permanent",
		`Confirms the pending apply ID (R44): the change that 'set --confirm-within'
made (and printed the ID of) stays. Unconfirmed, it is undone at its deadline,
and at the daemon's next start whatever happens. Only the uid the apply's
owner is bound to, or root, may confirm. Exits 1 when ID is not pending
(unknown, confirmed, or already undone). Prints nothing on success.

  id=$(sysregd set --confirm-within 60s config/net/eth0 address=10.0.0.2)
  # … check that the device is still reachable, then:
  sysregd confirm "$id"`,
		func(cmd *cobra.Command, args []string) error {
			id, err := parseApplyID("confirm", args)
			if err != nil {
				return err
			}
			return cf.run(cmd, func(ctx context.Context, c *store.Client) error {
				if err := c.Confirm(ctx, id); err != nil {
					return fmt.Errorf("confirm %d: %w", id, err)
				}
				return nil
			})
		})
	cf = addClientFlags(cmd, true)
	return cmd
}

func rollbackCmd() *cobra.Command {
	var cf clientFlags
	var out *outputFormat
	cmd := command("rollback [flags] ID",
		"undo a change made with 'set --confirm-within' now",
		`Undoes the pending apply ID now (R44): every key it changed goes back to its
value and owner before it, except keys that a later change has touched since,
which are left as they are. Prints those keys as JSON, [] when there are
none: [{"layer", "scope", "key", "old", "old_owner", "new", "new_owner"}…],
"old" being the value the undo would have restored (absent: the key was not
there) and "new" the current one (absent: it is gone). Only the uid the
apply's owner is bound to, or root, may roll back. Exits 1 when ID is not
pending.`,
		func(cmd *cobra.Command, args []string) error {
			id, err := parseApplyID("rollback", args)
			if err != nil {
				return err
			}
			return cf.run(cmd, func(ctx context.Context, c *store.Client) error {
				left, err := c.Rollback(ctx, id)
				if err != nil {
					return fmt.Errorf("rollback %d: %w", id, err)
				}
				if len(left) > 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "sysregd: warning: %d key(s) changed since the apply were left as they are\n", len(left))
				}
				var b bytes.Buffer
				writeChanges(&b, left)
				return out.write(cmd.OutOrStdout(), b.Bytes())
			})
		})
	cf = addClientFlags(cmd, true)
	out = outputFlag(cmd)
	return cmd
}

func pendingCmd() *cobra.Command {
	var cf clientFlags
	var out *outputFormat
	cmd := command("pending [flags]",
		"list the changes waiting for 'sysregd confirm'",
		`Lists the pending applies (R44), oldest first, as JSON:
[{"id", "owner", "layer", "deadline", "keys": [{"scope", "key", "old",
"old_owner", "new", "new_owner"}…]}…] — "old" is what the undo restores
(absent: the key is removed), "new" what the apply wrote (absent: it
deleted the key); "deadline" is when it is undone unless confirmed.`,
		func(cmd *cobra.Command, args []string) error {
			if err := noArgs(cmd, args); err != nil {
				return err
			}
			return cf.run(cmd, func(ctx context.Context, c *store.Client) error {
				ps, err := c.Pending(ctx)
				if err != nil {
					return fmt.Errorf("pending: %w", err)
				}
				return out.write(cmd.OutOrStdout(), pendingJSON(ps))
			})
		})
	cf = addClientFlags(cmd, true)
	out = outputFlag(cmd)
	return cmd
}

// pendingJSON renders pending applies for 'sysregd pending'.
func pendingJSON(ps []core.PendingApply) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"owner":`, p.ID)
		b.Write(valueJSON(p.Owner))
		fmt.Fprintf(&b, `,"layer":%q,"deadline":%q,"keys":`, p.Layer.String(), p.Deadline.UTC().Format(time.RFC3339Nano))
		cs := make([]core.Change, len(p.Undo))
		for j, u := range p.Undo {
			cs[j] = core.Change{Layer: p.Layer, Scope: u.Scope, Key: u.Key, Old: u.Value, Existed: u.Had, OldOwner: u.Owner,
				New: u.LeftValue, Exists: u.Left, NewOwner: u.LeftOwner}
		}
		writeChanges(&b, cs)
		b.WriteByte('}')
	}
	b.WriteByte(']')
	return b.Bytes()
}
