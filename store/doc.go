// Package store is sysreg as a product: the registry with durable config,
// embedded in a program (Open) or reached over the daemon's Unix socket
// (Dial), behind one interface, Registry (R32). Program against Registry
// and a program can switch between embedded and daemon without other
// changes. The rules (R1…) are explained in docs/SPEC.md.
//
// # Embedded
//
// Open(dir, opts) creates the data directory (0700) if needed, opens its
// journal (dir/journal.db, 0600), recovers the acknowledged config with its
// owners and the sequence counter (package recovery), and only then returns
// (R27). The journal is checkpointed and truncated automatically (R28), so
// reopening takes time in proportion to the config, not its history. Close
// ends every session without deleting config and closes every
// subscription. See Example.
//
// # Durability promise
//
// When a call that changes config returns nil, its journal record has been
// committed by bbolt and fsynced: it survives kill -9 of the process and
// power loss (given a disk that honours fsync). No reader or subscriber can
// see a config change before that point, so nothing anyone saw can be taken
// back by a crash (R24). A call that fails with ErrJournal was not applied
// in this process; after a failed fsync its record may or may not be on
// disk — the honest outcome of an fsync error — so it may reappear after a
// reopen. State is never written to disk and is empty after a restart
// (R26). NoSync gives all of this up and exists for tests and benchmarks.
//
// # Daemon
//
// NewServer serves a Store on a listener with the protocol in
// internal/wire/PROTOCOL.md; cmd/sysregd's serve command runs it. Each
// connection may attach several owners; when it drops they die (R31).
// Subscriptions are rate limited in the daemon, and a client that does not
// read is disconnected after ServerOptions.WriteTimeout: a slow client
// costs one undelivered snapshot, never a queue. Per-connection limits
// bound owners, subscriptions, keys per owner, frame size and requests in
// flight.
//
// # Owner-uid bindings (R35)
//
// The daemon reads each peer's uid (SO_PEERCRED). An owner name is bound to
// the uid of the session that gives it its first key, in any bucket or
// layer, for as long as it holds any key; another uid, root (0) excepted,
// gets ErrPermission when it attaches as the name or evicts it, and
// Store.MayAct is the check for anything else done on a name's behalf
// (confirm, rollback). Root acting for a bound name leaves the binding as
// it is. A connection without peer credentials (not a Unix socket) acts as
// the daemon's own uid.
//
// Bindings live in core's state beside the keys, and are journaled in the
// same record as the mutation that makes them matter: the one that gives a
// name its first key in a journaled layer (fleet, saved, runtime) carries
// its binding, the one that leaves it none its unbinding; checkpoints hold
// the bindings of every name holding journaled keys (internal/codec,
// format version 3). So a binding survives kill -9 and power loss exactly
// as the config it protects, and a damaged binding stops Open with a
// *CorruptError like any other damage (R29). A name that holds only state
// or override keys is bound in memory only: those keys and the binding go
// with the process.
//
// Embedded (Open): Store's sessions act as the process. They may act for
// any name — the program holds the data directory and could edit it
// anyway — and names they give their first key are bound to the process's
// uid (os.Getuid), so that the daemon later serving the same directory
// protects them from other users.
//
// Migration. Versions before journaled bindings kept them in
// dir/owners.json (BindingsFile). The first Open of such a directory binds
// every name the journal left unbound in one record — to its uid in
// owners.json, or to the process's uid for a name the file does not list
// (config written embedded, or a binding that the old code lost) — and
// removes owners.json once that record is durable. An owners.json that
// cannot be read or parsed stops Open with a *CorruptError (fail closed);
// delete it by hand to bind every name to the opening process's uid.
//
// # Client
//
// Dial returns a *Client with the same methods and errors as *Store:
// errors.Is and errors.As see the same sentinels and *core.ReservedKeysError
// across the socket. Calls from many goroutines are pipelined on the one
// connection. A lost connection fails every call with ErrConnLost; owners
// do not re-attach by themselves.
//
// # Change feed
//
// Changes(ctx, from) streams every mutation above from that changed a
// journaled config layer (fleet, saved, runtime), in order and
// uncoalesced, each as a FeedItem with its per-layer changes (R47). A
// consumer that restarts resumes from the last Seq it saw; when that is
// older than the history kept it gets a *core.CompactedError and resyncs:
// Snapshot, then Changes from the snapshot's Seq. See ExampleStore_Changes.
//
// How it is built. Journal records hold ops (merge, delete, drop, set),
// not old values, so a feed needs each layer as it was before a record.
// The store keeps a feed base: the journaled layers at the oldest point
// of the history (the records the journal keeps after it, at least
// Options.FeedRetention of them). Each checkpoint moves the base forward —
// the checkpointer replays the records it is about to delete onto the old
// base — and stores it with the checkpoint (journal.CheckpointBase, format
// version 4), in the same transaction that deletes those records; Open
// reads it back (a journal of version 3 has none: the base is then the
// checkpoint itself, and the history before it is reported compacted
// until the next checkpoint). A feed catches up by replaying the journal
// from the base in memory (core.Snapshot.Apply) and reporting, for each
// record above from, core.FeedChanges between the states before and after
// it. A checkpoint writes a second config-sized snapshot (flash wear).
//
// Live, a feed registers a tap in the registry (core.Tap) before it reads
// the journal, so that nothing published after the read began is missed;
// live items at or below the last sequence number caught up are dropped,
// so the hand-over has no gap and no duplicate. The tap buffers at most
// 1,024 items for a feed whose reader is busy; beyond that it drops them
// and the feed catches up from the journal again (the writers never wait
// for a feed, and no item is lost silently: a reader that falls behind the
// retained history ends with a *core.CompactedError). Each feed runs one
// goroutine, which Close (or the ctx given to Changes, or Store.Close)
// stops.
//
// Over the socket a slow feed costs only itself, too. The daemon writes
// a feed's items into the connection as fast as the client reads them,
// and a Client's one reader goroutine never waits for a feed: it queues
// up to 1,024 items per feed that the consumer has not taken (the
// tap's depth). When a feed's queue is full the feed drops what comes,
// ends its feed on the daemon (unchanges), and once the consumer has
// emptied the queue it starts a new one from the Seq of the last
// item it queued (changes), which the daemon catches up from its journal;
// items of the ended feed still on their way, and items at or below that
// Seq, are dropped. No protocol change was needed: the restart is the
// documented resume, done by the client under the same Feed. So the
// consumer sees each change once, in order, every call, subscription and
// other feed of the Client goes on, and the daemon's write timeout
// (ServerOptions.WriteTimeout, default 30 s) only ever disconnects a
// client whose own reader stops reading the socket. A feed that falls
// behind the retained history while it restarts ends with a
// *core.CompactedError, as an embedded one does. Each Client feed runs
// one goroutine, which its Close, the ctx given to Changes or
// Client.Close stops; after the connection is lost it ends once the
// consumer has taken the items it holds.
//
// # Fleet
//
// With Options.Fleet, Open starts the fleet bridge (internal/fleet, R53)
// on the store: the store is its Target — an ordinary subscription for the
// reported state, Registry.SetFleet for the fleet layer — and journals the
// desired revision in the same SetFleet as the layer, as the fleet-layer
// scope config/sysreg/fleet {"revision": N}. The bridge never makes Open or
// any call wait for NATS; Stats.Fleet carries its status; Close stops it
// before the registry.
//
// Decisions where the spec is silent:
//   - Closing a Client is its connection dropping: its owners die.
//   - A clean Store.Close or daemon shutdown ends sessions without owner
//     deaths; clients re-attach by name after a restart.
//   - ctx bounds waiting for a reply on the client; a request already sent
//     may still take effect after ctx ends.
//
// # Concurrency
//
// All methods of Store, Client and Server are safe for concurrent use.
// Open starts the registry's notifier and the checkpointer (and, with
// Options.Fleet, the fleet bridge's goroutines), Close stops them. The
// checkpointer also looks for lagging subscriptions every LagScan (R51). A Server runs, per connection, a reader, a reply writer and one
// pusher per subscription; Shutdown stops them. A Client runs one reader,
// which Close stops.
//
// # Internals
//
// Write path. The store hands core a Log that encodes each config mutation
// as a CBOR record (internal/codec) and appends it to the journal with
// group commit. A background goroutine (the checkpointer) writes a
// checkpoint of the published config whenever the journal has accumulated
// enough records (R28).
//
// Daemon. Each snapshot is encoded once for every subscriber of the
// server, not once per subscriber. A connection's reader decodes each
// request's body with one generic helper (withBody: a body that does not
// decode is a counted bad frame and a bad_request reply) and hands it to a
// method per message type; mutate and apply bodies, every write a client
// makes, are decoded by hand without reflection (wire.DecodeMutateTo) into
// storage the connection reuses. The write path of a pipelining client is
// batched at every step (issue #14): the client's callers woken by one
// read of replies queue their requests behind one write; the reader
// collects the mutates that are a single put into a state scope and
// applies the ones read in one go with one core.Registry.UpdateBatch
// (each as Owner.Update would, in request order, before anything else the
// connection asked is handled; values decoded into maps reused by the
// next batch, since UpdateBatch copies them out); their replies go to the
// writer as one batch (replyQueue, bounded by MaxInFlight), which flushes
// once no further request was at hand (wire.Buffered). Config writes,
// transactions, conditions and deletes stay on CommitAsync, pipelined so
// that they share fsyncs (R25).
//
// Lock order. Store has no mutex of its own (atomics and a sync.Once); the
// registry's locks are core's (see core's Internals). In the Server:
//   - conn.smu (a connection's subscriptions) is taken before core's locks:
//     subscribe and the connection's teardown hold it while they create or
//     close a core subscription. Nothing of store is taken under it.
//   - Server.mu (listeners, connections, shutting), Server.snapMu (the
//     encoded snapshot cache) and conn.wmu (the buffered writer) are
//     leaves: nothing else is taken while one is held, and none is held
//     while taking another. conn.wmu is held across one frame write, which
//     the write deadline (ServerOptions.WriteTimeout) bounds; Server.mu
//     across closing listeners and connections, which does not block.
//     Bindings (R35) need no lock of store's: core checks and changes them
//     under its write lock, with the mutation they belong to.
//
// In the Client, Client.wmu (the write queue) is released before the
// socket write and before Client.mu is taken; Client.mu is released before
// a subscription's clientSub.mu or a reply channel is touched; the one-slot
// channel send under clientSub.mu never blocks, since the slot is emptied
// first under the same lock. No lock is held across a blocking channel
// send or a call into core that may wait for the journal.
package store
