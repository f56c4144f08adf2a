package store

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// setBatcher coalesces concurrent SMEMBERS reads (the relay's per-device FailedVersions
// lookup, made on every update check that offers a bundle) into Redis pipelines. One
// worker takes the first waiting read, adds every other read already queued (up to
// maxBatch), and sends them as one pipeline: a lone read still costs one round trip, with
// no waiting for company, while under load the reads that arrive during a round trip share
// the next one. That saves the relay and redis-server a write, a read and a wake-up per
// lookup, which on a small machine is most of what an offered update check costs.
//
// Unlike go-redis's own AutoPipeliner, every caller keeps its context: it stops waiting
// when its ctx ends, and the pipeline runs under the latest deadline of the reads it
// carries, so one slow batch cannot hold a caller past its own timeout.
type setBatcher struct {
	rdb   redis.UniversalClient
	queue chan *setRead
	done  <-chan struct{} // closed when the store closes

	startOnce sync.Once
}

// setRead is one queued SMEMBERS. The worker fills vals and err, then closes ready.
type setRead struct {
	ctx   context.Context
	key   string
	vals  []string
	err   error
	ready chan struct{}
}

const (
	// maxBatch bounds one pipeline; at 100 µs a round trip that is a million reads a
	// second, far beyond what one relay asks.
	maxBatch = 128
	// batchTimeout bounds a pipeline whose reads carry no deadline.
	batchTimeout = 5 * time.Second
)

var setReadPool = sync.Pool{New: func() any { return &setRead{ready: make(chan struct{}, 1)} }}

func newSetBatcher(rdb redis.UniversalClient, done <-chan struct{}) *setBatcher {
	return &setBatcher{rdb: rdb, queue: make(chan *setRead, 4*maxBatch), done: done}
}

// smembers returns the members of the set at key, read in the next pipeline. It returns
// ctx's error if ctx ends first, and redis.ErrClosed once the store is closed.
func (b *setBatcher) smembers(ctx context.Context, key string) ([]string, error) {
	b.startOnce.Do(func() { go b.run() })
	r := setReadPool.Get().(*setRead)
	r.ctx, r.key = ctx, key
	select {
	case b.queue <- r:
	case <-ctx.Done():
		b.release(r)
		return nil, ctx.Err()
	case <-b.done:
		b.release(r)
		return nil, redis.ErrClosed
	}
	select {
	case <-r.ready:
		vals, err := r.vals, r.err
		b.release(r)
		return vals, err
	case <-ctx.Done():
		// The worker still owns r and will signal ready into its buffer; r is left to
		// the garbage collector rather than returned to the pool.
		return nil, ctx.Err()
	case <-b.done:
		// Queued just as the store closed, perhaps after the worker's last look.
		return nil, redis.ErrClosed
	}
}

func (b *setBatcher) release(r *setRead) {
	*r = setRead{ready: r.ready}
	setReadPool.Put(r)
}

// run is the worker: one pipeline at a time, each carrying every read queued meanwhile.
func (b *setBatcher) run() {
	batch := make([]*setRead, 0, maxBatch)
	cmds := make([]*redis.StringSliceCmd, 0, maxBatch)
	for {
		select {
		case r := <-b.queue:
			batch = append(batch[:0], r)
		case <-b.done:
			b.drain()
			return
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case r := <-b.queue:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		b.exec(batch, cmds[:0])
		clear(batch)
	}
}

// exec sends the live reads of batch as one pipeline and hands each its answer.
func (b *setBatcher) exec(batch []*setRead, cmds []*redis.StringSliceCmd) {
	var deadline time.Time
	live := batch[:0] // filtered in place
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			r.ready <- struct{}{}
			continue
		}
		dl, ok := r.ctx.Deadline()
		if !ok {
			dl = time.Now().Add(batchTimeout)
		}
		if dl.After(deadline) {
			deadline = dl
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	pipe := b.rdb.Pipeline()
	for _, r := range live {
		cmds = append(cmds, pipe.SMembers(ctx, r.key))
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	for i, r := range live {
		r.vals, r.err = cmds[i].Result()
		r.ready <- struct{}{}
	}
	clear(cmds)
}

// drain answers every read still queued once the store is closed.
func (b *setBatcher) drain() {
	for {
		select {
		case r := <-b.queue:
			r.err = redis.ErrClosed
			r.ready <- struct{}{}
		default:
			return
		}
	}
}
