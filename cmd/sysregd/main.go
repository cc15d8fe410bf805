// Command sysregd runs the sysreg registry as a daemon on a Unix socket and
// is its command line client. See "sysregd help".
//
// The command tree is built with github.com/spf13/cobra (newRoot); main only
// adds signals and the exit code: 0 success, 1 failure, 2 usage error (R52).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// run is the whole program; main only adds signals and the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

// usageError marks a command line mistake: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// errSilent is an error that sets exit code 1 and prints nothing: for a
// command whose answer is "no", like grep finding nothing.
var errSilent = errors.New("")

// exitCode prints err (if any) to stderr and returns the process exit code:
// 0 for success, 2 for usage errors, 1 for anything else (R52).
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	if !errors.Is(err, errSilent) {
		fmt.Fprintln(stderr, "sysregd:", err)
	}
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// Texts every command's help ends with (R52).
const (
	exitText = `exit status:
  0  success
  1  failure (the daemon refused, is not running, a key is absent, a file is damaged)
  2  usage error (unknown command or flag, a malformed argument)`
	envText = `environment:
  SYSREG_SOCKET    the daemon's socket, for serve and the clients
                   (default: sysregd.sock in the data directory)
  SYSREG_DATA_DIR  the data directory of serve, inspect and check
                   (default: $XDG_STATE_HOME/sysreg or ~/.local/state/sysreg)`
)

// helpTemplate is cobra's help, in the shape of the rest of the output:
// "usage: …" first, then the description, commands, flags, exit status and
// environment.
const helpTemplate = `usage: {{.UseLine}}
{{with (or .Long .Short)}}
{{. | trimTrailingWhitespaces}}
{{end}}{{if .HasExample}}
examples:
{{.Example}}
{{end}}{{if .HasAvailableSubCommands}}
commands:{{range .Commands}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}

Run 'sysregd help COMMAND' or 'sysregd COMMAND --help' for a command's flags.
{{end}}{{if .HasAvailableLocalFlags}}
flags:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}
{{end}}{{if .HasAvailableInheritedFlags}}
global flags:
{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}
{{end}}
` + exitText + "\n\n" + envText + "\n"

// newRoot builds the command tree. Commands write their results to stdout
// and everything else — warnings, notes, errors — to stderr.
func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "sysregd COMMAND [flags] [args]",
		Short: "the sysreg state and configuration registry",
		Long: `sysregd runs the sysreg registry as a daemon on a Unix socket (serve) and is
its command line client. Flags go anywhere before '--' (R52).`,
		SilenceErrors: true, // exitCode prints them, once
		SilenceUsage:  true, // a mistake gets one line, not the whole help
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q (see 'sysregd help')", args[0])
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg = fmt.Sprintf("unknown command %q; did you mean %s? (see 'sysregd help')", args[0], strings.Join(s, " or "))
			}
			return usageError{msg}
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cmd.Help(); err != nil {
				return err
			}
			return usagef("no command given")
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetHelpTemplate(helpTemplate)
	root.SetUsageTemplate(helpTemplate)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usagef("%s: %v (see 'sysregd help %s')", cmd.Name(), err, cmd.Name())
	})
	root.SuggestionsMinimumDistance = 2
	root.AddCommand(
		serveCmd(),
		getCmd(), setCmd(), ownersCmd(), deleteCmd(), evictCmd(), watchCmd(), waitCmd(), changesCmd(), statsCmd(),
		inspectCmd(), checkCmd(),
		backupCmd(), resetCmd(), exportCmd(), importCmd(), confirmCmd(), rollbackCmd(), pendingCmd(),
		benchCmd(),
		versionCmd(), manCmd(root),
	)
	root.SetHelpCommand(helpCmd(root))
	// cobra's completion command, with a shell it does not know as a
	// usage error rather than its help and exit 0.
	root.InitDefaultCompletionCmd()
	if comp, _, err := root.Find([]string{"completion"}); err == nil && comp != root {
		comp.Short = "print a shell completion script: completion bash|zsh|fish|powershell"
		comp.Args = func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("completion: unknown shell %q (want bash, zsh, fish or powershell)", args[0])
			}
			return nil
		}
		comp.RunE = func(cmd *cobra.Command, args []string) error {
			return usagef("completion needs a shell: bash, zsh, fish or powershell (see 'sysregd help completion')")
		}
	}
	return root
}

// helpCmd is "sysregd help [COMMAND…]": the help of that command, on stdout;
// an unknown topic is a usage error (cobra's own prints the root's usage and
// exits 0).
func helpCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND]",
		Short: "print the help of sysregd or of one command",
		Long:  "Prints the help of COMMAND (for example 'sysregd help set'), or of sysregd.",
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			var names []cobra.Completion
			for _, c := range root.Commands() {
				if c.IsAvailableCommand() {
					names = append(names, c.Name())
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			target, rest, err := root.Find(args)
			if err != nil || len(rest) > 0 {
				return usagef("help: unknown command %q (see 'sysregd help')", args)
			}
			target.InitDefaultHelpFlag()
			return target.Help()
		},
	}
}

// command returns a cobra command with R52's conventions: use is the
// command line after "sysregd" (its first word is the name), the run
// function gets the command's context, stdout and stderr.
func command(use, short, long string, runE func(cmd *cobra.Command, args []string) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  cobra.ArbitraryArgs, // each command checks its own, as usage errors
		RunE:  runE,
	}
}

// noArgs is a usage error when args are given.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments, got %q", cmd.Name(), args)
	}
	return nil
}

// defaultDataDir is $SYSREG_DATA_DIR, else $XDG_STATE_HOME/sysreg, else
// ~/.local/state/sysreg. Appliances pass --data-dir /var/lib/sysreg --socket
// /run/sysreg.sock (or set the environment).
func defaultDataDir() string {
	if d := os.Getenv("SYSREG_DATA_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "sysreg")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "sysreg")
	}
	return filepath.Join(os.TempDir(), "sysreg")
}

// SocketName is the socket's file name inside the default data dir.
const SocketName = "sysregd.sock"

// defaultSocket is $SYSREG_SOCKET, or sysregd.sock in the default data dir.
func defaultSocket() string {
	if s := os.Getenv("SYSREG_SOCKET"); s != "" {
		return s
	}
	return filepath.Join(defaultDataDir(), SocketName)
}

// dataDirFlag registers --data-dir.
func dataDirFlag(fs *pflag.FlagSet, usage string) *string {
	return fs.String("data-dir", defaultDataDir(), usage+" ($SYSREG_DATA_DIR)")
}
