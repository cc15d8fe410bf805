// Package bench is sysreg's benchmark suite: each scenario is an ordinary
// function that takes a config struct (its zero value gives the defaults
// of the published figures) and returns a result struct with JSON tags.
// The testing.B wrappers in this package and "sysregd bench" call the same
// functions. It uses only the exported APIs of store and core (and bbolt
// directly, for the raw-bbolt baselines of the durable scenario).
//
// Every headline figure is measured side by side with its baseline in the
// same run, so that the ratio holds on a noisy machine:
//
//   - RunFlap: P producers toggle state keys as fast as they can while S
//     subscribers with a MinInterval consume; then the same producers and
//     consumers with a naive event-per-change fan-out (a mutex-protected
//     map and one buffered channel per consumer, blocking sends), the code
//     a user would write without sysreg. Each update is a fresh
//     core.Values map; each subscriber is a range over its channel.
//     FlapConfig.ReuseValues (sysregd bench flap --reuse-values) passes
//     maps built once instead: not the headline, it shows what is left of
//     sysreg's cost without the callers' allocations and the collector
//     cycles they cause, each of which scans every consumer's stack.
//   - RunFlapSweep: RunFlap (sysreg only) for 10…100,000 subscribers, each
//     point beside the same producers with no subscribers, the two runs'
//     order alternating; ratios wall-clock and per CPU-second of the
//     process (steadier on a shared machine).
//   - RunFootprint: "sysregd serve" (a binary the caller names) from exec
//     until a client connects, with 10,000 saved config keys beside an
//     empty data dir, and its idle resident set (VmRSS).
//   - RunDurable: config updates with 1…256 concurrent writers on an
//     embedded store (journal with group commit, real fsync), beside raw
//     bbolt with one commit per update and with DB.Batch.
//   - RunWear: flash wear, the bytes written to storage per durable
//     config update (/proc/self/io write_bytes, where it exists, and the
//     bbolt pages the commits wrote) with 1 and 64 writers, per checkpoint
//     cycle amortised over its interval, and per typical appliance day
//     (DayMix), each beside raw bbolt appending a 64-byte record in a
//     transaction of its own. RunDurable reports the same two figures.
//   - RunRecovery: store.Open time for data directories that saw 10^4…10^6
//     config updates over 10,000 keys.
//   - RunDaemon: an in-process store.Server on a Unix socket: pipelined
//     state updates over one and over several connections, the round trip
//     of one synchronous update, and remote subscribers' convergence on a
//     flapping key.
//   - RunFleet: Devices in-process devices (registry and fleet bridge,
//     each its own NATS connection) on one NATS server with JetStream
//     (FleetConfig.URL; an in-process one only in builds with the
//     fleetbench tag, so that the sysregd appliances run does not link
//     nats-server): the time from a fleet-wide push until each device applied
//     it, the writes to sysreg_reported per device per second while every
//     device flaps a state key, and one device's flapping throughput with
//     its bridge connected beside the same device with no bridge,
//     alternating rounds. Each device is a store.Open of its own data
//     directory (fsync on) with Options.Fleet.
//
// # Flap layout
//
// Producer p is the owner "producer-p" and writes only its own scope
// state/flap/p<p>, toggling the keys k0…k<K-1> there in turn between true
// and false, starting at true, so every update changes the view (none is
// suppressed as a no-op, R6) and the n-th update of a run has a known
// value. The producers share nothing but the registry. The default target
// is an embedded store (store.Open on a temporary directory, fsync on):
// state updates never touch the disk (R26), only a sequence number
// reservation now and then (R7). FlapConfig.Core runs the same workload on
// a bare core.Registry instead.
//
// # Measurements
//
// Subscribers open their subscriptions spread evenly over one MinInterval,
// so that their rate-limit windows are out of phase, as independent
// consumers' would be: the worst convergence is then close to the real
// worst case (a change just after a delivery), not a lucky common phase.
// Convergence: after the producers stop, the final sequence number is read;
// a subscriber has converged when it receives a snapshot with a sequence
// number at least that high (a naive consumer: once it has applied every
// event). Its convergence time is from the return of the last producer's
// last update to that receipt, 0 if it came earlier. Peak heap is
// runtime.MemStats.HeapAlloc sampled every SampleEvery (garbage included);
// heap per subscriber is the live heap after a GC once every subscriber has
// converged, subscriptions (and baseline channels) still open, minus the
// live heap after a GC before they existed, divided by their number
// (goroutine stacks are not heap and not counted).
// CPU seconds are user + system time of the whole process (getrusage).
// fsyncs: one bbolt commit writes and syncs the data pages and then the
// meta page; both the journal and the baselines count one per commit.
//
// # Wear measurements
//
// write_bytes counts what the process dirtied in the page cache, in the
// page cache's units (folios): a 4 KiB write into a 16 KiB folio counts
// 16 KiB, although the filesystem (ext4) may write back only the 4 KiB
// block that changed. Page bytes count the pages bbolt wrote, independent
// of the filesystem; neither counts the filesystem's own journal. Both
// are process-wide: the sides of a comparison run one after the other,
// never at once, and nothing else in the process may write meanwhile.
//
// # Concurrency
//
// A Run function starts its goroutines, stores, servers and temporary
// directories and stops or removes all of them before it returns, errors
// included. Canceling ctx stops a scenario early with ctx's error.
package bench
