package store

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

func leaseKey(name string) string { return "ferry:lease:" + name }

// acquireLeaseScript takes the lease KEYS[1] for ARGV[1] for ARGV[2] ms when it is free
// (SET NX PX) or extends it when ARGV[1] holds it (compare-and-extend), in one step.
var acquireLeaseScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0`)

// releaseLeaseScript deletes the lease KEYS[1] only if ARGV[1] holds it (compare-and-delete).
var releaseLeaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// AcquireLease takes or extends the lease name for holder (see [Lease]) with a Lua script:
// the key expires by itself (PX), so a holder that dies loses the lease after ttl.
func (r *Redis) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if err := checkLease("acquire lease", name, holder, ttl, true); err != nil {
		return false, err
	}
	ms := max(ttl.Milliseconds(), 1)
	n, err := acquireLeaseScript.Run(ctx, r.rdb, []string{leaseKey(name)}, holder, ms).Int()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, r.fail(ctx, "acquire lease "+name, err)
	}
	return n == 1, nil
}

// ReleaseLease deletes the lease name if holder holds it (see [Lease]).
func (r *Redis) ReleaseLease(ctx context.Context, name, holder string) error {
	if err := checkLease("release lease", name, holder, 0, false); err != nil {
		return err
	}
	if err := releaseLeaseScript.Run(ctx, r.rdb, []string{leaseKey(name)}, holder).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return r.fail(ctx, "release lease "+name, err)
	}
	return nil
}
