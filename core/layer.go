package core

import (
	"fmt"
	"time"
)

// Layer is one layer of the config bucket (R37). The effective config view
// is the layers deep-merged lowest first: Default < Fleet < Saved < Runtime
// < Override (R38). The state bucket has no layers (Layer 0).
type Layer uint8

// The config layers, lowest first.
const (
	// Default holds the firmware defaults (R40): replaced wholesale by
	// Registry.SetDefaults, never journaled, never written by an owner.
	Default Layer = iota + 1
	// Fleet holds config pushed to a whole fleet (R53): written by
	// Registry.SetFleet, journaled, never written by an owner.
	Fleet
	// Saved holds the device's own persistent settings: written by owners
	// with KeepConfig (or Layer Saved); kept when the owner dies (R13).
	Saved
	// Runtime holds config that lives as long as its owner's session
	// (R13): the default layer of an owner's writes. Journaled, so it
	// survives a restart of the daemon until its owner dies.
	Runtime
	// Override holds an operator's temporary overrides: the highest layer,
	// never journaled (empty after a restart), dropped when its owner dies.
	Override
)

// NumLayers is the number of config layers.
const NumLayers = 5

// Layers lists the config layers, lowest first.
var Layers = [NumLayers]Layer{Default, Fleet, Saved, Runtime, Override}

var layerNames = [...]string{"", "default", "fleet", "saved", "runtime", "override"}

// String returns "default", "fleet", "saved", "runtime" or "override"
// ("layer(N)" for an invalid value; "" for 0, the state bucket's "no layer").
func (l Layer) String() string {
	if int(l) < len(layerNames) {
		return layerNames[l]
	}
	return fmt.Sprintf("layer(%d)", uint8(l))
}

// ParseLayer parses a layer name as String writes it. Anything else is an
// error matching ErrInvalidLayer.
func ParseLayer(s string) (Layer, error) {
	for i, n := range layerNames {
		if i > 0 && n == s {
			return Layer(i), nil
		}
	}
	return 0, fmt.Errorf("%w: %q (want default, fleet, saved, runtime or override)", ErrInvalidLayer, s)
}

// Valid reports whether l is one of the five config layers.
func (l Layer) Valid() bool { return l >= Default && l <= Override }

// Writable reports whether owners may write l (R39): Saved, Runtime and
// Override.
func (l Layer) Writable() bool { return l >= Saved && l <= Override }

// Journaled reports whether mutations of l are journaled (R41): Fleet,
// Saved and Runtime.
func (l Layer) Journaled() bool { return l >= Fleet && l <= Runtime }

// volatile reports whether l is a config layer that is never journaled.
func (l Layer) volatile() bool { return l == Default || l == Override }

// KeyMeta describes the value that the effective view shows for one
// top-level key (R42).
type KeyMeta struct {
	// Layer and Owner are those of the highest layer holding the key (what
	// Origin reports). State keys have Layer 0; keys of Default and Fleet
	// have the owner "".
	Layer Layer
	Owner string
	// CreateSeq is the mutation that made the key appear in the view;
	// ModSeq the last mutation that changed its value, layer or owner.
	CreateSeq, ModSeq uint64
	// Version is 1 at creation and grows by one with every mutation that
	// changes the key's value, layer or owner.
	Version uint64
	// Modified is the wall-clock time of the ModSeq mutation (zero for
	// config restored from a version-1 journal, which kept no times).
	Modified time.Time
}

// meta is KeyMeta as stored in an entry, in 32 bytes (every state update
// copies it): the owner lives in the entry's origin, the time is in Unix
// nanoseconds (0: unknown), and bits packs the version (bits 8–63), the
// layer (bits 0–2) and two flags:
//   - vol (bit 3): the effective value depends on a layer that is never
//     journaled (Default or Override), so after a restart it may differ;
//   - stale (bit 4): restored from a checkpoint in which vol was set; the
//     value now shown may differ from the one the metadata describes, so
//     the next mutation that looks at the key counts it as changed.
type meta struct {
	create, mod uint64
	modified    int64
	bits        uint64
}

const (
	metaLayer = 7
	metaVol   = 8
	metaStale = 16
)

// next is the metadata of the version after m, made by mutation seq at
// time now: layer and vol flag stay, stale is cleared.
func (m meta) next(seq uint64, now int64) meta {
	return meta{create: m.create, mod: seq, modified: now, bits: (m.version()+1)<<8 | m.bits&0xff&^metaStale}
}

func (m meta) version() uint64      { return m.bits >> 8 }
func (m meta) layer() Layer         { return Layer(m.bits & metaLayer) }
func (m meta) vol() bool            { return m.bits&metaVol != 0 }
func (m meta) stale() bool          { return m.bits&metaStale != 0 }
func (m *meta) setVersion(v uint64) { m.bits = v<<8 | m.bits&0xff }
func (m *meta) setLayer(l Layer)    { m.bits = m.bits&^metaLayer | uint64(l)&metaLayer }
func (m *meta) setFlag(f uint64, on bool) {
	if on {
		m.bits |= f
	} else {
		m.bits &^= f
	}
}

func (e *entry) keyMeta() KeyMeta {
	m := KeyMeta{Layer: e.meta.layer(), Owner: e.owner(), CreateSeq: e.meta.create, ModSeq: e.meta.mod, Version: e.meta.version()}
	if e.meta.modified != 0 {
		m.Modified = time.Unix(0, e.meta.modified)
	}
	return m
}

// origin names a key's owner (R9). Every key of one owner name shares one
// (ownerInfo.org, made when the name gets its first key), so an entry
// holds a pointer, not a 16-byte string header, and the live heap has no
// object per key for it: an entry is 56 bytes, and with its key the leaf
// of a one-key node fits the 112-byte size class it had before per-key
// metadata (R42's budget for the flapping benchmark). nil is the owner ""
// (Default and Fleet). Immutable.
type origin struct {
	owner string
}

// newOrigin returns an origin of owner (nil for "").
func newOrigin(owner string) *origin {
	if owner == "" {
		return nil
	}
	return &origin{owner}
}

// name returns o's owner name.
func (o *origin) name() string {
	if o == nil {
		return ""
	}
	return o.owner
}

// owner returns the entry's owner name ("" in Default and Fleet).
func (e *entry) owner() string { return e.org.name() }
