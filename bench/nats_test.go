package bench_test

import (
	"testing"

	"github.com/sysreg/sysreg/internal/fleet/fleettest"
)

// natsURL starts a NATS server with JetStream for the fleet scenario (the
// tests do not depend on the fleetbench build tag) and stops it at the
// end of the test.
func natsURL(tb testing.TB) string {
	tb.Helper()
	srv, err := fleettest.NewServer(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.Stop)
	return srv.URL()
}
