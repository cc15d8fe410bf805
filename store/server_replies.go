package store

import "sync"

// replyQueue carries a connection's replies from its reader to its reply
// writer in request order, in batches: the reader collects the replies of
// the requests it reads in one go and hands them over together, so the
// writer is woken once per batch of pipelined requests, not per reply
// (each wake of a parked goroutine costs the scheduler, often a futex
// call). At most max replies are queued or being written: beyond that the
// reader waits (ServerOptions.MaxInFlight), so a client that pipelines
// without reading is not read either.
type replyQueue struct {
	max int

	mu      sync.Mutex
	ready   sync.Cond // signalled when q gets replies or the queue closes
	room    sync.Cond // signalled when the writer is done with a batch
	q       []reply   // queued, in order
	spare   []reply   // the writer's last batch, for reuse
	held    int       // replies queued or being written
	closed  bool
	waiting bool // the writer waits on ready
}

func newReplyQueue(max int) *replyQueue {
	rq := &replyQueue{max: max}
	rq.ready.L = &rq.mu
	rq.room.L = &rq.mu
	return rq
}

// put queues batch, waiting while that would hold more than max replies
// (a batch is never larger than max). The caller may reuse batch.
func (rq *replyQueue) put(batch []reply) {
	if len(batch) == 0 {
		return
	}
	rq.mu.Lock()
	for rq.held > 0 && rq.held+len(batch) > rq.max {
		rq.room.Wait()
	}
	rq.q = append(rq.q, batch...)
	rq.held += len(batch)
	if rq.waiting {
		rq.ready.Signal()
	}
	rq.mu.Unlock()
}

// close tells the writer that nothing more comes; it writes what is
// queued, then take reports false.
func (rq *replyQueue) close() {
	rq.mu.Lock()
	rq.closed = true
	rq.ready.Signal()
	rq.mu.Unlock()
}

// take returns everything queued, waiting for something; false once the
// queue is closed and empty. done is the batch the last take returned,
// now written (nil at first): its replies no longer count against max.
func (rq *replyQueue) take(done []reply) ([]reply, bool) {
	rq.mu.Lock()
	defer rq.mu.Unlock()
	if done != nil {
		rq.held -= len(done)
		clear(done) // no bodies or closures kept alive
		rq.spare = done[:0]
		rq.room.Signal()
	}
	for len(rq.q) == 0 && !rq.closed {
		rq.waiting = true
		rq.ready.Wait()
		rq.waiting = false
	}
	if len(rq.q) == 0 {
		return nil, false
	}
	batch := rq.q
	rq.q = rq.spare
	rq.spare = nil
	return batch, true
}
