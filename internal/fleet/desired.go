package fleet

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/codec"
)

// entry is one change of a desired key, as the KV watcher delivers it.
type entry struct {
	key     string
	value   []byte
	rev     uint64
	deleted bool // a delete or purge marker
}

func entryOf(e jetstream.KeyValueEntry) entry {
	return entry{
		key:     e.Key(),
		value:   e.Value(),
		rev:     e.Revision(),
		deleted: e.Operation() != jetstream.KeyValuePut,
	}
}

// desired is the bridge's picture of the desired bucket for this device:
// the valid values of its own keys and of the fleet-wide keys, per scope.
// It is owned by the desired worker.
type desired struct {
	device   string // the device ID (decoded)
	maxBytes int
	own, all map[core.Scope]core.Values
	refused  map[string]Refusal    // by key: entries whose value is refused
	held     map[string]core.Scope // by key: the scope of a refused value
	// mergeRefused: scopes whose keys are valid alone but whose merge is
	// not (too large); they keep their fleet values until it fits.
	mergeRefused map[core.Scope]Refusal
	rev          uint64            // highest revision seen
	revs         map[string]uint64 // by key: the revision taken in
}

func newDesired(device string, maxBytes int) *desired {
	return &desired{
		device:   device,
		maxBytes: maxBytes,
		own:      map[core.Scope]core.Values{},
		all:      map[core.Scope]core.Values{},
		refused:  map[string]Refusal{},
		held:     map[string]core.Scope{},
		revs:     map[string]uint64{},

		mergeRefused: map[core.Scope]Refusal{},
	}
}

// holds reports whether a key of scope sc has a refused value: the scope
// then keeps its fleet values as they are until the key is valid again or
// deleted, so that a bad push never takes config away or applies half of a
// merge — also on a resync after a reboot, when the last good value of the
// key is no longer known.
func (d *desired) holds(sc core.Scope) bool {
	for _, h := range d.held {
		if h == sc {
			return true
		}
	}
	return false
}

// add takes one entry in. It returns the scope it touched, or ok false when
// the entry changes nothing that could be applied (a refused value keeps the
// key's previous value: a bad push never takes good config away).
func (d *desired) add(e entry) (sc core.Scope, ok bool) {
	if e.rev <= d.revs[e.key] {
		// Already taken in at this or a newer revision (a direct read
		// during a resync can overtake the watcher).
		return core.Scope{}, false
	}
	d.revs[e.key] = e.rev
	d.rev = max(d.rev, e.rev)
	dev, sc, err := ParseDesiredKey(e.key)
	switch {
	case err != nil:
	case dev != d.device && dev != AllDevices:
		err = fmt.Errorf("%w: %q is for device %q", ErrInvalidKey, e.key, dev)
	case sc == RevisionScope:
		err = fmt.Errorf("%w: %q: scope %s is reserved for the fleet revision", ErrInvalidKey, e.key, sc)
	}
	if err != nil {
		d.refused[e.key] = Refusal{Key: e.key, Revision: e.rev, Reason: err.Error()}
		return core.Scope{}, false
	}
	m := d.own
	if dev == AllDevices {
		m = d.all
	}
	delete(d.held, e.key)
	if e.deleted {
		delete(d.refused, e.key)
		delete(m, sc)
		return sc, true
	}
	vals, err := d.decode(e.value)
	if err != nil {
		d.refused[e.key] = Refusal{Key: e.key, Revision: e.rev, Reason: err.Error()}
		d.held[e.key] = sc
		return core.Scope{}, false
	}
	delete(d.refused, e.key)
	m[sc] = vals
	return sc, true
}

// decode decodes and checks a desired value: the CBOR map of a scope's
// values, valid under R2 and within the size limit.
func (d *desired) decode(b []byte) (core.Values, error) {
	vals, err := codec.DecodeValues(b)
	if err != nil {
		return nil, err
	}
	nv, size, err := core.NormalizeValues(vals)
	if err != nil {
		return nil, err
	}
	if size > d.maxBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", core.ErrTooLarge, size, d.maxBytes)
	}
	return nv, nil
}

// merged returns what the fleet layer holds at sc: the device's own values
// deep-merged over the fleet-wide ones (R4, R53). nil when neither has any.
func (d *desired) merged(sc core.Scope) core.Values {
	a, o := d.all[sc], d.own[sc]
	switch {
	case len(a) == 0:
		return o
	case len(o) == 0:
		return a
	}
	return core.MergeValues(a, o)
}

// scopes returns every scope that either side names.
func (d *desired) scopes() map[core.Scope]struct{} {
	out := make(map[core.Scope]struct{}, len(d.own)+len(d.all))
	for sc := range d.own {
		out[sc] = struct{}{}
	}
	for sc := range d.all {
		out[sc] = struct{}{}
	}
	return out
}

// desiredLoop keeps the fleet layer equal to the desired bucket: on every
// connection it reads the bucket's current values and applies the
// difference as one mutation (resync), then applies each batch of changes
// the watcher delivers as one mutation.
func (b *Bridge) desiredLoop(js jetstream.JetStream, fs State) {
	applied := make(map[core.Scope]core.Values, len(fs.Scopes))
	for _, sv := range fs.Scopes {
		if len(sv.Values) > 0 {
			applied[sv.Scope] = sv.Values
		}
	}
	for {
		_, connected, changed := b.conn()
		if !connected {
			select {
			case <-b.ctx.Done():
				return
			case <-changed:
			}
			continue
		}
		err := b.desiredSession(js, applied, changed)
		if b.ctx.Err() != nil {
			return
		}
		if err != nil {
			b.setError(err)
			b.logger.Warn("desired state sync failed", "error", err)
			if !b.backoff(b.opts.ReconnectWait, changed) {
				return
			}
		}
	}
}

// desiredSession runs one watch of the desired bucket until the connection
// changes (nil) or something fails.
func (b *Bridge) desiredSession(js jetstream.JetStream, applied map[core.Scope]core.Values, changed <-chan struct{}) error {
	kv, err := b.bucket(js, b.opts.DesiredBucket)
	if err != nil {
		return err
	}
	// The watcher lives as long as the context it is created with.
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	w, err := kv.WatchFiltered(ctx, []string{b.dev + ".>", AllDevices + ".>"})
	if err != nil {
		return fmt.Errorf("fleet: watch %s: %w", b.opts.DesiredBucket, err)
	}
	defer stopWatcher(w)
	d := newDesired(b.opts.Device, b.opts.MaxValueBytes)
	seen := map[string]struct{}{}
	// Resync: everything up to the watcher's end-of-initial-values marker.
	for initial := true; initial; {
		select {
		case <-b.ctx.Done():
			return nil
		case <-changed:
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("fleet: desired watcher closed")
			}
			if e == nil {
				initial = false
				break
			}
			seen[e.Key()] = struct{}{}
			d.add(entryOf(e))
		}
	}
	// The watcher's end-of-initial-values marker can come before the
	// current value of a key that changed while the watcher started: read
	// the keys that exist but were not delivered yet, so that the resync
	// never applies a merge without one of its keys or drops a scope that
	// is still there.
	if err := b.readMissing(js, kv, d, seen); err != nil {
		return err
	}
	b.logger.Debug("resync", "own", len(d.own), "all", len(d.all), "revision", d.rev)
	touched := d.scopes()
	for sc := range applied {
		touched[sc] = struct{}{}
	}
	var retry <-chan time.Time
	for {
		if len(touched) > 0 {
			if err := b.applyDesired(d, applied, touched); err != nil {
				b.setError(err)
				b.logger.Error("fleet layer not applied", "error", err)
				retry = time.After(b.opts.ReconnectWait)
			} else {
				clear(touched)
				retry = nil
			}
		}
		select {
		case <-b.ctx.Done():
			return nil
		case <-changed:
			return nil
		case <-retry:
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("fleet: desired watcher closed")
			}
			// Take in everything already delivered, so that a burst of
			// changes is applied as one mutation.
			for more := true; more; {
				if e != nil {
					if sc, ok := d.add(entryOf(e)); ok {
						touched[sc] = struct{}{}
					}
				}
				select {
				case e, ok = <-w.Updates():
					if !ok {
						return errors.New("fleet: desired watcher closed")
					}
				default:
					more = false
				}
			}
			b.publishRefused(d)
		}
	}
}

// readMissing reads the watched keys that exist in the bucket but are not
// in seen, and takes in their values. It asks the bucket's stream which
// subjects hold messages (KV buckets are streams KV_<bucket> with subjects
// $KV.<bucket>.<key>).
func (b *Bridge) readMissing(js jetstream.JetStream, kv jetstream.KeyValue, d *desired, seen map[string]struct{}) error {
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.Timeout)
	defer cancel()
	bucket := kv.Bucket()
	stream, err := js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return fmt.Errorf("fleet: stream of %s: %w", bucket, err)
	}
	prefix := "$KV." + bucket + "."
	for _, filter := range []string{b.dev + ".>", AllDevices + ".>"} {
		info, err := stream.Info(ctx, jetstream.WithSubjectFilter(prefix+filter))
		if err != nil {
			return fmt.Errorf("fleet: keys of %s: %w", bucket, err)
		}
		for subj := range info.State.Subjects {
			key := strings.TrimPrefix(subj, prefix)
			if _, ok := seen[key]; ok {
				continue
			}
			e, err := kv.Get(ctx, key)
			switch {
			case err == nil:
				d.add(entryOf(e))
			case !errors.Is(err, jetstream.ErrKeyNotFound):
				return fmt.Errorf("fleet: read %s: %w", key, err)
			}
		}
	}
	return nil
}

// applyDesired applies the touched scopes whose merge differs from the fleet
// layer, as one mutation, and records the result in applied.
func (b *Bridge) applyDesired(d *desired, applied map[core.Scope]core.Values, touched map[core.Scope]struct{}) error {
	var ups []ScopeValues
	for sc := range touched {
		if d.holds(sc) {
			continue
		}
		m := d.merged(sc)
		if len(m) > 0 {
			if _, size, err := core.NormalizeValues(m); err != nil || size > d.maxBytes {
				if err == nil {
					err = fmt.Errorf("%w: %d bytes, limit %d", core.ErrTooLarge, size, d.maxBytes)
				}
				key := DesiredKey(d.device, sc.Type, sc.Subtype)
				d.mergeRefused[sc] = Refusal{Key: key, Revision: d.rev, Reason: "merged with all: " + err.Error()}
				continue
			}
		}
		delete(d.mergeRefused, sc)
		if core.Equal(map[string]any(m), map[string]any(applied[sc])) {
			continue
		}
		ups = append(ups, ScopeValues{Scope: sc, Values: m})
	}
	b.publishRefused(d)
	if len(ups) > 0 {
		slices.SortFunc(ups, func(a, c ScopeValues) int { return strings.Compare(a.Scope.String(), c.Scope.String()) })
		if err := b.t.ApplyFleet(b.ctx, d.rev, ups); err != nil {
			return fmt.Errorf("fleet: apply %d scopes at revision %d: %w", len(ups), d.rev, err)
		}
		for _, u := range ups {
			if len(u.Values) == 0 {
				delete(applied, u.Scope)
			} else {
				applied[u.Scope] = u.Values
			}
		}
		if b.logger.IsDebug() {
			b.logger.Debug("fleet layer applied", "scopes", len(ups), "revision", d.rev)
		}
	}
	b.mu.Lock()
	if len(ups) > 0 {
		b.st.Applied++
	}
	b.st.DesiredRevision = d.rev
	b.st.LastSync = time.Now()
	b.mu.Unlock()
	return nil
}

func (b *Bridge) publishRefused(d *desired) {
	now := maps.Clone(d.refused)
	for _, r := range d.mergeRefused {
		now[r.Key] = r
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for k := range b.refused {
		if _, ok := now[k]; !ok {
			delete(b.refused, k)
		}
	}
	for k, r := range now {
		if old, ok := b.refused[k]; !ok || old.Revision != r.Revision {
			b.logger.Warn("desired value refused", "key", k, "revision", r.Revision, "error", r.Reason)
		}
		b.refused[k] = r
	}
}
