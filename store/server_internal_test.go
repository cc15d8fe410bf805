package store

import (
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
