//go:build race

package journal_test

// raceEnabled: the race detector slows bbolt down about 30 times; the
// heaviest tests scale down.
const raceEnabled = true
