package fleet

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/codec"
)

// kvWriter is the part of a KV bucket the reporter writes with.
type kvWriter interface {
	Put(ctx context.Context, key string, value []byte) (uint64, error)
	Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error
}

// reportLoop writes the effective view to the reported bucket. It is driven
// by an ordinary subscription with MinInterval = Interval, so it writes at
// most once per changed scope per interval however fast the device changes
// (R53). After every (re)connection it compares the bucket with the view and
// writes only what differs; between, it writes the scopes that a Diff of the
// last written view and the delivered one names.
func (b *Bridge) reportLoop(js jetstream.JetStream) {
	sub, err := b.t.Subscribe(b.ctx, core.SubscribeOptions{MinInterval: b.opts.Interval})
	if err != nil {
		if b.ctx.Err() == nil {
			b.setError(err)
			b.logger.Error("reported state: subscribe failed", "error", err)
		}
		return
	}
	defer sub.Close()
	var (
		latest, written core.Snapshot
		have            bool
		syncedGen       uint64 // the connection the bucket was compared on; 0: none
		kv              jetstream.KeyValue
		retry           <-chan time.Time
	)
	for {
		_, _, changed := b.conn()
		select {
		case <-b.ctx.Done():
			return
		case s, ok := <-sub.C():
			if !ok {
				if b.ctx.Err() == nil {
					b.logger.Warn("reported state: subscription ended")
				}
				return
			}
			latest, have = s, true
		case <-changed:
		case <-retry:
			retry = nil
		}
		gen, connected, _ := b.conn()
		if !have {
			continue
		}
		b.markDirty(latest.Seq() != written.Seq() || syncedGen != gen)
		if !connected || retry != nil {
			continue
		}
		var err error
		if syncedGen != gen {
			kv, err = b.bucket(js, b.opts.ReportedBucket)
			if err == nil {
				err = b.reportAll(kv, latest)
			}
			if err == nil {
				syncedGen = gen
			}
		} else if latest.Seq() != written.Seq() {
			err = b.reportDiff(kv, written, latest)
		}
		if err != nil {
			if b.ctx.Err() != nil {
				return
			}
			syncedGen = 0
			b.setError(err)
			b.logger.Warn("reported state not written", "error", err)
			retry = time.After(b.opts.ReconnectWait)
			continue
		}
		written = latest
		b.markDirty(false)
		b.mu.Lock()
		b.st.ReportedSeq = written.Seq()
		b.mu.Unlock()
	}
}

// markDirty records whether the reported bucket is behind the view.
func (b *Bridge) markDirty(dirty bool) {
	b.mu.Lock()
	switch {
	case !dirty:
		b.dirtySince = time.Time{}
	case b.dirtySince.IsZero():
		b.dirtySince = time.Now()
	}
	b.mu.Unlock()
}

// reportAll makes this device's keys in the reported bucket equal to snap:
// it reads them, puts the scopes whose value differs and deletes the keys of
// scopes that are gone.
func (b *Bridge) reportAll(kv jetstream.KeyValue, snap core.Snapshot) error {
	have, err := b.readAll(kv, b.dev+".>")
	if err != nil {
		return err
	}
	for _, sc := range snap.Scopes(0) {
		key := ReportedKey(b.opts.Device, sc)
		data, err := codec.EncodeValues(snap.Values(sc))
		if err != nil {
			return fmt.Errorf("fleet: encode %s: %w", sc, err)
		}
		old, ok := have[key]
		delete(have, key)
		if ok && bytes.Equal(old, data) {
			continue
		}
		if err := b.put(kv, key, data); err != nil {
			return err
		}
	}
	for key := range have {
		if err := b.del(kv, key); err != nil {
			return err
		}
	}
	return nil
}

// reportDiff writes the scopes that changed from old to cur.
func (b *Bridge) reportDiff(kv kvWriter, old, cur core.Snapshot) error {
	var last core.Scope
	for i, c := range core.Diff(old, cur) {
		if i > 0 && c.Scope == last {
			continue // Diff lists changes sorted by scope
		}
		last = c.Scope
		key := ReportedKey(b.opts.Device, c.Scope)
		vals := cur.Values(c.Scope)
		if len(vals) == 0 {
			if err := b.del(kv, key); err != nil {
				return err
			}
			continue
		}
		data, err := codec.EncodeValues(vals)
		if err != nil {
			return fmt.Errorf("fleet: encode %s: %w", c.Scope, err)
		}
		if err := b.put(kv, key, data); err != nil {
			return err
		}
	}
	return nil
}

func (b *Bridge) put(kv kvWriter, key string, data []byte) error {
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.Timeout)
	defer cancel()
	if _, err := kv.Put(ctx, key, data); err != nil {
		return fmt.Errorf("fleet: put %s: %w", key, err)
	}
	b.mu.Lock()
	b.st.ReportedWrites++
	b.mu.Unlock()
	return nil
}

func (b *Bridge) del(kv kvWriter, key string) error {
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.Timeout)
	defer cancel()
	if err := kv.Delete(ctx, key); err != nil {
		return fmt.Errorf("fleet: delete %s: %w", key, err)
	}
	b.mu.Lock()
	b.st.ReportedWrites++
	b.mu.Unlock()
	return nil
}

// readAll returns the current values of the keys matching filter (deleted
// keys left out).
func (b *Bridge) readAll(kv jetstream.KeyValue, filter string) (map[string][]byte, error) {
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.Timeout)
	defer cancel()
	w, err := kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("fleet: read %s: %w", filter, err)
	}
	defer stopWatcher(w)
	out := map[string][]byte{}
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("fleet: read %s: %w", filter, ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("fleet: read %s: watcher closed", filter)
			}
			if e == nil {
				return out, nil
			}
			out[e.Key()] = e.Value()
		}
	}
}
