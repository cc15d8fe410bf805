//go:build !fleetbench

package bench

// InProcessNATS tells whether RunFleet can start a NATS server in the
// process when FleetConfig.URL is empty: not in this build (see
// fleet_inprocess.go).
const InProcessNATS = false

func inProcessNATS(string) (string, func(), error) { return "", nil, ErrNoNATS }
