package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sysreg/sysreg/store"
)

// durationValue is a time.Duration flag that wants a unit: "--min-interval
// 100" is refused with "missing unit, e.g. 100ms" rather than read as
// nanoseconds or with time's terse message (R52). "0" alone is zero.
type durationValue time.Duration

func durationFlag(fs *pflag.FlagSet, name string, def time.Duration, usage string) *time.Duration {
	d := def
	fs.Var((*durationValue)(&d), name, usage)
	return &d
}

func (d *durationValue) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		if s != "" && strings.Trim(s, "0123456789.+-") == "" {
			return fmt.Errorf("%q: missing unit, e.g. 100ms (units: ns, us, ms, s, m, h)", s)
		}
		return fmt.Errorf("%q is not a duration, e.g. 100ms, 1.5s, 2m", s)
	}
	*d = durationValue(v)
	return nil
}

func (d *durationValue) String() string {
	if *d == 0 {
		return "0"
	}
	return time.Duration(*d).String()
}

func (d *durationValue) Type() string { return "duration" }

// outputFormat is the -o flag of the reading commands.
type outputFormat string

const (
	outJSON   outputFormat = "json"   // compact, one document per line
	outPretty outputFormat = "pretty" // indented, for people
)

func (o *outputFormat) Set(s string) error {
	switch outputFormat(s) {
	case outJSON, outPretty:
		*o = outputFormat(s)
		return nil
	}
	return fmt.Errorf("%q: want json or pretty", s)
}

func (o *outputFormat) String() string { return string(*o) }
func (o *outputFormat) Type() string   { return "format" }

// outputFlag registers -o/--output.
func outputFlag(cmd *cobra.Command) *outputFormat {
	o := outJSON
	cmd.Flags().VarP(&o, "output", "o", "output format: json (compact, one document per line) or pretty (indented)")
	cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]cobra.Completion{"json", "pretty"}, cobra.ShellCompDirectiveNoFileComp))
	return &o
}

// write writes one JSON document (compact) in format o and a newline.
func (o outputFormat) write(w io.Writer, doc []byte) error {
	if o == outPretty {
		var buf bytes.Buffer
		if err := json.Indent(&buf, doc, "", "  "); err == nil {
			doc = buf.Bytes()
		}
	}
	_, err := w.Write(append(doc, '\n'))
	return err
}

// writeValue renders v with writeJSON's rules and writes it in format o.
func (o outputFormat) writeValue(w io.Writer, v any) error {
	doc, err := marshalJSON(v)
	if err != nil {
		return err
	}
	return o.write(w, doc)
}

// marshalJSON renders v as JSON without HTML escaping.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// clientFlags are the flags every client command shares.
type clientFlags struct {
	socket  *string
	timeout *time.Duration
}

// addClientFlags registers --socket and, with timeout, --timeout.
func addClientFlags(cmd *cobra.Command, timeout bool) clientFlags {
	fs := cmd.Flags()
	cf := clientFlags{socket: fs.String("socket", defaultSocket(), "the daemon's Unix socket ($SYSREG_SOCKET)")}
	if timeout {
		cf.timeout = durationFlag(fs, "timeout", 30*time.Second, "give up after this long (0: never)")
	}
	return cf
}

// dial connects to the daemon. The returned context carries the command's
// timeout; cancel it when done.
func (cf clientFlags) dial(ctx context.Context) (*store.Client, context.Context, context.CancelFunc, error) {
	cancel := context.CancelFunc(func() {})
	if cf.timeout != nil && *cf.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, *cf.timeout)
	}
	c, err := store.Dial(ctx, *cf.socket)
	if err != nil {
		cancel()
		return nil, nil, nil, fmt.Errorf("%w (is sysregd serve running? --socket or $SYSREG_SOCKET names its socket)", err)
	}
	return c, ctx, cancel, nil
}

// run dials the daemon, calls fn with the command's context (carrying
// --timeout) and the client, and closes the client.
func (cf clientFlags) run(cmd *cobra.Command, fn func(ctx context.Context, c *store.Client) error) error {
	c, ctx, cancel, err := cf.dial(cmd.Context())
	if err != nil {
		return err
	}
	defer cancel()
	defer c.Close()
	return fn(ctx, c)
}
