//go:build race

package main

// raceEnabled: the tests run with -race, and so does the sysregd binary
// that the end-to-end tests build.
const raceEnabled = true
