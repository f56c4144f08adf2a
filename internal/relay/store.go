package relay

import (
	"context"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
)

// Store is what the relay needs from persistence. internal/store's Bolt (embedded, the
// default) and Redis stores implement it, and its conformance suite (internal/store/storetest)
// checks both against this contract. Errors wrap channel.ErrNotFound, channel.ErrConflict and
// channel.ErrUnavailable where those apply. Every method is safe for concurrent use, and a
// method returns only once what it wrote is durable (fsynced for bbolt; acknowledged by Redis).
type Store interface {
	// PutBundle stores b if (AppID, Version) is new and returns it with created=true. If the
	// same version exists with the same Checksum it returns the stored bundle and
	// created=false (idempotent re-registration). With another Checksum it returns an error
	// wrapping channel.ErrConflict and changes nothing. The store sets CreatedAt on creation
	// and indexes the bundle by Commit. A non-nil audit entry (its App empty or b.AppID; a
	// zero Time set to CreatedAt) is appended in the same transaction as the creation, so a
	// registration is never stored without its audit entry; it is not appended when the
	// bundle already existed or on conflict.
	PutBundle(ctx context.Context, b *channel.Bundle, audit *channel.AuditEntry) (stored *channel.Bundle, created bool, err error)
	// GetBundle returns one bundle or an error wrapping channel.ErrNotFound.
	GetBundle(ctx context.Context, app, version string) (*channel.Bundle, error)
	// GetBundles returns the named bundles of app keyed by version, in one round trip;
	// versions that do not exist are absent from the map.
	GetBundles(ctx context.Context, app string, versions []string) (map[string]*channel.Bundle, error)
	// ListBundles returns up to limit bundles of app, most recently registered first.
	ListBundles(ctx context.Context, app string, limit int) ([]*channel.Bundle, error)
	// BundleByCommit returns the most recently registered bundle of app built from commit,
	// or an error wrapping channel.ErrNotFound.
	BundleByCommit(ctx context.Context, app, commit string) (*channel.Bundle, error)

	// GetState returns a channel's state; a channel never written returns
	// &channel.State{App: app, Channel: ch} and no error.
	GetState(ctx context.Context, app, ch string) (*channel.State, error)
	// ListStates returns every channel state written for app, sorted by channel name.
	ListStates(ctx context.Context, app string) ([]*channel.State, error)
	// UpdateState changes one channel atomically. It loads the state (as GetState), passes a
	// copy to fn, and if fn returns a non-nil audit entry, writes the changed state with Rev
	// incremented and UpdatedAt set, appends the audit entry, and notifies subscribers, all
	// in one transaction. If another writer changed the state meanwhile it reloads and calls
	// fn again. fn returning (nil, nil) writes nothing; fn returning an error writes nothing
	// and UpdateState returns that error. It returns the state as stored afterwards.
	UpdateState(ctx context.Context, app, ch string, fn func(s *channel.State) (*channel.AuditEntry, error)) (*channel.State, error)

	// AppendAudit appends an entry that is not part of a state change or a registration
	// (pending promotions, refused actions worth recording).
	AppendAudit(ctx context.Context, e channel.AuditEntry) error
	// ListAudit returns up to limit audit entries of app, newest first.
	ListAudit(ctx context.Context, app string, limit int) ([]channel.AuditEntry, error)

	// AddPending records a promotion waiting for the bundle of commit. Adding the same
	// (Channel, Ref) again replaces the earlier entry.
	AddPending(ctx context.Context, app, commit string, p channel.Pending) error
	// ListPending returns the promotions waiting for commit, oldest first.
	ListPending(ctx context.Context, app, commit string) ([]channel.Pending, error)
	// DeletePending removes every promotion waiting for commit.
	DeletePending(ctx context.Context, app, commit string) error
	// DeletePendingEntry removes the one promotion of (ch, ref) waiting for commit and
	// leaves the commit's other entries alone, in one atomic step; an entry that does not
	// exist is no error. The control plane deletes only what it applied or cancels, so an
	// entry another instance adds meanwhile survives.
	DeletePendingEntry(ctx context.Context, app, commit, ch, ref string) error

	// SeenDelivery marks a webhook delivery id as processed and reports whether it had been
	// marked before; marks expire after ttl. Marking and testing are one atomic step, so of
	// concurrent callers with one id exactly one sees false. The control plane marks with a
	// short lease first and extends the mark with MarkDelivery once processing succeeded.
	SeenDelivery(ctx context.Context, id string, ttl time.Duration) (seen bool, err error)
	// MarkDelivery sets a delivery id's mark to expire after ttl, unconditionally: it
	// creates the mark if there is none and replaces the expiry of an existing one (longer
	// or shorter). The control plane calls it to extend a lease mark to the full retention
	// once the delivery was processed.
	MarkDelivery(ctx context.Context, id string, ttl time.Duration) error
	// ForgetDelivery removes a delivery id's mark, so a redelivery of a delivery whose
	// processing failed is processed. An id not marked is no error.
	ForgetDelivery(ctx context.Context, id string) error

	// RecordStats counts device events of app per (version, action) and the distinct
	// devices per version. An "update_fail" event also adds its version to that device's
	// failed set (see FailedVersions).
	RecordStats(ctx context.Context, app string, events []channel.StatEvent) error
	// Stats returns the counts per version of app, sorted by version.
	Stats(ctx context.Context, app string) ([]channel.VersionStats, error)
	// FailedVersions returns the versions a device reported update_fail for, in one round trip.
	FailedVersions(ctx context.Context, app, device string) ([]string, error)

	// Subscribe returns a channel that receives an app id whenever that app's channel state
	// changes through any instance sharing the store. It is closed when ctx ends. Delivery
	// is best effort (Redis pub/sub drops messages across reconnects); callers also expire
	// what they cache.
	Subscribe(ctx context.Context) <-chan string
	// Ping reports whether the store is reachable (for /readyz).
	Ping(ctx context.Context) error
	// Close releases the store.
	Close() error
}
