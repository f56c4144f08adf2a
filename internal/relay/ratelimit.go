package relay

import (
	"context"
	"hash/maphash"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// rateShards spreads the per-IP buckets over independently locked maps so concurrent
// requests rarely contend.
const rateShards = 64

// rateLimiter keeps one token bucket per key (a client IP, or an app's device). A bucket
// idle for long enough to have refilled completely carries no information (a new bucket
// is the same), so sweep evicts it: the memory held is bounded by the keys seen in the last
// burst/limit seconds, not by every key ever seen.
type rateLimiter struct {
	limit  rate.Limit
	burst  int
	idle   time.Duration // burst/limit: a bucket idle this long is full again
	now    func() time.Time
	seed   maphash.Seed
	shards [rateShards]rateShard
}

type rateShard struct {
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newRateLimiter(perSecond float64, burst int, now func() time.Time) *rateLimiter {
	idle := time.Duration(float64(burst) / perSecond * float64(time.Second))
	rl := &rateLimiter{limit: rate.Limit(perSecond), burst: burst, idle: max(idle, time.Second), now: now, seed: maphash.MakeSeed()}
	for i := range rl.shards {
		rl.shards[i].buckets = make(map[string]*bucket)
	}
	return rl
}

// allow takes one token for key. When none is available it returns false and how long
// until one will be.
func (rl *rateLimiter) allow(key string) (wait time.Duration, ok bool) {
	now := rl.now()
	sh := &rl.shards[maphash.String(rl.seed, key)%rateShards]
	sh.mu.Lock()
	b := sh.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(rl.limit, rl.burst)}
		sh.buckets[key] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	sh.mu.Unlock()
	if !r.OK() {
		return time.Second, false
	}
	d := r.DelayFrom(now)
	if d == 0 {
		return 0, true
	}
	r.CancelAt(now)
	return d, false
}

// sweep drops buckets that have refilled completely and returns how many remain.
func (rl *rateLimiter) sweep() int {
	cutoff := rl.now().Add(-rl.idle)
	n := 0
	for i := range rl.shards {
		sh := &rl.shards[i]
		sh.mu.Lock()
		for k, b := range sh.buckets {
			if b.seen.Before(cutoff) {
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
