package fleet_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: every
// bridge, NATS connection and server a test starts must be stopped (STYLE §4).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
