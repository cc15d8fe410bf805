package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

// The offline commands, inspect and check, read a data directory without a
// running daemon, and never write to it.

func inspectCmd() *cobra.Command {
	var dir *string
	var out *outputFormat
	cmd := command("inspect [flags]",
		"print a data directory's checkpoint and journal as JSON, offline",
		`Prints a data directory's journal as JSON, offline: the meta data, the
checkpoint (its sequence, the config view and each key's owner) and every
record with its decoded mutation. It never writes and never blocks a
running daemon ("live": true then; the file may change during the read).
On a damaged file it prints what it could read, lists the problems and
exits 1.`,
		func(cmd *cobra.Command, args []string) error {
			if err := noArgs(cmd, args); err != nil {
				return err
			}
			ins, err := store.Inspect(*dir)
			if err != nil {
				return fmt.Errorf("inspect: %w", err)
			}
			res := inspectJSON(ins)
			if err := out.writeValue(cmd.OutOrStdout(), res); err != nil {
				return err
			}
			if n := len(res.Problems); n > 0 {
				return fmt.Errorf("inspect: %s: %d problem(s), the first: %s", res.Path, n, res.Problems[0])
			}
			return nil
		})
	dir = dataDirFlag(cmd.Flags(), "the data directory (journal.db lives here)")
	out = outputFlag(cmd)
	return cmd
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
}

type checkpointOut struct {
	Key    uint64                       `json:"key"`
	Last   uint64                       `json:"last"`
	Base   uint64                       `json:"base"` // records above it are in the file (feed history, R47)
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

// inspectJSON is what inspect prints of an Inspection.
func inspectJSON(ins *store.Inspection) *inspectOut {
	rep := ins.Journal
	out := &inspectOut{
		Path: rep.Path, FileSize: rep.FileSize, Live: rep.Live, PageSize: rep.PageSize,
		TxID: rep.TxID, Format: rep.Format, Version: rep.Version, Mark: rep.Mark,
		Records: []recordOut{}, Problems: errorStrings(ins.Problems),
	}
	if ic := rep.Checkpoint; ic != nil {
		co := &checkpointOut{Key: ic.Key, Last: ic.Last, Base: ic.Base, CRC: ic.CRC, Bytes: len(ic.Data)}
		if ins.CheckpointErr != nil {
			co.Error = ins.CheckpointErr.Error()
		} else if snap := ins.Checkpoint; snap != nil {
			seq := snap.Seq()
			co.Seq = &seq
			co.View = snapshotJSON(*snap)
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
	for i, r := range rep.Records {
		ro := recordOut{Key: r.Key, Prev: r.Prev, CRC: r.CRC, Bytes: len(r.Data)}
		if err := ins.MutationErrs[i]; err != nil {
			ro.Error = err.Error()
		} else if m := ins.Mutations[i]; m != nil {
			ro.Mutation = &mutationOut{Seq: m.Seq, Ops: make([]opOut, len(m.Ops))}
			for i, op := range m.Ops {
				oo := opOut{Kind: op.Kind.String(), Bucket: op.Scope.Bucket.String(), Owner: op.Owner, Keys: op.Keys}
				if op.Kind != core.MutDrop {
					oo.Scope = op.Scope.String()
				}
				if op.Kind == core.MutMerge || op.Kind == core.MutSet {
					oo.Values = valueJSON(map[string]any(op.Values))
				}
				ro.Mutation.Ops[i] = oo
			}
		}
		out.Records = append(out.Records, ro)
	}
	return out
}

// errorStrings is errs' messages, [] for none.
func errorStrings(errs []error) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = e.Error()
	}
	return out
}

func checkCmd() *cobra.Command {
	var dir *string
	var out *outputFormat
	cmd := command("check [flags]",
		"verify a data directory offline",
		`Verifies a data directory offline, as the daemon's startup would: the
journal file's structure, meta data, checksums and record chain, the
decoding of the checkpoint and of every record, and their replay into the
config (R27, R29). Prints {"ok": true, "records": N, "keys": K, "seq": S, …}
or {"ok": false, "problems": […]} and exits 1 when not ok. It never writes.`,
		func(cmd *cobra.Command, args []string) error {
			if err := noArgs(cmd, args); err != nil {
				return err
			}
			stdout := cmd.OutOrStdout()
			ck, err := store.Check(*dir)
			if err != nil {
				return fmt.Errorf("check: %w", err)
			}
			if !ck.OK() {
				problems := errorStrings(ck.Problems)
				if err := out.writeValue(stdout, checkFailed{Path: ck.Path, Live: ck.Live, Problems: problems}); err != nil {
					return err
				}
				return fmt.Errorf("check: %s is damaged: %d problem(s), the first: %s", ck.Path, len(problems), problems[0])
			}
			r := ck.Recovery
			// seq is what the daemon's stats and start log report after
			// Open: the last number handed out.
			return out.writeValue(stdout, checkOut{OK: true, Path: ck.Path, Live: ck.Live,
				Records: r.Records, Keys: r.Keys, Owners: r.Owners, Seq: r.SeqFloor,
				ConfigSeq: r.Seq, SeqFloor: r.SeqFloor, CheckpointSeq: r.CheckpointSeq})
		})
	dir = dataDirFlag(cmd.Flags(), "the data directory (journal.db lives here)")
	out = outputFlag(cmd)
	return cmd
}

// checkFailed is what check prints when it found problems.
type checkFailed struct {
	OK       bool     `json:"ok"` // false
	Path     string   `json:"path"`
	Live     bool     `json:"live,omitempty"`
	Problems []string `json:"problems"`
}

type checkOut struct {
	OK            bool   `json:"ok"`
	Path          string `json:"path"`
	Live          bool   `json:"live,omitempty"`
	Records       int    `json:"records"`
	Keys          int    `json:"keys"`
	Owners        int    `json:"owners"`
	Seq           uint64 `json:"seq"`        // as the daemon reports it after Open (R7)
	ConfigSeq     uint64 `json:"config_seq"` // of the last config mutation
	SeqFloor      uint64 `json:"seq_floor"`
	CheckpointSeq uint64 `json:"checkpoint_seq"`
}
