package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

// changesCmd is "sysregd changes --from N [--follow]" (R47): the change
// feed, one JSON document per mutation.
func changesCmd() *cobra.Command {
	var cf clientFlags
	var out *outputFormat
	var from *uint64
	var follow *bool
	cmd := command("changes [flags]",
		"print the config changes after a sequence number (the change feed)",
		`Prints every mutation with a sequence number above --from that changed a
journaled config layer (fleet, saved, runtime), in order, one JSON document
per line (R47):
  {"seq":N,"time":"2026-01-02T15:04:05.123456789Z","changes":[
    {"layer":"saved","scope":"config/wifi/wlan0","key":"ssid",
     "old":"home","old_owner":"wifid","new":"office","new_owner":"wifid"}]}
Each change is what the mutation did in that layer: "old" is absent for a
key that was not in the layer, "new" for a key the mutation removed from it.
Sequence numbers rise but skip (state and unjournaled mutations take
numbers too). Without --follow it stops once it has printed the history up
to the newest change; with --follow it then prints live changes until
interrupted.

Resuming: pass the last "seq" you processed as --from. If the daemon no
longer keeps the history after it (serve --feed-retention, default the last
10,000 mutations), changes exits 1 with "history compacted": resync from
'sysregd get' and resume with --from the "seq" of 'sysregd stats' taken
before it.

examples:
  sysregd changes --from 0
  sysregd changes --from 1234 --follow`,
		func(cmd *cobra.Command, args []string) error {
			if err := noArgs(cmd, args); err != nil {
				return err
			}
			return cf.run(cmd, func(ctx context.Context, c *store.Client) error {
				return printChanges(ctx, cmd, c, *out, *from, *follow)
			})
		})
	cf = addClientFlags(cmd, false)
	out = outputFlag(cmd)
	from = cmd.Flags().Uint64("from", 0, "print the changes after this sequence number (the last one you saw; 0: all history kept)")
	follow = cmd.Flags().Bool("follow", false, "after the history, keep printing live changes until interrupted")
	return cmd
}

// printChanges prints the feed after from: up to the newest record, or
// on and on with follow.
func printChanges(ctx context.Context, cmd *cobra.Command, c *store.Client, out outputFormat, from uint64, follow bool) error {
	target := uint64(0)
	if !follow {
		st, err := c.Stats(ctx)
		if err != nil {
			return fmt.Errorf("changes: %w", err)
		}
		if target = st.Journal.LastRecord; target <= from {
			return nil
		}
	}
	feed, err := c.Changes(ctx, from)
	var ce *core.CompactedError
	if errors.As(err, &ce) {
		return fmt.Errorf("changes: history compacted: the oldest --from kept is %d; resync with 'sysregd get' and resume from the seq of 'sysregd stats'", ce.Oldest)
	}
	if err != nil {
		return fmt.Errorf("changes: %w", err)
	}
	defer feed.Close()
	w := cmd.OutOrStdout()
	for it := range feed.C() {
		if err := out.write(w, feedItemJSON(it)); err != nil {
			return err
		}
		if !follow && it.Seq >= target {
			return nil
		}
	}
	if cmd.Context().Err() != nil {
		return nil // interrupted
	}
	if errors.As(feed.Err(), &ce) {
		return fmt.Errorf("changes: fell behind the history kept (oldest %d): resync", ce.Oldest)
	}
	return fmt.Errorf("changes: %w", feed.Err())
}

// feedItemJSON renders a feed item as one JSON document.
func feedItemJSON(it store.FeedItem) []byte {
	var b bytes.Buffer
	b.WriteString(`{"seq":`)
	b.WriteString(strconv.FormatUint(it.Seq, 10))
	if !it.Time.IsZero() {
		b.WriteString(`,"time":`)
		b.WriteString(strconv.Quote(it.Time.UTC().Format(time.RFC3339Nano)))
	}
	b.WriteString(`,"changes":`)
	writeChanges(&b, it.Changes)
	b.WriteByte('}')
	return b.Bytes()
}

// writeChanges writes changes as a JSON array: each {"layer", "scope",
// "key"}, with "old"/"old_owner" when the key was there before and
// "new"/"new_owner" when it is there after (the feed, R47; rollback and
// pending, R44).
func writeChanges(b *bytes.Buffer, cs []core.Change) {
	b.WriteByte('[')
	for i, c := range cs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"layer":`)
		b.WriteString(strconv.Quote(c.Layer.String()))
		b.WriteString(`,"scope":`)
		b.Write(valueJSON(c.Scope.String()))
		b.WriteString(`,"key":`)
		b.Write(valueJSON(c.Key))
		if c.Existed {
			b.WriteString(`,"old":`)
			b.Write(valueJSON(c.Old))
			b.WriteString(`,"old_owner":`)
			b.Write(valueJSON(c.OldOwner))
		}
		if c.Exists {
			b.WriteString(`,"new":`)
			b.Write(valueJSON(c.New))
			b.WriteString(`,"new_owner":`)
			b.Write(valueJSON(c.NewOwner))
		}
		b.WriteByte('}')
	}
	b.WriteByte(']')
}
