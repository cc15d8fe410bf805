// Package recovery rebuilds the registry's durable state at startup: it
// reads the latest checkpoint and the journal records after it, verifies and
// decodes them, and replays them onto the checkpoint's config tree, giving
// the store the config view, the sequence floor and a report.
//
// Programs using sysreg do not call it: store.Open runs it before it
// accepts a call (R27). Call Run with a Source (a *journal.Journal
// satisfies it) to rebuild the config of a data directory yourself; the
// Report says what was restored and how long it took.
//
// Policy (R27, R29):
//   - The checkpoint and every record must decode; records must carry
//     strictly increasing sequence numbers above the checkpoint's; any
//     failure is a *journal.CorruptError naming the file and what is wrong
//     (the store turns it into a *store.CorruptError). Nothing is skipped
//     and nothing starts empty on a damaged journal: a config value that was
//     acknowledged may never silently disappear.
//   - The journal itself checks CRCs and the record chain (no gap) before
//     handing records over.
//   - Sequence numbers resume above both the last record and the journal's
//     high-water mark, so numbers handed to state mutations before a crash
//     are never reused (R7).
//   - State is never journaled, so it starts empty (R26).
//
// Records are replayed with one core.Replay, which changes in place the
// owner index nodes that earlier records created instead of copying a
// path per record (issue #14's startup: half the allocation, and less
// garbage left in a daemon that just started); the result is what
// successive Snapshot.Apply calls give, its tries copied at the end into a
// few large allocations, packed instead of spread over the holes that the
// replay's garbage leaves in the heap (issue #14's idle footprint).
//
// # Concurrency
//
// Run is called once, before the store serves; it starts no goroutine and
// keeps no state.
package recovery
