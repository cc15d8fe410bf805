package recovery

import (
	"errors"
	"fmt"
	"time"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/codec"
	"github.com/sysreg/sysreg/journal"
)

// Source is what recovery reads: the journal, at startup, before any write.
type Source interface {
	// ReadCheckpoint returns the latest checkpoint, ok=false if there is none.
	ReadCheckpoint() (key uint64, data []byte, ok bool, err error)
	// Replay calls fn for every record with a key above after, in key order,
	// after checking its integrity. fn's error stops the replay and is returned.
	Replay(after uint64, fn func(key uint64, data []byte) error) error
	// Mark returns the durable high-water mark of sequence numbers.
	Mark() uint64
	// Path names the file, for errors.
	Path() string
}

// Report says what recovery did.
type Report struct {
	CheckpointSeq  uint64        `json:"checkpoint_seq"`  // sequence number of the checkpoint, 0 if none
	CheckpointKeys int           `json:"checkpoint_keys"` // config keys in the checkpoint
	Records        int           `json:"records"`         // journal records replayed after it
	Keys           int           `json:"keys"`            // config keys restored
	Owners         int           `json:"owners"`          // owner names holding restored config
	Seq            uint64        `json:"seq"`             // last sequence number of the restored config
	SeqFloor       uint64        `json:"seq_floor"`       // new sequence numbers start above this
	Elapsed        time.Duration `json:"elapsed_ns"`      // time taken
}

// Result is the recovered state.
type Result struct {
	Config core.Snapshot // the config bucket as acknowledged; state empty
	Report Report
}

// Run reads src and rebuilds the config. See the package documentation for
// the corruption policy.
func Run(src Source) (*Result, error) {
	start := time.Now()
	corrupt := func(format string, args ...any) error {
		return &journal.CorruptError{Path: src.Path(), Reason: fmt.Sprintf(format, args...)}
	}
	var rep Report
	var snap core.Snapshot
	ckKey, data, ok, err := src.ReadCheckpoint()
	if err != nil {
		return nil, err
	}
	if ok {
		snap, err = codec.DecodeSnapshot(data)
		if errors.Is(err, codec.ErrVersion) {
			return nil, fmt.Errorf("%s: checkpoint at %d: %w", src.Path(), ckKey, err)
		}
		if err != nil {
			return nil, corrupt("checkpoint at %d: %v", ckKey, err)
		}
		if snap.Seq() != ckKey {
			return nil, corrupt("checkpoint stored under %d holds sequence %d", ckKey, snap.Seq())
		}
		if n := snap.Len(core.State); n != 0 {
			return nil, corrupt("checkpoint holds %d state keys", n)
		}
		rep.CheckpointSeq = ckKey
		rep.CheckpointKeys = snap.Len(core.Config)
	}
	// One Replay for all records: it changes the owner index nodes that
	// earlier records made in place instead of copying a path per record.
	rp := core.NewReplay(snap)
	err = src.Replay(ckKey, func(key uint64, data []byte) error {
		m, err := codec.DecodeMutation(data)
		if errors.Is(err, codec.ErrVersion) {
			// Written by a newer sysreg (R29): refused, naming both versions.
			return fmt.Errorf("%s: record %d: %w", src.Path(), key, err)
		}
		if err != nil {
			return corrupt("record %d: %v", key, err)
		}
		if m.Seq != key {
			return corrupt("record %d holds sequence %d", key, m.Seq)
		}
		if prev := rp.Snapshot().Seq(); m.Seq <= prev {
			return corrupt("record %d: sequence %d not above %d", key, m.Seq, prev)
		}
		for i, op := range m.Ops {
			if op.Scope.Bucket != core.Config {
				return corrupt("record %d: op %d touches bucket %s", key, i, op.Scope.Bucket)
			}
			if !op.Layer.Journaled() {
				return corrupt("record %d: op %d touches layer %s, which is never journaled", key, i, op.Layer)
			}
		}
		if err := rp.Apply(m); err != nil {
			return corrupt("record %d: %v", key, err)
		}
		rep.Records++
		return nil
	})
	if err != nil {
		return nil, err
	}
	snap = rp.Finish()
	rep.Keys = snap.Len(core.Config)
	rep.Owners = len(snap.Owners())
	rep.Seq = snap.Seq()
	rep.SeqFloor = max(snap.Seq(), src.Mark())
	rep.Elapsed = time.Since(start)
	return &Result{Config: snap, Report: rep}, nil
}
