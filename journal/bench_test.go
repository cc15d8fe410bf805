package journal_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sysreg/sysreg/journal"
)

// BenchmarkDurableWrites measures durable writes (real fsync) by N writers,
// each waiting for its own write, side by side (R25, R36):
//
//	mode=group              this journal: Append and wait for done (group commit)
//	mode=commit-per-update  raw bbolt: one DB.Update (one commit, one fsync pair) per record
//	mode=batch              raw bbolt: DB.Batch (coalesces for up to 10ms)
//
// One op is one durable update of 128 bytes. Metrics: updates/s (over the
// whole run, the tail of in-flight writes included) and fsyncs/op (bbolt
// commits per update; each commit is an fdatasync of the pages and one of
// the meta page). Run with a fixed count, e.g.
//
//	go test ./journal -run '^$' -bench DurableWrites -benchtime 2000x
func BenchmarkDurableWrites(b *testing.B) {
	data := bytes.Repeat([]byte("v"), 128)
	for _, writers := range []int{1, 8, 64} {
		for _, mode := range []string{"group", "commit-per-update", "batch"} {
			b.Run(fmt.Sprintf("writers=%d/mode=%s", writers, mode), func(b *testing.B) {
				path := filepath.Join(b.TempDir(), "j.db")
				var (
					update  func(w int) error
					commits func() uint64
					cleanup func() error
				)
				switch mode {
				case "group":
					update, commits, cleanup = groupWriter(b, path, writers, data)
				default:
					update, commits, cleanup = boltWriter(b, path, mode == "batch", data)
				}
				n, elapsed := runWriters(b, writers, update)
				b.ReportMetric(float64(n)/elapsed.Seconds(), "updates/s")
				b.ReportMetric(float64(commits())/float64(n), "fsyncs/op")
				if err := cleanup(); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

// runWriters starts writers goroutines that each do one update per b.Loop
// iteration handed to them, and returns the number of updates and the time
// until the last one was durable.
func runWriters(b *testing.B, writers int, update func(w int) error) (int, time.Duration) {
	work := make(chan struct{})
	var (
		wg     sync.WaitGroup
		failed atomic.Pointer[error]
	)
	for w := range writers {
		wg.Go(func() {
			for range work {
				if err := update(w); err != nil {
					failed.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	b.ReportAllocs()
	n := 0
	start := time.Now()
	for b.Loop() {
		work <- struct{}{}
		n++
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	return n, elapsed
}

// groupWriter: keys are handed out under a mutex that Append is called
// under, as a registry would; each writer waits on its own channel.
func groupWriter(b testing.TB, path string, writers int, data []byte) (func(int) error, func() uint64, func() error) {
	j, err := journal.Open(path, journal.Options{})
	if err != nil {
		b.Fatal(err)
	}
	var (
		mu   sync.Mutex
		next uint64
	)
	dones := make([]chan error, writers)
	callbacks := make([]func(error), writers)
	for w := range writers {
		dones[w] = make(chan error, 1)
		callbacks[w] = func(err error) { dones[w] <- err }
	}
	update := func(w int) error {
		mu.Lock()
		next++
		j.Append(next, data, callbacks[w])
		mu.Unlock()
		return <-dones[w]
	}
	return update, func() uint64 { return j.Stats().Commits }, j.Close
}

// boltWriter writes records as the journal does, with raw bbolt and the
// same options: one Update per record, or DB.Batch.
func boltWriter(b testing.TB, path string, batch bool, data []byte) (func(int) error, func() uint64, func() error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		b.Fatal(err)
	}
	name := []byte("records")
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(name); return err }); err != nil {
		b.Fatal(err)
	}
	var (
		next    atomic.Uint64
		mu      sync.Mutex // guards lastTx, commits
		lastTx  int
		commits uint64
	)
	put := func(tx *bolt.Tx) error {
		k := next.Add(1)
		v := binary.BigEndian.AppendUint64(make([]byte, 0, 12+len(data)), k-1)
		v = append(binary.BigEndian.AppendUint32(v, 0), data...)
		mu.Lock()
		if id := tx.ID(); id != lastTx { // write transactions are serial
			lastTx = id
			commits++
		}
		mu.Unlock()
		return tx.Bucket(name).Put(binary.BigEndian.AppendUint64(nil, k), v)
	}
	update := func(int) error { return db.Update(put) }
	if batch {
		update = func(int) error { return db.Batch(put) }
	}
	count := func() uint64 {
		mu.Lock()
		defer mu.Unlock()
		return commits
	}
	return update, count, db.Close
}

// BenchmarkOneWriterRatio alternates, update by update, one Append of this
// journal (waiting for done) and one raw bbolt Update (commit-per-update),
// so that disk and CPU noise hit both alike, and reports both rates and
// their ratio, the one-writer goal being group/commit-per-update >= 0.9.
// One op is one update of each kind.
func BenchmarkOneWriterRatio(b *testing.B) {
	data := bytes.Repeat([]byte("v"), 128)
	dir := b.TempDir()
	group, _, closeGroup := groupWriter(b, filepath.Join(dir, "group.db"), 1, data)
	raw, _, closeRaw := boltWriter(b, filepath.Join(dir, "raw.db"), false, data)
	var tGroup, tRaw time.Duration
	timed := func(update func(int) error, sum *time.Duration) {
		start := time.Now()
		if err := update(0); err != nil {
			b.Fatal(err)
		}
		*sum += time.Since(start)
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if n%2 == 0 { // alternate which goes first
			timed(group, &tGroup)
			timed(raw, &tRaw)
		} else {
			timed(raw, &tRaw)
			timed(group, &tGroup)
		}
		n++
	}
	b.ReportMetric(float64(n)/tGroup.Seconds(), "group-updates/s")
	b.ReportMetric(float64(n)/tRaw.Seconds(), "commit-per-update-updates/s")
	b.ReportMetric(tRaw.Seconds()/tGroup.Seconds(), "group/commit-per-update")
	if err := errors.Join(closeGroup(), closeRaw()); err != nil {
		b.Fatal(err)
	}
}
