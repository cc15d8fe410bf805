// Package core is sysreg's in-memory registry: the model that the store
// package makes durable and serves over a socket. Use core directly when
// you want the registry inside one process with no persistence (tests,
// simulations); use store.Open or store.Dial for a real appliance.
//
// It holds scopes, values, ownership and permissions, the immutable global
// view with its snapshots and Diff, sequence numbers, subscriptions with
// rate limiting and coalescing, and the ordering of the write path. It does
// no file or socket I/O: durability reaches it through the Log interface,
// which the store package implements on the journal. The rules (R1…) are
// explained in docs/SPEC.md.
//
// # Using it
//
// New makes a registry. Writes go through an owner session
// (Registry.Owner): Owner.Update deep-merges values into a scope (R4),
// Owner.Delete removes keys (R12), Owner.Commit applies several Put and Del
// ops atomically (R15), Registry.UpdateBatch applies many Updates (of any
// owners) in one go, each with its own outcome, and Owner.Close ends the session, deleting its
// state keys and its keys in the runtime and override config layers (R13). Scopes are {bucket, type, subtype} (StateScope,
// ConfigScope, ParseScope; R1). The view is
// {bucket: {type: {subtype: {key: value}}}} (R3); Registry.Snapshot returns
// it as an immutable Snapshot (Get, Values, Owner, Map, MarshalJSON), and
// Diff lists what changed between two snapshots (R22).
//
// Registry.Subscribe returns a Subscription whose channel delivers the
// whole view: the current one at once (R16), then at most once per
// MinInterval, changes in between coalescing into one delivery of the
// latest state (R17, R19); Hysteresis adds a fixed delay from the first
// change (R20), and Match limits which changes wake it (R21). A consumer
// that falls behind loses intermediate states, never the latest one, and
// never slows a producer. See Example.
//
// Stored values are deep copies in normal form (NormalizeValues) and are
// never modified; accessors return copies again, so no caller can reach
// shared state. A Snapshot is cheap: taking it is O(1) (after state
// updates applied in place, it first publishes them under the write lock,
// once for the whole run: see In-place state updates) and handing it to
// any number of subscribers copies nothing (R19).
//
// Decisions where the spec is silent:
//   - A subtype may contain '/' (R1), but in the text form (ParseScope,
//     ParsePattern) its '/'-separated segments may not be empty:
//     "config/wifi/wlan0/" or "config/wifi//x" is ErrInvalidScope, a typo
//     rather than a scope whose subtype is "wlan0/". Scope.Validate, which
//     the journal's decoder applies, still accepts such a subtype, so a
//     journal written before this rule keeps opening; write it through the
//     Go API (Scope{…}) to delete it.
//   - A pattern that can never match (a type with '/', NUL or invalid UTF-8
//     in a type or subtype, an unknown bucket) is refused by
//     Pattern.Validate and Subscribe with ErrInvalidScope.
//   - Errors name the op ("op 2: …") only in a transaction of several ops:
//     Update(scope, values) and Commit(Put(scope, values)) fail with the
//     same error.
//   - Values may nest up to MaxDepth (10,000) levels; every decoder accepts
//     that depth, so whatever is accepted can be read back.
//   - The size limit (R2, default 1 MiB) is the CBOR size of the values of an
//     update, or of all Put values and Del keys of a transaction, with floats
//     counted at 9 bytes (the journal writes them at full width).
//   - Commit collects reserved-key violations over all its ops; the error
//     names the first offending scope in text order with every reserved key
//     of that scope (R15). Invalid scopes or values fail before any op runs.
//   - An owner whose session ends while the Log has failed loses its state
//     and override keys but keeps its runtime keys: their deletion could
//     not be journaled.
//   - A delivery held back by MinInterval or Hysteresis goes out on the
//     first 1 ms tick (counted from New) not before it is due: never early,
//     at most 1 ms late.
//   - Anonymous owners are named "anonymous-N", skipping names in use or
//     holding keys.
//   - Snapshot.MarshalJSON writes []byte as base64 and NaN/±Inf as the
//     strings "NaN", "+Inf", "-Inf", since JSON has none of them.
//   - Owner-uid bindings (R35): a name is bound to the uid of the session
//     that gives it its first key (Owner: Options.UID; OwnerFor: the uid
//     it names), until it holds no key — after a mutation: one that takes
//     all of a name's keys and gives it new ones keeps its binding, in the
//     registry and in a replay of its record. OwnerFor and EvictFor refuse a uid
//     other than the bound one or root with ErrPermission, MayAct is the
//     same check for other callers; Owner and Evict act for the process
//     and are not checked. Bindings of names holding journaled keys go into
//     the record of the mutation that changes them (Mutation.Binds).
//   - ctx bounds only the call it is passed to: an owner session or a
//     subscription lives until it is closed. Once a mutation has its
//     sequence number, the call waits for its outcome regardless of ctx, so
//     that an error always means "not applied".
//
// # Config layers (R37–R42)
//
// The config bucket is five layers (Layer: Default < Fleet < Saved <
// Runtime < Override), each with its own scopes, keys and owners (R9–R11
// apply inside each layer). OwnerOptions.Layer picks where an owner's
// config writes and deletes go (R39): Saved (KeepConfig), Runtime (the
// default) or Override; Default is written by SetDefaults (the store's
// defaults directory, R40) and Fleet by SetFleet (a fleet bridge). What
// Get, Values, Map, MarshalJSON, Diff and subscriptions show is the
// effective view: per key, the highest layer holding it, deep-merged over
// the maps below (R38); deleting in a layer reveals the one below.
// Snapshot.Origin names the layer and owner of a key's value,
// LayerValues one layer's own values, Meta the KeyMeta (R42).
//
// Decisions where the spec is silent:
//   - KeyMeta changes (ModSeq, Version+1) when the effective value, its
//     layer or its owner changes — what Diff reports — and only by the net
//     effect of a mutation: a transaction that changes a key and puts it
//     back leaves its metadata alone; one that changes it twice counts once.
//     A write hidden by a higher layer changes no metadata and wakes no
//     subscriber, though it takes a sequence number (and, in a journaled
//     layer, a record).
//   - Modified has a resolution of one millisecond under load: the wall
//     clock is read at most once per millisecond (a reading costs as much
//     as a small state update on some machines). The record's time is that
//     reading too, so recovery restores Modified exactly.
//   - Default and fleet keys have the owner "". SetDefaults replaces the
//     default layer wholesale, SetFleet whole scopes of the fleet layer
//     (empty values: the scope leaves it); both validate everything first
//     and fail as a whole, and the same content again is no mutation (R6).
//   - Owner death (R13) drops the name's state, runtime and override keys,
//     whichever session of the name wrote them; saved stays. Evict (R14)
//     covers saved, runtime and override; with a failed Log it fails as a
//     whole when it touches a journaled layer.
//   - After a restart, metadata restored from a checkpoint for a value that
//     depended on default or override (never journaled) is marked stale:
//     the first SetDefaults (the store's startup load) gives those keys a
//     new ModSeq, so no condition on a ModSeq read before the restart can
//     pass on a value that changed with it. Metadata replayed from records
//     after the checkpoint describes the journaled layers, which is what
//     the view shows after a restart.
//   - Change.Layer in Diff is the layer of New (of Old for a key gone).
//
// # Confirmed applies (R44)
//
// Owner.Apply commits like Commit and keeps, in the state and in the
// mutation's record (Mutation.Applies), a PendingApply: for each top-level
// key it changed in the owner's layer, the key before (value and owner, or
// absent) and what the apply left there, and the wall-clock deadline.
// Registry.Confirm ends it (a record with Mutation.Finish and no ops);
// Registry.Rollback undoes it: each key goes back to what it was before,
// unless its value or owner in the layer is no longer what the apply left
// there — then it is left alone, logged and returned as a Change (Old: the
// value the undo would restore, New: the current one). RollbackDue and
// RollbackAll undo several in one mutation, newest first, each judged
// after the newer ones were undone; Rollback(id) undoes id alone, so a key
// that a newer pending apply changed counts as changed later.
//
// Pending applies are part of the state: snapshots carry them
// (Snapshot.Pending), checkpoints keep them, Snapshot.Apply replays their
// start and end, so recovery rebuilds exactly the set pending at the crash.
// The registry keeps one timer (time.AfterFunc, as grace periods do) for
// the earliest deadline and calls RollbackDue when it fires; New arms none
// for the applies of Options.Initial, which the caller undoes with
// RollbackAll before serving (store.Open does: a restart is never a
// confirmation). Confirm and the deadline race under the write lock:
// exactly one of them ends the apply, and the other sees ErrNotPending or
// nothing due. Apply refuses a deadline outside (0, 24 h]
// (ErrInvalidWithin), state ops (ErrInvalidScope) and an owner of the
// unjournaled override layer (ErrReadOnlyLayer); one that changes nothing
// returns id 0 and leaves nothing pending.
//
// # Sequence numbers and failures
//
// What a sequence number means to a user: a position in the registry's
// history. A Snapshot's Seq says which changes it reflects: a snapshot with
// a higher Seq reflects every change a lower one does, and more. Numbers
// are never reused, also across restarts and crashes, but they are not a
// count of changes: they skip numbers at a restart (see below), and state
// changes take numbers too although they are not journaled. Compare them,
// do not subtract them.
//
// Every effective mutation takes the next sequence number; a mutation that
// changes nothing takes none (R6, R7). With a Log, a config change becomes
// visible to Snapshot and subscribers only once it is durable, and changes
// become visible in sequence order (R24). With no Log, publication is
// immediate.
//
// If the Log fails, every queued mutation fails with ErrLog, and config
// writes fail with ErrLog from then on until the registry is rebuilt (in
// the store: reopened); state writes keep working (R29). Keeping state
// working has a price: sequence numbers can no longer be reserved durably,
// so if the process then hands out more than what is left of the last
// reservation block before it is restarted, numbers seen before the
// restart can be handed out again after it. A failed journal calls for a
// prompt reopen anyway.
//
// Since state mutations are not journaled, the Log durably reserves
// sequence numbers in blocks ahead of use, and a restart starts above the
// last reserved mark. The block adapts: 256 numbers while the registry is
// idle, growing fourfold per reservation while reservations come less than
// a second apart (a burst of state updates), up to ReserveBlock (2^20 by
// default), and small again after a quiet second. So an idle restart skips
// at most a few hundred numbers; one right after a burst of state updates
// may skip up to ReserveBlock. Numbers never go back.
//
// # Concurrency
//
// All exported methods are safe for concurrent use. Producers never wait
// for subscribers (R19). New starts one goroutine (the notifier), which
// also makes the rate-limited deliveries, on one timer. Registry.Close
// closes every subscription and stops the notifier, so nothing outlives it.
//
// # Internals
//
// Model. Each bucket is a persistent CHAMP hash trie (hamt.go) of scopes,
// keyed by type, NUL, subtype, whose values are persistent tries of keys;
// the nested form of the view (R3) is built only by Map and MarshalJSON.
// The config bucket is kept per layer, behind one pointer that state-only
// mutations share (with the pending applies), plus the materialised
// effective view with each key's metadata packed into 32 bytes beside a
// pointer to its owner's name, which all the owner's keys share: an entry
// is 56 bytes, a trie leaf (no hash kept) 72, a one-key node 112 as before
// metadata; a mutation recomputes the effective
// entries of exactly the keys whose layers it changed (settle in tree.go),
// so readers, Diff and the notifier (regionChanged) look at one map as
// before. An
// update copies only the nodes on its path (three small allocations for a
// small scope, a few more for a wide one), and a Snapshot is one pointer.
//
// Bulk paths and the trust boundary. Rebuilding a whole view — a
// checkpoint at recovery (R24, R28), a view from the wire — goes through
// RestoreSnapshot, and large changes of one scope (SetDefaults replacing
// many defaults, R40) settle in bulk (settleBulk): every trie is then built
// once from its complete key set (buildHmap: a counting sort per level,
// one allocation per node, the same canonical trie that inserting the keys
// one by one gives) and each effective value is merged once (mergeAll,
// one map per merged level whatever the number of layers), instead of a
// path copy and a merge per key. RestoreSnapshot trusts one thing: that
// the values it is given are in normal form, as the codec's decoder
// produces them (every CBOR item checked, UTF-8 and depth included, before
// any reaches core), so they are not normalised or copied again. It still
// checks everything a damaged but CRC-valid file could get wrong that the
// decoder does not: scopes, layers, owner names, keys set twice, metadata
// of keys no layer holds, version range, bindings (R35); an error leaves
// nothing behind. SetDefaultsOwned takes values handed over by their
// caller (the store, fresh from a defaults file it has just normalised
// while checking it): values already in normal form are checked in place
// without a copy, anything else is normalised as SetDefaults does; so no
// input can put a value that is not in normal form into the registry.
// Journal records replayed after the checkpoint still go through Apply,
// with its full checks.
//
// Write path. Every mutation is validated and applied to the latest working
// state under one lock, so that validation sees every earlier mutation,
// published or not, and two writers can never both claim a key. An
// effective mutation takes the next sequence number (R6, R7). A mutation
// with config ops is handed to Log.Append in sequence order and published —
// made visible to Snapshot and subscribers — only once the Log reports it
// durable and every earlier mutation is published (R24). State-only
// mutations need no record, only a sequence number below a durably
// reserved mark (Log.Reserve, taken a block ahead of use so that it almost
// never waits). If the Log fails, none of the queued mutations can be
// published in order any more, so they all fail and the working state falls
// back to the published one.
//
// In-place state updates (inplace.go). Owner.Update of state keys its
// owner already holds is applied under the lock to the working state and
// not published: the nodes on the path to the keys are copied once after
// each publication and then changed in place (transient nodes, edits), so
// a key flapped many times between two readers costs the registry no
// allocation. The working state is published when something reads it:
// Snapshot (every read of a Registry, and of a Store through it),
// Subscribe (its first delivery, R16) and the notifier publish pending
// in-place updates under the lock first, so a reader always sees every
// acknowledged update; one that finds none
// pending takes no lock. Every other write publishes them before it
// starts, so that the nodes it shares with the working state are immutable
// and publication stays in sequence order (R7, R24). Published nodes are
// never changed: only nodes copied since the last publication are. An
// update is applied in place only if it could be published at once
// (nothing queued for durability, its sequence number durably reserved)
// and changes at most 8 keys that exist, are its owner's and are not
// stale; inserts (owner index, R35 binding, MaxKeys), errors and config
// updates take the ordinary path, which gives the same result. The R6
// no-op test, the R7 number and the R42 metadata are those of the ordinary
// path.
//
// Batches (UpdateBatch, combine.go). A batch takes the lock once and applies
// its updates in order, each as its Update would (its own checks, error,
// R6 no-op, R7 number, R42 metadata). A run of consecutive state updates
// shares one working copy: the nodes the run creates are transient —
// changed in place, not copied, until the run is published (edits) — so a
// key flapped many times in a batch is one node, and the run is published
// once with one notifier wake. A config update in a batch is a mutation of
// its own with its own record, published once durable (R24); the run
// before it is published or queued first, so publication stays in
// sequence order. Concurrent Owner.Update calls are not combined into
// batches: on two cores a producer rarely finds another one waiting, and
// the queue cost the uncontended update more than it saved (measured, see
// combine.go); callers with several updates at hand (a pipelined daemon
// connection) use UpdateBatch.
//
// Notifications. A Subscription keeps the time of its last delivery and a
// one-slot channel; it owns no goroutine and no timer (about 260 bytes when
// idle). When idle it is "armed": a member of a cohort of its pattern's
// group, the cohort being the subscriptions that last saw the same state of
// the pattern's region. Producers publish with an atomic store (or, in
// place, set the flag that says an update is pending) and then read a
// per-bucket filter of the armed patterns (a bit per pattern kind
// and field hash); only when it may match the changed scope (any armed
// pattern, for a mutation of several scopes) do they make a non-blocking
// kick to the notifier goroutine. That is a few atomic loads whatever the
// number of subscriptions; producers never wait for subscribers (R19).
// The notifier checks each armed cohort once per pass by comparing node
// pointers inside the pattern (regionChanged), so subscriptions sharing a
// pattern cost one check, and schedules each member of a changed cohort at
// max(change + Hysteresis, last delivery + MinInterval) (R17, R20): at
// once, or in the bucket of the first 1 ms tick not before that time, a
// single timer waking the notifier for the earliest tick. A delivery takes
// the latest published state at that moment, replaces any snapshot the
// consumer has not taken (R19), and arms again. Arming publishes the
// filter, then reads the pending flag, then the state: if an in-place
// update is pending (the notifier may not wait for the write lock there)
// it kicks a pass, which publishes it, and if none is, whoever published
// the last one stored the state before clearing the flag, so the state
// read holds it (Subscribe publishes before its first delivery, R16);
// so no change is missed; hence every
// subscriber holds the last change at most Hysteresis + MinInterval (+ the
// tick) after it (R18).
//
// Lock order. Registry.mu is never held while taking the notifier's lock
// (hub.mu), which guards every subscription, nor is hub.mu held while
// taking Registry.mu: the notifier and Subscribe publish pending in-place
// updates before they take hub.mu. No lock is held across a blocking
// channel send or a Log call that could block (Log.Append must not block by
// contract).
package core
