//go:build fleetbench

package bench

import "github.com/sysreg/sysreg/internal/fleet/fleettest"

// InProcessNATS tells whether RunFleet can start a NATS server in the
// process when FleetConfig.URL is empty: only in builds with the
// fleetbench tag, so that the sysregd appliances run does not link
// nats-server (issue #14's footprint).
const InProcessNATS = true

// inProcessNATS starts a NATS server with JetStream in dir.
func inProcessNATS(dir string) (url string, stop func(), err error) {
	srv, err := fleettest.NewServer(dir)
	if err != nil {
		return "", nil, err
	}
	return srv.URL(), srv.Stop, nil
}
