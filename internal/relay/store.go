package relay

import (
	"context"

	"github.com/ferryhq/ferry/internal/channel"
)

// Store is what the device side of the relay calls on persistence: the snapshot fill
// (ListStates, GetBundles), manifest sizes (GetBundle), stats (RecordStats, GetBundles),
// the per-device lookup (FailedVersions), change notifications (Subscribe) and /readyz
// (Ping). Each method keeps the contract documented on
// [github.com/ferryhq/ferry/internal/store.Store], which both stores implement.
type Store interface {
	GetBundle(ctx context.Context, app, version string) (*channel.Bundle, error)
	GetBundles(ctx context.Context, app string, versions []string) (map[string]*channel.Bundle, error)
	ListStates(ctx context.Context, app string) ([]*channel.State, error)
	RecordStats(ctx context.Context, app string, events []channel.StatEvent) error
	FailedVersions(ctx context.Context, app, device string) ([]string, error)
	Subscribe(ctx context.Context) <-chan string
	Ping(ctx context.Context) error
}

// localLookups is implemented by a store whose FailedVersions never waits on a network or
// another process (the embedded store answers from memory or one read transaction): the
// relay calls it without a per-call deadline, which would cost more than the lookup.
type localLookups interface {
	LocalLookups() bool
}

// failedFilter is implemented by a store that can tell from memory that a device has no
// failed versions (the Redis store keeps such a filter, exact across instances; see
// [github.com/ferryhq/ferry/internal/store.Redis.NoFailedVersions]). The relay asks it
// first, so the great majority of lookups cost neither a round trip nor a deadline.
type failedFilter interface {
	NoFailedVersions(app, device string) bool
}
