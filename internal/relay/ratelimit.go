package relay

import (
	"context"
	"hash/maphash"
	"math"
	"sync"
	"time"
)

// rateShards spreads the buckets over independently locked maps so concurrent requests
// rarely contend.
const rateShards = 64

// rateLimiter keeps one token bucket per key (a client IP, or an app's device). A bucket
// idle for long enough to have refilled completely carries no information (a new bucket
// is the same), so sweep evicts it: the memory held is bounded by the keys seen in the last
// burst/limit seconds, not by every key ever seen.
//
// A bucket is 16 bytes stored by value under the key's 64-bit hash, with no pointer for the
// collector to follow: about 30 bytes per active key with the map's own overhead, so a
// million devices checking in within the idle time cost about 30 MB. Two keys whose
// hashes collide (odds about n²/2⁶⁵ for n keys, per process seed) would share a bucket.
type rateLimiter struct {
	limit  float64       // tokens per second
	burst  float64       // bucket size
	idle   time.Duration // burst/limit: a bucket idle this long is full again
	now    func() time.Time
	seed   maphash.Seed
	shards [rateShards]rateShard
}

type rateShard struct {
	mu      sync.Mutex
	buckets map[uint64]bucket
}

// bucket is a token bucket: tokens held at time last (Unix nanoseconds).
type bucket struct {
	tokens float64
	last   int64
}

func newRateLimiter(perSecond float64, burst int, now func() time.Time) *rateLimiter {
	idle := time.Duration(float64(burst) / perSecond * float64(time.Second))
	rl := &rateLimiter{limit: perSecond, burst: float64(burst), idle: max(idle, time.Second), now: now, seed: maphash.MakeSeed()}
	for i := range rl.shards {
		rl.shards[i].buckets = make(map[uint64]bucket)
	}
	return rl
}

// allow takes one token for key. When none is available it returns false and how long
// until one will be.
func (rl *rateLimiter) allow(key string) (wait time.Duration, ok bool) {
	if rl.burst < 1 {
		return time.Second, false // a bucket that can never hold a token
	}
	now := rl.now().UnixNano()
	h := maphash.String(rl.seed, key)
	sh := &rl.shards[h%rateShards]
	sh.mu.Lock()
	b, seen := sh.buckets[h]
	if !seen {
		b = bucket{tokens: rl.burst, last: now}
	}
	if elapsed := now - b.last; elapsed > 0 {
		b.tokens = math.Min(rl.burst, b.tokens+float64(elapsed)/float64(time.Second)*rl.limit)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		ok = true
	} else {
		wait = time.Duration(math.Ceil((1 - b.tokens) / rl.limit * float64(time.Second)))
	}
	sh.buckets[h] = b
	sh.mu.Unlock()
	return wait, ok
}

// sweep drops buckets that have refilled completely and returns how many remain.
func (rl *rateLimiter) sweep() int {
	cutoff := rl.now().Add(-rl.idle).UnixNano()
	n := 0
	for i := range rl.shards {
		sh := &rl.shards[i]
		sh.mu.Lock()
		for k, b := range sh.buckets {
			if b.last < cutoff {
				delete(sh.buckets, k)
			}
		}
		n += len(sh.buckets)
		sh.mu.Unlock()
	}
	return n
}

// sweepLoop sweeps every rateSweep until ctx ends.
func (rl *rateLimiter) sweepLoop(ctx context.Context) {
	t := time.NewTicker(rateSweep)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rl.sweep()
		}
	}
}
