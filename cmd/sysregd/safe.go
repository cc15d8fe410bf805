package main

import (
	"github.com/spf13/cobra"

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
			c, ctx, cancel, err := cf.dial(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			defer c.Close()
			n, err := store.WriteBackup(ctx, c, args[0])
			if err != nil {
				return err
			}
			return out.writeValue(cmd.OutOrStdout(), struct {
				File  string `json:"file"`
				Bytes int64  `json:"bytes"`
			}{args[0], n})
		})
	cf = addClientFlags(cmd, true)
	out = outputFlag(cmd)
	return cmd
}
