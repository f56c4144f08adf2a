package store

import (
	"errors"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// groupCommit runs the embedded store's batched writes ([Bolt.batch]) as a group commit: a
// write that finds no transaction under way commits at once, and the writes that arrive
// while one is under way share the next transaction and its fsyncs. Under load that forms
// batches as large as bbolt's Batch does, and a lone write (a webhook on a quiet relay)
// does not wait: Batch holds every write up to its MaxBatchDelay (10 ms) for company, which
// a lone write pays in full.
//
// The functions keep Batch's contract: each may run more than once, so it must set its
// results afresh on every run. When one fails or panics, its transaction is rolled back,
// the others run again without it, and it runs again alone in its caller's goroutine, so
// that its error (or panic) is its own.
type groupCommit struct {
	db      *bolt.DB
	mu      sync.Mutex
	pending []groupCall
	running bool // a committer goroutine is draining pending
}

type groupCall struct {
	fn  func(*bolt.Tx) error
	err chan error
}

// maxGroup bounds the writes one transaction carries (bbolt's default MaxBatchSize).
const maxGroup = 1000

// errTrySolo tells a call that its function failed in a group: it runs alone.
var errTrySolo = errors.New("run alone")

// do runs fn in a write transaction shared with the writes pending beside it.
func (g *groupCommit) do(fn func(*bolt.Tx) error) error {
	c := groupCall{fn: fn, err: make(chan error, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, c)
	if !g.running {
		g.running = true
		go g.run()
	}
	g.mu.Unlock()
	if err := <-c.err; !errors.Is(err, errTrySolo) {
		return err
	}
	return g.db.Update(fn)
}

// run commits what is pending, group after group, until nothing is.
func (g *groupCommit) run() {
	for {
		g.mu.Lock()
		calls := g.pending
		switch {
		case len(calls) == 0:
			g.running = false
			g.mu.Unlock()
			return
		case len(calls) > maxGroup:
			calls, g.pending = calls[:maxGroup:maxGroup], calls[maxGroup:]
		default:
			g.pending = nil
		}
		g.mu.Unlock()
		g.commit(calls)
	}
}

// commit runs calls in one transaction and answers each; see groupCommit.
func (g *groupCommit) commit(calls []groupCall) {
	for len(calls) > 0 {
		failed := -1
		err := g.db.Update(func(tx *bolt.Tx) error {
			for i, c := range calls {
				if err := callSafely(c.fn, tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			for _, c := range calls {
				c.err <- err
			}
			return
		}
		calls[failed].err <- errTrySolo
		calls = append(calls[:failed:failed], calls[failed+1:]...)
	}
}

// callSafely runs fn, turning a panic into an error.
func callSafely(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return fn(tx)
}
