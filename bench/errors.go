package bench

import "errors"

// ErrNoConvergence: subscribers did not all receive the final state within
// the scenario's timeout. The error names how many were missing.
var ErrNoConvergence = errors.New("bench: subscribers did not converge")

// ErrWrongState: a subscriber or a reopened store holds a state other than
// the one the scenario wrote. It means a bug in sysreg (or in bench).
var ErrWrongState = errors.New("bench: wrong final state")

// ErrNoNATS: the fleet scenario was given no NATS server URL and this
// binary has no in-process server (it was built without the fleetbench
// tag; see FleetConfig.URL).
var ErrNoNATS = errors.New("bench: fleet: no NATS server: give a URL of a server with JetStream, or build with -tags fleetbench for an in-process one")
