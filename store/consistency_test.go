package store_test

import (
	"testing"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

// TestR32_SameErrorMessages: a refused Update or Commit fails with the same
// error — message included — embedded and over the socket (R32): no "op 0:"
// that only one side adds.
func TestR32_SameErrorMessages(t *testing.T) {
	embedded := open(t, t.TempDir(), store.Options{NoSync: true})
	d := startDaemon(t, t.TempDir(), store.ServerOptions{})
	remote := dial(t, d)
	sc := core.ConfigScope("net", "eth0")
	for _, tc := range []struct {
		name string
		do   func(o store.Owner) error
	}{
		{"update/scope=bad", func(o store.Owner) error {
			return o.Update(t.Context(), core.Scope{Bucket: core.Config, Subtype: "x"}, core.Values{"k": 1})
		}},
		{"update/value=func", func(o store.Owner) error { return o.Update(t.Context(), sc, core.Values{"k": func() {}}) }},
		{"update/key=empty", func(o store.Owner) error { return o.Update(t.Context(), sc, core.Values{"": 1}) }},
		{"commit/ops=2/value=func", func(o store.Owner) error {
			return o.Commit(t.Context(), core.Put(sc, core.Values{"a": 1}), core.Put(sc, core.Values{"k": func() {}}))
		}},
		{"commit/ops=2/scope=bad", func(o store.Owner) error {
			return o.Commit(t.Context(), core.Put(sc, core.Values{"a": 1}), core.Del(core.Scope{Bucket: 9, Type: "a", Subtype: "b"}))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var msgs []string
			for _, reg := range []store.Registry{embedded, remote} {
				o, err := reg.Owner(t.Context(), "o", core.OwnerOptions{})
				must(t, err)
				err = tc.do(o)
				must(t, o.Close())
				if err == nil {
					t.Fatal("accepted")
				}
				msgs = append(msgs, err.Error())
			}
			if msgs[0] != msgs[1] {
				t.Errorf("embedded and client differ:\n  embedded: %s\n  client:   %s", msgs[0], msgs[1])
			}
		})
	}
}
