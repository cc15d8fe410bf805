package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/codec"
	"github.com/sysreg/sysreg/journal"
	"github.com/sysreg/sysreg/recovery"
	"github.com/sysreg/sysreg/store"
)

// The client subcommands (get, set, delete, evict, watch, stats) talk to a
// running daemon; inspect and check read a data directory offline. Every
// command writes exactly its JSON result to stdout (compact, one document
// per line: pipe it through jq to pretty-print it) and everything else —
// warnings, notes, errors — to stderr (R33).

// clientFlags registers the flags every client subcommand shares.
type clientFlags struct {
	socket  *string
	timeout *time.Duration
}

func addClientFlags(fs *flag.FlagSet, timeout bool) clientFlags {
	cf := clientFlags{socket: fs.String("socket", defaultSocket(), "the daemon's Unix socket ($SYSREG_SOCKET)")}
	if timeout {
		cf.timeout = fs.Duration("timeout", 30*time.Second, "give up after this long (0: never)")
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

// writeLine writes one JSON document and a newline.
func writeLine(w io.Writer, doc []byte) error {
	_, err := w.Write(append(doc, '\n'))
	return err
}

func cmdGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("get", "[flags] [SCOPE]", stdout)
	cf := addClientFlags(fs, true)
	fs.Usage = withDescription(fs, "get", "[flags] [SCOPE]", stdout,
		"Prints the global view {\"state\": {…}, \"config\": {…}} as JSON (R3), or with\n"+
			"SCOPE (bucket/type/subtype) the values object of that scope ({} if it is empty).")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return usagef("get takes at most one SCOPE, got %q", fs.Args())
	}
	var scope core.Scope
	if fs.NArg() == 1 {
		var err error
		if scope, err = core.ParseScope(fs.Arg(0)); err != nil {
			return usagef("get: %v", err)
		}
	}
	c, ctx, cancel, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	defer c.Close()
	snap, err := c.Snapshot(ctx)
	if err != nil {
		return err
	}
	if fs.NArg() == 0 {
		doc, err := snap.MarshalJSON()
		if err != nil {
			return err
		}
		return writeLine(stdout, doc)
	}
	vals := snap.Values(scope)
	if vals == nil {
		vals = core.Values{}
	}
	return writeLine(stdout, core.ValueJSON(map[string]any(vals)))
}

func cmdSet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const usage = "[flags] SCOPE key=value…"
	fs := newFlags("set", usage, stdout)
	cf := addClientFlags(fs, true)
	ownerName := fs.String("owner", "", "owner name to write as (default: an anonymous owner)")
	keep := fs.Bool("keep-config", false, "keep the config keys this command creates after it exits (R13)")
	fs.Usage = withDescription(fs, "set", usage, stdout,
		"Updates (deep-merges, R4) the keys of SCOPE. A value is parsed as JSON where it\n"+
			"parses (42, 1.5, true, null, \"text\", [1,2], {\"a\":1}); otherwise it is the\n"+
			"string as given. Integers are int64, or uint64 above the int64 range.\n\n"+
			"The command's owner session ends when it exits, and an owner's keys die\n"+
			"with it (R13): state keys always, config keys unless --keep-config is given.\n"+
			"So to set persistent config, pass --keep-config (and best an --owner name,\n"+
			"with which 'delete --owner' or 'evict' can remove the keys again). Keys that\n"+
			"another owner created keep their owner and the new value (R11). Prints\n"+
			"nothing on success; warnings go to stderr.")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 2 {
		return usagef("set needs a SCOPE and at least one key=value")
	}
	scope, err := core.ParseScope(fs.Arg(0))
	if err != nil {
		return usagef("set: %v", err)
	}
	vals := core.Values{}
	for _, kv := range fs.Args()[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return usagef("set: %q is not key=value", kv)
		}
		if _, dup := vals[k]; dup {
			return usagef("set: key %q given twice", k)
		}
		vals[k] = parseValue(v)
	}

	c, ctx, cancel, err := cf.dial(ctx)
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
}

// parseValue reads a command line value: JSON where it is one JSON value,
// else the string itself.
func parseValue(s string) any {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return s
	}
	if _, err := dec.Token(); err != io.EOF {
		return s // trailing data: "1 2", "{} x"
	}
	return convertNumbers(v)
}

// convertNumbers turns json.Numbers into R2 integers and floats: an integer
// is int64, or uint64 above math.MaxInt64; anything else (a fraction, an
// exponent, an integer outside both ranges) is float64.
func convertNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		s := string(x)
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i
		}
		if u, err := strconv.ParseUint(s, 10, 64); err == nil {
			return u
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return s
		}
		return f // ±Inf for out-of-range exponents, as strconv says
	case []any:
		for i, e := range x {
			x[i] = convertNumbers(e)
		}
		return x
	case map[string]any:
		for k, e := range x {
			x[k] = convertNumbers(e)
		}
		return x
	}
	return v
}

// reservedHint adds to a *core.ReservedKeysError which owner to act as.
func reservedHint(err error) error {
	var rk *core.ReservedKeysError
	if errors.As(err, &rk) {
		return fmt.Errorf("%w (keys belong to another owner: act as it with --owner NAME, see 'sysregd get' and 'sysregd inspect')", err)
	}
	return err
}

func cmdDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const usage = "[flags] SCOPE [key…]"
	fs := newFlags("delete", usage, stdout)
	cf := addClientFlags(fs, true)
	ownerName := fs.String("owner", "", "owner name to act as: the owner of the keys (default: an anonymous owner, which owns nothing)")
	fs.Usage = withDescription(fs, "delete", usage, stdout,
		"Deletes the named keys of SCOPE, or with no keys every key the owner holds in\n"+
			"SCOPE (R12). Only a key's owner may delete it (R10, R11): pass --owner with\n"+
			"its name; this also works for config restored after a restart (R27). The\n"+
			"owner must not have a live session elsewhere. The command attaches the\n"+
			"owner with KeepConfig, so the owner's other config keys survive the end of\n"+
			"the command's session (its state keys, if any, would not: R13). Use\n"+
			"'sysregd evict NAME' to delete everything a name holds.")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 1 {
		return usagef("delete needs a SCOPE")
	}
	scope, err := core.ParseScope(fs.Arg(0))
	if err != nil {
		return usagef("delete: %v", err)
	}
	keys := fs.Args()[1:]
	for _, k := range keys {
		if k == "" {
			return usagef("delete: empty key")
		}
	}
	c, ctx, cancel, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	defer c.Close()
	// KeepConfig: ending this session must not take the owner's other
	// config keys with it.
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
}

func cmdEvict(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const usage = "[flags] NAME"
	fs := newFlags("evict", usage, stdout)
	cf := addClientFlags(fs, true)
	fs.Usage = withDescription(fs, "evict", usage, stdout,
		"Deletes everything the owner NAME holds, config included (R14): for keys left\n"+
			"by an owner that never comes back. Fails while NAME has a live session.")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("evict needs exactly one NAME")
	}
	c, ctx, cancel, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	defer c.Close()
	if err := c.Evict(ctx, fs.Arg(0)); err != nil {
		return fmt.Errorf("evict %q: %w", fs.Arg(0), err)
	}
	return nil
}

func cmdWatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const usage = "[flags]"
	fs := newFlags("watch", usage, stdout)
	cf := addClientFlags(fs, false)
	minInterval := fs.Duration("min-interval", 0, "at least this long between deliveries (R17)")
	hysteresis := fs.Duration("hysteresis", 0, "wait this long after a change before delivering (R20)")
	match := fs.String("match", "", "wake only for changes in bucket/type/subtype; '*' or a missing part matches any (R21)")
	fs.Usage = withDescription(fs, "watch", usage, stdout,
		"Subscribes and prints one line per delivery, {\"seq\": N, \"view\": {…}}: the\n"+
			"current view at once, then the latest view after changes, rate limited by\n"+
			"the daemon (R16–R21). Runs until interrupted (exit 0) or until the daemon\n"+
			"goes away (exit 1).")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("watch takes no arguments, got %q", fs.Args())
	}
	if *minInterval < 0 || *hysteresis < 0 {
		return usagef("watch: negative duration")
	}
	pat, err := core.ParsePattern(*match)
	if err != nil {
		return usagef("watch: --match: %v", err)
	}
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
	bw := bufio.NewWriter(stdout)
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
			view, err := snap.MarshalJSON()
			if err != nil {
				return err
			}
			fmt.Fprintf(bw, `{"seq":%d,"view":`, snap.Seq())
			bw.Write(view)
			bw.WriteString("}\n")
			if err := bw.Flush(); err != nil {
				return fmt.Errorf("watch: %w", err)
			}
		}
	}
}

func cmdStats(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("stats", "[flags]", stdout)
	cf := addClientFlags(fs, true)
	fs.Usage = withDescription(fs, "stats", "[flags]", stdout,
		"Prints the daemon's counters as JSON: sequence, sessions, keys, journal\n"+
			"(records, fsyncs, batches, checkpoints), last recovery, connections.")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("stats takes no arguments, got %q", fs.Args())
	}
	c, ctx, cancel, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	defer c.Close()
	m, err := c.Stats(ctx)
	if err != nil {
		return err
	}
	return writeLine(stdout, core.ValueJSON(m))
}

// dataDirFlag registers --data-dir for the offline commands.
func dataDirFlag(fs *flag.FlagSet) *string {
	return fs.String("data-dir", defaultDataDir(), "the data directory (journal.db lives here)")
}

func cmdInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("inspect", "[flags]", stdout)
	dir := dataDirFlag(fs)
	fs.Usage = withDescription(fs, "inspect", "[flags]", stdout,
		"Prints a data directory's journal as JSON, offline: the meta data, the\n"+
			"checkpoint (its sequence, the config view and each key's owner) and every\n"+
			"record with its decoded mutation. It never writes and never blocks a\n"+
			"running daemon (\"live\": true then; the file may change during the read).\n"+
			"On a damaged file it prints what it could read, lists the problems and\n"+
			"exits 1.")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("inspect takes no arguments, got %q", fs.Args())
	}
	path := filepath.Join(*dir, store.JournalFile)
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	rep, _ := journal.Inspect(path)
	out := inspectJSON(rep)
	if err := writeJSON(stdout, out); err != nil {
		return err
	}
	if n := len(out.Problems); n > 0 {
		return fmt.Errorf("inspect: %s: %d problem(s), the first: %s", path, n, out.Problems[0])
	}
	return nil
}

// inspectOut is what inspect prints.
type inspectOut struct {
	Path       string         `json:"path"`
	FileSize   int64          `json:"file_size"`
	Live       bool           `json:"live"`
	PageSize   int            `json:"page_size"`
	TxID       uint64         `json:"txid"`
	Format     string         `json:"format"`
	Version    uint64         `json:"version"`
	Mark       uint64         `json:"mark"`
	Checkpoint *checkpointOut `json:"checkpoint"`
	Records    []recordOut    `json:"records"`
	Problems   []string       `json:"problems"`
	rep        *journal.InspectReport
}

type checkpointOut struct {
	Key    uint64                       `json:"key"`
	Last   uint64                       `json:"last"`
	CRC    uint32                       `json:"crc"`
	Bytes  int                          `json:"bytes"`
	Seq    *uint64                      `json:"seq,omitempty"`
	View   json.RawMessage              `json:"view,omitempty"`
	Owners map[string]map[string]string `json:"owners,omitempty"` // scope → key → owner
	Error  string                       `json:"error,omitempty"`
}

type recordOut struct {
	Key      uint64       `json:"key"`
	Prev     uint64       `json:"prev"`
	CRC      uint32       `json:"crc"`
	Bytes    int          `json:"bytes"`
	Mutation *mutationOut `json:"mutation,omitempty"`
	Error    string       `json:"error,omitempty"`
}

type mutationOut struct {
	Seq uint64  `json:"seq"`
	Ops []opOut `json:"ops"`
}

type opOut struct {
	Kind   string          `json:"kind"`
	Bucket string          `json:"bucket"`
	Scope  string          `json:"scope,omitempty"`
	Owner  string          `json:"owner,omitempty"`
	Values json.RawMessage `json:"values,omitempty"`
	Keys   []string        `json:"keys,omitempty"`
}

// inspectJSON decodes what Inspect read: the checkpoint and every record
// through internal/codec, as recovery would. Every problem, the journal's
// and the decoder's, lands in Problems.
func inspectJSON(rep *journal.InspectReport) *inspectOut {
	out := &inspectOut{
		Path: rep.Path, FileSize: rep.FileSize, Live: rep.Live, PageSize: rep.PageSize,
		TxID: rep.TxID, Format: rep.Format, Version: rep.Version, Mark: rep.Mark,
		Records: []recordOut{}, Problems: []string{}, rep: rep,
	}
	for _, p := range rep.Problems {
		out.Problems = append(out.Problems, p.Error())
	}
	if ic := rep.Checkpoint; ic != nil {
		co := &checkpointOut{Key: ic.Key, Last: ic.Last, CRC: ic.CRC, Bytes: len(ic.Data)}
		if ic.Err != nil {
			co.Error = ic.Err.Error() // already among the problems
		} else if snap, err := codec.DecodeSnapshot(ic.Data); err != nil {
			co.Error = err.Error()
			out.Problems = append(out.Problems, fmt.Sprintf("checkpoint at %d: %v", ic.Key, err))
		} else {
			seq := snap.Seq()
			co.Seq = &seq
			co.View, _ = snap.MarshalJSON()
			co.Owners = map[string]map[string]string{}
			snap.Walk(core.Config, func(scope core.Scope, key, owner string, _ any) error {
				m := co.Owners[scope.String()]
				if m == nil {
					m = map[string]string{}
					co.Owners[scope.String()] = m
				}
				m[key] = owner
				return nil
			})
		}
		out.Checkpoint = co
	}
	for _, r := range rep.Records {
		ro := recordOut{Key: r.Key, Prev: r.Prev, CRC: r.CRC, Bytes: len(r.Data)}
		if r.Err != nil {
			ro.Error = r.Err.Error() // already among the problems
		} else if m, err := codec.DecodeMutation(r.Data); err != nil {
			ro.Error = err.Error()
			out.Problems = append(out.Problems, fmt.Sprintf("record %d: %v", r.Key, err))
		} else {
			ro.Mutation = &mutationOut{Seq: m.Seq, Ops: make([]opOut, len(m.Ops))}
			for i, op := range m.Ops {
				oo := opOut{Kind: op.Kind.String(), Bucket: op.Scope.Bucket.String(), Owner: op.Owner, Keys: op.Keys}
				if op.Kind != core.MutDrop {
					oo.Scope = op.Scope.String()
				}
				if op.Kind == core.MutMerge || op.Kind == core.MutSet {
					oo.Values = core.ValueJSON(map[string]any(op.Values))
				}
				ro.Mutation.Ops[i] = oo
			}
		}
		out.Records = append(out.Records, ro)
	}
	return out
}

// writeJSON writes v as one line of JSON, without HTML escaping.
func writeJSON(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", "[flags]", stdout)
	dir := dataDirFlag(fs)
	fs.Usage = withDescription(fs, "check", "[flags]", stdout,
		"Verifies a data directory offline, as the daemon's startup would: the\n"+
			"journal file's structure, meta data, checksums and record chain, the\n"+
			"decoding of the checkpoint and of every record, and their replay into the\n"+
			"config (R27, R29). Prints {\"ok\": true, \"records\": N, \"keys\": K, \"seq\": S, …}\n"+
			"or {\"ok\": false, \"problems\": […]} and exits 1 when not ok. It never writes.")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("check takes no arguments, got %q", fs.Args())
	}
	path := filepath.Join(*dir, store.JournalFile)
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	out := checkOut{Path: path, Problems: []string{}}
	if fi.Size() == 0 {
		// An empty file is what a crash right after creating it leaves;
		// the daemon initialises it (see journal.Open).
		out.OK = true
		return writeJSON(stdout, out)
	}
	rep, _ := journal.Inspect(path)
	ins := inspectJSON(rep)
	out.Live = rep.Live
	out.Problems = ins.Problems
	if len(out.Problems) == 0 {
		res, err := recovery.Run(inspectSource{ins})
		if err != nil {
			out.Problems = append(out.Problems, err.Error())
		} else {
			r := res.Report
			out.Records, out.Keys, out.Owners, out.Seq = r.Records, r.Keys, r.Owners, r.Seq
			out.SeqFloor, out.CheckpointSeq = r.SeqFloor, r.CheckpointSeq
		}
	}
	if len(out.Problems) > 0 {
		if err := writeJSON(stdout, checkFailed{Path: path, Live: out.Live, Problems: out.Problems}); err != nil {
			return err
		}
		return fmt.Errorf("check: %s is damaged: %d problem(s), the first: %s", path, len(out.Problems), out.Problems[0])
	}
	out.OK = true
	return writeJSON(stdout, out)
}

// checkFailed is what check prints when it found problems.
type checkFailed struct {
	OK       bool     `json:"ok"` // false
	Path     string   `json:"path"`
	Live     bool     `json:"live,omitempty"`
	Problems []string `json:"problems"`
}

type checkOut struct {
	OK            bool     `json:"ok"`
	Path          string   `json:"path"`
	Live          bool     `json:"live,omitempty"`
	Records       int      `json:"records"`
	Keys          int      `json:"keys"`
	Owners        int      `json:"owners"`
	Seq           uint64   `json:"seq"`
	SeqFloor      uint64   `json:"seq_floor"`
	CheckpointSeq uint64   `json:"checkpoint_seq"`
	Problems      []string `json:"-"`
}

// inspectSource is recovery.Source over what Inspect read, so that check
// replays with exactly the code the daemon's startup runs.
type inspectSource struct{ ins *inspectOut }

var _ recovery.Source = inspectSource{}

func (s inspectSource) ReadCheckpoint() (uint64, []byte, bool, error) {
	ic := s.ins.rep.Checkpoint
	if ic == nil {
		return 0, nil, false, nil
	}
	if ic.Err != nil {
		return 0, nil, false, ic.Err
	}
	return ic.Key, ic.Data, true, nil
}

func (s inspectSource) Replay(after uint64, fn func(key uint64, data []byte) error) error {
	for _, r := range s.ins.rep.Records {
		if r.Err != nil {
			return r.Err
		}
		if r.Key <= after {
			continue
		}
		if err := fn(r.Key, r.Data); err != nil {
			return err
		}
	}
	return nil
}

func (s inspectSource) Mark() uint64 { return s.ins.rep.Mark }
func (s inspectSource) Path() string { return s.ins.rep.Path }

// withDescription returns a Usage func that prints a description between
// the usage line and the flags.
func withDescription(fs *flag.FlagSet, name, usage string, stdout io.Writer, desc string) func() {
	return func() {
		fmt.Fprintf(stdout, "usage: sysregd %s %s\n\n%s\n\nflags:\n", name, usage, desc)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
}
