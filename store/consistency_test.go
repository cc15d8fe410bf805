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

// TestR32_StatsTyped: Stats is one typed struct for *Store and *Client; over
// the socket it carries the daemon's store figures and its server's
// counters (issue #8 item 10).
func TestR32_StatsTyped(t *testing.T) {
	d := startDaemon(t, t.TempDir(), store.ServerOptions{})
	c := dial(t, d)
	o, err := c.Owner(t.Context(), "o", core.OwnerOptions{})
	must(t, err)
	must(t, o.Update(t.Context(), core.ConfigScope("net", "eth0"), core.Values{"up": true}))
	must(t, o.Update(t.Context(), core.StateScope("net", "eth0"), core.Values{"up": true}))
	sub, err := c.Subscribe(t.Context(), core.SubscribeOptions{})
	must(t, err)
	defer sub.Close()

	var reg store.Registry = c
	remote, err := reg.Stats(t.Context())
	must(t, err)
	embedded, err := d.st.Stats(t.Context())
	must(t, err)
	if remote.Server == nil || remote.Server.Connections != 1 || remote.Server.Requests == 0 {
		t.Errorf("Server over the client: %+v", remote.Server)
	}
	if embedded.Server != nil {
		t.Errorf("Server of an embedded store: %+v, want nil", embedded.Server)
	}
	remote.Server = nil
	// Between the two calls only the stats request itself happened.
	if remote.Seq != embedded.Seq || remote.ConfigKeys != 1 || remote.StateKeys != 1 ||
		remote.Mutations != 2 || remote.ConfigMutations != 1 || remote.Subscriptions != 1 || remote.Sessions != 1 ||
		remote.Journal.Appends != embedded.Journal.Appends || remote.Recovery != embedded.Recovery {
		t.Errorf("client %+v\nstore  %+v", remote, embedded)
	}
}
