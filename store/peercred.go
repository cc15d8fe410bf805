package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/fsync"
)

// BindingsFile is where sysreg versions before journaled bindings kept the
// owner-uid bindings (R35), in the data directory. Open migrates it into
// the journal and removes it; nothing writes it any more.
const BindingsFile = "owners.json"

// migrateBindings binds every owner name that the recovered journal left
// unbound (records written before bindings were journaled, R35): to its
// uid in dir/owners.json where that file lists it, otherwise to uid (the
// process's own). It is one mutation, so one journal record; once that is
// durable owners.json is removed (and the directory fsynced). A file that
// cannot be read or parsed stops Open (*CorruptError): bindings fail
// closed. It returns the names bound.
func migrateBindings(reg *core.Registry, dir string, uid uint32) ([]string, error) {
	path := filepath.Join(dir, BindingsFile)
	uids := map[string]uint32{}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		data = nil
	case err != nil:
		return nil, &CorruptError{Path: path, Reason: fmt.Sprintf("owner bindings cannot be read: %v", err), Err: err}
	default:
		if err := json.Unmarshal(data, &uids); err != nil {
			return nil, &CorruptError{Path: path, Reason: fmt.Sprintf("owner bindings do not parse: %v", err), Err: err}
		}
	}
	bound, err := reg.BindUnbound(context.Background(), uids, uid)
	if err != nil {
		return nil, fmt.Errorf("store: migrate owner bindings: %w", err)
	}
	if data != nil {
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("store: remove %s after migrating it: %w", path, err)
		}
		if err := fsync.Dir(dir); err != nil {
			return nil, fmt.Errorf("store: remove %s after migrating it: %w", path, err)
		}
	}
	return bound, nil
}

// OwnerFor opens an owner session as Owner does, on behalf of the local
// user uid, as the daemon does for each peer (R35): it fails with
// ErrPermission when name is bound to another uid (unless uid is 0), and a
// name it gives its first key is bound to uid. For programs that serve
// other users themselves.
func (s *Store) OwnerFor(ctx context.Context, name string, uid uint32, opts core.OwnerOptions) (Owner, error) {
	o, err := s.reg.OwnerFor(ctx, name, uid, opts)
	if err != nil {
		return nil, err
	}
	return o, nil
}

// MayAct reports whether the local user uid may act for owner name (R35):
// attach as it, evict it, confirm or roll back its changes. nil for root
// (uid 0), for a name that holds no key and for one bound to uid; an error
// matching ErrPermission otherwise. The daemon checks it for every peer;
// an embedded program acts as its own process and is not checked.
func (s *Store) MayAct(uid uint32, name string) error { return s.reg.MayAct(uid, name) }
