package store

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/ferryhq/ferry/internal/channel"
)

// BoltOptions configures [OpenBolt]. The zero value gives the documented defaults.
type BoltOptions struct {
	// LockTimeout is how long OpenBolt waits for another process to release the file lock
	// before failing with [ErrLocked]. Default 1s.
	LockTimeout time.Duration
	// AuditLimit is the number of audit entries kept per app. Default [DefaultAuditLimit].
	AuditLimit int
	// FailedTTL is how long a device's failed versions are kept after its last
	// update_fail. Default [DefaultFailedTTL].
	FailedTTL time.Duration
	// PendingTTL is how long a commit's pending promotions are kept after the last was
	// added. Default [DefaultPendingTTL].
	PendingTTL time.Duration
	// MaxFailedDevices bounds the devices of one app with failed-version records; see
	// [Store].RecordStats. Default [DefaultMaxFailedDevices].
	MaxFailedDevices int
	// MaxAssetLinks bounds the asset links kept at once (see [AssetLinks]); storing one
	// more deletes the one that expires first. Default [DefaultMaxAssetLinks].
	MaxAssetLinks int
	// SweepInterval is how often expired delivery marks, failed versions, pending
	// promotions, asset links, sessions and logins are deleted from the file. Default 1h; negative disables sweeping
	// (expired records are still ignored on read).
	SweepInterval time.Duration
	// Logger receives sweep errors. Nil discards.
	Logger *slog.Logger
}

// ErrLocked is wrapped by [OpenBolt] when another process holds the database file.
var ErrLocked = errors.New("database file is locked by another process")

// Bolt is the embedded store: one bbolt file, for a single relay instance. Every write is
// fsynced before it returns. It is safe for concurrent use. Subscribe notifies only
// subscribers of this instance (a bbolt file cannot be shared between processes).
type Bolt struct {
	db   *bolt.DB
	opts BoltOptions
	log  *slog.Logger
	hub  *hub
	// clock is the time the series see (their buckets and retention); tests move it.
	clock func() time.Time
	// leases is the in-process lease table (bolt_lease.go).
	leases leases
	// failed says which devices may have failed versions (bolt_failedset.go).
	failed *failedSet
	// group runs batch's writes (bolt_group.go).
	group *groupCommit

	stop      chan struct{}
	swept     sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Bucket names. The layout is described in doc.go.
var (
	bMeta       = []byte("meta")
	bDeliveries = []byte("deliveries")
	bApps       = []byte("apps")

	bBundles = []byte("bundles")
	bOrder   = []byte("order")
	bCommits = []byte("commits")
	bStates  = []byte("states")
	bAudit   = []byte("audit")
	bPending = []byte("pending")
	bStats   = []byte("stats")
	bFailed  = []byte("failed")
	// bFailedAge indexes the devices with failed versions by expiry (see addFailed); its
	// bucket sequence is their number.
	bFailedAge = []byte("failed_age")

	bActions = []byte("actions")
	bDevices = []byte("devices")

	kSchema  = []byte("schema")
	kDevices = []byte("devices_n")
)

var appBuckets = [][]byte{bBundles, bOrder, bCommits, bStates, bAudit, bPending, bStats, bFailed}

// OpenBolt opens (creating if needed) the bbolt file at path. It fails with an error
// wrapping [ErrLocked] if another process holds the file for longer than
// opts.LockTimeout, and with [ErrSchema] if the file was written with another layout.
// The caller must Close the store.
func OpenBolt(path string, opts BoltOptions) (*Bolt, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	if opts.AuditLimit <= 0 {
		opts.AuditLimit = DefaultAuditLimit
	}
	if opts.FailedTTL <= 0 {
		opts.FailedTTL = DefaultFailedTTL
	}
	if opts.PendingTTL <= 0 {
		opts.PendingTTL = DefaultPendingTTL
	}
	if opts.MaxFailedDevices <= 0 {
		opts.MaxFailedDevices = DefaultMaxFailedDevices
	}
	if opts.MaxAssetLinks <= 0 {
		opts.MaxAssetLinks = DefaultMaxAssetLinks
	}
	if opts.SweepInterval == 0 {
		opts.SweepInterval = time.Hour
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open %s: %w (waited %s)", path, ErrLocked, opts.LockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	failed := &failedSet{}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bMeta)
		if err != nil {
			return err
		}
		want := strconv.Itoa(SchemaVersion)
		switch v := meta.Get(kSchema); {
		case v == nil:
			if err := meta.Put(kSchema, []byte(want)); err != nil {
				return err
			}
		case string(v) != want:
			return fmt.Errorf("file has schema %q, this build reads %q: %w", v, want, ErrSchema)
		}
		for _, name := range [][]byte{bDeliveries, bApps, bTokens, bSessions, bLogins, bAssetLinks, bAssetLinkAge} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return failed.load(tx)
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	b := &Bolt{db: db, opts: opts, log: log, hub: newHub(), clock: now, failed: failed, group: &groupCommit{db: db}, stop: make(chan struct{})}
	if opts.SweepInterval > 0 {
		b.swept.Add(1)
		go b.sweepLoop(opts.SweepInterval)
	}
	return b, nil
}

// Path returns the database file's path.
func (b *Bolt) Path() string { return b.db.Path() }

// Close stops the sweeper, closes every subscription and the file. It is safe to call
// more than once.
func (b *Bolt) Close() error {
	b.closeOnce.Do(func() {
		close(b.stop)
		b.swept.Wait()
		b.hub.close()
		b.closeErr = b.db.Close()
	})
	return b.closeErr
}

// Ping reports an error if the store is closed.
func (b *Bolt) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.db.View(func(tx *bolt.Tx) error { return nil })
}

// Subscribe returns a channel receiving the app id of every state change made through
// this instance, and [AccessChanged] after a token revocation or a session deletion; it
// is closed when ctx ends or the store closes.
func (b *Bolt) Subscribe(ctx context.Context) <-chan string { return b.hub.subscribe(ctx) }

// appBucket returns app's bucket in a read transaction, or nil if the app has none.
func appBucket(tx *bolt.Tx, app string) *bolt.Bucket {
	return tx.Bucket(bApps).Bucket([]byte(app))
}

// appSub returns a sub-bucket of app in a read transaction, or nil.
func appSub(tx *bolt.Tx, app string, name []byte) *bolt.Bucket {
	a := appBucket(tx, app)
	if a == nil {
		return nil
	}
	return a.Bucket(name)
}

// appWrite returns a sub-bucket of app in a write transaction, creating the app.
func appWrite(tx *bolt.Tx, app string, name []byte) (*bolt.Bucket, error) {
	a, err := tx.Bucket(bApps).CreateBucketIfNotExists([]byte(app))
	if err != nil {
		return nil, err
	}
	if a.Bucket(name) == nil {
		for _, n := range appBuckets {
			if _, err := a.CreateBucketIfNotExists(n); err != nil {
				return nil, err
			}
		}
	}
	return a.Bucket(name), nil
}

func u64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func (b *Bolt) view(ctx context.Context, op string, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := b.db.View(fn); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// batch is update for an fn that may run more than once and sets its results afresh on
// every run: concurrent calls share one transaction and its fsyncs (a burst of webhooks
// marking their deliveries, devices reporting stats), and a lone call commits at once
// (groupCommit). fn must not return errNoWrite.
func (b *Bolt) batch(ctx context.Context, op string, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := b.group.do(fn); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// errNoWrite, returned by an update's fn, rolls its transaction back and makes update
// succeed: bbolt commits (and fsyncs, twice) even a transaction that changed nothing, so an
// fn that finds nothing to do returns it instead of nil.
var errNoWrite = errors.New("nothing to write")

// update runs fn in a write transaction; see errNoWrite for an fn that writes nothing.
func (b *Bolt) update(ctx context.Context, op string, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := b.db.Update(fn); err != nil && !errors.Is(err, errNoWrite) {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// PutBundle stores bundle bd unless its version exists and, when it creates it, appends
// audit in the same transaction; see the [Store] contract.
func (b *Bolt) PutBundle(ctx context.Context, bd *channel.Bundle, audit *channel.AuditEntry) (*channel.Bundle, bool, error) {
	nb, val, ev, err := encodeNewBundle(bd, audit)
	if err != nil {
		return nil, false, fmt.Errorf("put bundle: %w", err)
	}
	var existing []byte
	err = b.update(ctx, fmt.Sprintf("put bundle %s@%s", bd.AppID, bd.Version), func(tx *bolt.Tx) error {
		bundles, err := appWrite(tx, bd.AppID, bBundles)
		if err != nil {
			return err
		}
		if cur := bundles.Get([]byte(bd.Version)); cur != nil {
			existing = bytes.Clone(cur)
			return errNoWrite
		}
		if err := bundles.Put([]byte(bd.Version), val); err != nil {
			return err
		}
		order := appSub(tx, bd.AppID, bOrder)
		seq, err := order.NextSequence()
		if err != nil {
			return err
		}
		if err := order.Put(u64(seq), []byte(bd.Version)); err != nil {
			return err
		}
		if bd.Commit != "" {
			if err := appSub(tx, bd.AppID, bCommits).Put([]byte(bd.Commit), []byte(bd.Version)); err != nil {
				return err
			}
		}
		if ev != nil {
			return b.appendAudit(tx, bd.AppID, ev)
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	if existing == nil {
		return nb, true, nil
	}
	return resolveExisting(existing, bd)
}

// resolveExisting decides between idempotent success and conflict for a stored bundle.
func resolveExisting(raw []byte, bd *channel.Bundle) (*channel.Bundle, bool, error) {
	var cur channel.Bundle
	if err := json.Unmarshal(raw, &cur); err != nil {
		return nil, false, fmt.Errorf("decode bundle %s@%s: %w", bd.AppID, bd.Version, err)
	}
	if cur.Checksum != bd.Checksum {
		return nil, false, fmt.Errorf("bundle %s@%s is registered with another checksum: %w", bd.AppID, bd.Version, channel.ErrConflict)
	}
	return &cur, false, nil
}

func decodeBundle(raw []byte) (*channel.Bundle, error) {
	var bd channel.Bundle
	if err := json.Unmarshal(raw, &bd); err != nil {
		return nil, fmt.Errorf("decode bundle: %w", err)
	}
	return &bd, nil
}

// GetBundle returns one bundle or an error wrapping channel.ErrNotFound.
func (b *Bolt) GetBundle(ctx context.Context, app, version string) (*channel.Bundle, error) {
	var bd *channel.Bundle
	op := fmt.Sprintf("get bundle %s@%s", app, version)
	err := b.view(ctx, op, func(tx *bolt.Tx) error {
		bundles := appSub(tx, app, bBundles)
		if bundles == nil {
			return channel.ErrNotFound
		}
		raw := bundles.Get([]byte(version))
		if raw == nil {
			return channel.ErrNotFound
		}
		var err error
		bd, err = decodeBundle(raw)
		return err
	})
	return bd, err
}

// GetBundles returns the named bundles of app that exist, keyed by version.
func (b *Bolt) GetBundles(ctx context.Context, app string, versions []string) (map[string]*channel.Bundle, error) {
	out := make(map[string]*channel.Bundle, len(versions))
	err := b.view(ctx, "get bundles of "+app, func(tx *bolt.Tx) error {
		bundles := appSub(tx, app, bBundles)
		if bundles == nil {
			return nil
		}
		for _, v := range versions {
			if v == "" {
				continue
			}
			raw := bundles.Get([]byte(v))
			if raw == nil {
				continue
			}
			bd, err := decodeBundle(raw)
			if err != nil {
				return err
			}
			out[v] = bd
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListBundles returns up to limit bundles of app, most recently registered first; limit
// <= 0 means all.
func (b *Bolt) ListBundles(ctx context.Context, app string, limit int) ([]*channel.Bundle, error) {
	var out []*channel.Bundle
	err := b.view(ctx, "list bundles of "+app, func(tx *bolt.Tx) error {
		a := appBucket(tx, app)
		if a == nil {
			return nil
		}
		bundles := a.Bucket(bBundles)
		c := a.Bucket(bOrder).Cursor()
		for k, v := c.Last(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
			bd, err := decodeBundle(bundles.Get(v))
			if err != nil {
				return err
			}
			out = append(out, bd)
		}
		return nil
	})
	return out, err
}

// PageBundles returns a page of app's bundles, oldest first; see the [Store] contract. The
// cursor is the order bucket's sequence number of the page's last bundle.
func (b *Bolt) PageBundles(ctx context.Context, app, cursor string, limit int) ([]*channel.Bundle, string, error) {
	after, err := pageArgs(app, cursor, limit)
	if err != nil {
		return nil, "", fmt.Errorf("page bundles: %w", err)
	}
	out := []*channel.Bundle{}
	var next string
	err = b.view(ctx, "page bundles of "+app, func(tx *bolt.Tx) error {
		a := appBucket(tx, app)
		if a == nil {
			return nil
		}
		bundles := a.Bucket(bBundles)
		c := a.Bucket(bOrder).Cursor()
		var last []byte
		for k, v := c.Seek(u64(after + 1)); k != nil; k, v = c.Next() {
			if len(out) == limit {
				next = encodeCursor(binary.BigEndian.Uint64(last))
				break
			}
			bd, err := decodeBundle(bundles.Get(v))
			if err != nil {
				return err
			}
			out, last = append(out, bd), k
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	if len(out) == 0 && after > 0 {
		return nil, "", errPastEnd(app, cursor)
	}
	return out, next, nil
}

// BundleByCommit returns the newest bundle of app built from commit.
func (b *Bolt) BundleByCommit(ctx context.Context, app, commit string) (*channel.Bundle, error) {
	var bd *channel.Bundle
	err := b.view(ctx, fmt.Sprintf("bundle of %s commit %s", app, commit), func(tx *bolt.Tx) error {
		a := appBucket(tx, app)
		if a == nil || commit == "" {
			return channel.ErrNotFound
		}
		v := a.Bucket(bCommits).Get([]byte(commit))
		if v == nil {
			return channel.ErrNotFound
		}
		var err error
		bd, err = decodeBundle(a.Bucket(bBundles).Get(v))
		return err
	})
	return bd, err
}

// decodeState decodes a stored state, or returns the default state when raw is nil.
func decodeState(raw []byte, app, ch string) (*channel.State, error) {
	s := &channel.State{App: app, Channel: ch}
	if raw == nil {
		return s, nil
	}
	if err := json.Unmarshal(raw, s); err != nil {
		return nil, fmt.Errorf("decode state %s/%s: %w", app, ch, err)
	}
	return s, nil
}

// GetState returns a channel's state, the default state if it was never written.
func (b *Bolt) GetState(ctx context.Context, app, ch string) (*channel.State, error) {
	var s *channel.State
	err := b.view(ctx, fmt.Sprintf("get state %s/%s", app, ch), func(tx *bolt.Tx) error {
		var raw []byte
		if states := appSub(tx, app, bStates); states != nil && ch != "" {
			raw = states.Get([]byte(ch))
		}
		var err error
		s, err = decodeState(raw, app, ch)
		return err
	})
	return s, err
}

// ListStates returns every written channel state of app, sorted by channel name.
func (b *Bolt) ListStates(ctx context.Context, app string) ([]*channel.State, error) {
	var out []*channel.State
	err := b.view(ctx, "list states of "+app, func(tx *bolt.Tx) error {
		states := appSub(tx, app, bStates)
		if states == nil {
			return nil
		}
		return states.ForEach(func(k, v []byte) error {
			s, err := decodeState(v, app, string(k))
			if err != nil {
				return err
			}
			out = append(out, s)
			return nil
		})
	})
	return out, err
}

// UpdateState changes one channel atomically; see the [Store] contract. fn runs
// outside any transaction, so it may call the store; it is called again if another writer
// changed the channel in between.
func (b *Bolt) UpdateState(ctx context.Context, app, ch string, fn func(s *channel.State) (*channel.AuditEntry, error)) (*channel.State, error) {
	if err := checkApp(app); err != nil {
		return nil, fmt.Errorf("update state: %w", err)
	}
	if err := checkKey("channel", ch); err != nil {
		return nil, fmt.Errorf("update state: %w", err)
	}
	op := fmt.Sprintf("update state %s/%s", app, ch)
	for {
		var raw []byte
		err := b.view(ctx, op, func(tx *bolt.Tx) error {
			if states := appSub(tx, app, bStates); states != nil {
				raw = bytes.Clone(states.Get([]byte(ch)))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		c, err := applyChange(raw, app, ch, op, fn)
		if err != nil {
			return nil, err
		}
		if c.val == nil {
			return c.state, nil
		}
		val, ev := c.val, c.ev
		stale := false
		err = b.update(ctx, op, func(tx *bolt.Tx) error {
			states, err := appWrite(tx, app, bStates)
			if err != nil {
				return err
			}
			if !bytes.Equal(states.Get([]byte(ch)), raw) {
				stale = true
				return errNoWrite
			}
			if err := states.Put([]byte(ch), val); err != nil {
				return err
			}
			return b.appendAudit(tx, app, ev)
		})
		if err != nil {
			return nil, err
		}
		if stale {
			continue
		}
		b.hub.publish(app)
		return c.state, nil
	}
}

// appendAudit appends an encoded entry and trims the app's log to AuditLimit entries.
func (b *Bolt) appendAudit(tx *bolt.Tx, app string, ev []byte) error {
	audit, err := appWrite(tx, app, bAudit)
	if err != nil {
		return err
	}
	seq, err := audit.NextSequence()
	if err != nil {
		return err
	}
	if err := audit.Put(u64(seq), ev); err != nil {
		return err
	}
	if seq <= uint64(b.opts.AuditLimit) {
		return nil
	}
	cut := u64(seq - uint64(b.opts.AuditLimit))
	c := audit.Cursor()
	for k, _ := c.First(); k != nil && bytes.Compare(k, cut) <= 0; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// AppendAudit appends an entry that is not part of a state change. e.App is required;
// a zero Time is set to now.
func (b *Bolt) AppendAudit(ctx context.Context, e channel.AuditEntry) error {
	if err := checkApp(e.App); err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	prepareAudit(&e, e.App, "", now())
	ev, err := json.Marshal(&e)
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return b.update(ctx, "append audit of "+e.App, func(tx *bolt.Tx) error {
		return b.appendAudit(tx, e.App, ev)
	})
}

// ListAudit returns up to limit audit entries of app, newest first; limit <= 0 means all
// that are kept.
func (b *Bolt) ListAudit(ctx context.Context, app string, limit int) ([]channel.AuditEntry, error) {
	var out []channel.AuditEntry
	err := b.view(ctx, "list audit of "+app, func(tx *bolt.Tx) error {
		audit := appSub(tx, app, bAudit)
		if audit == nil {
			return nil
		}
		c := audit.Cursor()
		for k, v := c.Last(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
			var e channel.AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decode audit entry: %w", err)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// boltPending is a pending record with its expiry.
type boltPending struct {
	pendingRecord
	Expires time.Time `json:"expires"`
}

func pendingPrefix(commit string) []byte { return []byte(commit + "\x00") }

// AddPending records a promotion waiting for the bundle of commit, replacing an earlier
// one for the same (Channel, Ref), and extends the commit's expiry to PendingTTL.
func (b *Bolt) AddPending(ctx context.Context, app, commit string, p channel.Pending) error {
	if err := checkApp(app); err != nil {
		return fmt.Errorf("add pending: %w", err)
	}
	if err := checkKey("commit", commit); err != nil {
		return fmt.Errorf("add pending: %w", err)
	}
	return b.update(ctx, fmt.Sprintf("add pending %s@%s", app, commit), func(tx *bolt.Tx) error {
		pb, err := appWrite(tx, app, bPending)
		if err != nil {
			return err
		}
		seq, err := pb.NextSequence()
		if err != nil {
			return err
		}
		exp := now().Add(b.opts.PendingTTL)
		prefix := pendingPrefix(commit)
		// Extend the expiry of the commit's other entries, as Redis does with EXPIRE.
		c := pb.Cursor()
		var keys, vals [][]byte
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var r boltPending
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode pending: %w", err)
			}
			r.Expires = exp
			nv, err := json.Marshal(&r)
			if err != nil {
				return err
			}
			keys, vals = append(keys, bytes.Clone(k)), append(vals, nv)
		}
		for i := range keys {
			if err := pb.Put(keys[i], vals[i]); err != nil {
				return err
			}
		}
		val, err := json.Marshal(&boltPending{pendingRecord{Seq: int64(seq), Pending: p}, exp})
		if err != nil {
			return err
		}
		return pb.Put(append(prefix, pendingField(p)...), val)
	})
}

// ListPending returns the promotions waiting for commit, oldest first.
func (b *Bolt) ListPending(ctx context.Context, app, commit string) ([]channel.Pending, error) {
	var recs []boltPending
	t := now()
	err := b.view(ctx, fmt.Sprintf("list pending %s@%s", app, commit), func(tx *bolt.Tx) error {
		pb := appSub(tx, app, bPending)
		if pb == nil || commit == "" {
			return nil
		}
		prefix := pendingPrefix(commit)
		c := pb.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var r boltPending
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode pending: %w", err)
			}
			if r.Expires.After(t) {
				recs = append(recs, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(recs, func(a, b boltPending) int { return cmp.Compare(a.Seq, b.Seq) })
	out := make([]channel.Pending, len(recs))
	for i, r := range recs {
		out[i] = r.Pending
	}
	return out, nil
}

func expiry(t time.Time) []byte { return u64(uint64(t.UnixNano())) }

func expired(v []byte, t time.Time) bool {
	return len(v) != 8 || int64(binary.BigEndian.Uint64(v)) <= t.UnixNano()
}

// ForgetDelivery removes a delivery id's mark; an id not marked is no error.
func (b *Bolt) ForgetDelivery(ctx context.Context, id string) error {
	if err := checkKey("delivery id", id); err != nil {
		return fmt.Errorf("forget delivery: %w", err)
	}
	return b.batch(ctx, "forget delivery "+id, func(tx *bolt.Tx) error {
		return tx.Bucket(bDeliveries).Delete([]byte(id))
	})
}

// SeenDelivery marks a delivery id and reports whether it was already marked and not
// expired. ttl <= 0 means [DefaultDeliveryTTL].
func (b *Bolt) SeenDelivery(ctx context.Context, id string, ttl time.Duration) (bool, error) {
	if err := checkKey("delivery id", id); err != nil {
		return false, fmt.Errorf("seen delivery: %w", err)
	}
	if ttl <= 0 {
		ttl = DefaultDeliveryTTL
	}
	seen := false
	err := b.batch(ctx, "mark delivery "+id, func(tx *bolt.Tx) error {
		d := tx.Bucket(bDeliveries)
		t := now()
		seen = false
		if v := d.Get([]byte(id)); v != nil && !expired(v, t) {
			seen = true
			return nil
		}
		return d.Put([]byte(id), expiry(t.Add(ttl)))
	})
	return seen, err
}

// MarkDelivery sets a delivery id's mark to expire after ttl, replacing any expiry it had,
// so a lease mark made by SeenDelivery is extended. ttl <= 0 means [DefaultDeliveryTTL].
func (b *Bolt) MarkDelivery(ctx context.Context, id string, ttl time.Duration) error {
	if err := checkKey("delivery id", id); err != nil {
		return fmt.Errorf("mark delivery: %w", err)
	}
	if ttl <= 0 {
		ttl = DefaultDeliveryTTL
	}
	return b.batch(ctx, "extend delivery mark "+id, func(tx *bolt.Tx) error {
		return tx.Bucket(bDeliveries).Put([]byte(id), expiry(now().Add(ttl)))
	})
}

// RecordStats counts events per (version, action) and distinct devices per version, and
// adds update_fail versions to the device's failed set. Events without a version are
// ignored; events without a device are counted but not as a distinct device. Distinct
// devices are a HyperLogLog estimate in a fixed 16 KiB value per version (see hllAdd), so
// posting ever new device ids does not grow the file. A version bucket written by an older
// release (one devices/<device> key per device) is folded into the registers and its
// devices bucket deleted the first time a device event of that version is recorded. At
// most MaxFailedDevices devices keep failed sets (see addFailed).
func (b *Bolt) RecordStats(ctx context.Context, app string, events []channel.StatEvent) error {
	if err := checkApp(app); err != nil {
		return fmt.Errorf("record stats: %w", err)
	}
	if len(events) == 0 {
		return nil
	}
	// A batch: fn has no effect outside the transaction but for evicted, which each run
	// sets afresh.
	evicted := 0
	err := b.batch(ctx, "record stats of "+app, func(tx *bolt.Tx) error {
		evicted = 0
		stats, err := appWrite(tx, app, bStats)
		if err != nil {
			return err
		}
		a := appBucket(tx, app)
		t := now()
		regs := map[string][]byte{} // version -> registers changed in this transaction
		for _, e := range events {
			if e.Version == "" {
				continue
			}
			vb, err := stats.CreateBucketIfNotExists([]byte(e.Version))
			if err != nil {
				return err
			}
			actions, err := vb.CreateBucketIfNotExists(bActions)
			if err != nil {
				return err
			}
			n := uint64(0)
			if e.Action == "" {
				// bbolt keys cannot be empty; count an empty action under "unknown".
				e.Action = "unknown"
			}
			if v := actions.Get([]byte(e.Action)); len(v) == 8 {
				n = binary.BigEndian.Uint64(v)
			}
			if err := actions.Put([]byte(e.Action), u64(n+1)); err != nil {
				return err
			}
			if e.Device == "" {
				continue
			}
			r, ok := regs[e.Version]
			if !ok {
				if r, err = loadRegisters(vb); err != nil {
					return err
				}
				regs[e.Version] = r
			}
			hllAdd(r, e.Device)
			if e.Action == "update_fail" {
				b.failed.add(app, e.Device) // before the commit: see failedSet
				n, err := b.addFailed(a, e.Device, e.Version, t)
				if err != nil {
					return err
				}
				evicted += n
			}
		}
		for v, r := range regs {
			if err := stats.Bucket([]byte(v)).Put(kHLL, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if evicted > 0 {
		b.log.Warn("failed-version records of the oldest devices forgotten: the app reached its bound",
			"app", app, "devices", evicted, "max_failed_devices", b.opts.MaxFailedDevices)
	}
	return nil
}

// loadRegisters returns a writable copy of vb's HyperLogLog registers (zero if none),
// folding in and deleting the per-device keys an older release kept.
func loadRegisters(vb *bolt.Bucket) ([]byte, error) {
	r := make([]byte, hllRegisters)
	if v := vb.Get(kHLL); len(v) == hllRegisters {
		copy(r, v) // v is only valid in the transaction and must not be modified
	}
	if old := vb.Bucket(bDevices); old != nil {
		if err := old.ForEach(func(k, _ []byte) error {
			hllAdd(r, string(k))
			return nil
		}); err != nil {
			return nil, err
		}
		if err := vb.DeleteBucket(bDevices); err != nil {
			return nil, err
		}
		if err := vb.Delete(kDevices); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// addFailed adds version to device's failed set in the app bucket a and extends the whole
// set's expiry. Each device with failed versions has one entry <expiry><device> in
// failed_age, so the devices are ordered by their last failure and counted (the bucket's
// sequence); when one more device would exceed MaxFailedDevices, the sets of the devices
// whose last failure is oldest are deleted. It returns how many devices it evicted.
func (b *Bolt) addFailed(a *bolt.Bucket, device, version string, t time.Time) (int, error) {
	failed, err := a.CreateBucketIfNotExists(bFailed)
	if err != nil {
		return 0, err
	}
	age, err := failedIndex(a, failed)
	if err != nil {
		return 0, err
	}
	exp := expiry(t.Add(b.opts.FailedTTL))
	prefix := []byte(device + "\x00")
	c := failed.Cursor()
	var keys [][]byte
	var prev []byte // the set's expiry before this failure
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		keys = append(keys, bytes.Clone(k))
		if prev == nil {
			prev = bytes.Clone(v)
		}
	}
	keys = append(keys, append(prefix, version...))
	for _, k := range keys {
		if err := failed.Put(k, exp); err != nil {
			return 0, err
		}
	}
	n := age.Sequence()
	if prev != nil && age.Get(ageKey(prev, device)) != nil {
		if err := age.Delete(ageKey(prev, device)); err != nil {
			return 0, err
		}
	} else {
		n++
	}
	if err := age.Put(ageKey(exp, device), nil); err != nil {
		return 0, err
	}
	evicted := 0
	for ; n > uint64(b.opts.MaxFailedDevices); n-- {
		k, _ := age.Cursor().First()
		if k == nil {
			n = 0
			break
		}
		if _, err := deleteFailedDevice(failed, age, k, nil); err != nil {
			return 0, err
		}
		evicted++
	}
	return evicted, age.SetSequence(n)
}

func ageKey(exp []byte, device string) []byte { return append(bytes.Clone(exp), device...) }

// failedIndex returns the app's failed_age bucket, building it from failed the first time
// (a file written by an older release has failed sets but no index).
func failedIndex(a, failed *bolt.Bucket) (*bolt.Bucket, error) {
	if age := a.Bucket(bFailedAge); age != nil {
		return age, nil
	}
	age, err := a.CreateBucket(bFailedAge)
	if err != nil {
		return nil, err
	}
	// Keys sort by device first (\x00 is the smallest byte), and one device's versions
	// share one expiry: index each device once, with the expiry of its first key.
	n := uint64(0)
	var last []byte
	err = failed.ForEach(func(k, v []byte) error {
		i := bytes.IndexByte(k, 0)
		if i < 0 || len(v) != 8 || bytes.Equal(k[:i], last) {
			return nil
		}
		last = bytes.Clone(k[:i])
		n++
		return age.Put(ageKey(v, string(last)), nil)
	})
	if err != nil {
		return nil, err
	}
	return age, age.SetSequence(n)
}

// deleteFailedDevice deletes the failed_age entry k (<expiry><device>) and the device's
// failed versions (with at set, only those expired at that time), and returns how many
// versions it deleted.
func deleteFailedDevice(failed, age *bolt.Bucket, k []byte, at *time.Time) (int, error) {
	prefix := append(bytes.Clone(k[8:]), 0)
	if err := age.Delete(k); err != nil {
		return 0, err
	}
	deleted := 0
	c := failed.Cursor()
	for fk, v := c.Seek(prefix); fk != nil && bytes.HasPrefix(fk, prefix); {
		if at != nil && !expired(v, *at) {
			fk, v = c.Next()
			continue
		}
		if err := c.Delete(); err != nil {
			return 0, err
		}
		deleted++
		fk, v = c.Seek(prefix)
	}
	return deleted, nil
}

// Stats returns the counts per version of app, sorted by version. Devices is the
// HyperLogLog estimate of distinct devices (about 0.8 % standard error).
func (b *Bolt) Stats(ctx context.Context, app string) ([]channel.VersionStats, error) {
	var out []channel.VersionStats
	err := b.view(ctx, "stats of "+app, func(tx *bolt.Tx) error {
		stats := appSub(tx, app, bStats)
		if stats == nil {
			return nil
		}
		return stats.ForEachBucket(func(k []byte) error {
			vb := stats.Bucket(k)
			vs := channel.VersionStats{Version: string(k), Actions: map[string]int64{}}
			if actions := vb.Bucket(bActions); actions != nil {
				if err := actions.ForEach(func(a, n []byte) error {
					vs.Actions[string(a)] = int64(binary.BigEndian.Uint64(n))
					return nil
				}); err != nil {
					return err
				}
			}
			if v := vb.Get(kHLL); v != nil {
				vs.Devices = hllCount(v)
			} else if v := vb.Get(kDevices); len(v) == 8 {
				// Exact count of an older release, until the version's next device event.
				vs.Devices = int64(binary.BigEndian.Uint64(v))
			}
			out = append(out, vs)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	sortStats(out)
	return out, nil
}

// FailedVersions returns the versions device reported update_fail for, sorted.
func (b *Bolt) FailedVersions(ctx context.Context, app, device string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("failed versions of %s device %s: %w", app, device, err)
	}
	if !b.failed.mayHave(app, device) {
		return nil, nil
	}
	var out []string
	t := now()
	err := b.view(ctx, fmt.Sprintf("failed versions of %s device %s", app, device), func(tx *bolt.Tx) error {
		failed := appSub(tx, app, bFailed)
		if failed == nil || device == "" {
			return nil
		}
		prefix := []byte(device + "\x00")
		c := failed.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if !expired(v, t) {
				out = append(out, string(k[len(prefix):]))
			}
		}
		return nil
	})
	return out, err
}

// ClearFailedVersions forgets device's failed versions and its failed_age entry, and
// appends audit when it forgot any, in one write transaction; see the [Store] contract.
func (b *Bolt) ClearFailedVersions(ctx context.Context, app, device string, audit *channel.AuditEntry) ([]string, error) {
	if err := checkApp(app); err != nil {
		return nil, fmt.Errorf("clear failed versions: %w", err)
	}
	if err := checkKey("device", device); err != nil {
		return nil, fmt.Errorf("clear failed versions: %w", err)
	}
	var cleared []string
	err := b.update(ctx, fmt.Sprintf("clear failed versions of %s device %s", app, device), func(tx *bolt.Tx) error {
		cleared = nil
		a := appBucket(tx, app)
		if a == nil || a.Bucket(bFailed) == nil {
			return errNoWrite
		}
		failed := a.Bucket(bFailed)
		t := now()
		prefix := []byte(device + "\x00")
		var exp []byte // the set's expiry, which its failed_age entry is keyed by
		c := failed.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Seek(prefix) {
			if exp == nil {
				exp = bytes.Clone(v)
			}
			if !expired(v, t) {
				cleared = append(cleared, string(k[len(prefix):]))
			}
			if err := c.Delete(); err != nil {
				return err
			}
		}
		if exp == nil {
			return errNoWrite
		}
		if age := a.Bucket(bFailedAge); age != nil && age.Get(ageKey(exp, device)) != nil {
			if err := age.Delete(ageKey(exp, device)); err != nil {
				return err
			}
			if n := age.Sequence(); n > 0 {
				if err := age.SetSequence(n - 1); err != nil {
					return err
				}
			}
		}
		if len(cleared) == 0 {
			return nil
		}
		ev, err := clearedAudit(app, device, audit, cleared)
		if err != nil || ev == nil {
			return err
		}
		return b.appendAudit(tx, app, ev)
	})
	if err != nil {
		return nil, err
	}
	return cleared, nil
}

func (b *Bolt) sweepLoop(every time.Duration) {
	defer b.swept.Done()
	tk := time.NewTicker(every)
	defer tk.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-tk.C:
			if n, err := b.sweep(); err != nil {
				b.log.Error("sweep expired records", "error", err)
			} else if n > 0 {
				b.log.Debug("swept expired records", "deleted", n)
			}
		}
	}
}

// sweep deletes expired delivery marks, sessions, logins, asset links, failed versions and
// pending promotions, and returns how many records it deleted.
func (b *Bolt) sweep() (int, error) {
	deleted := 0
	t := now()
	err := b.db.Update(func(tx *bolt.Tx) error {
		del := func(bk *bolt.Bucket, isExpired func(v []byte) bool) error {
			c := bk.Cursor()
			for k, v := c.First(); k != nil; {
				if v != nil && isExpired(v) {
					next := bytes.Clone(k)
					if err := c.Delete(); err != nil {
						return err
					}
					deleted++
					k, v = c.Seek(next)
					continue
				}
				k, v = c.Next()
			}
			return nil
		}
		if err := del(tx.Bucket(bDeliveries), func(v []byte) bool { return expired(v, t) }); err != nil {
			return err
		}
		for _, name := range [][]byte{bSessions, bLogins} {
			if err := del(tx.Bucket(name), func(v []byte) bool { return expiringExpired(v, t) }); err != nil {
				return err
			}
		}
		n, err := sweepAssetLinks(tx, t)
		deleted += n
		if err != nil {
			return err
		}
		err = tx.Bucket(bApps).ForEachBucket(func(app []byte) error {
			a := tx.Bucket(bApps).Bucket(app)
			if f, age := a.Bucket(bFailed), a.Bucket(bFailedAge); f != nil && age != nil {
				// Devices whose last failure expired, oldest first.
				n := age.Sequence()
				for k, _ := age.Cursor().First(); k != nil && expired(k[:8], t); k, _ = age.Cursor().First() {
					d, err := deleteFailedDevice(f, age, k, &t)
					if err != nil {
						return err
					}
					if n > 0 {
						n--
					}
					deleted += d
				}
				if err := age.SetSequence(n); err != nil {
					return err
				}
			}
			if f := a.Bucket(bFailed); f != nil {
				if err := del(f, func(v []byte) bool { return expired(v, t) }); err != nil {
					return err
				}
			}
			if p := a.Bucket(bPending); p != nil {
				return del(p, func(v []byte) bool {
					var r boltPending
					return json.Unmarshal(v, &r) == nil && !r.Expires.After(t)
				})
			}
			return nil
		})
		if err != nil {
			return err
		}
		// Under the writer lock: trims devices cleared, evicted or expired since the
		// last sweep (see failedSet).
		return b.failed.load(tx)
	})
	return deleted, err
}
