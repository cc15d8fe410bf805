package store

import (
	"testing"
	"time"
)

// TestRateLimit: one warning per cause per WarnInterval (R51).
func TestRateLimit(t *testing.T) {
	var r rateLimit
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		at   time.Duration
		want bool
	}{
		{0, true}, {time.Second, false}, {59 * time.Second, false}, {60 * time.Second, true}, {61 * time.Second, false}, {3 * time.Minute, true},
	} {
		if got := r.allow(t0.Add(tc.at), WarnInterval); got != tc.want {
			t.Errorf("at +%v: allow = %v, want %v", tc.at, got, tc.want)
		}
	}
}

// TestLagThreshold: 10 × MinInterval, at least 10 s (R51).
func TestLagThreshold(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{0: 10 * time.Second, time.Second: 10 * time.Second, 5 * time.Second: 50 * time.Second} {
		if got := newHealth(nil, healthKnobs{}).lagThreshold(in); got != want {
			t.Errorf("lagThreshold(%v) = %v, want %v", in, got, want)
		}
	}
}
