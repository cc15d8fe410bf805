// Package codec owns sysreg's CBOR schema: the encoding of values (R2), of
// journal records (core.Mutation, R24) and of snapshots (checkpoints, R28,
// and whole views on the wire, R34). The journal stores records and
// checkpoints as opaque bytes; this document is their payload format. The
// wire protocol embeds values and snapshots and carries its own version.
//
// Every encoding is CBOR (RFC 8949) in core deterministic form (§4.2.1:
// shortest heads, definite lengths, map keys in bytewise order of their
// encodings) except that every float is written in its 9-byte form. The
// bytes are exactly what github.com/fxamacker/cbor/v2 writes with
// CoreDetEncOptions() plus ShortestFloatNone, NaNConvertNone and
// InfConvertNone and uint64 registered as tag 21330; the tests check this
// against fxamacker byte for byte. The encoder and decoder themselves are
// hand-written for the small model they serve: they write uint64 under its
// tag without rebuilding the value, decode records in one pass without an
// intermediate any, reject everything outside the model, and are several
// times faster than fxamacker on a typical record (bench_test.go).
//
// # Values
//
// A value is one CBOR data item:
//
//	nil              f6
//	false, true      f4, f5
//	int64 ≥ 0        major type 0, shortest head          5 → 05, 500 → 19 01f4
//	int64 < 0        major type 1, argument -1-n          -1 → 20, -500 → 39 01f3
//	uint64           tag 21330 (d9 5352), then major 0    1 → d9 5352 01
//	float64          fb + 8 bytes big-endian IEEE 754     1.5 → fb 3ff8000000000000
//	string           major type 3 (UTF-8)                 "é" → 62 c3a9
//	[]byte           major type 2                         {1,2} → 42 0102
//	[]any            major type 4, definite length        [1,"a"] → 82 01 6161
//	map[string]any   major type 5, definite length, text keys sorted shorter
//	                 first, then bytewise                 {"b":1,"aa":2} → a2 6162 01 626161 02
//
// Floats keep their bits: NaN payloads, signalling NaNs, -0 and infinities
// round-trip exactly (core compares floats by bits). The length of a value's
// encoding is exactly the size that core.NormalizeValue and
// core.NormalizeValues account for a value or a scope's values, which is
// what R2's size limit counts.
//
// A scope's values (core.Values) are a map as above whose keys are
// non-empty; an empty or nil Values is a0.
//
// Decoding returns exactly the normal Go types: a plain integer becomes
// int64 (one outside int64 is an error: a uint64 must carry its tag), tag
// 21330 becomes uint64 (its content must be an unsigned integer), maps
// become map[string]any, arrays []any. It also reads what other CBOR
// encoders may write for the same values: non-shortest heads, map keys in
// any order, and 2- and 5-byte floats (widened exactly, NaN payloads
// included). It rejects, as ErrMalformed: any other tag (self-describe 55799,
// bignums, times…), undefined and other simple values, indefinite-length
// items of any kind, text that is not UTF-8, map keys that are not text or
// that repeat, nesting deeper than core.MaxDepth, and trailing bytes.
// Decoded values never alias the input and are already in normal form.
// Declared lengths are trusted only as far as the remaining input can hold
// them, and only small containers are allocated before their elements are
// read, so a short input that claims huge or deeply nested containers makes
// the decoder allocate little (a few hundred bytes per input byte at worst).
// There is no other limit on elements or pairs: anything accepted on the way
// in (at most core.MaxDepth deep, any number of elements) can be read back.
//
// # Records
//
// A record is one core.Mutation, a CBOR array (format version 3):
//
//	record = [version: uint = 3, seq: uint, time: int, ops: [op...], binds: [bind...]]
//	op     = [1, bucket, layer, type, subtype, owner, values]   merge (core.MutMerge)
//	       | [2, bucket, layer, type, subtype, [key...]]        delete (core.MutDelete)
//	       | [3, bucket, layer, owner]                          drop (core.MutDrop)
//	       | [4, bucket, layer, type, subtype, owner, values]   set (core.MutSet)
//	bucket = 1 (state) | 2 (config)
//	layer  = 0 (state) | 1 default | 2 fleet | 3 saved | 4 runtime | 5 override
//	bind   = [owner, uid: uint]                             owner is bound to uid (core.Bind)
//	       | [owner]                                        owner's binding ends (Unbind)
//
// time is the mutation's wall-clock time in Unix nanoseconds (0: unknown),
// from which recovery restores KeyMeta.Modified (R42). type, subtype,
// owner and keys are text strings; values is a scope's values as above.
// Kind, bucket and layer numbers are fixed by the format, not by core's Go
// constants. type and subtype form a valid scope (R1); keys are non-empty;
// state ops have layer 0 and config ops one of the five layers; merges and
// drops name a layer owners write (saved, runtime, override); owner is
// non-empty, except in the default and fleet layers, whose keys have none
// (it is then ""). The journal holds only ops of the fleet, saved and
// runtime layers (R41), but the format can carry any.
//
// binds are the owner-uid binding changes of the mutation (R35), in the
// same record as the ops that make them: a name that gets its first key in
// a journaled layer is bound to a uid, one that holds none any more is
// unbound. Names are non-empty text in strictly ascending byte order, each
// once; uid is below 2^32. Binding netd to uid 1000 and unbinding "gone"
// is 82 82 646e657464 1903e8 81 64676f6e65.
//
// The typical record, seq 42 at 2023-11-14T22:13:20Z, one merge of
// {"address":"192.168.1.100","up":true} into the runtime layer of
// config/network_interface/eth0 by owner "netd" (already bound, so no
// binds), is these 74 bytes:
//
//	85                                      array(5): record
//	   03                                   version 3
//	   18 2a                                seq 42
//	   1b 17979cfe362a0000                  time 1700000000000000000 ns
//	   81                                   array(1): ops
//	      87                                array(7): merge op
//	         01                             kind 1 = merge
//	         02                             bucket 2 = config
//	         04                             layer 4 = runtime
//	         71 6e6574776f726b5f696e74657266616365 "network_interface"
//	         64 65746830                    "eth0"
//	         64 6e657464                    owner "netd"
//	         a2                             map(2): values
//	            62 7570                     "up"
//	            f5                          true
//	            67 61646472657373           "address"
//	            6d 3139322e3136382e312e313030 "192.168.1.100"
//	   80                                   array(0): binds
//
// A record that starts or ends a confirmed apply (R44) is version 4, with
// two more fields; every other record is still written as version 3:
//
//	record = [version: uint = 4, seq, time, ops, binds, applies: [apply...], finish: [id: uint...]]
//	apply  = [id: uint, owner, layer: uint, deadline: int, undo: [undo...]]
//	undo   = [type, subtype, key, before, after]
//	before, after = [] (the key was absent / the apply deleted it) | [owner, value]
//
// applies holds at most the apply the record starts, whose id is its seq;
// finish lists, strictly ascending, the pending applies it ends (confirmed,
// or undone by its ops). layer is 3 (saved) or 4 (runtime); deadline is in
// Unix nanoseconds; undo entries are config keys, before and after not both
// absent. Starting apply 7 of owner "o" that changed t/s key "k" from 1 to
// 2, ending none (its ops and time left out): 87 04 07 00 80 80 81 85 07
// 616f 03 <deadline> 81 85 6174 6173 616b 82 616f 01 82 616f 02 80.
//
// Version 2 records, written before bindings were journaled, are
// [2, seq, time, ops] and decode with no binding changes; names they give
// keys are unbound after recovery until the store binds them (store.Open
// migrates owners.json, see the store package).
//
// Version 1 records, written before config layers, are
// [1, seq, ops] with ops as above without the layer field and no time.
// They decode with layer saved for every config op (and 0 for state) and
// a zero time: the migration of a version-1 data directory (R41). Version
// 1 did not record whether the session that wrote a key kept its config;
// putting all of it in saved is the choice that never loses config that
// was meant to be kept (a key wrongly in saved stays until its owner is
// evicted, one wrongly in runtime would vanish with the next session).
//
// # Snapshots
//
// A snapshot (a checkpoint of the journaled config layers, or a whole view
// on the wire) is (format version 2 on the wire, 3 for checkpoints):
//
//	snapshot = [version: uint = 2, seq: uint, scopes: [scope...]]
//	         | [version: uint = 3, seq: uint, scopes: [scope...], binds: [[owner, uid: uint]...]]
//	scope    = [bucket, type, subtype, layers: [[layer, [entry...]]...], meta: [meta...]]
//	entry    = [key, owner, value]
//	meta     = [key, create seq: uint, mod seq: uint, version: uint, modified: int, volatile: bool]
//
// Scopes appear in the order of their text form ("config/…" before
// "state/…"), each once and with at least one layer; layers in ascending
// order, each once and with at least one entry (a state scope has the one
// layer 0); entries in bytewise order of their keys, each once, with the
// owner "" in default and fleet and a non-empty one elsewhere. meta holds
// core.KeyMeta for keys that the scope's layers hold, in bytewise key order
// (modified in Unix nanoseconds, 0: unknown); volatile marks a value that
// depended on a layer that is never journaled (default, override), whose
// metadata recovery marks stale. The decoder insists on all of that, so equal snapshots
// have equal encodings. An empty snapshot of seq 0 is 83 02 00 80.
// DecodeSnapshot rebuilds the snapshot with core.Snapshot.Apply from one
// core.MutSet op per run of consecutive keys of a scope and layer with the
// same owner, then one core.MutMeta op per scope.
//
// EncodeSnapshot(s, core.Config), a checkpoint, writes the fleet, saved
// and runtime layers, the metadata of their keys and the bindings of every
// name that holds keys in them (version 3: binds as in records, without
// unbinds, names in ascending byte order, unbound names left out; recovery
// refuses a binding of a name that holds no journaled key); EncodeSnapshot(s, 0), the wire form,
// writes the state bucket, all five layers and all metadata (version 2:
// bindings are the daemon's access control, not part of the view, and
// wire protocol version 2 carries snapshot format 2). Version 2
// checkpoints decode with their names unbound, as version 2 records do.
// A checkpoint taken while applies are pending (R44) is version 4:
// [4, seq, scopes, binds, applies], applies as in records (ids strictly
// ascending, none above seq); without pending applies checkpoints are
// still written as version 3.
// Version 1 snapshots, [1, seq, [[bucket, type, subtype, [entry...]]...]]
// with no layers or metadata, decode with their config keys in the saved
// layer.
//
// # Versions
//
// Records and snapshots start with a format version (RecordVersion,
// SnapshotVersion; values are versioned by the envelope that carries them).
// A decoder reads the version before anything else and accepts every version
// from 1 up to its own; a newer version (or 0) is a *VersionError, matching
// ErrVersion, that names both versions — even if the rest of the envelope
// has another shape. Encoders write the current version. A change to
// any byte of these layouts needs a new version, with decoding of the old
// one kept. One exception, for confirmed applies: records and checkpoints
// that carry none are still written as version 3, byte for byte as before
// (smaller, and readable by the previous release); version 4 only when
// they do. The golden files in testdata/ (value_v1.cbor, record_v1.cbor,
// snapshot_v1.cbor, record_v2.cbor, snapshot_v2.cbor, record_v3.cbor,
// checkpoint_v3.cbor, record_v4.cbor, checkpoint_v4.cbor) must decode to the
// same values forever and are rewritten only by an explicit
// go test -run Golden -update (which never touches the v1 files: no
// encoder writes version 1 any more).
//
// # Errors
//
// Decoders fail with ErrMalformed (the message names what is wrong: the op,
// scope or key path, and the byte offset) or a *VersionError; they never
// panic on any input (fuzzed: FuzzDecodeValue, FuzzDecodeMutation,
// FuzzDecodeSnapshot). Encoders check what they write the way the decoders
// check what they read, so whatever encodes decodes: an invalid value is an
// error from core matching core.ErrInvalidValue, an invalid scope one
// matching core.ErrInvalidScope, any other bad op one matching
// ErrInvalidMutation.
//
// # Concurrency
//
// All functions are safe for concurrent use: they keep no state between
// calls. Encoders read their arguments (values, a snapshot) without
// modifying them; the caller must not modify a value while it is being
// encoded.
package codec
