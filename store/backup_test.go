package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/journal"
	"github.com/sysreg/sysreg/store"
)

// TestR45_BackupDuringLoad: a backup taken while 64 writers commit config
// (through checkpoints) is a data directory that opens and passes the
// journal's checks, and holds a prefix of the acknowledged writes: every
// write acknowledged before the backup began, no write that began after it
// ended, and no transaction half (R45, R15, R24). Taken embedded and over
// the daemon's socket.
func TestR45_BackupDuringLoad(t *testing.T) {
	const writers = 64
	for _, via := range []string{"embedded", "client"} {
		t.Run("via="+via, func(t *testing.T) {
			ctx := t.Context()
			d := startDaemonOpts(t, t.TempDir(), store.Options{NoSync: true, CheckpointRecords: 500}, store.ServerOptions{})
			var b store.Backuper = d.st
			if via == "client" {
				b = dial(t, d)
			}
			var acked [writers]atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			started := make(chan struct{}, writers)
			for w := range writers {
				o, err := d.st.Owner(ctx, fmt.Sprintf("w%d", w), core.OwnerOptions{KeepConfig: true})
				must(t, err)
				wg.Add(1)
				go func() {
					defer wg.Done()
					a, bb := core.ConfigScope("load", fmt.Sprintf("%d-a", w)), core.ConfigScope("load", fmt.Sprintf("%d-b", w))
					for i := int64(1); ; i++ {
						if err := o.Commit(ctx, core.Put(a, core.Values{"n": i}), core.Put(bb, core.Values{"n": i})); err != nil {
							errs <- err
							return
						}
						acked[w].Store(i)
						if i == 20 {
							started <- struct{}{}
						}
						select {
						case <-stop:
							return
						default:
						}
					}
				}()
			}
			for range writers { // every writer is well under way
				select {
				case <-started:
				case err := <-errs:
					t.Fatal(err)
				}
			}
			var before, after [writers]int64
			for w := range writers {
				before[w] = acked[w].Load()
			}
			dir := t.TempDir()
			path := filepath.Join(dir, store.JournalFile)
			n, err := store.WriteBackup(ctx, b, path)
			for w := range writers {
				after[w] = acked[w].Load()
			}
			close(stop)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			must(t, err)
			if fi, err := os.Stat(path); err != nil || fi.Size() != n || fi.Mode().Perm() != 0o600 {
				t.Fatalf("backup file: %v %v, want %d bytes, mode 0600", fi, err, n)
			}
			if _, err := journal.Inspect(path); err != nil {
				t.Fatalf("the backup does not pass the journal's checks: %v", err)
			}
			restored := open(t, dir, store.Options{NoSync: true})
			snap, _ := restored.Snapshot(ctx)
			for w := range writers {
				va, _ := snap.Get(core.ConfigScope("load", fmt.Sprintf("%d-a", w)), "n")
				vb, _ := snap.Get(core.ConfigScope("load", fmt.Sprintf("%d-b", w)), "n")
				na, _ := va.(int64)
				if va != vb {
					t.Fatalf("writer %d: half a transaction in the backup: a=%v b=%v", w, va, vb)
				}
				// One commit per writer may be durable, not yet acknowledged.
				if na < before[w] || na > after[w]+1 {
					t.Fatalf("writer %d: backup holds write %d, want %d..%d", w, na, before[w], after[w]+1)
				}
			}
			if snap.Seq() == 0 {
				t.Fatal("backup restored sequence 0")
			}
		})
	}
}

// TestR45_BackupErrors: a backup to a directory that does not exist, of a
// closed store, and with a cancelled context fail with a clear error and
// leave no file behind.
func TestR45_BackupErrors(t *testing.T) {
	ctx := t.Context()
	s := open(t, t.TempDir(), store.Options{NoSync: true})
	missing := filepath.Join(t.TempDir(), "no", "such", "dir", "b.db")
	if _, err := store.WriteBackup(ctx, s, missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("backup into a missing directory: %v, want ErrNotExist", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	dir := t.TempDir()
	if _, err := store.WriteBackup(cancelled, s, filepath.Join(dir, "b.db")); !errors.Is(err, context.Canceled) {
		t.Fatalf("backup with a cancelled context: %v", err)
	}
	must(t, s.Close())
	if _, err := s.Backup(ctx, &bytes.Buffer{}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("backup of a closed store: %v, want ErrClosed", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("failed backups left %v", ents)
	}
}
