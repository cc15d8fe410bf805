package codec

import (
	"fmt"
	"time"

	"github.com/sysreg/sysreg/core"
)

// appendApplies writes applies = [apply...] (R44), ids strictly ascending:
//
//	apply = [id: uint, owner, layer: uint, deadline: int, undo: [undo...]]
//	undo  = [type, subtype, key, before, after]
//	before, after = [] | [owner, value]
func appendApplies(b []byte, ps []core.PendingApply) ([]byte, error) {
	b = appendHead(b, majorArray, uint64(len(ps)))
	for i := range ps {
		p := &ps[i]
		if p.ID == 0 || (i > 0 && p.ID <= ps[i-1].ID) {
			return nil, fmt.Errorf("%w: apply %d: id 0, out of order or repeated", ErrInvalidMutation, p.ID)
		}
		if p.Layer != core.Saved && p.Layer != core.Runtime {
			return nil, fmt.Errorf("%w: apply %d in layer %d", ErrInvalidMutation, p.ID, uint8(p.Layer))
		}
		if err := checkName("apply owner", p.Owner); err != nil {
			return nil, err
		}
		b = appendHead(b, majorArray, 5)
		b = appendHead(b, majorUint, p.ID)
		b = appendText(b, p.Owner)
		b = appendHead(b, majorUint, uint64(p.Layer))
		b = appendInt(b, p.Deadline.UnixNano())
		b = appendHead(b, majorArray, uint64(len(p.Undo)))
		for j := range p.Undo {
			u := &p.Undo[j]
			if u.Scope.Bucket != core.Config {
				return nil, fmt.Errorf("%w: apply %d: undo of %s", core.ErrInvalidScope, p.ID, u.Scope)
			}
			if err := u.Scope.Validate(); err != nil {
				return nil, err
			}
			if err := checkName("key", u.Key); err != nil {
				return nil, err
			}
			if !u.Had && !u.Left {
				return nil, fmt.Errorf("%w: apply %d: undo of %q holds neither a before nor an after", ErrInvalidMutation, p.ID, u.Key)
			}
			b = appendHead(b, majorArray, 5)
			b = appendText(b, u.Scope.Type)
			b = appendText(b, u.Scope.Subtype)
			b = appendText(b, u.Key)
			var err error
			if b, err = appendKeyState(b, u.Had, u.Owner, u.Value); err != nil {
				return nil, fmt.Errorf("apply %d: %s %q: %w", p.ID, u.Scope, u.Key, err)
			}
			if b, err = appendKeyState(b, u.Left, u.LeftOwner, u.LeftValue); err != nil {
				return nil, fmt.Errorf("apply %d: %s %q: %w", p.ID, u.Scope, u.Key, err)
			}
		}
	}
	return b, nil
}

// appendKeyState writes [] for an absent key, [owner, value] otherwise.
func appendKeyState(b []byte, present bool, owner string, v any) ([]byte, error) {
	if !present {
		return appendHead(b, majorArray, 0), nil
	}
	if err := checkName("owner", owner); err != nil {
		return nil, err
	}
	b = appendHead(b, majorArray, 2)
	b = appendText(b, owner)
	return appendValue(b, v)
}

// appendFinish writes finish = [id...], strictly ascending.
func appendFinish(b []byte, ids []uint64) ([]byte, error) {
	b = appendHead(b, majorArray, uint64(len(ids)))
	for i, id := range ids {
		if id == 0 || (i > 0 && id <= ids[i-1]) {
			return nil, fmt.Errorf("%w: finish of apply %d: id 0, out of order or repeated", ErrInvalidMutation, id)
		}
		b = appendHead(b, majorUint, id)
	}
	return b, nil
}

// applies reads what appendApplies writes.
func (d *decoder) applies() ([]core.PendingApply, error) {
	n, err := d.arrayHead(9) // the smallest apply takes 9 bytes
	if err != nil {
		return nil, fmt.Errorf("applies: %w", err)
	}
	if n == 0 {
		return nil, nil
	}
	out := make([]core.PendingApply, n)
	for i := range out {
		p := &out[i]
		off := d.off
		if k, err := d.arrayHead(1); err != nil {
			return nil, fmt.Errorf("apply %d: %w", i, err)
		} else if k != 5 {
			d.off = off
			return nil, d.errorf("apply %d has %d fields, want 5", i, k)
		}
		if p.ID, err = d.uint(); err != nil {
			return nil, fmt.Errorf("apply %d: id: %w", i, err)
		}
		if p.ID == 0 || (i > 0 && p.ID <= out[i-1].ID) {
			d.off = off
			return nil, d.errorf("apply %d: id %d is 0, out of order or repeated", i, p.ID)
		}
		if p.Owner, err = d.nonEmptyText("apply owner"); err != nil {
			return nil, fmt.Errorf("apply %d: %w", p.ID, err)
		}
		loff := d.off
		l, err := d.uint()
		if err != nil {
			return nil, fmt.Errorf("apply %d: layer: %w", p.ID, err)
		}
		if l != uint64(core.Saved) && l != uint64(core.Runtime) {
			d.off = loff
			return nil, d.errorf("apply %d: layer %d is not saved or runtime", p.ID, l)
		}
		p.Layer = core.Layer(l)
		ns, err := d.int()
		if err != nil {
			return nil, fmt.Errorf("apply %d: deadline: %w", p.ID, err)
		}
		p.Deadline = time.Unix(0, ns)
		m, err := d.arrayHead(7) // the smallest undo takes 7 bytes
		if err != nil {
			return nil, fmt.Errorf("apply %d: undo: %w", p.ID, err)
		}
		p.Undo = make([]core.UndoKey, m)
		for j := range p.Undo {
			if err := d.undoKey(&p.Undo[j]); err != nil {
				return nil, fmt.Errorf("apply %d: undo %d: %w", p.ID, j, err)
			}
		}
	}
	return out, nil
}

func (d *decoder) undoKey(u *core.UndoKey) error {
	off := d.off
	if k, err := d.arrayHead(1); err != nil {
		return err
	} else if k != 5 {
		d.off = off
		return d.errorf("undo has %d fields, want 5", k)
	}
	var err error
	if u.Scope, err = d.scopeRest(core.Config); err != nil {
		return err
	}
	if u.Key, err = d.nonEmptyText("key"); err != nil {
		return err
	}
	if u.Had, u.Owner, u.Value, err = d.keyState(); err != nil {
		return fmt.Errorf("%s %q: before: %w", u.Scope, u.Key, err)
	}
	if u.Left, u.LeftOwner, u.LeftValue, err = d.keyState(); err != nil {
		return fmt.Errorf("%s %q: after: %w", u.Scope, u.Key, err)
	}
	if !u.Had && !u.Left {
		d.off = off
		return d.errorf("undo of %q holds neither a before nor an after", u.Key)
	}
	return nil
}

// keyState reads what appendKeyState writes.
func (d *decoder) keyState() (present bool, owner string, v any, err error) {
	off := d.off
	k, err := d.arrayHead(1)
	if err != nil {
		return false, "", nil, err
	}
	switch k {
	case 0:
		return false, "", nil, nil
	case 2:
	default:
		d.off = off
		return false, "", nil, d.errorf("key state has %d fields, want 0 or 2", k)
	}
	if owner, err = d.nonEmptyText("owner"); err != nil {
		return false, "", nil, err
	}
	if v, err = d.withValue(); err != nil {
		return false, "", nil, err
	}
	return true, owner, v, nil
}

// finish reads what appendFinish writes.
func (d *decoder) finish() ([]uint64, error) {
	n, err := d.arrayHead(1)
	if err != nil {
		return nil, fmt.Errorf("finish: %w", err)
	}
	if n == 0 {
		return nil, nil
	}
	out := make([]uint64, n)
	for i := range out {
		off := d.off
		if out[i], err = d.uint(); err != nil {
			return nil, fmt.Errorf("finish %d: %w", i, err)
		}
		if out[i] == 0 || (i > 0 && out[i] <= out[i-1]) {
			d.off = off
			return nil, d.errorf("finish %d: id %d is 0, out of order or repeated", i, out[i])
		}
	}
	return out, nil
}

// withValue reads one top-level value, its key path in the error.
func (d *decoder) withValue() (any, error) {
	v, err := d.value(1)
	if err != nil {
		return nil, d.withPath(err)
	}
	return v, nil
}
