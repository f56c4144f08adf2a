package store

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/redact"
)

// ChangesChannel is the Redis pub/sub channel on which every state change publishes its
// app id, and every token revocation and session deletion [AccessChanged].
const ChangesChannel = "ferry:changes"

// RedisOptions configures [OpenRedis]. The zero value gives the documented defaults.
// Non-zero timeouts and sizes here override the same options given in the URL.
type RedisOptions struct {
	// DialTimeout bounds connecting; default 2s.
	DialTimeout time.Duration
	// ReadTimeout and WriteTimeout bound each command; default 2s each.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// MaxRetries is how often go-redis retries a command after a network error; default 1,
	// negative for none.
	MaxRetries int
	// PoolSize is the connection pool size per node; default go-redis's (10 per CPU).
	PoolSize int
	// TLSConfig, if set, replaces the TLS configuration of a rediss URL (for a private
	// CA or client certificates).
	TLSConfig *tls.Config
	// AuditLimit is the number of audit entries kept per app. Default [DefaultAuditLimit].
	AuditLimit int
	// FailedTTL is how long a device's failed versions are kept after its last
	// update_fail. Default [DefaultFailedTTL].
	FailedTTL time.Duration
	// PendingTTL is how long a commit's pending promotions are kept after the last was
	// added. Default [DefaultPendingTTL].
	PendingTTL time.Duration
	// MaxFailedDevices bounds the devices of one app with failed-version sets; see
	// [Store].RecordStats. Default [DefaultMaxFailedDevices].
	MaxFailedDevices int
	// NoFailedFilter makes every FailedVersions call ask Redis, instead of answering
	// devices that never reported a failure from memory (see [FailuresChannel]).
	NoFailedFilter bool
	// Lazy skips the connection check in OpenRedis, for a relay that must start while
	// Redis is down (its /readyz then reports the store unreachable).
	Lazy bool
	// Logger receives subscription errors. Nil discards.
	Logger *slog.Logger
}

// Redis is the store shared by any number of relay instances through one Redis server,
// Sentinel-managed master or Cluster (go-redis UniversalClient). It is safe for concurrent
// use. Every key of an app carries the hash tag {<app>}, so the scripts and transactions
// that touch several of them run in one Cluster slot.
type Redis struct {
	rdb  redis.UniversalClient
	sets *setBatcher // FailedVersions' reads, pipelined together
	// failed lets FailedVersions skip devices without failures (redis_failedset.go); nil
	// when RedisOptions.NoFailedFilter is set.
	failed *redisFailedSet
	opts   RedisOptions
	log    *slog.Logger
	// clock is the time the series see (their buckets and retention); tests move it.
	clock func() time.Time

	done      chan struct{} // closed by Close; ends subscriptions
	closeOnce sync.Once
	closeErr  error
}

// OpenRedis connects to the Redis named by rawURL (forms below), checks it answers
// (unless opts.Lazy) and records or checks the schema version. Errors from an unreachable
// server wrap channel.ErrUnavailable; a malformed URL wraps [ErrInvalid]. The caller must
// Close the store.
//
// URL forms:
//
//	redis://[user:pass@]host[:6379][/db][?options]             one server; rediss:// for TLS
//	redis-sentinel://[user:pass@]s1[:26379],s2/<master>[/db][?options]
//	                                                           Sentinel; rediss-sentinel:// for TLS
//	redis-cluster://[user:pass@]n1[:6379],n2,n3[?options]      Cluster; rediss-cluster:// for TLS
//
// In Sentinel URLs the user info holds the master's credentials, and the options
// sentinel_username and sentinel_password the Sentinels'. go-redis's own forms also work:
// redis://s1:26379?master_name=m&addr=s2:26379 (Sentinel; there the user info is the
// Sentinels' and username/password options the master's) and
// redis://n1:6379?addr=n2:6379&addr=n3:6379 (Cluster). Options are go-redis's URL options
// (dial_timeout=3s, read_timeout, write_timeout, pool_size, max_retries, client_name,
// protocol, skip_verify, …); an unknown option is an error.
func OpenRedis(ctx context.Context, rawURL string, opts RedisOptions) (*Redis, error) {
	uo, err := parseRedisURL(rawURL)
	if err != nil {
		return nil, err
	}
	applyRedisOptions(uo, opts)
	return newRedis(ctx, redis.NewUniversalClient(uo), opts, redact.Passwords(rawURL))
}

func applyRedisOptions(uo *redis.UniversalOptions, opts RedisOptions) {
	pick := func(opt, url, def time.Duration) time.Duration {
		switch {
		case opt != 0:
			return opt
		case url != 0:
			return url
		}
		return def
	}
	uo.DialTimeout = pick(opts.DialTimeout, uo.DialTimeout, 2*time.Second)
	uo.ReadTimeout = pick(opts.ReadTimeout, uo.ReadTimeout, 2*time.Second)
	uo.WriteTimeout = pick(opts.WriteTimeout, uo.WriteTimeout, 2*time.Second)
	uo.PoolTimeout = pick(0, uo.PoolTimeout, uo.ReadTimeout+time.Second)
	switch {
	case opts.MaxRetries != 0:
		uo.MaxRetries = opts.MaxRetries
	case uo.MaxRetries == 0:
		uo.MaxRetries = 1
	}
	if uo.DialerRetries == 0 {
		uo.DialerRetries = 2
	}
	if opts.PoolSize > 0 {
		uo.PoolSize = opts.PoolSize
	}
	if opts.TLSConfig != nil {
		uo.TLSConfig = opts.TLSConfig
	}
}

func newRedis(ctx context.Context, rdb redis.UniversalClient, opts RedisOptions, name string) (*Redis, error) {
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
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Redis{rdb: rdb, opts: opts, log: log, clock: now, done: make(chan struct{})}
	r.sets = newSetBatcher(rdb, r.done)
	if !opts.NoFailedFilter {
		r.failed = newRedisFailedSet(rdb, 2*opts.MaxFailedDevices)
		go r.failed.run(r.done)
	}
	if opts.Lazy {
		return r, nil
	}
	if err := r.checkSchema(ctx); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("open redis %s: %w", name, err)
	}
	return r, nil
}

const schemaKey = "ferry:schema"

func (r *Redis) checkSchema(ctx context.Context) error {
	want := strconv.Itoa(SchemaVersion)
	if _, err := r.rdb.SetNX(ctx, schemaKey, want, 0).Result(); err != nil {
		return r.fail(ctx, "record schema", err)
	}
	got, err := r.rdb.Get(ctx, schemaKey).Result()
	if err != nil {
		return r.fail(ctx, "read schema", err)
	}
	if got != want {
		return fmt.Errorf("redis holds schema %q, this build reads %q: %w", got, want, ErrSchema)
	}
	return nil
}

// Client returns the underlying go-redis client (for the relay's rate limiter, which
// shares the connection pool). The store still owns it: Close closes it.
func (r *Redis) Client() redis.UniversalClient { return r.rdb }

// Close closes the client. It is safe to call more than once.
func (r *Redis) Close() error {
	r.closeOnce.Do(func() {
		close(r.done)
		r.closeErr = r.rdb.Close()
	})
	return r.closeErr
}

// Ping reports whether Redis answers; the error wraps channel.ErrUnavailable.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.rdb.Ping(ctx).Err(); err != nil {
		return r.fail(ctx, "ping", err)
	}
	return nil
}

// transient Redis error replies: the server is there but cannot serve now. OOM is a
// write refused under maxmemory with maxmemory-policy noeviction: nothing was stored, and
// a retry may succeed once memory is freed.
var transientReplies = []string{"LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "NOREPLICAS", "NOAUTH", "OOM"}

// fail wraps err with op, adding channel.ErrUnavailable when Redis could not be reached
// or cannot serve now. A cancelled caller ctx is not unavailability.
func (r *Redis) fail(ctx context.Context, op string, err error) error {
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	var re redis.Error
	if errors.As(err, &re) && !errors.Is(err, redis.ErrClosed) {
		msg := strings.TrimPrefix(re.Error(), "ERR ")
		for _, p := range transientReplies {
			if strings.HasPrefix(msg, p) {
				return fmt.Errorf("%s: %w: %w", op, channel.ErrUnavailable, err)
			}
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s: %w: %w", op, channel.ErrUnavailable, err)
}

// queuedError returns, for a MULTI/EXEC that Redis discarded (EXECABORT), the error of the
// command Redis refused while queueing it (OOM under maxmemory, for instance), which says
// why; otherwise err.
func queuedError(cmds []redis.Cmder, err error) error {
	if !strings.HasPrefix(err.Error(), "EXECABORT") {
		return err
	}
	for _, c := range cmds {
		if cerr := c.Err(); cerr != nil && !strings.HasPrefix(cerr.Error(), "EXECABORT") {
			return cerr
		}
	}
	return err
}

// Keys. Every per-app key starts with ferry:{<app>}: so one app's keys share a slot.
func appKey(app, name string) string { return "ferry:{" + app + "}:" + name }

func deliveryKey(id string) string { return "ferry:delivery:" + id }

// putBundleScript creates a bundle, or reports the one stored. An identical stored value
// (same CreatedAt) means go-redis retried a script whose reply was lost: that is still our
// creation, and its audit entry was already pushed. The audit entry (ARGV[4], ” for none)
// is pushed and trimmed as appendAuditScript does, before the bundle is written, so a
// refused audit write leaves nothing half done.
var putBundleScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur == ARGV[2] then return {1, cur} end
if cur then return {0, cur} end
if ARGV[4] ~= '' then
  redis.call('LPUSH', KEYS[4], ARGV[4])
  redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[5]) - 1)
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('LPUSH', KEYS[2], ARGV[1])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[3], ARGV[3], ARGV[1]) end
return {1, ARGV[2]}
`)

// PutBundle stores bd unless its version exists and, when it creates it, appends audit,
// in one script (atomic create or compare); see the [Store] contract.
func (r *Redis) PutBundle(ctx context.Context, bd *channel.Bundle, audit *channel.AuditEntry) (*channel.Bundle, bool, error) {
	nb, val, ev, err := encodeNewBundle(bd, audit)
	if err != nil {
		return nil, false, fmt.Errorf("put bundle: %w", err)
	}
	op := fmt.Sprintf("put bundle %s@%s", bd.AppID, bd.Version)
	res, err := putBundleScript.Run(ctx, r.rdb,
		[]string{appKey(bd.AppID, "bundles"), appKey(bd.AppID, "order"), appKey(bd.AppID, "commits"), appKey(bd.AppID, "audit")},
		bd.Version, val, bd.Commit, string(ev), r.opts.AuditLimit).Slice()
	if err != nil {
		return nil, false, r.fail(ctx, op, err)
	}
	if len(res) != 2 {
		return nil, false, fmt.Errorf("%s: unexpected script reply %v", op, res)
	}
	if created, _ := res[0].(int64); created == 1 {
		return nb, true, nil
	}
	cur, _ := res[1].(string)
	return resolveExisting([]byte(cur), bd)
}

// GetBundle returns one bundle or an error wrapping channel.ErrNotFound.
func (r *Redis) GetBundle(ctx context.Context, app, version string) (*channel.Bundle, error) {
	op := fmt.Sprintf("get bundle %s@%s", app, version)
	if checkApp(app) != nil || version == "" {
		return nil, fmt.Errorf("%s: %w", op, channel.ErrNotFound)
	}
	raw, err := r.rdb.HGet(ctx, appKey(app, "bundles"), version).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%s: %w", op, channel.ErrNotFound)
	}
	if err != nil {
		return nil, r.fail(ctx, op, err)
	}
	return decodeBundle(raw)
}

// GetBundles returns the named bundles of app that exist, keyed by version, with one
// HMGET.
func (r *Redis) GetBundles(ctx context.Context, app string, versions []string) (map[string]*channel.Bundle, error) {
	out := make(map[string]*channel.Bundle, len(versions))
	vs := slices.DeleteFunc(slices.Clone(versions), func(v string) bool { return v == "" })
	if len(vs) == 0 || checkApp(app) != nil {
		return out, nil
	}
	vals, err := r.rdb.HMGet(ctx, appKey(app, "bundles"), vs...).Result()
	if err != nil {
		return nil, r.fail(ctx, "get bundles of "+app, err)
	}
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue
		}
		bd, err := decodeBundle([]byte(s))
		if err != nil {
			return nil, err
		}
		out[vs[i]] = bd
	}
	return out, nil
}

// ListBundles returns up to limit bundles of app, most recently registered first; limit
// <= 0 means all.
func (r *Redis) ListBundles(ctx context.Context, app string, limit int) ([]*channel.Bundle, error) {
	if checkApp(app) != nil {
		return nil, nil
	}
	op := "list bundles of " + app
	versions, err := r.rdb.LRange(ctx, appKey(app, "order"), 0, int64(limit)-1).Result()
	if err != nil {
		return nil, r.fail(ctx, op, err)
	}
	if len(versions) == 0 {
		return nil, nil
	}
	vals, err := r.rdb.HMGet(ctx, appKey(app, "bundles"), versions...).Result()
	if err != nil {
		return nil, r.fail(ctx, op, err)
	}
	out := make([]*channel.Bundle, 0, len(vals))
	for _, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue
		}
		bd, err := decodeBundle([]byte(s))
		if err != nil {
			return nil, err
		}
		out = append(out, bd)
	}
	return out, nil
}

// PageBundles returns a page of app's bundles, oldest first; see the [Store] contract. The
// order list grows at its head (LPUSH) and is never trimmed, so a bundle's distance from
// the tail is its registration position, and the cursor is the position of the page's
// last bundle.
func (r *Redis) PageBundles(ctx context.Context, app, cursor string, limit int) ([]*channel.Bundle, string, error) {
	after, err := pageArgs(app, cursor, limit)
	if err != nil {
		return nil, "", fmt.Errorf("page bundles: %w", err)
	}
	op := "page bundles of " + app
	// Positions after+1 … after+limit+1 (one more, to learn whether a next page exists),
	// counted from the tail, newest first.
	versions, err := r.rdb.LRange(ctx, appKey(app, "order"), -int64(after)-int64(limit)-1, -int64(after)-1).Result()
	if err != nil {
		return nil, "", r.fail(ctx, op, err)
	}
	if len(versions) == 0 {
		if after > 0 {
			return nil, "", errPastEnd(app, cursor)
		}
		return []*channel.Bundle{}, "", nil
	}
	slices.Reverse(versions)
	var next string
	if len(versions) > limit {
		versions = versions[:limit]
		next = encodeCursor(after + uint64(limit))
	}
	vals, err := r.rdb.HMGet(ctx, appKey(app, "bundles"), versions...).Result()
	if err != nil {
		return nil, "", r.fail(ctx, op, err)
	}
	out := make([]*channel.Bundle, 0, len(vals))
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			return nil, "", fmt.Errorf("%s: version %s is in the order list but has no record", op, versions[i])
		}
		bd, err := decodeBundle([]byte(s))
		if err != nil {
			return nil, "", err
		}
		out = append(out, bd)
	}
	return out, next, nil
}

// BundleByCommit returns the newest bundle of app built from commit.
func (r *Redis) BundleByCommit(ctx context.Context, app, commit string) (*channel.Bundle, error) {
	op := fmt.Sprintf("bundle of %s commit %s", app, commit)
	if checkApp(app) != nil || commit == "" {
		return nil, fmt.Errorf("%s: %w", op, channel.ErrNotFound)
	}
	version, err := r.rdb.HGet(ctx, appKey(app, "commits"), commit).Result()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%s: %w", op, channel.ErrNotFound)
	}
	if err != nil {
		return nil, r.fail(ctx, op, err)
	}
	return r.GetBundle(ctx, app, version)
}

// GetState returns a channel's state, the default state if it was never written.
func (r *Redis) GetState(ctx context.Context, app, ch string) (*channel.State, error) {
	if checkApp(app) != nil || ch == "" {
		return decodeState(nil, app, ch)
	}
	raw, err := r.rdb.HGet(ctx, appKey(app, "states"), ch).Bytes()
	if errors.Is(err, redis.Nil) {
		return decodeState(nil, app, ch)
	}
	if err != nil {
		return nil, r.fail(ctx, fmt.Sprintf("get state %s/%s", app, ch), err)
	}
	return decodeState(raw, app, ch)
}

// ListStates returns every written channel state of app, sorted by channel name.
func (r *Redis) ListStates(ctx context.Context, app string) ([]*channel.State, error) {
	if checkApp(app) != nil {
		return nil, nil
	}
	all, err := r.rdb.HGetAll(ctx, appKey(app, "states")).Result()
	if err != nil {
		return nil, r.fail(ctx, "list states of "+app, err)
	}
	out := make([]*channel.State, 0, len(all))
	for _, ch := range slices.Sorted(maps.Keys(all)) {
		s, err := decodeState([]byte(all[ch]), app, ch)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// updateStateScript compares the stored state with the one fn saw (ARGV[2], empty when
// none) and, if unchanged, writes the new state, records the write's random token (ARGV[8])
// in KEYS[3], appends and trims the audit log and publishes the app id, atomically. Finding
// this write's own token already recorded means go-redis retried a script whose reply was
// lost: it reports success without writing again. (Comparing the state's bytes instead would
// also report success to a second writer that built identical bytes, losing its change.)
var updateStateScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then cur = '' end
if redis.call('HGET', KEYS[3], ARGV[1]) == ARGV[8] then return 1 end
if cur ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[8])
redis.call('LPUSH', KEYS[2], ARGV[4])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[5]) - 1)
redis.call('PUBLISH', ARGV[7], ARGV[6])
return 1
`)

// UpdateState changes one channel atomically; see the [Store] contract. A script
// compares and swaps the state, appends the audit entry and publishes on
// [ChangesChannel]; when another writer got in between, fn runs again on the new state.
func (r *Redis) UpdateState(ctx context.Context, app, ch string, fn func(s *channel.State) (*channel.AuditEntry, error)) (*channel.State, error) {
	if err := checkApp(app); err != nil {
		return nil, fmt.Errorf("update state: %w", err)
	}
	if err := checkKey("channel", ch); err != nil {
		return nil, fmt.Errorf("update state: %w", err)
	}
	op := fmt.Sprintf("update state %s/%s", app, ch)
	keys := []string{appKey(app, "states"), appKey(app, "audit"), appKey(app, "state_writes")}
	for attempt := 0; ; attempt++ {
		raw, err := r.rdb.HGet(ctx, keys[0], ch).Bytes()
		if errors.Is(err, redis.Nil) {
			raw, err = nil, nil
		}
		if err != nil {
			return nil, r.fail(ctx, op, err)
		}
		c, err := applyChange(raw, app, ch, op, fn)
		if err != nil {
			return nil, err
		}
		if c.val == nil {
			return c.state, nil
		}
		val, ev := c.val, c.ev
		token := strconv.FormatUint(rand.Uint64(), 36) + strconv.FormatUint(rand.Uint64(), 36)
		ok, err := updateStateScript.Run(ctx, r.rdb, keys,
			ch, raw, val, ev, r.opts.AuditLimit, app, ChangesChannel, token).Int()
		if err != nil {
			return nil, r.fail(ctx, op, err)
		}
		if ok == 1 {
			return c.state, nil
		}
		// Lost the race: back off a little once contention persists, then retry.
		if attempt >= 3 {
			d := time.Duration(rand.Int64N(int64(time.Millisecond) * int64(min(attempt, 20))))
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("%s: %w", op, ctx.Err())
			case <-time.After(d):
			}
		}
	}
}

// appendAuditScript pushes and trims; an identical head entry (same nanosecond time)
// means go-redis retried a script whose reply was lost.
var appendAuditScript = redis.NewScript(`
if redis.call('LINDEX', KEYS[1], 0) == ARGV[1] then return 0 end
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
return 1
`)

// AppendAudit appends an entry that is not part of a state change and trims the log, in
// one script.
func (r *Redis) AppendAudit(ctx context.Context, e channel.AuditEntry) error {
	if err := checkApp(e.App); err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	prepareAudit(&e, e.App, "", now())
	ev, err := json.Marshal(&e)
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	err = appendAuditScript.Run(ctx, r.rdb, []string{appKey(e.App, "audit")}, ev, r.opts.AuditLimit).Err()
	if err != nil {
		return r.fail(ctx, "append audit of "+e.App, err)
	}
	return nil
}

// ListAudit returns up to limit audit entries of app, newest first; limit <= 0 means all
// that are kept.
func (r *Redis) ListAudit(ctx context.Context, app string, limit int) ([]channel.AuditEntry, error) {
	if checkApp(app) != nil {
		return nil, nil
	}
	vals, err := r.rdb.LRange(ctx, appKey(app, "audit"), 0, int64(limit)-1).Result()
	if err != nil {
		return nil, r.fail(ctx, "list audit of "+app, err)
	}
	out := make([]channel.AuditEntry, len(vals))
	for i, v := range vals {
		if err := json.Unmarshal([]byte(v), &out[i]); err != nil {
			return nil, fmt.Errorf("decode audit entry: %w", err)
		}
	}
	return out, nil
}

// pendingSeqField holds the per-commit sequence counter in a pending hash. Entry fields
// always contain a NUL, so they cannot collide with it.
const pendingSeqField = "#seq"

var addPendingScript = redis.NewScript(`
local n = redis.call('HINCRBY', KEYS[1], '#seq', 1)
redis.call('HSET', KEYS[1], ARGV[1], '{"seq":' .. n .. ',"pending":' .. ARGV[2] .. '}')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return n
`)

func pendingKey(app, commit string) string { return appKey(app, "pending:"+commit) }

// AddPending records a promotion waiting for the bundle of commit, replacing an earlier
// one for the same (Channel, Ref), and extends the commit's expiry to PendingTTL.
func (r *Redis) AddPending(ctx context.Context, app, commit string, p channel.Pending) error {
	if err := checkApp(app); err != nil {
		return fmt.Errorf("add pending: %w", err)
	}
	if err := checkKey("commit", commit); err != nil {
		return fmt.Errorf("add pending: %w", err)
	}
	pv, err := json.Marshal(&p)
	if err != nil {
		return fmt.Errorf("add pending: %w", err)
	}
	err = addPendingScript.Run(ctx, r.rdb, []string{pendingKey(app, commit)},
		pendingField(p), pv, r.opts.PendingTTL.Milliseconds()).Err()
	if err != nil {
		return r.fail(ctx, fmt.Sprintf("add pending %s@%s", app, commit), err)
	}
	return nil
}

// ListPending returns the promotions waiting for commit, oldest first.
func (r *Redis) ListPending(ctx context.Context, app, commit string) ([]channel.Pending, error) {
	if checkApp(app) != nil || commit == "" {
		return nil, nil
	}
	all, err := r.rdb.HGetAll(ctx, pendingKey(app, commit)).Result()
	if err != nil {
		return nil, r.fail(ctx, fmt.Sprintf("list pending %s@%s", app, commit), err)
	}
	recs := make([]pendingRecord, 0, len(all))
	for f, v := range all {
		if f == pendingSeqField {
			continue
		}
		var rec pendingRecord
		if err := json.Unmarshal([]byte(v), &rec); err != nil {
			return nil, fmt.Errorf("decode pending: %w", err)
		}
		recs = append(recs, rec)
	}
	slices.SortFunc(recs, func(a, b pendingRecord) int { return cmp.Compare(a.Seq, b.Seq) })
	out := make([]channel.Pending, len(recs))
	for i, rec := range recs {
		out[i] = rec.Pending
	}
	return out, nil
}

// ForgetDelivery removes a delivery id's mark (DEL); an id not marked is no error.
func (r *Redis) ForgetDelivery(ctx context.Context, id string) error {
	if err := checkKey("delivery id", id); err != nil {
		return fmt.Errorf("forget delivery: %w", err)
	}
	if err := r.rdb.Del(ctx, deliveryKey(id)).Err(); err != nil {
		return r.fail(ctx, "forget delivery "+id, err)
	}
	return nil
}

// SeenDelivery marks a delivery id with SET NX GET PX and reports whether it was already
// marked. ttl <= 0 means [DefaultDeliveryTTL].
func (r *Redis) SeenDelivery(ctx context.Context, id string, ttl time.Duration) (bool, error) {
	if err := checkKey("delivery id", id); err != nil {
		return false, fmt.Errorf("seen delivery: %w", err)
	}
	if ttl <= 0 {
		ttl = DefaultDeliveryTTL
	}
	// A random token tells our own earlier attempt (go-redis retried after a lost reply)
	// from another instance's mark: SET NX GET returns the value that was there.
	token := strconv.FormatUint(rand.Uint64(), 36)
	prev, err := r.rdb.SetArgs(ctx, deliveryKey(id), token, redis.SetArgs{Mode: "NX", Get: true, TTL: ttl}).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, r.fail(ctx, "mark delivery "+id, err)
	}
	return prev != token, nil
}

// MarkDelivery sets a delivery id's mark to expire after ttl (SET PX, unconditional), so a
// lease mark made by SeenDelivery is extended. ttl <= 0 means [DefaultDeliveryTTL].
func (r *Redis) MarkDelivery(ctx context.Context, id string, ttl time.Duration) error {
	if err := checkKey("delivery id", id); err != nil {
		return fmt.Errorf("mark delivery: %w", err)
	}
	if ttl <= 0 {
		ttl = DefaultDeliveryTTL
	}
	// The value only has to differ from any token SeenDelivery will draw later.
	token := strconv.FormatUint(rand.Uint64(), 36)
	if err := r.rdb.Set(ctx, deliveryKey(id), token, ttl).Err(); err != nil {
		return r.fail(ctx, "extend delivery mark "+id, err)
	}
	return nil
}

// RecordStats counts events per (version, action) with HINCRBY, distinct devices per
// version with PFADD (HyperLogLog, about 0.8% error), and adds update_fail versions to the
// device's failed set (SADD, expiring FailedTTL after the last failure) and the device to
// the app's failed_devices index (ZADD, scored by the time of its last failure; entries
// older than FailedTTL are trimmed), in one MULTI/EXEC. Events without a version are
// ignored. If go-redis retries a MULTI/EXEC whose reply was lost, the batch's counts are
// added twice (the failed set and device count are unaffected); stats are approximate by
// nature. When the index holds more than MaxFailedDevices devices, evictFailedScript
// deletes the oldest.
func (r *Redis) RecordStats(ctx context.Context, app string, events []channel.StatEvent) error {
	if err := checkApp(app); err != nil {
		return fmt.Errorf("record stats: %w", err)
	}
	counts := map[[2]string]int64{}
	devices := map[string][]any{}
	failed := map[string][]any{}
	for _, e := range events {
		if e.Version == "" {
			continue
		}
		if e.Action == "" {
			e.Action = "unknown"
		}
		counts[[2]string{e.Version, e.Action}]++
		if e.Device == "" {
			continue
		}
		devices[e.Version] = append(devices[e.Version], e.Device)
		if e.Action == "update_fail" {
			failed[e.Device] = append(failed[e.Device], e.Version)
		}
	}
	if len(counts) == 0 {
		return nil
	}
	index := appKey(app, "failed_devices")
	var indexed *redis.IntCmd
	cmds, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		versions := map[string]bool{}
		for k, n := range counts {
			p.HIncrBy(ctx, appKey(app, "stats:"+k[0]), k[1], n)
			versions[k[0]] = true
		}
		vs := make([]any, 0, len(versions))
		for v := range versions {
			vs = append(vs, v)
		}
		p.SAdd(ctx, appKey(app, "versions"), vs...)
		for v, ds := range devices {
			p.PFAdd(ctx, appKey(app, "devices:"+v), ds...)
		}
		if len(failed) == 0 {
			return nil
		}
		t := now()
		members := make([]redis.Z, 0, len(failed))
		for d, fv := range failed {
			if r.failed != nil {
				r.failed.add(app, d) // before EXEC: see redisFailedSet
			}
			key := appKey(app, "failed:"+d)
			p.SAdd(ctx, key, fv...)
			p.Publish(ctx, FailuresChannel, app+"\x00"+d)
			p.PExpire(ctx, key, r.opts.FailedTTL)
			members = append(members, redis.Z{Score: float64(t.UnixMilli()), Member: d})
		}
		p.ZAdd(ctx, index, members...)
		p.ZRemRangeByScore(ctx, index, "-inf", strconv.FormatInt(t.Add(-r.opts.FailedTTL).UnixMilli(), 10))
		p.PExpire(ctx, index, r.opts.FailedTTL)
		indexed = p.ZCard(ctx, index)
		return nil
	})
	if err != nil {
		return r.fail(ctx, "record stats of "+app, queuedError(cmds, err))
	}
	if indexed != nil && indexed.Val() > int64(r.opts.MaxFailedDevices) {
		// The batch is stored; a failed eviction only delays the bound to the next failure.
		n, err := evictFailedScript.Run(ctx, r.rdb, []string{index}, r.opts.MaxFailedDevices, appKey(app, "failed:")).Int64()
		if err != nil {
			r.log.Error("evict failed-version sets", "app", app, "error", r.fail(ctx, "evict", err))
		} else if n > 0 {
			r.log.Warn("failed-version records of the oldest devices forgotten: the app reached its bound",
				"app", app, "devices", n, "max_failed_devices", r.opts.MaxFailedDevices)
		}
	}
	return nil
}

// evictFailedScript deletes the failed sets (ARGV[2]..device) of the devices of index
// KEYS[1] whose last failure is oldest until at most ARGV[1] remain, and returns how many
// it deleted. The sets' keys share the index's hash tag, so they are in its Cluster slot.
var evictFailedScript = redis.NewScript(`
local n = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[1])
if n <= 0 then return 0 end
local popped = redis.call('ZPOPMIN', KEYS[1], n)
for i = 1, #popped, 2 do redis.call('UNLINK', ARGV[2] .. popped[i]) end
return n
`)

// Stats returns the counts per version of app, sorted by version: one SMEMBERS, then one
// pipeline of HGETALL and PFCOUNT per version.
func (r *Redis) Stats(ctx context.Context, app string) ([]channel.VersionStats, error) {
	if checkApp(app) != nil {
		return nil, nil
	}
	op := "stats of " + app
	versions, err := r.rdb.SMembers(ctx, appKey(app, "versions")).Result()
	if err != nil {
		return nil, r.fail(ctx, op, err)
	}
	if len(versions) == 0 {
		return nil, nil
	}
	actions := make([]*redis.MapStringStringCmd, len(versions))
	devices := make([]*redis.IntCmd, len(versions))
	_, err = r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, v := range versions {
			actions[i] = p.HGetAll(ctx, appKey(app, "stats:"+v))
			devices[i] = p.PFCount(ctx, appKey(app, "devices:"+v))
		}
		return nil
	})
	if err != nil {
		return nil, r.fail(ctx, op, err)
	}
	out := make([]channel.VersionStats, len(versions))
	for i, v := range versions {
		vs := channel.VersionStats{Version: v, Actions: map[string]int64{}, Devices: devices[i].Val()}
		for a, n := range actions[i].Val() {
			c, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: count of %s/%s: %w", op, v, a, err)
			}
			vs.Actions[a] = c
		}
		out[i] = vs
	}
	sortStats(out)
	return out, nil
}

// FailedVersions returns the versions device reported update_fail for, sorted, with one
// SMEMBERS, sent in one pipeline with the other lookups waiting at the time.
func (r *Redis) FailedVersions(ctx context.Context, app, device string) ([]string, error) {
	if r.NoFailedVersions(app, device) {
		return nil, nil
	}
	vs, err := r.sets.smembers(ctx, appKey(app, "failed:"+device))
	if err != nil {
		return nil, r.fail(ctx, fmt.Sprintf("failed versions of %s device %s", app, device), err)
	}
	slices.Sort(vs)
	return vs, nil
}

// NoFailedVersions reports whether FailedVersions answers device of app "none" from
// memory, without a round trip: the app or device is malformed, or the failed-device
// filter is fresh and does not hold the device (see redisFailedSet). False means only
// that Redis must be asked.
func (r *Redis) NoFailedVersions(app, device string) bool {
	return checkApp(app) != nil || device == "" || (r.failed != nil && r.failed.skip(app, device))
}

// clearFailedTries bounds how often ClearFailedVersions starts again when the device's
// failed set changed between its read and its write.
const clearFailedTries = 10

// ClearFailedVersions reads the device's failed set (SMEMBERS), then clearFailedScript
// deletes it, removes the device from the failed_devices index and appends audit, in one
// step and only if the set still holds what was read (else it starts again); see the
// [Store] contract.
func (r *Redis) ClearFailedVersions(ctx context.Context, app, device string, audit *channel.AuditEntry) ([]string, error) {
	if err := checkApp(app); err != nil {
		return nil, fmt.Errorf("clear failed versions: %w", err)
	}
	if err := checkKey("device", device); err != nil {
		return nil, fmt.Errorf("clear failed versions: %w", err)
	}
	op := fmt.Sprintf("clear failed versions of %s device %s", app, device)
	keys := []string{appKey(app, "failed:"+device), appKey(app, "failed_devices"), appKey(app, "audit")}
	for range clearFailedTries {
		vs, err := r.rdb.SMembers(ctx, keys[0]).Result()
		if err != nil {
			return nil, r.fail(ctx, op, err)
		}
		if len(vs) == 0 {
			return nil, nil
		}
		slices.Sort(vs)
		ev, err := clearedAudit(app, device, audit, vs)
		if err != nil {
			return nil, err
		}
		args := make([]any, 0, 3+len(vs))
		args = append(args, device, string(ev), r.opts.AuditLimit)
		for _, v := range vs {
			args = append(args, v)
		}
		done, err := clearFailedScript.Run(ctx, r.rdb, keys, args...).Int()
		if err != nil {
			return nil, r.fail(ctx, op, err)
		}
		if done == 1 {
			return vs, nil
		}
	}
	return nil, fmt.Errorf("%s: the set kept changing: %w", op, channel.ErrConflict)
}

// clearFailedScript deletes the failed set KEYS[1] if it holds exactly ARGV[4..], removes
// device ARGV[1] from the index KEYS[2], and pushes the audit entry ARGV[2] (none when
// empty) on the log KEYS[3], trimmed to ARGV[3]. It returns 1 when it did so, or had done
// so already (a retry of a write whose reply was lost: the set is gone and the entry
// heads the log), and 0 when the set changed since it was read.
var clearFailedScript = redis.NewScript(`
local n = redis.call('SCARD', KEYS[1])
if n == 0 and ARGV[2] ~= '' and redis.call('LINDEX', KEYS[3], 0) == ARGV[2] then return 1 end
if n ~= #ARGV - 3 then return 0 end
for i = 4, #ARGV do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 0 then return 0 end
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[2] ~= '' then
  redis.call('LPUSH', KEYS[3], ARGV[2])
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[3]) - 1)
end
return 1
`)

// Subscribe returns a channel receiving the app id of every state change made through any
// instance, and [AccessChanged] after a token revocation or a session deletion (Redis
// pub/sub on [ChangesChannel]). It waits up to a second for the
// subscription to be confirmed, so changes made after it returns are seen. The channel is
// closed when ctx ends or the store closes. go-redis resubscribes after reconnecting, but
// messages published meanwhile are lost; callers also expire their caches.
func (r *Redis) Subscribe(ctx context.Context) <-chan string {
	out := make(chan string, SubscriberBuffer)
	ps := r.rdb.Subscribe(ctx, ChangesChannel)
	confirm, cancel := context.WithTimeout(ctx, time.Second)
	if _, err := ps.Receive(confirm); err != nil {
		r.log.WarnContext(ctx, "subscribe to state changes", "error", err)
	}
	cancel()
	msgs := ps.Channel()
	go func() {
		defer close(out)
		defer ps.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case <-r.done:
				return
			case m, ok := <-msgs:
				if !ok {
					return
				}
				select {
				case out <- m.Payload:
				default:
				}
			}
		}
	}()
	return out
}
