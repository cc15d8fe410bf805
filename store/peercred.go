package store

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/fsync"
)

// bindings records which uid created each owner name (R35), persisted in
// the data directory as owners.json (written to a temporary file, fsynced
// and renamed) so that the binding outlives a daemon restart as the config
// it protects does. A name is (re)bound to the attaching uid whenever it
// holds no config.
type bindings struct {
	path string
	log  hclog.Logger

	mu sync.Mutex // guards m and the file
	m  map[string]uint32
}

// BindingsFile is the name of the owner-uid bindings inside the data dir.
const BindingsFile = "owners.json"

func loadBindings(dir string, log hclog.Logger) *bindings {
	b := &bindings{path: filepath.Join(dir, BindingsFile), log: log, m: map[string]uint32{}}
	data, err := os.ReadFile(b.path)
	if err == nil {
		if err := json.Unmarshal(data, &b.m); err != nil {
			log.Warn("owner bindings unreadable; starting without", "path", b.path, "error", err)
			b.m = map[string]uint32{}
		}
	}
	return b
}

func (b *bindings) get(name string) (uint32, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	uid, ok := b.m[name]
	return uid, ok
}

func (b *bindings) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}

// bind records name → uid unless name is bound to another uid and still
// holds config. Names that no longer hold config are dropped on the way.
func (b *bindings) bind(name string, uid uint32, snap core.Snapshot) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if old, ok := b.m[name]; ok && (old == uid || snap.Holds(name, core.Config)) {
		return
	}
	for n := range b.m {
		if !snap.Holds(n, core.Config) {
			delete(b.m, n)
		}
	}
	b.m[name] = uid
	if err := b.save(); err != nil {
		b.log.Warn("cannot save owner bindings", "path", b.path, "error", err)
	}
}

func (b *bindings) save() error {
	data, err := json.Marshal(b.m)
	if err != nil {
		return err
	}
	tmp := b.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, b.path); err != nil {
		return err
	}
	return fsync.Dir(filepath.Dir(b.path))
}
