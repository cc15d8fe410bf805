package codec

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/sysreg/sysreg/core"
)

// SnapshotVersion is the format version of the snapshots that EncodeSnapshot
// writes. DecodeSnapshot reads every version from 1 up to it.
const SnapshotVersion = 1

// EncodeSnapshot returns the encoding of the keys of bucket b in s (0: both
// buckets) with their owners and s.Seq() (see "Snapshots" in the package
// documentation): core.Config for a checkpoint, 0 for a whole view on the
// wire. Scopes and keys are written in a canonical order, so equal snapshots
// encode to equal bytes.
func EncodeSnapshot(s core.Snapshot, b core.Bucket) ([]byte, error) {
	if b != 0 && b != core.State && b != core.Config {
		return nil, fmt.Errorf("encode snapshot: %w: %s", core.ErrInvalidScope, b)
	}
	return encodeSnapshot(s.Seq(), func(fn walkFunc) error { return s.Walk(b, fn) })
}

// walkFunc is the callback of core.Snapshot.Walk.
type walkFunc = func(scope core.Scope, key, owner string, value any) error

type snapEntry struct {
	key, owner string
	value      any
}

type snapScope struct {
	scope   core.Scope
	entries []snapEntry
}

// encodeSnapshot encodes what walk reports, whatever order it reports it in;
// a key reported twice in a scope is an error.
func encodeSnapshot(seq uint64, walk func(walkFunc) error) ([]byte, error) {
	var (
		scopes []snapScope
		index  map[core.Scope]int // scope → position in scopes, past the first
		size   int                // a rough guess of the encoded size
	)
	err := walk(func(scope core.Scope, key, owner string, value any) error {
		i := len(scopes) - 1
		if i < 0 || scopes[i].scope != scope {
			var ok bool
			if i, ok = index[scope]; !ok {
				if index == nil {
					index = make(map[core.Scope]int)
				}
				i = len(scopes)
				index[scope] = i
				scopes = append(scopes, snapScope{scope: scope})
				size += 8 + len(scope.Type) + len(scope.Subtype)
			}
		}
		scopes[i].entries = append(scopes[i].entries, snapEntry{key, owner, value})
		size += 8 + len(key) + len(owner)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("encode snapshot %d: %w", seq, err)
	}
	slices.SortFunc(scopes, func(a, b snapScope) int { return compareScopes(a.scope, b.scope) })

	buf := make([]byte, 0, 16+size)
	buf = appendHead(buf, majorArray, 3)
	buf = appendHead(buf, majorUint, SnapshotVersion)
	buf = appendHead(buf, majorUint, seq)
	buf = appendHead(buf, majorArray, uint64(len(scopes)))
	for _, sc := range scopes {
		if buf, err = appendSnapScope(buf, &sc); err != nil {
			return nil, fmt.Errorf("encode snapshot %d: %s: %w", seq, sc.scope, err)
		}
	}
	return buf, nil
}

func appendSnapScope(b []byte, sc *snapScope) ([]byte, error) {
	if err := sc.scope.Validate(); err != nil {
		return nil, err
	}
	bucket, _ := bucketNumber(sc.scope.Bucket) // valid: Validate checked it
	b = appendHead(b, majorArray, 4)
	b = appendHead(b, majorUint, bucket)
	b = appendText(b, sc.scope.Type)
	b = appendText(b, sc.scope.Subtype)
	b = appendHead(b, majorArray, uint64(len(sc.entries)))
	// Walk reports keys sorted already; sorting a sorted slice is cheap.
	slices.SortFunc(sc.entries, func(a, b snapEntry) int { return strings.Compare(a.key, b.key) })
	for i, e := range sc.entries {
		if i > 0 && e.key == sc.entries[i-1].key {
			return nil, fmt.Errorf("%w: key %q reported twice", ErrInvalidMutation, e.key)
		}
		if err := checkName("key", e.key); err != nil {
			return nil, err
		}
		if err := checkName("owner", e.owner); err != nil {
			return nil, fmt.Errorf("key %q: %w", e.key, err)
		}
		b = appendHead(b, majorArray, 3)
		b = appendText(b, e.key)
		b = appendText(b, e.owner)
		var err error
		if b, err = appendValue(b, e.value); err != nil {
			return nil, fmt.Errorf("key %q: %w", e.key, err)
		}
	}
	return b, nil
}

// compareScopes orders scopes by their text form "bucket/type/subtype"
// without building it. A type cannot contain '/', so two different types
// are decided within type+"/" and the subtype only matters on equal types.
func compareScopes(a, b core.Scope) int {
	if a.Bucket != b.Bucket {
		return strings.Compare(a.Bucket.String(), b.Bucket.String())
	}
	if a.Type == b.Type {
		return strings.Compare(a.Subtype, b.Subtype)
	}
	n := min(len(a.Type), len(b.Type))
	if c := strings.Compare(a.Type[:n], b.Type[:n]); c != 0 {
		return c
	}
	if len(a.Type) < len(b.Type) {
		return cmp.Compare('/', b.Type[n]) // a continues with '/'
	}
	return cmp.Compare(a.Type[n], '/')
}

// DecodeSnapshot decodes a snapshot written by EncodeSnapshot of any version
// up to SnapshotVersion and rebuilds it with core.Snapshot.Apply: one
// core.MutSet op per run of keys of a scope with the same owner. Errors are
// as for DecodeMutation: a *VersionError (ErrVersion) or ErrMalformed. Scopes
// must come in text order and keys in byte order, each once.
func DecodeSnapshot(data []byte) (core.Snapshot, error) {
	m, err := snapshotMutation(data)
	if err != nil {
		return core.Snapshot{}, err
	}
	s, err := core.Snapshot{}.Apply(m)
	if err != nil {
		return core.Snapshot{}, fmt.Errorf("%w: snapshot %d: %v", ErrMalformed, m.Seq, err)
	}
	return s, nil
}

// snapshotMutation decodes a snapshot into the mutation that rebuilds it
// from an empty one.
func snapshotMutation(data []byte) (*core.Mutation, error) {
	d := decoder{data: data}
	m, err := d.snapshot()
	if err == nil {
		err = d.end()
	}
	if err != nil {
		return nil, malformed("snapshot", err)
	}
	return m, nil
}

func (d *decoder) snapshot() (*core.Mutation, error) {
	seq, err := d.envelope("snapshot", SnapshotVersion)
	if err != nil {
		return nil, err
	}
	n, err := d.arrayHead(9) // the smallest scope takes 9 bytes
	if err != nil {
		return nil, fmt.Errorf("snapshot %d: scopes: %w", seq, err)
	}
	m := &core.Mutation{Seq: seq}
	var prev core.Scope
	for i := range n {
		off := d.off
		k, err := d.arrayHead(1)
		if err != nil {
			return nil, fmt.Errorf("snapshot %d: scope %d: %w", seq, i, err)
		}
		if k != 4 {
			d.off = off
			return nil, d.errorf("snapshot %d: scope %d has %d fields, want 4", seq, i, k)
		}
		sc, err := d.scope()
		if err != nil {
			return nil, fmt.Errorf("snapshot %d: scope %d: %w", seq, i, err)
		}
		if i > 0 && compareScopes(prev, sc) >= 0 {
			d.off = off
			return nil, d.errorf("snapshot %d: scope %s after %s: out of order or repeated", seq, sc, prev)
		}
		prev = sc
		if m.Ops, err = d.snapScope(sc, m.Ops); err != nil {
			return nil, fmt.Errorf("snapshot %d: %s: %w", seq, sc, err)
		}
	}
	return m, nil
}

// snapScope reads the entries of scope sc and appends their MutSet ops.
func (d *decoder) snapScope(sc core.Scope, ops []core.MutationOp) ([]core.MutationOp, error) {
	n, err := d.arrayHead(6) // the smallest entry takes 6 bytes
	if err != nil {
		return nil, fmt.Errorf("entries: %w", err)
	}
	if n == 0 {
		return nil, d.errorf("scope without keys")
	}
	var prevKey string
	for i := range n {
		off := d.off
		k, err := d.arrayHead(1)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		if k != 3 {
			d.off = off
			return nil, d.errorf("entry %d has %d fields, want 3", i, k)
		}
		key, err := d.nonEmptyText("key")
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		if i > 0 && key <= prevKey {
			d.off = off
			return nil, d.errorf("key %q after %q: out of order or repeated", key, prevKey)
		}
		prevKey = key
		owner, err := d.nonEmptyText("owner")
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", key, err)
		}
		v, err := d.value(1)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", key, d.withPath(err))
		}
		if last := len(ops) - 1; i > 0 && ops[last].Owner == owner {
			ops[last].Values[key] = v
			continue
		}
		ops = append(ops, core.MutationOp{Kind: core.MutSet, Scope: sc, Owner: owner, Values: core.Values{key: v}})
	}
	return ops, nil
}
