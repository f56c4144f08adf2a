package control

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
)

// Who may call the admin API (docs/access.md): every request to /api/v1/apps/{app}/… and
// /api/v1/tokens is authenticated by one credential, resolved to an [access.Principal],
// and then checked against the permission its route needs.
//
//   - Authorization: Bearer <FERRY_ADMIN_TOKEN>: the bootstrap token, admin of every app,
//     unless the YAML's access.bootstrap_token is false.
//   - Authorization: Bearer ferry_<id>_<secret>: an API token, looked up by id and compared
//     by hash.
//   - Authorization: Bearer ferrys_…, or the session cookie: a person signed in through
//     single sign-on (sso.go). Cookie-authenticated requests that change state must carry
//     the session's CSRF token in [HeaderCSRF].
//
// A missing, malformed, unknown, expired or revoked credential is 401 with WWW-Authenticate;
// a valid one that lacks the permission is 403 naming the role needed. Failed attempts are
// counted per client address: beyond [AuthFailureRate] (burst [AuthFailureBurst]) the
// address gets 429 before its credential is even looked at.

// HeaderCSRF carries a signed-in browser session's CSRF token on state-changing requests.
const HeaderCSRF = "X-Ferry-CSRF"

// Limits of credential checks.
const (
	// AuthFailureRate is how many failed authentications per minute a client address may
	// make in the long run, and AuthFailureBurst how many in a row, before it is answered
	// 429 without its credential being checked.
	AuthFailureRate  = 10
	AuthFailureBurst = 20
	// TokenCacheTTL bounds how long a token looked up in the store is trusted without a
	// new lookup. Revocations drop the cache at once on every instance that receives the
	// store's notification ([API.StoreChanged]); the TTL is the bound when one is lost.
	TokenCacheTTL = 10 * time.Second
	// SessionCacheTTL is the same bound for single sign-on sessions: a logout (or an
	// expiry found by another instance) reaches every instance through the store's
	// notification at once, and within SessionCacheTTL should that be lost. A session's
	// absolute and idle expiry are checked on every request, cached or not.
	SessionCacheTTL = TokenCacheTTL
	// TokenTouchInterval is how often, at most, an instance records a token's last use.
	TokenTouchInterval = time.Minute
	// maxFailureKeys bounds the client addresses whose failures are remembered.
	maxFailureKeys = 10000
	// maxCacheKeys bounds the tokens and the sessions each cached by an instance.
	maxCacheKeys = 10000
	// touchTimeout bounds recording the last use of a token or a session.
	touchTimeout = 5 * time.Second
)

// principalKey is where the admin routes keep the request's *access.Principal.
const principalKey = "ferry.control.principal"

func principalOf(c *gin.Context) *access.Principal {
	return c.MustGet(principalKey).(*access.Principal)
}

// actorOf is the audit log's name for the request's principal, with the client address.
func actorOf(c *gin.Context) *channel.Actor {
	return caller(c).actor()
}

// appRoute authenticates the request, resolves :app and checks that the principal has perm
// on it. An app that is not configured is answered like one the principal may not use,
// unless the principal may read every app: app ids do not leak to narrow credentials.
func (a *API) appRoute(perm access.Permission) gin.HandlerFunc {
	return a.handle(func(c *gin.Context) error {
		p, err := a.authenticate(c)
		if err != nil {
			return err
		}
		app, err := a.App(p, c.Param("app"), perm)
		if err != nil {
			return err
		}
		c.Set(appKey, app)
		return nil
	})
}

// authed authenticates the request for routes that check permissions themselves.
func (a *API) authed(c *gin.Context) {
	a.handle(func(c *gin.Context) error {
		_, err := a.authenticate(c)
		return err
	})(c)
}

func forbidden(perm access.Permission, app string) error {
	return errorf(http.StatusForbidden, "forbidden", "this credential may not %s app %q: that needs the %s role on it", perm, app, access.MinimumRole(perm))
}

// authFailure is a credential that was presented and did not authenticate: it counts
// against the client's address. reason is a bounded metrics label.
type authFailure struct {
	reason string
	err    *httpError
}

func (f *authFailure) Error() string { return f.err.Error() }

func unauthorized(reason, format string, args ...any) *authFailure {
	return &authFailure{reason: reason, err: errorf(http.StatusUnauthorized, "unauthorized", format, args...)}
}

// authenticate resolves the request's credential to a principal and stores it in c. It
// answers 429 first when the client made too many failed attempts lately.
func (a *API) authenticate(c *gin.Context) (*access.Principal, error) {
	p, err := a.throttled(c, func() (*access.Principal, error) { return a.resolve(c) })
	if err != nil {
		return nil, err
	}
	c.Set(principalKey, p)
	return p, nil
}

// throttled runs check, a credential check, unless the client made too many failed
// attempts lately (429); a failure of the credential (*authFailure) counts against the
// client's address.
func (a *API) throttled(c *gin.Context, check func() (*access.Principal, error)) (*access.Principal, error) {
	ctx := c.Request.Context()
	ip := c.ClientIP()
	now := a.now()
	if wait, blocked := a.failures.blocked(ip, now); blocked {
		a.metrics.authThrottled.Inc()
		a.logger(ctx).WarnContext(ctx, "authentication attempts throttled", "client_ip", ip, "retry_after", wait.Round(time.Second))
		return nil, &httpError{Status: http.StatusTooManyRequests, Code: "too_many_attempts",
			Msg: "too many failed authentications from this address; retry later", retryAfter: wait}
	}
	p, err := check()
	var f *authFailure
	if errors.As(err, &f) {
		a.failures.fail(ip, now)
		a.metrics.authFailures.WithLabelValues(f.reason).Inc()
		a.logger(ctx).WarnContext(ctx, "authentication failed", "client_ip", ip, "reason", f.reason)
		return nil, f.err
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// resolve maps the request's credential to a principal. Failures of the credential are
// *authFailure; a request with no credential at all is a plain 401.
func (a *API) resolve(c *gin.Context) (*access.Principal, error) {
	h := c.GetHeader("Authorization")
	if h == "" {
		p, s, err := a.sessionPrincipal(c)
		if err != nil {
			return nil, a.sessionError(err)
		}
		if p == nil {
			return nil, errorf(http.StatusUnauthorized, "unauthorized",
				"send Authorization: Bearer <API token>, sign in (ferry login), or use the bootstrap token")
		}
		if !safeMethod(c.Request.Method) && (s == nil || s.CSRF == "" || !tokenEqual(c.GetHeader(HeaderCSRF), s.CSRF)) {
			return nil, errorf(http.StatusForbidden, "csrf", "a signed-in browser must send the session's CSRF token in %s with requests that change state", HeaderCSRF)
		}
		return p, nil
	}
	tok, ok := bearer(h)
	if !ok {
		return nil, unauthorized("malformed", "the Authorization header must be \"Bearer <token>\"")
	}
	if strings.HasPrefix(tok, access.SessionPrefix) {
		p, _, err := a.sessionPrincipal(c)
		if err != nil {
			return nil, a.sessionError(err)
		}
		if p == nil {
			return nil, unauthorized("session", "the session is unknown or expired; sign in again (ferry login)")
		}
		return p, nil
	}
	return a.bearerPrincipal(c.Request.Context(), tok)
}

// bearerPrincipal checks a credential that is not a session: an API token, or else the
// bootstrap token.
func (a *API) bearerPrincipal(ctx context.Context, tok string) (*access.Principal, error) {
	if access.LooksLikeToken(tok) {
		return a.tokenPrincipal(ctx, tok)
	}
	if !a.bootstrapEnabled() {
		return nil, unauthorized("bootstrap", "the credential is not a Ferry API token or session, and the bootstrap token is disabled on this relay")
	}
	if !tokenEqual(tok, a.adminToken) {
		return nil, unauthorized("bootstrap", "the credential is not valid: send Authorization: Bearer <API token or FERRY_ADMIN_TOKEN>")
	}
	return &access.Principal{Kind: access.Bootstrap, Grants: []access.Grant{{App: access.AllApps, Role: access.Admin}}}, nil
}

// sessionError maps a failure of sessionPrincipal: an unavailable store is 503, anything
// else a failed credential.
func (a *API) sessionError(err error) error {
	var he *httpError
	if errors.As(err, &he) && he.Status != http.StatusUnauthorized {
		return err
	}
	if errors.Is(err, channel.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return storeError("get session", err)
	}
	f := unauthorized("session", "the session is unknown or expired; sign in again (ferry login)")
	f.err.Err = err
	return f
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// tokenPrincipal checks an API token: its shape, its record (cached), its hash in constant
// time, and that it is neither expired nor revoked.
func (a *API) tokenPrincipal(ctx context.Context, text string) (*access.Principal, error) {
	id, err := access.ParseToken(text)
	if err != nil {
		return nil, unauthorized("token", "the API token is malformed")
	}
	t, _, err := a.tokens.get(ctx, id, a.now())
	if errors.Is(err, channel.ErrNotFound) {
		return nil, unauthorized("token", "the API token is not valid")
	}
	if err != nil {
		return nil, storeError("get token", err)
	}
	if !access.HashEqual(access.HashToken(text), t.Hash) {
		return nil, unauthorized("token", "the API token is not valid")
	}
	now := a.now()
	switch {
	case !t.RevokedAt.IsZero():
		return nil, unauthorized("revoked", "the API token %s was revoked", t.ID)
	case !t.Active(now):
		return nil, unauthorized("expired", "the API token %s expired at %s", t.ID, t.ExpiresAt.UTC().Format(time.RFC3339))
	}
	a.touchLater(ctx, a.tokens.touchDue(t.ID, now, TokenTouchInterval), "API token "+t.ID, func(ctx context.Context) error {
		return a.store.TouchToken(ctx, t.ID, now.UTC())
	})
	return &access.Principal{Kind: access.TokenKind, ID: t.ID, Name: t.Name, Grants: t.Grants}, nil
}

// touchLater records a use of an access record (what names it in the log) through write,
// in the background, if due (the cache's [lookupCache.touchDue]): a failure is logged and
// does not fail the request.
func (a *API) touchLater(ctx context.Context, due bool, what string, write func(context.Context) error) {
	if !due {
		return
	}
	log := a.logger(ctx)
	a.bg.Go(func() {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), touchTimeout)
		defer cancel()
		if err := write(tctx); err != nil {
			log.WarnContext(tctx, "record the last use of "+what, "error", err)
		}
	})
}

// Close waits for background work (recording the last use of tokens and sessions) to end.
// Call it before closing the store.
func (a *API) Close() { a.bg.Wait() }

// StoreChanged receives the store's change notifications (the relay forwards every message
// of Store.Subscribe, and "" when notifications may have been lost). A message that names
// no configured app (the store's AccessChanged, or "") drops every cached token and
// session, so a token revoked or a session ended through any instance stops working here
// at once.
func (a *API) StoreChanged(msg string) {
	if _, ok := a.apps[msg]; ok {
		return
	}
	a.tokens.drop()
	a.sessions.drop()
}

// lookupCache keeps access records looked up in the store (API tokens by id, sessions by id
// hash) for a short TTL, at most [maxCacheKeys] of them, and notes when each one's use was
// last recorded. Absent records are not cached: one created through another instance works
// at once. The caller checks expiry and revocation on every use, cached or not.
type lookupCache[T any] struct {
	mu      sync.Mutex
	ttl     time.Duration
	gen     uint64 // bumped by drop and forget: a lookup that raced with them is not cached
	entries map[string]cached[T]
	touched map[string]time.Time
	fetch   func(ctx context.Context, key string) (T, error)
}

type cached[T any] struct {
	v  T
	at time.Time
}

func newLookupCache[T any](ttl time.Duration, fetch func(context.Context, string) (T, error)) *lookupCache[T] {
	return &lookupCache[T]{ttl: ttl, entries: map[string]cached[T]{}, touched: map[string]time.Time{}, fetch: fetch}
}

// get returns the record of key, from the cache when it is fresh (hit reports that), or
// else from the store.
func (lc *lookupCache[T]) get(ctx context.Context, key string, now time.Time) (v T, hit bool, err error) {
	lc.mu.Lock()
	e, ok := lc.entries[key]
	gen := lc.gen
	lc.mu.Unlock()
	if ok && now.Sub(e.at) < lc.ttl && !now.Before(e.at) {
		return e.v, true, nil
	}
	v, err = lc.fetch(ctx, key)
	if err != nil {
		return v, false, err
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.gen == gen {
		bound(lc.entries, maxCacheKeys, func(e cached[T]) bool { return now.Sub(e.at) >= lc.ttl })
		lc.entries[key] = cached[T]{v: v, at: now}
	}
	return v, false, nil
}

// drop forgets every cached record.
func (lc *lookupCache[T]) drop() {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	lc.gen++
	clear(lc.entries)
}

// forget drops one record (after this instance revoked or deleted it, or found it stale).
func (lc *lookupCache[T]) forget(key string) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	lc.gen++
	delete(lc.entries, key)
}

// touchDue reports whether the use of key should be recorded now, at most once per every,
// and notes it.
func (lc *lookupCache[T]) touchDue(key string, now time.Time, every time.Duration) bool {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if last, ok := lc.touched[key]; ok && now.Sub(last) < every && !now.Before(last) {
		return false
	}
	bound(lc.touched, maxCacheKeys, func(last time.Time) bool { return now.Sub(last) >= every })
	lc.touched[key] = now
	return true
}

// bound makes room for one more key in m once it holds limit: it forgets the entries stale
// reports, then, if that is not enough, arbitrary others, so m stays bounded whatever keys
// arrive.
func bound[V any](m map[string]V, limit int, stale func(V) bool) {
	if len(m) < limit {
		return
	}
	for k, v := range m {
		if stale(v) {
			delete(m, k)
		}
	}
	for k := range m {
		if len(m) < limit {
			break
		}
		delete(m, k)
	}
}

// failureLimiter counts failed authentications per client (an IPv4 address or an IPv6
// /64) in token buckets of [AuthFailureRate] per minute and [AuthFailureBurst].
type failureLimiter struct {
	mu    sync.Mutex
	limit rate.Limit
	burst int
	m     map[string]*rate.Limiter
}

func newFailureLimiter() *failureLimiter {
	return &failureLimiter{limit: rate.Limit(float64(AuthFailureRate) / 60), burst: AuthFailureBurst, m: map[string]*rate.Limiter{}}
}

// blocked reports whether ip has no failed attempt left, and how long until it has one.
func (f *failureLimiter) blocked(ip string, now time.Time) (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	lim := f.m[clientKey(ip)]
	if lim == nil || lim.TokensAt(now) >= 1 {
		return 0, false
	}
	r := lim.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return max(wait, time.Second), true
}

// fail counts one failed attempt of ip.
func (f *failureLimiter) fail(ip string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := clientKey(ip)
	lim := f.m[k]
	if lim == nil {
		// Clients whose bucket is full again carry no information.
		bound(f.m, maxFailureKeys, func(lim *rate.Limiter) bool { return lim.TokensAt(now) >= float64(f.burst) })
		lim = rate.NewLimiter(f.limit, f.burst)
		f.m[k] = lim
	}
	lim.AllowN(now, 1)
}

// clientKey is the failure-count key of a client address: the IPv4 address, or the /64 of
// an IPv6 one (a subscriber usually holds a whole /64), as the relay keys its rate limits.
func clientKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, err := a.Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}

// retryAfterSeconds is d in whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) string {
	return fmt.Sprint(max(int64((d+time.Second-1)/time.Second), 1))
}
