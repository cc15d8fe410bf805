// Package cputime reads the CPU time the process has used: what benchmarks
// report beside wall time, since on a machine shared with other work wall
// time also counts the waiting. Zero where the platform has no getrusage.
package cputime
