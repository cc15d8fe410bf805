package journal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"slices"
)

// This file is a small, defensive reader of the bbolt file format (bbolt's
// format version 2, the only one bbolt has). It exists because bbolt cannot be
// trusted with a damaged file: opening a file for writing with NoFreelistSync
// walks every page in a goroutine of bbolt's own that panics on the first
// inconsistency (DB.freepages), which no recover can catch, and reading a
// truncated file through the mmap faults. Open therefore checks the page
// structure here first, with plain reads (no mmap), and Inspect reads a
// damaged file with it. It never panics: every offset is bounds-checked.
//
// bbolt writes its structures in native byte order; so does this reader.

const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	pageHeaderSize   = 16 // id u64, flags u16, count u16, overflow u32
	elemSize         = 16 // branch: pos u32, ksize u32, pgid u64; leaf: flags u32, pos u32, ksize u32, vsize u32
	metaSize         = 64 // magic, version, pageSize, flags u32; root u64, seq u64; freelist, pgid, txid, checksum u64
	metaChecksumOff  = 56
	bucketHeaderSize = 16 // root pgid u64, sequence u64
	branchPageFlag   = 0x01
	leafPageFlag     = 0x02
	freelistPageFlag = 0x10
	bucketLeafFlag   = 0x01
	noFreelist       = ^uint64(0)
	maxTreeDepth     = 64
)

var ne = binary.NativeEndian

// boltMeta is the meta page bbolt would use.
type boltMeta struct {
	pageSize uint64
	root     uint64 // root bucket's page
	freelist uint64 // noFreelist when not synced
	pgid     uint64 // high-water mark: pages [0, pgid) are in use or free
	txid     uint64
}

// boltFile reads one bbolt file.
type boltFile struct {
	r    io.ReaderAt
	size int64
	meta boltMeta
	seen map[uint64]bool // pages met so far (each must be reachable once)
	errs []error         // problems met, in order
}

// boltEntry is one key/value of a bucket; bucket is set for a sub-bucket.
type boltEntry struct {
	key, value []byte
	bucket     bool
}

// readMetaAt reads and validates the meta page at off.
func readMetaAt(r io.ReaderAt, off int64) (boltMeta, error) {
	var buf [pageHeaderSize + metaSize]byte
	if _, err := r.ReadAt(buf[:], off); err != nil {
		return boltMeta{}, reasonf("read meta page at %d: %v", off, err)
	}
	m := buf[pageHeaderSize:]
	if ne.Uint32(m[0:4]) != boltMagic {
		return boltMeta{}, reasonf("no bbolt magic number")
	}
	if v := ne.Uint32(m[4:8]); v != boltVersion {
		return boltMeta{}, reasonf("bbolt format version %d, want %d", v, boltVersion)
	}
	h := fnv.New64a()
	_, _ = h.Write(m[:metaChecksumOff]) // a hash.Hash never fails to write
	if h.Sum64() != ne.Uint64(m[metaChecksumOff:]) {
		return boltMeta{}, reasonf("meta checksum mismatch")
	}
	return boltMeta{
		pageSize: uint64(ne.Uint32(m[8:12])),
		root:     ne.Uint64(m[16:24]),
		freelist: ne.Uint64(m[32:40]),
		pgid:     ne.Uint64(m[40:48]),
		txid:     ne.Uint64(m[48:56]),
	}, nil
}

// openBoltFile reads the meta pages as bbolt does (DB.getPageSize, DB.meta):
// the page size from meta page 0, else from meta page 1 at a likely page
// size; then the valid meta with the highest transaction id.
func openBoltFile(r io.ReaderAt, size int64) (*boltFile, error) {
	if size < 2*(pageHeaderSize+metaSize) {
		return nil, reasonf("not a bbolt file: %d bytes is too short", size)
	}
	m0, err0 := readMetaAt(r, 0)
	pageSize := m0.pageSize
	if err0 != nil {
		for _, ps := range []int64{int64(os.Getpagesize()), 4096, 8192, 16384, 32768, 65536} {
			if ps < size {
				if m1, err := readMetaAt(r, ps); err == nil && int64(m1.pageSize) == ps {
					pageSize = m1.pageSize
					break
				}
			}
		}
		if pageSize == 0 {
			return nil, reasonf("not a bbolt file (meta page 0: %v; no valid meta page 1)", err0)
		}
	}
	if pageSize < pageHeaderSize+metaSize || pageSize > 1<<24 {
		return nil, reasonf("bbolt page size %d out of range", pageSize)
	}
	m1, err1 := readMetaAt(r, int64(pageSize))
	metas := []struct {
		m   boltMeta
		err error
	}{{m0, err0}, {m1, err1}}
	if err0 == nil && err1 == nil && m1.txid > m0.txid || err0 != nil {
		metas[0], metas[1] = metas[1], metas[0]
	}
	var meta boltMeta
	switch {
	case metas[0].err == nil:
		meta = metas[0].m
	case metas[1].err == nil:
		meta = metas[1].m
	default:
		return nil, reasonf("no valid bbolt meta page (%v; %v)", err0, err1)
	}
	if meta.pageSize != pageSize {
		return nil, reasonf("bbolt meta pages disagree on the page size (%d, %d)", pageSize, meta.pageSize)
	}
	if meta.pgid < 3 || meta.pgid > uint64(size)/pageSize {
		if meta.pgid >= 3 && meta.pgid <= (1<<62)/pageSize {
			return nil, reasonf("truncated: bbolt needs %d bytes (%d pages of %d), file has %d",
				meta.pgid*pageSize, meta.pgid, pageSize, size)
		}
		return nil, reasonf("bbolt high-water mark %d out of range", meta.pgid)
	}
	if meta.root < 2 || meta.root >= meta.pgid {
		return nil, reasonf("bbolt root page %d out of range [2, %d)", meta.root, meta.pgid)
	}
	return &boltFile{r: r, size: size, meta: meta, seen: make(map[uint64]bool)}, nil
}

func (bf *boltFile) problem(format string, args ...any) {
	bf.errs = append(bf.errs, reasonf(format, args...))
}

// page reads page id and its overflow pages, checking that it lies inside
// the file, was not met before and has one of the given flags.
func (bf *boltFile) page(id uint64, flags ...uint16) ([]byte, bool) {
	ps := bf.meta.pageSize
	if id < 2 || id >= bf.meta.pgid {
		bf.problem("page %d: out of range [2, %d)", id, bf.meta.pgid)
		return nil, false
	}
	var hdr [pageHeaderSize]byte
	if _, err := bf.r.ReadAt(hdr[:], int64(id*ps)); err != nil {
		bf.problem("page %d: %v", id, err)
		return nil, false
	}
	if got := ne.Uint64(hdr[0:8]); got != id {
		bf.problem("page %d: header names page %d", id, got)
		return nil, false
	}
	pflags := ne.Uint16(hdr[8:10])
	okFlags := false
	for _, f := range flags {
		okFlags = okFlags || pflags == f
	}
	if !okFlags {
		bf.problem("page %d: unexpected page type %#x", id, pflags)
		return nil, false
	}
	overflow := uint64(ne.Uint32(hdr[12:16]))
	if overflow >= bf.meta.pgid-id {
		bf.problem("page %d: %d overflow pages run past the high-water mark %d", id, overflow, bf.meta.pgid)
		return nil, false
	}
	for i := id; i <= id+overflow; i++ {
		if bf.seen[i] {
			bf.problem("page %d: referenced twice", i)
			return nil, false
		}
	}
	for i := id; i <= id+overflow; i++ {
		bf.seen[i] = true
	}
	buf := make([]byte, (overflow+1)*ps)
	if _, err := bf.r.ReadAt(buf, int64(id*ps)); err != nil {
		bf.problem("page %d: %v", id, err)
		return nil, false
	}
	return buf, true
}

// checkFreelist checks the synced freelist page, if there is one.
func (bf *boltFile) checkFreelist() {
	if bf.meta.freelist == noFreelist {
		return
	}
	buf, ok := bf.page(bf.meta.freelist, freelistPageFlag)
	if !ok {
		return
	}
	n, start := uint64(ne.Uint16(buf[10:12])), uint64(pageHeaderSize)
	if n == 0xFFFF {
		if len(buf) < pageHeaderSize+8 {
			bf.problem("freelist page %d: too short", bf.meta.freelist)
			return
		}
		n, start = ne.Uint64(buf[pageHeaderSize:]), pageHeaderSize+8
	}
	if n > (uint64(len(buf))-start)/8 {
		bf.problem("freelist page %d: %d entries do not fit", bf.meta.freelist, n)
	}
}

// elements decodes the elements of a branch or leaf page held in buf.
// For a branch page, entries carry the child page id in value (8 bytes).
func (bf *boltFile) elements(where string, buf []byte, leaf bool) ([]boltEntry, bool) {
	count := uint64(ne.Uint16(buf[10:12]))
	if count*elemSize > uint64(len(buf)-pageHeaderSize) {
		bf.problem("%s: %d elements do not fit in %d bytes", where, count, len(buf))
		return nil, false
	}
	entries := make([]boltEntry, 0, count)
	for i := range count {
		off := pageHeaderSize + i*elemSize
		e := buf[off : off+elemSize]
		var flags, pos, ksize, vsize uint64
		if leaf {
			flags, pos = uint64(ne.Uint32(e[0:4])), uint64(ne.Uint32(e[4:8]))
			ksize, vsize = uint64(ne.Uint32(e[8:12])), uint64(ne.Uint32(e[12:16]))
		} else {
			pos, ksize = uint64(ne.Uint32(e[0:4])), uint64(ne.Uint32(e[4:8]))
		}
		start := off + pos
		if start+ksize+vsize > uint64(len(buf)) {
			bf.problem("%s: element %d runs past the page", where, i)
			return nil, false
		}
		ent := boltEntry{key: buf[start : start+ksize]}
		if leaf {
			ent.value = buf[start+ksize : start+ksize+vsize]
			if flags&^bucketLeafFlag != 0 {
				bf.problem("%s: element %d has unknown flags %#x", where, i, flags)
				return nil, false
			}
			ent.bucket = flags&bucketLeafFlag != 0
		} else {
			ent.value = e[8:16]
		}
		entries = append(entries, ent)
	}
	return entries, true
}

// walkTree visits, in key order, the leaf entries of the b+tree rooted at
// page id whose keys must lie in [lo, hi) (nil: unbounded), as bbolt's own
// consistency check demands. A damaged page is reported and skipped.
func (bf *boltFile) walkTree(id uint64, lo, hi []byte, depth int, fn func(boltEntry)) {
	if depth > maxTreeDepth {
		bf.problem("page %d: tree deeper than %d", id, maxTreeDepth)
		return
	}
	buf, ok := bf.page(id, branchPageFlag, leafPageFlag)
	if !ok {
		return
	}
	leaf := ne.Uint16(buf[8:10]) == leafPageFlag
	where := fmt.Sprintf("page %d", id)
	entries, ok := bf.elements(where, buf, leaf)
	if !ok || !bf.keyOrder(where, entries, lo, hi) {
		return
	}
	for i, e := range entries {
		if leaf {
			fn(e)
			continue
		}
		next := hi
		if i+1 < len(entries) {
			next = entries[i+1].key
		}
		bf.walkTree(ne.Uint64(e.value), e.key, next, depth+1, fn)
	}
}

// keyOrder checks that keys ascend strictly and lie in [lo, hi).
func (bf *boltFile) keyOrder(where string, entries []boltEntry, lo, hi []byte) bool {
	for i, e := range entries {
		switch {
		case i == 0 && lo != nil && bytes.Compare(e.key, lo) < 0:
			bf.problem("%s: key %x below the parent's key %x", where, e.key, lo)
			return false
		case i > 0 && bytes.Compare(entries[i-1].key, e.key) >= 0:
			bf.problem("%s: key %x not above the key before it", where, e.key)
			return false
		case hi != nil && bytes.Compare(e.key, hi) >= 0:
			bf.problem("%s: key %x not below the parent's next key %x", where, e.key, hi)
			return false
		}
	}
	return true
}

// walkBucket visits the entries of the bucket whose value (bucket header and,
// for an inline bucket, its page) is v.
func (bf *boltFile) walkBucket(name string, v []byte, fn func(boltEntry)) {
	if len(v) < bucketHeaderSize {
		bf.problem("bucket %q: header of %d bytes, want %d", name, len(v), bucketHeaderSize)
		return
	}
	if root := ne.Uint64(v[0:8]); root != 0 {
		bf.walkTree(root, nil, nil, 0, fn)
		return
	}
	inline := v[bucketHeaderSize:]
	where := fmt.Sprintf("inline bucket %q", name)
	if len(inline) < pageHeaderSize || ne.Uint16(inline[8:10]) != leafPageFlag {
		bf.problem("%s: not a leaf page", where)
		return
	}
	entries, ok := bf.elements(where, inline, true)
	if !ok || !bf.keyOrder(where, entries, nil, nil) {
		return
	}
	for _, e := range entries {
		if e.bucket {
			bf.problem("%s: holds sub-bucket %q (an inline bucket cannot)", where, e.key)
			continue
		}
		fn(e)
	}
}

// buckets returns the top-level buckets, name to bucket value.
func (bf *boltFile) buckets() map[string][]byte {
	top := make(map[string][]byte)
	bf.walkTree(bf.meta.root, nil, nil, 0, func(e boltEntry) {
		if !e.bucket {
			bf.problem("top-level key %q is not a bucket", e.key)
			return
		}
		top[string(e.key)] = e.value
	})
	return top
}

// check walks every page reachable from the meta page, every bucket
// included, and returns the first problem met (nil: the structure is sound).
func (bf *boltFile) check() error {
	bf.checkFreelist()
	var walk func(name string, v []byte)
	walk = func(name string, v []byte) {
		bf.walkBucket(name, v, func(e boltEntry) {
			if e.bucket {
				walk(string(e.key), e.value)
			}
		})
	}
	top := bf.buckets()
	names := make([]string, 0, len(top))
	for name := range top {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		walk(name, top[name])
	}
	if len(bf.errs) > 0 {
		return bf.errs[0]
	}
	return nil
}

// checkBoltFile checks the bbolt structure of the file r of size bytes.
func checkBoltFile(r io.ReaderAt, size int64) error {
	bf, err := openBoltFile(r, size)
	if err != nil {
		return err
	}
	return bf.check()
}
