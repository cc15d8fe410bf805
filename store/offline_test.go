package store_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

// TestInspectCheck: Inspect decodes every record and the checkpoint of a
// closed store's directory; Check replays them as Open would and agrees
// with what Open recovers; a damaged file is reported, never a panic (R27,
// R29).
func TestInspectCheck(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	o, err := st.Owner(t.Context(), "netd", core.OwnerOptions{KeepConfig: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := o.Update(t.Context(), core.ConfigScope("net", "eth0"), core.Values{"mtu": 1500 + i, "ip": "10.0.0.1"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	ins, err := store.Inspect(dir)
	if err != nil || len(ins.Problems) != 0 {
		t.Fatalf("Inspect: %v %v", err, ins.Problems)
	}
	n := 0
	for i, m := range ins.Mutations {
		if m == nil || ins.MutationErrs[i] != nil {
			t.Fatalf("record %d not decoded: %v", i, ins.MutationErrs[i])
		}
		n++
	}
	if n != 3 {
		t.Fatalf("%d mutations, want 3", n)
	}
	ck, err := store.Check(dir)
	if err != nil || !ck.OK() || ck.Recovery.Keys != 2 || ck.Recovery.Owners != 1 {
		t.Fatalf("Check: %v %+v", err, ck)
	}
	st, err = store.Open(dir, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Recovery(); got.Keys != ck.Recovery.Keys || got.Records != ck.Recovery.Records {
		t.Errorf("Open recovered %+v, Check said %+v", got, ck.Recovery)
	}
	st.Close()

	data, err := os.ReadFile(filepath.Join(dir, store.JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, store.JournalFile), bytes.ReplaceAll(data, []byte("10.0.0.1"), []byte("10.0.0.2")), 0o600); err != nil {
		t.Fatal(err)
	}
	if ck, err := store.Check(bad); err != nil || ck.OK() {
		t.Fatalf("Check of a damaged journal: %v %+v", err, ck)
	}
	if _, err := store.Check(t.TempDir()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Check of an empty directory: %v", err)
	}
}
