package core

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// MaxApplyWithin is the longest confirm deadline of Owner.Apply (R44).
const MaxApplyWithin = 24 * time.Hour

// ErrNotPending: Confirm or Rollback of an id that is not a pending apply
// (unknown, confirmed or undone; R44).
var ErrNotPending = errors.New("core: no such pending apply")

// ErrInvalidWithin: an Apply deadline that is not above 0 and at most
// MaxApplyWithin (R44).
var ErrInvalidWithin = errors.New("core: invalid confirm deadline")

// PendingApply is an apply (R44) that is neither confirmed nor undone: the
// undo information that its record journals, and its deadline.
type PendingApply struct {
	ID       uint64    // the sequence number of the apply's mutation
	Owner    string    // the owner that applied it
	Layer    Layer     // the layer it wrote (the owner's): Saved or Runtime
	Deadline time.Time // wall clock; unconfirmed then, it is undone
	Undo     []UndoKey // each top-level key it changed, sorted by scope text, then key
}

// UndoKey is what an apply changed of one top-level key in its layer:
// the key before (Had, Value, Owner) and what the apply left there (Left,
// LeftValue, LeftOwner). Values are normalised and never modified.
type UndoKey struct {
	Scope     Scope
	Key       string
	Had       bool // the layer held the key before the apply
	Value     any
	Owner     string
	Left      bool // the apply left the key in the layer (false: it deleted it)
	LeftValue any
	LeftOwner string
}

// Pending returns the pending applies (R44), oldest first. The slice is
// the caller's; the values in it are shared and must not be modified.
func (s Snapshot) Pending() []PendingApply {
	ps := s.st().lay().applies
	out := make([]PendingApply, len(ps))
	for i, p := range ps {
		out[i] = *p
	}
	return out
}

// PendingCount returns how many applies are pending (R44).
func (s Snapshot) PendingCount() int { return len(s.st().lay().applies) }

// pendingIndex returns the index of id in applies, or -1.
func pendingIndex(ps []*PendingApply, id uint64) int {
	return slices.IndexFunc(ps, func(p *PendingApply) bool { return p.ID == id })
}

// Apply commits ops like Commit (R15, R43) and keeps what is needed to
// undo them until Registry.Confirm (R44): unconfirmed when within has
// passed, the store undoes it (Registry.RollbackDue), and a restart undoes
// every pending apply (Registry.RollbackAll). The undo information and
// the deadline are journaled in the apply's own record. id is the
// mutation's sequence number; an apply that changes nothing (R6) returns
// id 0 and leaves nothing pending.
//
// within must be above 0 and at most MaxApplyWithin (ErrInvalidWithin).
// Every op must be of the config bucket (ErrInvalidScope: state is not
// journaled, there is nothing to come back to after a restart), and the
// owner's layer journaled, Saved or Runtime (ErrReadOnlyLayer for
// Override).
func (o *Owner) Apply(ctx context.Context, within time.Duration, ops ...Op) (id uint64, err error) {
	if within <= 0 || within > MaxApplyWithin {
		return 0, fmt.Errorf("%w: %v (want above 0, at most %v)", ErrInvalidWithin, within, MaxApplyWithin)
	}
	if !o.layer.Journaled() {
		return 0, fmt.Errorf("%w: apply: the %s layer is not journaled and cannot be confirmed or undone (R44)", ErrReadOnlyLayer, o.layer)
	}
	for i, op := range ops {
		if op.scope.Bucket != Config {
			return 0, opError(i, len(ops), fmt.Errorf("%w: apply: %s: only config can be applied with a confirm deadline (R44)", ErrInvalidScope, op.scope))
		}
	}
	wait := o.commitAsync(ctx, ops, func(t *txn, base *state) {
		undo := undoOf(base, &t.st, o.layer, ops)
		if len(undo) == 0 {
			return
		}
		p := &PendingApply{ID: t.seq, Owner: o.name, Layer: o.layer, Deadline: time.Unix(0, t.clock()).Add(within), Undo: undo}
		t.layW().applies = append(slices.Clip(t.st.lay().applies), p)
		t.started = p
		id = t.seq
	})
	if err := wait(); err != nil {
		return 0, err
	}
	return id, nil
}

// undoOf returns what ops changed in layer l from base to st: one UndoKey
// per top-level key whose presence, value or owner differs.
func undoOf(base, st *state, l Layer, ops []Op) []UndoKey {
	type sk struct {
		sc  Scope
		key string
	}
	var cand []sk
	for _, op := range ops {
		switch op.kind {
		case opPut:
			for k := range op.values {
				cand = append(cand, sk{op.scope, k})
			}
		case opDel:
			keys := op.keys
			if len(keys) == 0 { // every key of the owner: whatever the layer held
				base.layerScope(l, op.scope).each(func(lf *hleaf[entry]) bool {
					keys = append(keys, lf.key)
					return true
				})
			}
			for _, k := range keys {
				cand = append(cand, sk{op.scope, k})
			}
		}
	}
	var out []UndoKey
	for _, c := range cand {
		if slices.ContainsFunc(out, func(u UndoKey) bool { return u.Scope == c.sc && u.Key == c.key }) {
			continue
		}
		b, had := base.layerScope(l, c.sc).get(c.key)
		a, left := st.layerScope(l, c.sc).get(c.key)
		if had == left && (!had || (b.owner() == a.owner() && equalValue(b.val, a.val))) {
			continue
		}
		u := UndoKey{Scope: c.sc, Key: c.key, Had: had, Left: left}
		if had {
			u.Value, u.Owner = b.val, b.owner()
		}
		if left {
			u.LeftValue, u.LeftOwner = a.val, a.owner()
		}
		out = append(out, u)
	}
	slices.SortFunc(out, func(x, y UndoKey) int {
		if c := strings.Compare(x.Scope.String(), y.Scope.String()); c != 0 {
			return c
		}
		return strings.Compare(x.Key, y.Key)
	})
	return out
}

// Confirm makes the pending apply id permanent (R44): one journaled
// mutation that ends it. An id that is not pending (unknown, confirmed,
// undone) is ErrNotPending.
func (r *Registry) Confirm(ctx context.Context, id uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return r.mutate(func(t *txn) error {
		i := pendingIndex(t.st.lay().applies, id)
		if i < 0 {
			return fmt.Errorf("%w: %d", ErrNotPending, id)
		}
		t.layW().applies = slices.Delete(slices.Clone(t.st.lay().applies), i, i+1)
		t.finished = append(t.finished, id)
		t.changed = true
		return nil
	})
}

// Rollback undoes the pending apply id now (R44), as one mutation: each
// key it changed goes back to its value and owner before the apply in
// the apply's layer, except a key whose value or owner there is no longer
// what the apply left (a later mutation changed it): that one is left as
// it is, logged, and returned in left as a Change whose Old is the value
// the undo would have restored and New the current one. Only id is
// undone; a key that a newer pending apply changed counts as changed by a
// later mutation. An id that is not pending is ErrNotPending.
func (r *Registry) Rollback(ctx context.Context, id uint64) (left []Change, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	err = r.mutate(func(t *txn) error {
		left = left[:0]
		if pendingIndex(t.st.lay().applies, id) < 0 {
			return fmt.Errorf("%w: %d", ErrNotPending, id)
		}
		left = r.undoLocked(t, func(p *PendingApply) bool { return p.ID == id })
		return nil
	})
	if err != nil {
		return nil, err
	}
	return left, nil
}

// RollbackDue undoes, as one mutation, every pending apply whose deadline
// is not after now, newest first (R44), and returns their ids (oldest
// first) and the keys left alone. The store calls it from its deadline
// timer; nothing due is a no-op.
func (r *Registry) RollbackDue(ctx context.Context, now time.Time) (ids []uint64, left []Change, err error) {
	return r.rollbackWhere(ctx, func(p *PendingApply) bool { return !p.Deadline.After(now) })
}

// RollbackAll undoes every pending apply, newest first, as one mutation
// (R44): what a restart does before the store serves a call, since a
// reboot is never a confirmation. New starts no deadline timer for the
// applies pending in Options.Initial: they wait for this call.
func (r *Registry) RollbackAll(ctx context.Context) (ids []uint64, left []Change, err error) {
	return r.rollbackWhere(ctx, func(*PendingApply) bool { return true })
}

func (r *Registry) rollbackWhere(ctx context.Context, due func(*PendingApply) bool) (ids []uint64, left []Change, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	err = r.mutate(func(t *txn) error {
		ids, left = ids[:0], left[:0]
		for _, p := range t.st.lay().applies {
			if due(p) {
				ids = append(ids, p.ID)
			}
		}
		if len(ids) > 0 {
			left = r.undoLocked(t, due)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return ids, left, nil
}

// armDeadlineLocked sets the deadline timer to the earliest deadline of
// the pending applies, or stops it when none is pending. Called with r.mu
// held whenever a mutation starts or ends applies.
func (r *Registry) armDeadlineLocked() {
	var next time.Time
	for _, p := range r.work.lay().applies {
		if next.IsZero() || p.Deadline.Before(next) {
			next = p.Deadline
		}
	}
	d := &r.deadline
	switch {
	case r.closed:
	case next.IsZero():
		if d.timer != nil {
			d.timer.Stop()
		}
	case d.timer == nil:
		d.timer = time.AfterFunc(time.Until(next), r.deadlineFired)
	case !next.Equal(d.at):
		d.timer.Reset(time.Until(next))
	default:
		return
	}
	d.at = next
}

// deadlineFired undoes the applies that are due (R44). A failure (the
// Log failed, the registry closed) leaves them pending: a reopened
// store undoes them at recovery.
func (r *Registry) deadlineFired() {
	ids, _, err := r.RollbackDue(context.Background(), time.Now())
	switch {
	case err != nil && !errors.Is(err, ErrClosed):
		r.logger.Error("apply deadline: undo failed", "error", err)
	case len(ids) > 0:
		r.logger.Info("apply deadline passed unconfirmed: undone", "ids", ids)
	}
	r.mu.Lock()
	if len(ids) == 0 && err == nil { // fired early (clock steps): try again at the deadline
		r.deadline.at = time.Time{}
		r.armDeadlineLocked()
	}
	r.mu.Unlock()
}

// NextDeadline returns the earliest deadline of the pending applies, and
// false when none is pending: when the store's timer must fire next.
func (r *Registry) NextDeadline() (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var next time.Time
	for _, p := range r.work.lay().applies {
		if next.IsZero() || p.Deadline.Before(next) {
			next = p.Deadline
		}
	}
	return next, !next.IsZero()
}

// undoLocked undoes, in t, the pending applies that sel selects, newest
// first, ends them (t.finished), and returns the keys left alone.
func (r *Registry) undoLocked(t *txn, sel func(*PendingApply) bool) []Change {
	left := undoApplies(t, sel)
	for _, c := range left {
		r.logger.Warn("apply undo left a key alone: a later mutation changed it", "scope", c.Scope.String(), "key", c.Key)
	}
	return left
}

// undoApplies is undoLocked without logging; Snapshot.Apply's replay of
// an undo record does not use it (the record carries the resulting ops).
func undoApplies(t *txn, sel func(*PendingApply) bool) []Change {
	var left []Change
	ps := t.st.lay().applies
	var keep []*PendingApply
	for i := len(ps) - 1; i >= 0; i-- {
		p := ps[i]
		if !sel(p) {
			keep = append(keep, p)
			continue
		}
		for _, u := range p.Undo {
			cur, ok := t.st.layerScope(p.Layer, u.Scope).get(u.Key)
			same := ok == u.Left && (!ok || (cur.owner() == u.LeftOwner && equalValue(cur.val, u.LeftValue)))
			if !same {
				c := Change{Scope: u.Scope, Key: u.Key, Old: u.Value, Existed: u.Had, OldOwner: u.Owner, Layer: p.Layer}
				if ok {
					c.New, c.Exists, c.NewOwner = cur.val, true, cur.owner()
				}
				left = append(left, c)
				continue
			}
			if u.Had {
				t.set(u.Owner, u.Scope, p.Layer, Values{u.Key: u.Value})
			} else {
				t.remove(u.Scope, p.Layer, []string{u.Key})
			}
		}
		t.finished = append(t.finished, p.ID)
	}
	slices.Reverse(keep)
	t.layW().applies = keep
	slices.Sort(t.finished)
	t.changed = true
	return left
}

// applyPending applies a record's Applies and Finish to t (replay).
func applyPending(t *txn, m *Mutation) error {
	for _, id := range m.Finish {
		i := pendingIndex(t.st.lay().applies, id)
		if i < 0 {
			return fmt.Errorf("%w: record ends apply %d, which is not pending", ErrNotPending, id)
		}
		t.layW().applies = slices.Delete(slices.Clone(t.st.lay().applies), i, i+1)
		t.changed = true
	}
	for i := range m.Applies {
		p := m.Applies[i]
		p.Undo = slices.Clone(p.Undo)
		switch {
		case p.ID == 0 || p.ID > m.Seq:
			return fmt.Errorf("%w: apply id %d in record %d", ErrInvalidValue, p.ID, m.Seq)
		case pendingIndex(t.st.lay().applies, p.ID) >= 0:
			return fmt.Errorf("%w: apply %d is pending twice", ErrInvalidValue, p.ID)
		case !p.Layer.Journaled() || !p.Layer.Writable():
			return fmt.Errorf("%w: apply %d in layer %d", ErrInvalidLayer, p.ID, uint8(p.Layer))
		}
		if err := validOwner(p.Owner); err != nil {
			return fmt.Errorf("apply %d: %w", p.ID, err)
		}
		for j := range p.Undo {
			u := &p.Undo[j]
			if err := u.Scope.Validate(); err != nil || u.Scope.Bucket != Config {
				return fmt.Errorf("%w: apply %d undo %d: scope %s", ErrInvalidScope, p.ID, j, u.Scope)
			}
			if u.Key == "" || (!u.Had && !u.Left) {
				return fmt.Errorf("%w: apply %d undo %d", ErrInvalidValue, p.ID, j)
			}
			for _, v := range []*any{&u.Value, &u.LeftValue} {
				if *v == nil {
					continue
				}
				nv, _, err := NormalizeValue(*v)
				if err != nil {
					return fmt.Errorf("apply %d undo %d: %w", p.ID, j, err)
				}
				*v = nv
			}
		}
		t.layW().applies = append(slices.Clip(t.st.lay().applies), &p)
		t.changed = true
	}
	// Applies stay ordered by id (oldest first); the slice is t's own
	// once something was appended.
	if len(m.Applies) > 0 {
		slices.SortFunc(t.st.lay().applies, func(a, b *PendingApply) int { return cmpU64(a.ID, b.ID) })
	}
	return nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
