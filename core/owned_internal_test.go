package core

import "testing"

// The owner index stores only its keys: scope, layer and key must split
// back out of them exactly, whatever the key holds (R1: types and subtypes
// have no NUL, keys may), because dropping an owner's keys (R13, R14) and
// its binding (R35) are derived from them.
func TestOwnedIndexKeySplitsBack(t *testing.T) {
	for _, c := range []struct {
		sc  Scope
		l   Layer
		key string
	}{
		{StateScope("net", "eth0"), 0, "ip"},
		{ConfigScope("net", ""), Saved, "mtu"},
		{ConfigScope("a", "b"), Runtime, "k\x00with\x00nul"},
		{ConfigScope("ünï", "cödé"), Override, ""},
		{ConfigScope("t", "s"), Default, "\x00"},
	} {
		ik := ownedIndexKey(c.sc, c.l, c.key)
		sc, l, key := parseOwned(ik)
		if sc != c.sc || l != c.l || key != c.key {
			t.Errorf("parseOwned(ownedIndexKey(%v, %d, %q)) = %v, %d, %q", c.sc, c.l, c.key, sc, l, key)
		}
		if ownedBucket(ik) != c.sc.Bucket || ownedLayer(ik) != c.l {
			t.Errorf("%q: bucket %d layer %d, want %d %d", ik, ownedBucket(ik), ownedLayer(ik), c.sc.Bucket, c.l)
		}
	}
}
