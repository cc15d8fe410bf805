// Command sysregd runs the sysreg registry as a daemon on a Unix socket and
// is its command line client. See "sysregd help".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// usageError marks a command line mistake: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// exitCode prints err (if any) to stderr and returns the process exit code:
// 0 for success, 2 for usage errors, 1 for anything else.
func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "sysregd:", err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// command is one subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"serve":   {"run the registry daemon on a Unix socket", cmdServe},
		"get":     {"print the global view, or the values of one scope, as JSON", cmdGet},
		"set":     {"update keys of a scope: set [--owner N] [--keep-config] SCOPE key=value…", cmdSet},
		"delete":  {"delete keys of a scope: delete [--owner N] SCOPE [key…]", cmdDelete},
		"watch":   {"print one JSON line per delivery: watch [--min-interval D] [--match PATTERN]", cmdWatch},
		"stats":   {"print the daemon's counters as JSON", cmdStats},
		"inspect": {"print a data directory's checkpoint and journal as JSON, offline", cmdInspect},
		"check":   {"verify a data directory offline", cmdCheck},
		"evict":   {"delete everything an owner name holds: evict NAME", cmdEvict},
		"bench":   {"run the benchmark scenarios: bench [scenario] [--json] [--svg FILE]", cmdBench},
	}
}

// run is the whole program; main only adds signals and the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printUsage(stdout)
		if len(args) == 0 {
			return usagef("no command given")
		}
		return nil
	}
	cmd, ok := commands[args[0]]
	if !ok {
		printUsage(stderr)
		return usagef("unknown command %q", args[0])
	}
	return cmd.run(ctx, args[1:], stdout, stderr)
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "sysregd: the sysreg state and configuration registry")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "usage: sysregd COMMAND [flags] [args]")
	fmt.Fprintln(w)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'sysregd COMMAND --help' for a command's flags.")
}

// newFlags returns a flag set that reports errors as usage errors and
// prints its help to stdout.
func newFlags(name, usage string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "usage: sysregd %s %s\n\nflags:\n", name, usage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// parse parses flags; a bad flag is a usage error, --help is flag.ErrHelp
// (the help goes to stdout, exit 0). The flag package would print the whole
// help on every bad flag; it is muted while parsing, and a bad flag only
// gets a one-line error on stderr.
func parse(fs *flag.FlagSet, args []string) error {
	usage := fs.Usage
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.Usage = usage
	if errors.Is(err, flag.ErrHelp) {
		fs.Usage()
		return err
	}
	if err != nil {
		return usagef("%s: %v (see 'sysregd %s --help')", fs.Name(), err, fs.Name())
	}
	return nil
}

// defaultDataDir is $XDG_STATE_HOME/sysreg, or ~/.local/state/sysreg.
// Appliances pass --data-dir /var/lib/sysreg --socket /run/sysreg.sock.
func defaultDataDir() string {
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
