package store

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
)

// ErrEvictionPolicy is wrapped by [Redis.CheckEviction] when Redis has a memory limit and
// may evict keys to stay under it.
var ErrEvictionPolicy = errors.New("redis may evict the relay's keys")

// ErrConfigUnreadable is wrapped by [Redis.CheckEviction] when Redis refuses CONFIG GET
// (managed services often do), so the eviction policy cannot be checked.
var ErrConfigUnreadable = errors.New("redis refuses to show its configuration")

// CheckEviction reads maxmemory and maxmemory-policy (CONFIG GET) on the server, or on
// every master of a Cluster. Redis is safe for the relay when it has no memory limit
// (maxmemory 0) or refuses writes at the limit (maxmemory-policy noeviction); any other
// policy lets Redis delete keys under memory pressure: channel states and bundles
// (allkeys-*), or webhook delivery marks, failed-version sets and pending promotions
// (volatile-*, the keys with an expiry), silently undoing what the relay acknowledged. It
// returns nil when safe, an error wrapping [ErrEvictionPolicy] that names the policy and
// the fix, one wrapping [ErrConfigUnreadable] when the server refuses CONFIG, or one
// wrapping channel.ErrUnavailable when Redis cannot be reached.
func (r *Redis) CheckEviction(ctx context.Context) error {
	check := func(ctx context.Context, c *redis.Client) error {
		addr := c.Options().Addr
		cfg, err := c.ConfigGet(ctx, "maxmemory*").Result()
		if err != nil {
			var re redis.Error
			if errors.As(err, &re) && !errors.Is(err, redis.ErrClosed) && !isTransientReply(err) {
				return fmt.Errorf("redis %s: CONFIG GET maxmemory-policy: %w: %w", addr, ErrConfigUnreadable, err)
			}
			return r.fail(ctx, "redis "+addr+": read eviction policy", err)
		}
		mem, policy := cfg["maxmemory"], cfg["maxmemory-policy"]
		if mem == "" || policy == "" {
			return fmt.Errorf("redis %s: CONFIG GET returned no maxmemory settings: %w", addr, ErrConfigUnreadable)
		}
		if mem == "0" || policy == "noeviction" {
			return nil
		}
		return fmt.Errorf("redis %s has maxmemory %s bytes with maxmemory-policy %s: under memory pressure it "+
			"deletes the relay's keys (channel states, bundles, webhook de-duplication marks, failed versions); "+
			"set maxmemory-policy noeviction (CONFIG SET maxmemory-policy noeviction, and in redis.conf): %w",
			addr, mem, policy, ErrEvictionPolicy)
	}
	switch c := r.rdb.(type) {
	case *redis.Client:
		return check(ctx, c)
	case *redis.ClusterClient:
		var mu sync.Mutex
		var errs []error
		err := c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			if err := check(ctx, n); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			return nil
		})
		if err != nil {
			return r.fail(ctx, "read eviction policy of the cluster", err)
		}
		return errors.Join(errs...)
	}
	return fmt.Errorf("read eviction policy: unsupported client %T: %w", r.rdb, ErrConfigUnreadable)
}

// isTransientReply reports whether err is one of the transientReplies.
func isTransientReply(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	msg := re.Error()
	for _, p := range transientReplies {
		if len(msg) >= len(p) && msg[:len(p)] == p {
			return true
		}
	}
	return false
}
