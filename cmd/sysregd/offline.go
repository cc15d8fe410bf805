package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/codec"
	"github.com/sysreg/sysreg/journal"
	"github.com/sysreg/sysreg/recovery"
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
			path := filepath.Join(*dir, store.JournalFile)
			if _, err := os.Stat(path); err != nil {
				return fmt.Errorf("inspect: %w", err)
			}
			rep, _ := journal.Inspect(path)
			ins := inspectJSON(rep)
			if err := out.writeValue(cmd.OutOrStdout(), ins); err != nil {
				return err
			}
			if n := len(ins.Problems); n > 0 {
				return fmt.Errorf("inspect: %s: %d problem(s), the first: %s", path, n, ins.Problems[0])
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
	rep        *journal.InspectReport
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
		co := &checkpointOut{Key: ic.Key, Last: ic.Last, Base: ic.Base, CRC: ic.CRC, Bytes: len(ic.Data)}
		if ic.Err != nil {
			co.Error = ic.Err.Error() // already among the problems
		} else if snap, err := codec.DecodeSnapshot(ic.Data); err != nil {
			co.Error = err.Error()
			out.Problems = append(out.Problems, fmt.Sprintf("checkpoint at %d: %v", ic.Key, err))
		} else {
			seq := snap.Seq()
			co.Seq = &seq
			co.View = snapshotJSON(snap)
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
					oo.Values = valueJSON(map[string]any(op.Values))
				}
				ro.Mutation.Ops[i] = oo
			}
		}
		out.Records = append(out.Records, ro)
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
			path := filepath.Join(*dir, store.JournalFile)
			fi, err := os.Stat(path)
			if err != nil {
				return fmt.Errorf("check: %w", err)
			}
			res := checkOut{Path: path, Problems: []string{}}
			if fi.Size() == 0 {
				// An empty file is what a crash right after creating it
				// leaves; the daemon initialises it (see journal.Open).
				res.OK = true
				return out.writeValue(stdout, res)
			}
			rep, _ := journal.Inspect(path)
			ins := inspectJSON(rep)
			res.Live = rep.Live
			res.Problems = ins.Problems
			if len(res.Problems) == 0 {
				rr, err := recovery.Run(inspectSource{ins})
				if err != nil {
					res.Problems = append(res.Problems, err.Error())
				} else {
					r := rr.Report
					// seq is what the daemon's stats and start log
					// report after Open: the last number handed out.
					res.Records, res.Keys, res.Owners, res.Seq = r.Records, r.Keys, r.Owners, r.SeqFloor
					res.ConfigSeq, res.SeqFloor, res.CheckpointSeq = r.Seq, r.SeqFloor, r.CheckpointSeq
				}
			}
			if len(res.Problems) > 0 {
				if err := out.writeValue(stdout, checkFailed{Path: path, Live: res.Live, Problems: res.Problems}); err != nil {
					return err
				}
				return fmt.Errorf("check: %s is damaged: %d problem(s), the first: %s", path, len(res.Problems), res.Problems[0])
			}
			res.OK = true
			return out.writeValue(stdout, res)
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
	OK            bool     `json:"ok"`
	Path          string   `json:"path"`
	Live          bool     `json:"live,omitempty"`
	Records       int      `json:"records"`
	Keys          int      `json:"keys"`
	Owners        int      `json:"owners"`
	Seq           uint64   `json:"seq"`        // as the daemon reports it after Open (R7)
	ConfigSeq     uint64   `json:"config_seq"` // of the last config mutation
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
