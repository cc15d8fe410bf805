package store

import (
	"runtime"
	"testing"
	"time"
)

// TestServerOptionsDefaults: the zero ServerOptions gets exactly the
// exported defaults, which sysregd serve offers as its flags' defaults.
func TestServerOptionsDefaults(t *testing.T) {
	o := ServerOptions{}.withDefaults()
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"MaxFrame", o.MaxFrame, DefaultMaxFrame},
		{"MaxOwners", o.MaxOwners, DefaultMaxOwners},
		{"MaxSubscriptions", o.MaxSubscriptions, DefaultMaxSubscriptions},
		{"MaxKeysPerOwner", o.MaxKeysPerOwner, DefaultMaxKeysPerOwner},
		{"MaxInFlight", o.MaxInFlight, DefaultMaxInFlight},
		{"WriteTimeout", o.WriteTimeout, time.Duration(DefaultWriteTimeout)},
		{"Name", o.Name, DefaultServerName},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
	if o.Logger == nil {
		t.Error("Logger: nil, want a null logger")
	}
}

// TestSnapCacheLetsGoOfBigBodies: the encoding of a snapshot is shared by
// everyone who sends it while they hold it (one encoding for many
// subscribers), a small one is kept, and a big one is released once
// nobody holds it, so an idle daemon does not keep the last big snapshot it
// served (issue #14's appliance footprint).
func TestSnapCacheLetsGoOfBigBodies(t *testing.T) {
	var c snapCache
	small := []byte{0x81, 0x40}
	c.put(7, small)
	if got := c.get(7); &got[0] != &small[0] || len(got) != len(small) {
		t.Fatalf("small body: get = %p (%d bytes), want the cached %p", got, len(got), small)
	}
	if got := c.get(8); got != nil {
		t.Fatalf("get of another snapshot returned %d bytes", len(got))
	}

	big := make([]byte, snapCacheStrong+1)
	big[0], big[len(big)-1] = 0x81, 0x42
	c.put(9, big)
	if got := c.get(9); got == nil || &got[0] != &big[0] || len(got) != len(big) || got[len(got)-1] != 0x42 {
		t.Fatalf("big body held by a sender: get = %d bytes, want the cached %d", len(got), len(big))
	}
	if c.get(7) != nil {
		t.Fatal("a newer put left the older snapshot's body cached")
	}
	runtime.KeepAlive(big) // the last sender lets go
	runtime.GC()
	if got := c.get(9); got != nil {
		t.Fatalf("big body held by nobody: still cached after a GC (%d bytes)", len(got))
	}
}
