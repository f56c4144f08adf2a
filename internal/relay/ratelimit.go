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
// Each bucket is one int64 stored by value under the key's 64-bit hash, with no pointer
// for the collector to follow: the time at which the bucket will be full again (the
// generic cell rate algorithm's "theoretical arrival time", which carries the same
// information as a token count and the time it was taken). That is 16 bytes of map slot
// per active key. Two keys whose hashes collide (odds about n²/2⁶⁵ for n keys, with a
// seed drawn per process) would share a bucket.
type rateLimiter struct {
	interval int64 // nanoseconds per token
	span     int64 // burst × interval: how far ahead of now a full bucket's time may be
	now      func() time.Time
	seed     maphash.Seed
	shards   [rateShards]rateShard
}

type rateShard struct {
	mu sync.Mutex
	// full maps a key's hash to the Unix nanosecond at which its bucket is full again;
	// a bucket at or past that time is full and is dropped by sweep.
	full map[uint64]int64
}

func newRateLimiter(perSecond float64, burst int, now func() time.Time) *rateLimiter {
	interval := int64(math.Round(float64(time.Second) / perSecond))
	rl := &rateLimiter{interval: interval, span: int64(burst) * interval, now: now, seed: maphash.MakeSeed()}
	for i := range rl.shards {
		rl.shards[i].full = make(map[uint64]int64)
	}
	return rl
}

// allow takes one token for key. When none is available it returns false and how long
// until one will be.
func (rl *rateLimiter) allow(key string) (wait time.Duration, ok bool) {
	if rl.span < rl.interval {
		return time.Second, false // a bucket that can never hold a token
	}
	now := rl.now().UnixNano()
	h := maphash.String(rl.seed, key)
	sh := &rl.shards[h%rateShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	full := max(sh.full[h], now) // a missing or refilled bucket is full now
	next := full + rl.interval   // taking a token delays "full" by one interval
	if over := next - now - rl.span; over > 0 {
		return time.Duration(over), false
	}
	sh.full[h] = next
	return 0, true
}

// sweep drops buckets that have refilled completely and returns how many remain.
func (rl *rateLimiter) sweep() int {
	now := rl.now().UnixNano()
	n := 0
	for i := range rl.shards {
		sh := &rl.shards[i]
		sh.mu.Lock()
		for k, full := range sh.full {
			if full <= now {
				delete(sh.full, k)
			}
		}
		n += len(sh.full)
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
