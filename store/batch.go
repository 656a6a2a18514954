package store

import (
	"errors"
	"fmt"
	"sync"
)

// groupCommit runs concurrent write functions together in one bbolt
// transaction, so that they share its commit and fsync, without waiting on
// a timer: the first writer to arrive while no commit runs commits at once
// (alone, if alone); writers that arrive while a commit runs queue, and the
// first of them commits the whole queue as soon as that commit ends. A lone
// writer so pays one commit, not a commit plus bbolt's MaxBatchDelay, and
// under load the batches grow with the commit time, as they should.
//
// The contract is bbolt's Batch: a function may run more than once; when
// one fails, its batch is rolled back and run again without it, and the
// failed function runs once more alone, in its caller's goroutine, whose
// result is final (so a panic there reaches the caller).
type groupCommit struct {
	run func(func(*boltTx) error) error // one write transaction (Bolt.writeTx)
	max int                             // most calls in one transaction

	mu     sync.Mutex
	queue  []*commitCall
	active bool // a writer is committing; the queue's head leads next
}

type commitCall struct {
	fn   func(*boltTx) error
	done chan error // one result; errLead first when the call must lead
}

var (
	// errLead tells a queued call to commit the queue.
	errLead = errors.New("store: lead the next group commit")
	// errTrySolo tells a call to run again alone.
	errTrySolo = errors.New("store: run the write function alone")
)

func (g *groupCommit) update(fn func(*boltTx) error) error {
	c := &commitCall{fn: fn, done: make(chan error, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	lead := !g.active
	g.active = true
	g.mu.Unlock()
	if lead {
		g.commitNext()
	}
	err := <-c.done
	if err == errLead {
		g.commitNext()
		err = <-c.done
	}
	if err == errTrySolo {
		return g.run(fn)
	}
	return err
}

// commitNext commits the head of the queue (which holds the caller's own
// call) and passes the lead to the first call still waiting, if any.
func (g *groupCommit) commitNext() {
	g.mu.Lock()
	n := min(len(g.queue), g.max)
	calls := make([]*commitCall, n)
	copy(calls, g.queue)
	rest := copy(g.queue, g.queue[n:])
	clear(g.queue[rest:]) // let the finished calls go
	g.queue = g.queue[:rest]
	g.mu.Unlock()

	g.commit(calls)

	g.mu.Lock()
	if len(g.queue) == 0 {
		g.active = false
	} else {
		g.queue[0].done <- errLead
	}
	g.mu.Unlock()
}

func (g *groupCommit) commit(calls []*commitCall) {
	for len(calls) > 0 {
		failed := -1
		err := g.run(func(tx *boltTx) error {
			for i, c := range calls {
				if err := safelyCall(c.fn, tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed >= 0 {
			calls[failed].done <- errTrySolo
			calls = append(calls[:failed], calls[failed+1:]...)
			continue
		}
		for _, c := range calls {
			c.done <- err
		}
		return
	}
}

// safelyCall turns a panic in fn into an error, so that one bad function
// cannot take down the others' commit; its caller reruns it alone.
func safelyCall(fn func(*boltTx) error, tx *boltTx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("store: write function panicked: %v", p)
		}
	}()
	return fn(tx)
}
