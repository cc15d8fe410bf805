package store_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/codec"
	"github.com/sysreg/sysreg/journal"
	"github.com/sysreg/sysreg/store"
)

var bindScope = core.ConfigScope("wifi", "wlan0")

// appendRaw appends data as record key to the journal of dir, as a damaged
// or older sysreg would have left it (valid CRC and chain).
func appendRaw(t *testing.T, dir string, key uint64, data []byte) {
	t.Helper()
	j, err := journal.Open(filepath.Join(dir, store.JournalFile), journal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	j.Append(key, data, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

// boundStore writes config as wifi-setup for uid 1234 into a new data
// directory and returns it with the sequence number of the last mutation.
func boundStore(t *testing.T) (string, uint64) {
	t.Helper()
	dir := t.TempDir()
	s, err := store.Open(dir, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	o, err := s.OwnerFor(t.Context(), "wifi-setup", 1234, core.OwnerOptions{KeepConfig: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Update(t.Context(), bindScope, core.Values{"ssid": "home"}); err != nil {
		t.Fatal(err)
	}
	if err := s.MayAct(4321, "wifi-setup"); !errors.Is(err, store.ErrPermission) {
		t.Fatalf("MayAct(4321) = %v, want ErrPermission", err)
	}
	snap, _ := s.Snapshot(t.Context())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, snap.Seq()
}

// TestR35_DamagedBindingRefused: a binding record that cannot be read, or
// that binds a name to keys it does not hold, stops Open with a
// *CorruptError like any other damage (R29): bindings fail closed.
func TestR35_DamagedBindingRefused(t *testing.T) {
	valid, err := codec.EncodeMutation(&core.Mutation{Seq: 1, Ops: []core.MutationOp{{Kind: core.MutMerge,
		Layer: core.Saved, Scope: bindScope, Owner: "wifi-setup", Values: core.Values{"x": int64(1)}}},
		Binds: []core.Bind{{Name: "wifi-setup", UID: 1234}}})
	if err != nil {
		t.Fatal(err)
	}
	uid := []byte{0x19, 0x04, 0xd2} // uid 1234, the record's last bytes
	if !bytes.HasSuffix(valid, uid) {
		t.Fatalf("record %x does not end with the uid", valid)
	}
	for name, damage := range map[string]func(seq uint64) []byte{
		"uid-not-a-number": func(seq uint64) []byte {
			b := rerecord(t, valid, seq)
			return append(b[:len(b)-len(uid)], 0x63, 'a', 'b', 'c')
		},
		"truncated-binds": func(seq uint64) []byte {
			b := rerecord(t, valid, seq)
			return b[:len(b)-2]
		},
		"bind-without-keys": func(seq uint64) []byte {
			b, err := codec.EncodeMutation(&core.Mutation{Seq: seq, Binds: []core.Bind{{Name: "ghost", UID: 1}}})
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		"unbind-with-keys": func(seq uint64) []byte {
			b, err := codec.EncodeMutation(&core.Mutation{Seq: seq, Binds: []core.Bind{{Name: "wifi-setup", Unbind: true}}})
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir, seq := boundStore(t)
			appendRaw(t, dir, seq+1000, damage(seq+1000))
			s, err := store.Open(dir, store.Options{NoSync: true})
			var ce *store.CorruptError
			if !errors.As(err, &ce) {
				if s != nil {
					s.Close()
				}
				t.Fatalf("Open = %v, want a *CorruptError", err)
			}
			if ce.Path != filepath.Join(dir, store.JournalFile) {
				t.Fatalf("CorruptError names %q", ce.Path)
			}
		})
	}
}

// rerecord re-encodes the record data (as decoded) with sequence number seq.
func rerecord(t *testing.T, data []byte, seq uint64) []byte {
	t.Helper()
	m, err := codec.DecodeMutation(data)
	if err != nil {
		t.Fatal(err)
	}
	m.Seq = seq
	b, err := codec.EncodeMutation(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// v2Record is a record of format version 2 (before bindings were
// journaled): owner merges {"k": 1} into the saved layer of scope.
func v2Record(seq byte, scope core.Scope, owner string) []byte {
	b := []byte{0x84, 0x02, seq, 0x00, 0x81, 0x87, 0x01, 0x02, 0x03}
	for _, s := range []string{scope.Type, scope.Subtype, owner} {
		b = append(b, 0x60+byte(len(s)))
		b = append(b, s...)
	}
	return append(b, 0xa1, 0x61, 'k', 0x01)
}

// TestR35_MigrateOwnersJSON: a data directory written before bindings
// were journaled opens with every name bound — to its uid in owners.json,
// or to the opening process's uid — in one journal record, and owners.json
// is gone; the bindings hold after a reopen. A damaged owners.json stops
// Open (fail closed) and changes nothing.
func TestR35_MigrateOwnersJSON(t *testing.T) {
	legacy := func(t *testing.T, owners string) string {
		dir := t.TempDir()
		appendRaw(t, dir, 1, v2Record(1, bindScope, "wifi-setup"))
		appendRaw(t, dir, 2, v2Record(2, core.ConfigScope("net", "eth0"), "tool"))
		if err := os.WriteFile(filepath.Join(dir, store.BindingsFile), []byte(owners), 0o600); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	self := uint32(os.Getuid())
	check := func(t *testing.T, s *store.Store) {
		t.Helper()
		snap, _ := s.Snapshot(t.Context())
		if uid, ok := snap.Binding("wifi-setup"); !ok || uid != 1234 {
			t.Fatalf("wifi-setup bound to %d, %v; want 1234 from owners.json", uid, ok)
		}
		if uid, ok := snap.Binding("tool"); !ok || uid != self {
			t.Fatalf("tool bound to %d, %v; want the process's uid %d", uid, ok, self)
		}
		if err := s.MayAct(4321, "wifi-setup"); !errors.Is(err, store.ErrPermission) {
			t.Fatalf("MayAct(4321, wifi-setup) = %v", err)
		}
	}

	dir := legacy(t, `{"wifi-setup": 1234, "gone": 7}`)
	s, err := store.Open(dir, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	check(t, s)
	if rep := s.Recovery(); rep.Records != 2 {
		t.Fatalf("recovered %d records, want 2", rep.Records)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, store.BindingsFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("owners.json after the migration: %v", err)
	}
	s, err = store.Open(dir, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	check(t, s)
	if rep := s.Recovery(); rep.Records != 3 {
		t.Fatalf("reopen replayed %d records, want 3 (two, and the migration's)", rep.Records)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	dir = legacy(t, `{"wifi-setup": 12`)
	if s, err := store.Open(dir, store.Options{NoSync: true}); !errors.As(err, new(*store.CorruptError)) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open with a damaged owners.json = %v, want a *CorruptError", err)
	}
	if err := os.WriteFile(filepath.Join(dir, store.BindingsFile), []byte(`{"wifi-setup": 1234}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = store.Open(dir, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	check(t, s)
	s.Close()
}
