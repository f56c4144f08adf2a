package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/ferryhq/ferry/internal/channel"
)

// Growth bounds and defaults shared by both stores. Each can be changed per store through
// [BoltOptions] and [RedisOptions]; these are the values a zero option means.
const (
	// DefaultAuditLimit is how many audit entries are kept per app; older ones are trimmed
	// on append.
	DefaultAuditLimit = 10000
	// DefaultFailedTTL is how long a device's failed-version set lives after its last
	// update_fail report.
	DefaultFailedTTL = 90 * 24 * time.Hour
	// DefaultMaxFailedDevices is how many devices of one app may have failed-version
	// records at once; recording a failure for one more forgets the device whose last
	// failure is oldest (it may then be offered that version again, fail again and be
	// recorded again). Devices are anonymous, so without a bound made-up device ids would
	// grow the store for 90 days each. A full app takes at most about 16 MiB of the bbolt
	// file and 13 MiB of Redis memory with the longest device ids the relay accepts (128
	// bytes), 8 and 9 MiB with UUIDs (measured; docs/relay.md).
	DefaultMaxFailedDevices = 20000
	// DefaultPendingTTL is how long promotions waiting for a commit's bundle are kept after
	// the last one was added.
	DefaultPendingTTL = 90 * 24 * time.Hour
	// DefaultDeliveryTTL is the lifetime of a webhook delivery mark when SeenDelivery or
	// MarkDelivery is given a ttl <= 0.
	DefaultDeliveryTTL = 72 * time.Hour
	// SubscriberBuffer is the buffer of a channel returned by Subscribe. A subscriber that
	// falls further behind loses notifications (delivery is best effort).
	SubscriberBuffer = 64
	// SchemaVersion is the layout version recorded in a new store and checked on open.
	SchemaVersion = 1
)

// ErrInvalid is wrapped by errors about bad arguments (an empty or malformed app id, a
// bundle without a version). Nothing is changed when it is returned.
var ErrInvalid = errors.New("invalid argument")

// ErrSchema is wrapped when a store was written by an incompatible version of Ferry.
var ErrSchema = errors.New("unsupported store schema")

// Store is the persistence contract of the relay, stated once: [Bolt] (embedded, the
// default) and [Redis] implement it, and the conformance suite
// [github.com/ferryhq/ferry/internal/store/storetest] checks both against it. Its consumers
// (the relay's device side and its control plane) each declare the few methods they call as
// their own interface; cmd/relay hands them one Store, so the compiler checks the fit there.
// Errors wrap channel.ErrNotFound, channel.ErrConflict and channel.ErrUnavailable where
// those apply. Every method is safe for concurrent use, and a method returns only once what
// it wrote is durable (fsynced for bbolt; acknowledged by Redis).
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
	// PageBundles returns up to limit bundles of app in registration order, oldest first,
	// starting after cursor ("" for the first page), and the cursor of the next page, ""
	// when no bundle follows this page. Bundles registered while a caller pages land on a
	// later page and bundles are never removed, so paging from "" until next is "" returns
	// every bundle registered before the first call exactly once, and the pages of one
	// cursor never change. A cursor is opaque: one this store could not have returned
	// (malformed, or past the app's last bundle) also wraps channel.ErrInvalidCursor; a limit below 1 or above
	// [MaxBundlePage], or an invalid app id wraps [ErrInvalid]. An app without bundles
	// has an empty first page.
	PageBundles(ctx context.Context, app, cursor string, limit int) (bundles []*channel.Bundle, next string, err error)
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
	// failed set (see FailedVersions). At most MaxFailedDevices devices (an option of each
	// store, [DefaultMaxFailedDevices]) of one app have failed sets: a failure of one more
	// device deletes the sets of the devices whose last failure is oldest. The store takes
	// versions and actions as given; callers bound them (the relay counts only registered
	// versions and the plugin's actions, see docs/protocol.md §2).
	RecordStats(ctx context.Context, app string, events []channel.StatEvent) error
	// Stats returns the counts per version of app, sorted by version.
	Stats(ctx context.Context, app string) ([]channel.VersionStats, error)
	// FailedVersions returns the versions a device reported update_fail for, in one round trip.
	FailedVersions(ctx context.Context, app, device string) ([]string, error)
	// ClearFailedVersions forgets the versions device reported update_fail for (its failed
	// set and its entry in the bounded failed-devices index), so the relay offers them to
	// it again, and returns the versions it forgot, sorted. A non-nil audit entry (its App
	// empty or app; Device set to device; Before set to the forgotten versions as a JSON
	// array and After to []) is appended in the same atomic step, and only when something
	// was forgotten: clearing a device without failed versions changes and records nothing.
	// An empty or malformed app or device wraps [ErrInvalid].
	ClearFailedVersions(ctx context.Context, app, device string, audit *channel.AuditEntry) (cleared []string, err error)

	// Subscribe returns a channel that receives an app id whenever that app's channel state
	// changes through any instance sharing the store, and [AccessChanged] whenever a token
	// is revoked or a session deleted. It is closed when ctx ends. Delivery
	// is best effort (Redis pub/sub drops messages across reconnects); callers also expire
	// what they cache.
	Subscribe(ctx context.Context) <-chan string
	// Series keeps time-bucketed counters per app, channel, version and metric.
	Series
	// Access keeps API tokens, single sign-on sessions and logins in progress.
	Access
	Lease // one holder of a named task across instances (the rollout controller)
	// AssetLinks shares the signed download URLs of private release assets between
	// instances.
	AssetLinks

	// Ping reports whether the store is reachable (for /readyz).
	Ping(ctx context.Context) error
	// Close releases the store.
	Close() error
}

var (
	_ Store = (*Bolt)(nil)
	_ Store = (*Redis)(nil)
)

// MaxBundlePage is the largest page PageBundles returns.
const MaxBundlePage = 1000

// cursorPrefix starts every bundle cursor, so a cursor is not mistaken for a count.
const cursorPrefix = "r"

// encodeCursor returns the cursor of the page after registration position pos (1 is an
// app's first bundle).
func encodeCursor(pos uint64) string { return cursorPrefix + strconv.FormatUint(pos, 10) }

// pageArgs validates PageBundles' arguments and returns the registration position the page
// starts after (0 for the first page).
func pageArgs(app, cursor string, limit int) (uint64, error) {
	if err := checkApp(app); err != nil {
		return 0, err
	}
	if limit < 1 || limit > MaxBundlePage {
		return 0, fmt.Errorf("page limit %d: want 1 to %d: %w", limit, MaxBundlePage, ErrInvalid)
	}
	if cursor == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(cursor, cursorPrefix), 10, 64)
	if err != nil || n == 0 || encodeCursor(n) != cursor {
		return 0, fmt.Errorf("bundle cursor %q is not one this relay returned: start again without a cursor: %w: %w", cursor, channel.ErrInvalidCursor, ErrInvalid)
	}
	return n, nil
}

// errPastEnd is the error for a well-formed cursor beyond an app's last bundle.
func errPastEnd(app, cursor string) error {
	return fmt.Errorf("bundle cursor %q is past the last bundle of %s: start again without a cursor: %w: %w", cursor, app, channel.ErrInvalidCursor, ErrInvalid)
}

// checkApp validates an app id: not empty, no braces (they delimit Redis hash tags), no
// NUL or other control characters (used as key separators).
func checkApp(app string) error {
	if app == "" {
		return fmt.Errorf("empty app id: %w", ErrInvalid)
	}
	if strings.ContainsAny(app, "{}") || strings.ContainsFunc(app, unicode.IsControl) {
		return fmt.Errorf("app id %q: braces and control characters are not allowed: %w", app, ErrInvalid)
	}
	return nil
}

// checkKey validates another key component (version, channel, commit, device).
func checkKey(what, v string) error {
	if v == "" {
		return fmt.Errorf("empty %s: %w", what, ErrInvalid)
	}
	if strings.ContainsFunc(v, unicode.IsControl) {
		return fmt.Errorf("%s %q: control characters are not allowed: %w", what, v, ErrInvalid)
	}
	return nil
}

func checkBundle(b *channel.Bundle) error {
	if b == nil {
		return fmt.Errorf("nil bundle: %w", ErrInvalid)
	}
	if err := checkApp(b.AppID); err != nil {
		return err
	}
	if err := checkKey("version", b.Version); err != nil {
		return err
	}
	if b.Commit != "" {
		if err := checkKey("commit", b.Commit); err != nil {
			return err
		}
	}
	return nil
}

// encodeNewBundle checks bd and encodes what PutBundle writes when the version is new: the
// bundle stamped with its creation time, and its audit entry (nil ev when audit is nil).
// Both stores share it; each then creates or compares atomically in its own way.
func encodeNewBundle(bd *channel.Bundle, audit *channel.AuditEntry) (nb *channel.Bundle, val, ev []byte, err error) {
	if err := checkBundle(bd); err != nil {
		return nil, nil, nil, err
	}
	b := *bd
	b.CreatedAt = now()
	if val, err = json.Marshal(&b); err != nil {
		return nil, nil, nil, err
	}
	if ev, err = bundleAudit(bd, audit, b.CreatedAt); err != nil {
		return nil, nil, nil, err
	}
	return &b, val, ev, nil
}

// stateChange is what one UpdateState attempt computed from the stored state: the state fn
// produced with its encoding and the encoded audit entry, or, when fn changed nothing
// (val is nil), the state as stored.
type stateChange struct {
	state   *channel.State
	val, ev []byte
}

// applyChange runs fn on the decoded stored state raw (nil when the channel was never
// written), normalises what it produced and encodes it: the part of UpdateState that the
// stores share; each then writes val and ev with its own compare-and-swap.
func applyChange(raw []byte, app, ch, op string, fn func(s *channel.State) (*channel.AuditEntry, error)) (*stateChange, error) {
	work, err := decodeState(raw, app, ch)
	if err != nil {
		return nil, err
	}
	prevRev := work.Rev
	e, err := fn(work)
	if err != nil {
		return nil, err
	}
	if e == nil {
		stored, err := decodeState(raw, app, ch)
		if err != nil {
			return nil, err
		}
		return &stateChange{state: stored}, nil
	}
	t := now()
	prepareState(work, app, ch, prevRev, t)
	entry := *e
	prepareAudit(&entry, app, ch, t)
	val, err := json.Marshal(work)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	ev, err := json.Marshal(&entry)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return &stateChange{state: work, val: val, ev: ev}, nil
}

// prepareState normalises the state fn produced before it is written: identity fields are
// restored, Rev and UpdatedAt set, History bounded by channel.MaxHistory.
func prepareState(s *channel.State, app, ch string, prevRev int64, now time.Time) {
	s.App, s.Channel = app, ch
	s.Rev = prevRev + 1
	s.UpdatedAt = now
	if len(s.History) > channel.MaxHistory {
		s.History = s.History[:channel.MaxHistory]
	}
}

// prepareAudit fills the fields of an audit entry that the caller may leave empty.
func prepareAudit(e *channel.AuditEntry, app, ch string, now time.Time) {
	if e.App == "" {
		e.App = app
	}
	if e.Channel == "" {
		e.Channel = ch
	}
	if e.Time.IsZero() {
		e.Time = now
	}
}

func now() time.Time { return time.Now().UTC() }

// bundleAudit checks and encodes the audit entry PutBundle appends with bd's creation:
// nil for none; its App defaults to bd's and must match it; a zero Time becomes t.
func bundleAudit(bd *channel.Bundle, audit *channel.AuditEntry, t time.Time) ([]byte, error) {
	if audit == nil {
		return nil, nil
	}
	e := *audit
	if e.App != "" && e.App != bd.AppID {
		return nil, fmt.Errorf("audit entry of app %q with a bundle of %q: %w", e.App, bd.AppID, ErrInvalid)
	}
	prepareAudit(&e, bd.AppID, "", t)
	ev, err := json.Marshal(&e)
	if err != nil {
		return nil, fmt.Errorf("encode audit entry: %w", err)
	}
	return ev, nil
}

// clearedAudit checks and encodes the audit entry ClearFailedVersions appends when it forgot
// the versions cleared (sorted) of device: nil for none.
func clearedAudit(app, device string, audit *channel.AuditEntry, cleared []string) ([]byte, error) {
	if audit == nil {
		return nil, nil
	}
	e := *audit
	if e.App != "" && e.App != app {
		return nil, fmt.Errorf("audit entry of app %q for a device of %q: %w", e.App, app, ErrInvalid)
	}
	prepareAudit(&e, app, "", now())
	e.Device = device
	var err error
	if e.Before, err = json.Marshal(cleared); err != nil {
		return nil, fmt.Errorf("encode audit entry: %w", err)
	}
	e.After = json.RawMessage("[]")
	ev, err := json.Marshal(&e)
	if err != nil {
		return nil, fmt.Errorf("encode audit entry: %w", err)
	}
	return ev, nil
}

// sortStats orders stats by version, as the domain orders versions.
func sortStats(st []channel.VersionStats) {
	slices.SortFunc(st, func(a, b channel.VersionStats) int {
		return channel.CompareVersions(a.Version, b.Version)
	})
}

// pendingRecord is how a pending promotion is stored: Seq orders entries of one commit
// (oldest first); a replaced entry takes a new Seq.
type pendingRecord struct {
	Seq     int64           `json:"seq"`
	Pending channel.Pending `json:"pending"`
}

func pendingField(p channel.Pending) string { return p.Channel + "\x00" + p.Ref }
