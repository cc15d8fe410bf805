package store

import (
	"testing"
	"testing/synctest"
)

// TestReplyQueue: replies reach the writer in order, in the batches the
// reader handed over; the reader waits while MaxInFlight replies are queued
// or being written, and goes on once the writer is done with a batch; after
// close the writer gets what is left, then the end.
func TestReplyQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rq := newReplyQueue(4)
		batch := func(ids ...uint64) []reply {
			out := make([]reply, len(ids))
			for i, id := range ids {
				out[i] = reply{id: id}
			}
			return out
		}
		ids := func(rs []reply) []uint64 {
			var out []uint64
			for _, r := range rs {
				out = append(out, r.id)
			}
			return out
		}
		rq.put(batch(1, 2))
		rq.put(batch(3))
		got, ok := rq.take(nil)
		if !ok || len(got) != 3 || got[0].id != 1 || got[2].id != 3 {
			t.Fatalf("take = %v, %v; want [1 2 3], true", ids(got), ok)
		}
		// Three replies are being written: a batch of two must wait.
		put := make(chan struct{})
		go func() {
			rq.put(batch(4, 5))
			close(put)
		}()
		synctest.Wait()
		select {
		case <-put:
			t.Fatal("put did not wait with 3 + 2 replies held, max 4")
		default:
		}
		got, ok = rq.take(got) // done with 1..3
		<-put
		if !ok || len(ids(got)) != 2 || got[0].id != 4 || got[1].id != 5 {
			t.Fatalf("take = %v, %v; want [4 5], true", ids(got), ok)
		}
		// The writer waits for the next batch; close wakes it.
		var end bool
		done := make(chan struct{})
		go func() {
			_, ok := rq.take(got)
			end = !ok
			close(done)
		}()
		synctest.Wait()
		rq.close()
		<-done
		if !end {
			t.Fatal("take after close with nothing queued did not report the end")
		}
	})
}
