package store

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/codec"
	"github.com/sysreg/sysreg/journal"
	"github.com/sysreg/sysreg/recovery"
)

// Offline tools (sysregd inspect and check): they read a data directory
// without opening it as a store — no lock taken, nothing written — so they
// work beside a running daemon.

// Inspection is what Inspect read of a data directory's journal, decoded
// with the record schema recovery uses.
type Inspection struct {
	// Journal is the file as read: meta data, the checkpoint and every
	// record, damaged ones included.
	Journal *journal.InspectReport
	// Checkpoint is the decoded checkpoint: the config view at its
	// sequence number, with owners. Nil when there is none or it does not
	// decode (CheckpointErr says why).
	Checkpoint    *core.Snapshot
	CheckpointErr error
	// Mutations are the decoded records, index for index with
	// Journal.Records; nil where a record is damaged or does not decode
	// (MutationErrs says why).
	Mutations    []*core.Mutation
	MutationErrs []error
	// Problems is everything found wrong, the journal's and the
	// decoder's, in the order met. Empty for a sound file.
	Problems []error
}

// Inspect reads the journal of the data directory dir, offline. It fails
// only when there is no journal to read; a damaged one is reported in
// Problems.
func Inspect(dir string) (*Inspection, error) {
	path := filepath.Join(dir, JournalFile)
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	rep, _ := journal.Inspect(path) // its problems are in rep.Problems
	ins := &Inspection{
		Journal:      rep,
		Problems:     append([]error(nil), rep.Problems...),
		Mutations:    make([]*core.Mutation, len(rep.Records)),
		MutationErrs: make([]error, len(rep.Records)),
	}
	if ic := rep.Checkpoint; ic != nil {
		if ic.Err != nil {
			ins.CheckpointErr = ic.Err // already among the problems
		} else if snap, err := codec.DecodeSnapshot(ic.Data); err != nil {
			ins.CheckpointErr = err
			ins.Problems = append(ins.Problems, fmt.Errorf("checkpoint at %d: %w", ic.Key, err))
		} else {
			ins.Checkpoint = &snap
		}
	}
	for i, r := range rep.Records {
		if r.Err != nil {
			ins.MutationErrs[i] = r.Err // already among the problems
		} else if m, err := codec.DecodeMutation(r.Data); err != nil {
			ins.MutationErrs[i] = err
			ins.Problems = append(ins.Problems, fmt.Errorf("record %d: %w", r.Key, err))
		} else {
			ins.Mutations[i] = m
		}
	}
	return ins, nil
}

// CheckReport is what Check found.
type CheckReport struct {
	Path string // the journal file
	Live bool   // a running daemon held it (see journal.InspectReport.Live)
	// Empty: the file has no bytes, which a crash right after creating it
	// leaves; Open initialises it. OK.
	Empty bool
	// Recovery is what a startup would recover; valid when Problems is
	// empty.
	Recovery recovery.Report
	Problems []error
}

// OK reports whether the directory would open without complaint.
func (r *CheckReport) OK() bool { return len(r.Problems) == 0 }

// Check verifies the data directory dir offline, as Open would: the
// journal's structure, meta data, checksums and record chain, the decoding
// of the checkpoint and of every record, and their replay with recovery's
// own code (R27, R29). It never writes. It fails only when there is no
// journal; what is wrong with one is in Problems.
func Check(dir string) (*CheckReport, error) {
	path := filepath.Join(dir, JournalFile)
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	rep := &CheckReport{Path: path}
	if fi.Size() == 0 {
		rep.Empty = true
		return rep, nil
	}
	ins, err := Inspect(dir)
	if err != nil {
		return nil, err
	}
	rep.Live, rep.Problems = ins.Journal.Live, ins.Problems
	if len(rep.Problems) == 0 {
		res, err := recovery.Run(inspectSource{ins.Journal})
		if err != nil {
			rep.Problems = append(rep.Problems, err)
		} else {
			rep.Recovery = res.Report
		}
	}
	return rep, nil
}

// inspectSource is recovery.Source over what journal.Inspect read, so that
// Check replays with exactly the code a startup runs.
type inspectSource struct{ rep *journal.InspectReport }

var _ recovery.Source = inspectSource{}

func (s inspectSource) ReadCheckpoint() (uint64, []byte, bool, error) {
	ic := s.rep.Checkpoint
	if ic == nil {
		return 0, nil, false, nil
	}
	if ic.Err != nil {
		return 0, nil, false, ic.Err
	}
	return ic.Key, ic.Data, true, nil
}

func (s inspectSource) Replay(after uint64, fn func(key uint64, data []byte) error) error {
	for _, r := range s.rep.Records {
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

func (s inspectSource) Mark() uint64 { return s.rep.Mark }
func (s inspectSource) Path() string { return s.rep.Path }
