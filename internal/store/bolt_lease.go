package store

import (
	"context"
	"sync"
	"time"
)

// leases is the embedded store's lease table. A bbolt file is opened by one process only
// (see ErrLocked), so every holder is in this process and the table lives in memory: a
// restarted relay starts with no leases, which is what the expiry of its old ones would
// give.
type leases struct {
	mu sync.Mutex
	m  map[string]leaseEntry
}

type leaseEntry struct {
	holder string
	until  time.Time
}

// AcquireLease takes or extends the lease name for holder (see [Lease]).
func (b *Bolt) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if err := checkLease("acquire lease", name, holder, ttl, true); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	b.leases.mu.Lock()
	defer b.leases.mu.Unlock()
	t := now()
	if e, ok := b.leases.m[name]; ok && e.holder != holder && t.Before(e.until) {
		return false, nil
	}
	if b.leases.m == nil {
		b.leases.m = map[string]leaseEntry{}
	}
	b.leases.m[name] = leaseEntry{holder: holder, until: t.Add(ttl)}
	return true, nil
}

// ReleaseLease gives up the lease name if holder holds it (see [Lease]).
func (b *Bolt) ReleaseLease(ctx context.Context, name, holder string) error {
	if err := checkLease("release lease", name, holder, 0, false); err != nil {
		return err
	}
	b.leases.mu.Lock()
	defer b.leases.mu.Unlock()
	if e, ok := b.leases.m[name]; ok && e.holder == holder {
		delete(b.leases.m, name)
	}
	return nil
}
