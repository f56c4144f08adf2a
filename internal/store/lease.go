package store

import (
	"context"
	"fmt"
	"time"
)

// Lease is the part of the store contract that elects one holder of a named task among
// relay instances sharing a store (the rollout controller: exactly one instance advances
// plans). A lease is held by one holder until it expires or is released; the holder keeps
// it by acquiring it again before it expires.
type Lease interface {
	// AcquireLease takes the lease name for holder for ttl when it is free or expired, or
	// extends it by ttl from now when holder already holds it, and reports whether holder
	// holds it afterwards. Testing and taking are one atomic step: of concurrent callers
	// with different holders, at most one gets true. Empty name or holder, or ttl <= 0, is
	// an error wrapping ErrInvalid.
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	// ReleaseLease gives the lease up if holder holds it, so another holder may take it at
	// once; a lease held by another holder, or by none, is left alone and is no error.
	ReleaseLease(ctx context.Context, name, holder string) error
}

// checkLease validates the arguments of AcquireLease (ttl > 0) and ReleaseLease (ttl 0).
func checkLease(op, name, holder string, ttl time.Duration, acquire bool) error {
	if err := checkKey("lease name", name); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := checkKey("lease holder", holder); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if acquire && ttl <= 0 {
		return fmt.Errorf("%s %q: ttl %s must be positive: %w", op, name, ttl, ErrInvalid)
	}
	return nil
}
