//go:build unix

package journal_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/sysreg/sysreg/internal/testexec"
	"github.com/sysreg/sysreg/journal"
)

const crashEnv = "JOURNAL_CRASH_CHILD"

// TestCrashChild is the child of TestCrash: it appends records after the
// journal's last key with 4 writers and a checkpoint every 300 keys, printing "a KEY" once a record
// is durable and "c KEY" once a checkpoint is, until it is killed.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("only run by TestCrash")
	}
	j, err := journal.Open(path, journal.Options{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	var (
		mu   sync.Mutex // the caller's lock: keys are handed out under it
		out  sync.Mutex // one line at a time
		next = j.LastKey()
	)
	say := func(kind string, k uint64) {
		out.Lock()
		fmt.Printf("%s %d\n", kind, k)
		out.Unlock()
	}
	for range 4 {
		go func() {
			done := make(chan error, 1)
			for {
				mu.Lock()
				next++
				k := next
				j.Append(k, recordData(k), func(err error) { done <- err })
				mu.Unlock()
				if err := <-done; err != nil {
					say("error", 0)
					os.Exit(1)
				}
				say("a", k)
				if k%300 == 0 {
					switch err := j.Checkpoint(k-100, fmt.Appendf(nil, "checkpoint-%d", k-100)); {
					case err == nil:
						say("c", k-100)
					case !errors.Is(err, journal.ErrKeyOrder): // a later checkpoint overtook this one
						say("error", 0)
						os.Exit(1)
					}
				}
			}
		}()
	}
	select {} // until killed
}

// TestCrash: SIGKILL a writing child; every record and checkpoint it was
// told were durable must be there after reopening, the chain intact (R24).
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("re-execs the test binary")
	}
	path := filepath.Join(t.TempDir(), "j.db")
	for round := range 3 {
		cmd, err := testexec.Reexec("-test.run=^TestCrashChild$")
		if err != nil {
			t.Fatal(err)
		}
		cmd.Env = append(os.Environ(), crashEnv+"="+path)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acked, ckpt := map[uint64]bool{}, uint64(0)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() && len(acked) < 700 {
			kind, arg, _ := strings.Cut(sc.Text(), " ")
			k, _ := strconv.ParseUint(arg, 10, 64)
			switch kind {
			case "a":
				acked[k] = true
			case "c":
				ckpt = max(ckpt, k)
			default:
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("child: %s", sc.Text())
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait() // killed: the error says so
		t.Logf("round %d: killed after %d acknowledged records, checkpoint %d", round, len(acked), ckpt)

		j, err := journal.Open(path, journal.Options{})
		if err != nil {
			t.Fatal(err)
		}
		key, data, ok, err := j.ReadCheckpoint()
		if err != nil {
			t.Fatal(err)
		}
		if ckpt > 0 && (!ok || key < ckpt || string(data) != fmt.Sprintf("checkpoint-%d", key)) {
			t.Errorf("checkpoint %d %q, want at least the acknowledged %d", key, data, ckpt)
		}
		present := map[uint64]bool{}
		if err := j.Replay(0, func(k uint64, d []byte) error {
			if string(d) != string(recordData(k)) {
				t.Errorf("record %d: %q", k, d)
			}
			present[k] = true
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for k := range acked {
			if k > key && !present[k] {
				t.Errorf("acknowledged record %d lost (checkpoint %d)", k, key)
			}
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		// The next round appends on top: a crashed file is a sound journal.
	}
}
