// Package journal is a durable, ordered log of opaque records in one bbolt
// file: append with group commit, replay, checkpoint storage with truncation,
// a format version and corruption reporting. It knows nothing of scopes,
// owners or CBOR: a record is a key (a uint64, strictly increasing) and
// opaque bytes. It is the only package of sysreg that imports bbolt, and no
// bbolt type appears in its API.
//
// Programs using sysreg do not call it: store appends every config mutation
// through it and recovery replays it at startup. Use it directly to build a
// durable log of your own records: Open a file, Append records (each done
// callback says when its record is durable), Checkpoint to store a snapshot
// and drop the records it covers, and ReadCheckpoint and Replay at the next
// start. Inspect reads a file without opening it for writing.
//
// History. With Options.Retain, a checkpoint keeps the newest Retain
// records (those above it counted) in the file although it covers them,
// and Read returns the records after any key from Oldest on, at any time,
// beside appends and checkpoints: the store's change feed (R47) is built
// on it. The history held is at least Retain records and at most Retain +
// CheckpointRecords; a Read from below Oldest is a *CompactedError.
// CheckpointBase lets the caller choose the history instead: it deletes
// exactly the covered records up to a base it names and stores the
// caller's base data beside the checkpoint (ReadBase) — for the store,
// the journaled config at the base, from which a change feed replays the
// retained records to learn each record's old values.
//
// # Durability
//
// A record (or mark, or checkpoint) is durable when its done callback gets
// nil (Checkpoint: returns nil): the bbolt transaction holding it has been
// committed, which fsyncs (fdatasync) the data pages and then the meta page.
// A crash or power loss after that cannot take it away; a crash before it
// leaves the file as it was before the whole batch (bbolt commits are
// atomic). Options.NoSync gives this up, for tests and benchmarks only.
//
// A failed commit (or a failure injected by tests, internal/faults) fails every
// operation of the batch and puts the journal in a failed state: every
// later Append, Reserve and Checkpoint fails with an error matching ErrFailed
// (and the cause) until the file is reopened. After a failed fsync the
// outcome is unknown: the batch was reported failed but may be on disk after
// a restart (with bbolt it usually is). Callers must treat a failed batch as
// "maybe written", never as "certainly not written".
//
// Open checks the whole file before it accepts a call: bbolt's page
// structure (with its own reader, without mmap: see Internals), the meta bucket,
// the checkpoint's CRC, and every record's CRC and the chain. A damaged or
// foreign file is a *CorruptError naming the file and what is wrong; a newer
// format version is a *VersionError naming both versions. Open never panics
// on a damaged file and never starts empty on a non-empty file it cannot
// read. A missing file, or an empty (zero-length) one, is initialised, and so
// is a valid bbolt file that holds no bucket at all (what a crash between
// bbolt's initialisation of a new file and ours leaves behind).
//
// Known limits: bbolt transactions are atomic, so there is no torn tail to
// repair; conversely, losing the newest records (a disk that lies about
// fsync) cannot be detected from the chain, which only proves that nothing
// is missing between the checkpoint and the last record. bbolt writes its
// pages in native byte order, so a file moves only between machines of the
// same endianness.
//
// # On-disk format
//
// The file is a bbolt database (bbolt's own format, version 2, native byte
// order, page size of the machine that created it). Opened with
// NoFreelistSync and the hash-map freelist: the freelist is not written, and
// bbolt rebuilds it when it opens the file for writing (a walk of every
// page, measured within the Open time of bench.RunRecovery, whose scan of
// every record reads the same pages). It holds exactly four top-level
// buckets (version 1: three, no "tail"). All integers of the journal itself are big-endian
// (so that record keys sort in key order under bbolt's byte order).
//
// Bucket "meta":
//
//	key "format"   value "sysreg-journal" (14 bytes ASCII): tells a sysreg journal from any other bbolt file
//	key "version"  value uint64 BE, 8 bytes: the format version, 4 (FormatVersion)
//	key "mark"     value uint64 BE, 8 bytes: the high-water mark of Reserve (0 at first)
//
// Buckets "records" and "tail" hold one entry each per record after the
// checkpoint; every key in "tail" is above every key in "records" (the
// log in key order is "records", then "tail"). Entries in either:
//
//	key    8 bytes: the record key, uint64 BE (never 0)
//	value  bytes 0..7   uint64 BE: the key of the record appended just before this one
//	                    (which a checkpoint may since have deleted), or 0 for the first
//	                    record ever appended to the file
//	       bytes 8..11  uint32 BE: CRC-32C (Castagnoli) of the data
//	       bytes 12..   the data (may be empty)
//
// Bucket "checkpoint", empty when no checkpoint was ever written, else:
//
//	key "key"   uint64 BE, 8 bytes: the checkpoint covers every record with a key <= this
//	key "last"  uint64 BE, 8 bytes: the key of the last record appended at or before the
//	            checkpoint that it covers (the highest key ever appended that is <= "key"),
//	            or 0 if none; always <= "key"
//	key "crc"   uint32 BE, 4 bytes: CRC-32C (Castagnoli) of the data
//	key "data"  the checkpoint's bytes (may be empty)
//	key "base"  uint64 BE, 8 bytes (version 3; optional): the key of the last record
//	            deleted, the prev of the first record in the file, 0 if none was;
//	            <= "last". Absent: equal to "last" (every covered record deleted)
//	key "basekey"   uint64 BE, 8 bytes (version 4; optional, with the next two):
//	                the key the base data describes the log up to (CheckpointBase's
//	                base); "base" <= "basekey" <= "key", and no record lies between
//	                "base" and "basekey"
//	key "basecrc"   uint32 BE, 4 bytes: CRC-32C (Castagnoli) of "basedata"
//	key "basedata"  the caller's base data (may be empty). Written by
//	                CheckpointBase, removed by Checkpoint
//
// The tail keeps a commit's page writes small (flash wear): bbolt stores a
// bucket whose leaf fits in a quarter page inline, in the leaf of the
// top-level buckets, so a commit that only adds to the tail rewrites that
// leaf and a meta page, not the records bucket's root-to-leaf path. An
// append goes to the tail while the tail's leaf (16 bytes of page header
// plus, per record, 16 of element header, 8 of key, 12 of record header
// and the data) stays within a quarter page; when it would not, the
// committer first moves every tail record to "records", in the same
// transaction, and then puts the new record in the (now empty) tail, or
// in "records" if it is larger than a quarter page by itself. The records
// bucket is written with FillPercent 1.0 (its keys only grow). Which
// bucket holds a record is not part of the contract a reader relies on:
// readers walk both in key order.
//
// The chain: with no checkpoint, the first record in key order has prev 0;
// with one, it has prev == "base"; each later record has prev == the key of
// the record before it. A checkpoint deletes the records it covers, but for
// the newest ones that Options.Retain keeps, in the same transaction that
// stores it: the records at or below "key" are the retained history, and
// the last of them is "last" (or, with none, "base" == "last"); recovery
// replays only the records above "key". A break in the chain, a CRC
// mismatch, a value shorter than 12 bytes, a key that is not 8 bytes, a
// missing bucket or field, or retained records that do not end at "last"
// is a *CorruptError ("record 42: crc mismatch ..."). A "version" above
// FormatVersion is a *VersionError. A new format version will be needed
// for any change to the above; readers refuse versions they do not know.
// Version 1 is version 2 without the "tail" bucket; version 2 is version 3
// without "base"; version 3 is version 4 without the base data (a version
// 3 build would keep stale base data across its own checkpoints, hence the
// new number). Open reads all of them and upgrades them in one transaction
// (creates the empty tail, sets "version" to 4) before it accepts a call;
// a build that knows only an older version then refuses the file with a
// *VersionError. testdata/golden-v1.db, golden-v2.db, golden-v3.db
// (written with Retain 2) and golden-v4.db (CheckpointBase) are files
// that every build must keep reading (TestGoldenV1 … TestGoldenV4).
//
// Page cache. On Linux the committer evicts the file's pages from the page
// cache before its first commit and after each checkpoint (dropCache in
// cache_linux.go), so that each page comes back in a folio of its own: the
// kernel accounts a write to a cached page at the size of its folio, and
// bbolt's initial 16 KiB write put both meta pages in one folio, which
// made every commit count 16 KiB for its 4 KiB meta page.
//
// # Concurrency
//
// All methods are safe for concurrent use. Open starts one goroutine, the
// committer; Close stops it and waits for it. Append and Reserve never
// block on I/O; Checkpoint blocks until its batch is durable. Concurrent
// appends share one commit and one fsync pair (group commit). ReadCheckpoint
// and Replay are meant for startup, before the first Append; Read may run
// at any time, from any number of goroutines. Stats, Mark and Oldest read
// counters kept in memory; the fsync, batch and checkpoint histograms in
// Stats are recorded with atomic adds by the committer (and Checkpoint's
// caller), never under a lock, so a snapshot may be one observation apart
// between Count and its bucket.
//
// The journal logs lifecycle events (opened, created, closed) at Info,
// checkpoints at Debug and batches at Trace. It returns errors, it does not
// log them.
//
// # Internals
//
// Checked reads. bbolt cannot be trusted with a damaged file: opening a file for writing
// with NoFreelistSync walks all pages in a goroutine of bbolt's own that
// panics on the first inconsistency, which no recover can catch, and a read
// of a truncated file through the mmap faults (SIGBUS). So Open first checks
// the bbolt structure with plain reads (every page reachable from the meta
// page: bounds, page types, single reference, key order, as bbolt's own
// check does), and all reads through bbolt run under recover with
// debug.SetPanicOnFault, turning any panic into a *CorruptError. Inspect
// reads with the same checked reader only.
//
// Group commit. Append, Reserve and Checkpoint queue an operation (under a
// mutex that guards only the queue and the key bounds, never held across
// I/O or a callback) and wake the committer. The committer takes everything
// queued when its previous commit ended and writes it as one batch: one
// bbolt write transaction, one commit, one fsync pair, however many records
// it holds (no timer, no bbolt DB.Batch). It then calls each done callback,
// in queue order, holding no lock of the journal, and yields the processor
// once (runtime.Gosched) so that the writers it just woke can queue their
// next records before it takes the next batch; without that, batches settle
// into two alternating halves. Woken from idle, it yields once too before
// taking the batch: with one processor (GOMAXPROCS=1) the writer that woke
// it hands it the processor ahead of the other runnable writers, and
// without the yield concurrent writers shared an fsync only when the
// runtime happened to take the processor back during one.
//
// Reads. The journal never holds a read transaction while it writes:
// ReadCheckpoint, Replay and Read read in short read transactions (Replay
// and Read in chunks) and call nothing of the caller's inside them, since a read
// transaction held across a write can deadlock bbolt when it grows its
// mmap.
package journal
