package store

import (
	"context"
	"slices"
	"strings"

	"github.com/sysreg/sysreg/core"
)

// OwnerInfo is one owner name as 'sysregd owners' shows it (R52).
type OwnerInfo struct {
	Name  string `json:"name"`
	Live  bool   `json:"live"`  // a session holds the name now
	Grace bool   `json:"grace"` // its session was dropped and its keys wait out a grace period (R48)
	// UID is the uid the name is bound to (R35): the uid of the session
	// that gave it its first key (an embedded session's is the process's),
	// for as long as it holds any key. nil for a name that holds no key or
	// was restored unbound.
	UID        *uint32        `json:"uid,omitempty"`
	StateKeys  int            `json:"state_keys"`
	ConfigKeys int            `json:"config_keys"`
	Layers     map[string]int `json:"layers,omitempty"` // config keys per layer they show from (R37)
	Scopes     int            `json:"scopes"`           // scopes it holds keys in
}

// Owners lists every owner name that holds keys or has a live session
// (R52), sorted by name. The key counts come from one snapshot and the
// session states from a moment apart, so a name attached or evicted at
// that moment may show one without the other. Its error is ctx's.
func (s *Store) Owners(ctx context.Context) ([]OwnerInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.owners(), nil
}

func (s *Store) owners() []OwnerInfo {
	live, grace := s.reg.Sessions()
	return ownerInfos(s.reg.Snapshot(), live, grace)
}

// ownerInfos joins what snap holds per owner with the live and grace
// names (sorted).
func ownerInfos(snap core.Snapshot, live, grace []string) []OwnerInfo {
	idx := map[string]*OwnerInfo{}
	scopes := map[string]map[core.Scope]bool{}
	get := func(name string) *OwnerInfo {
		o := idx[name]
		if o == nil {
			o = &OwnerInfo{Name: name}
			idx[name] = o
			scopes[name] = map[core.Scope]bool{}
		}
		return o
	}
	snap.Walk(0, func(sc core.Scope, key, owner string, _ any) error {
		o := get(owner)
		if sc.Bucket == core.State {
			o.StateKeys++
		} else {
			o.ConfigKeys++
			if m, ok := snap.Meta(sc, key); ok && m.Layer != 0 {
				if o.Layers == nil {
					o.Layers = map[string]int{}
				}
				o.Layers[m.Layer.String()]++
			}
		}
		scopes[owner][sc] = true
		return nil
	})
	for name, o := range idx {
		if uid, ok := snap.Binding(name); ok {
			o.UID = &uid
		}
	}
	for _, name := range live {
		get(name).Live = true
	}
	for _, name := range grace {
		get(name).Grace = true
	}
	out := make([]OwnerInfo, 0, len(idx))
	for name, o := range idx {
		o.Scopes = len(scopes[name])
		out = append(out, *o)
	}
	slices.SortFunc(out, func(a, b OwnerInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}
