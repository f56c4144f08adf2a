package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relay/reqlog"
)

// Store is what the control plane calls on persistence. Each method keeps the contract
// documented on [github.com/ferryhq/ferry/internal/store.Store], which both stores
// implement.
type Store interface {
	PutBundle(ctx context.Context, b *channel.Bundle, audit *channel.AuditEntry) (stored *channel.Bundle, created bool, err error)
	GetBundle(ctx context.Context, app, version string) (*channel.Bundle, error)
	ListBundles(ctx context.Context, app string, limit int) ([]*channel.Bundle, error)
	PageBundles(ctx context.Context, app, cursor string, limit int) (bundles []*channel.Bundle, next string, err error)
	BundleByCommit(ctx context.Context, app, commit string) (*channel.Bundle, error)
	GetState(ctx context.Context, app, ch string) (*channel.State, error)
	ListStates(ctx context.Context, app string) ([]*channel.State, error)
	UpdateState(ctx context.Context, app, ch string, fn func(s *channel.State) (*channel.AuditEntry, error)) (*channel.State, error)
	AppendAudit(ctx context.Context, e channel.AuditEntry) error
	ListAudit(ctx context.Context, app string, limit int) ([]channel.AuditEntry, error)
	AddPending(ctx context.Context, app, commit string, p channel.Pending) error
	ListPending(ctx context.Context, app, commit string) ([]channel.Pending, error)
	DeletePendingEntry(ctx context.Context, app, commit, ch, ref string) error
	SeenDelivery(ctx context.Context, id string, ttl time.Duration) (seen bool, err error)
	ForgetDelivery(ctx context.Context, id string) error
	MarkDelivery(ctx context.Context, id string, ttl time.Duration) error
	Stats(ctx context.Context, app string) ([]channel.VersionStats, error)
	FailedVersions(ctx context.Context, app, device string) ([]string, error)
	ClearFailedVersions(ctx context.Context, app, device string, audit *channel.AuditEntry) (cleared []string, err error)
	Series(ctx context.Context, app string, q channel.SeriesQuery) ([]channel.SeriesPoint, error)
	AccessStore
}

// AccessStore is the part of the store's access contract (store.Access) the control plane
// calls: API tokens (authz.go, tokens.go), and single sign-on sessions and sign-ins in
// progress (sso.go).
type AccessStore interface {
	PutToken(ctx context.Context, t *access.Token) error
	GetToken(ctx context.Context, id string) (*access.Token, error)
	ListTokens(ctx context.Context) ([]*access.Token, error)
	RevokeToken(ctx context.Context, id string, at time.Time) (*access.Token, error)
	TouchToken(ctx context.Context, id string, at time.Time) error

	PutSession(ctx context.Context, s *access.Session) error
	GetSession(ctx context.Context, idHash string) (*access.Session, error)
	TouchSession(ctx context.Context, idHash string, at time.Time) error
	DeleteSession(ctx context.Context, idHash string) error
	PutLogin(ctx context.Context, l *access.Login) error
	TakeLogin(ctx context.Context, state string) (*access.Login, error)
}

// DefaultOIDCIssuer is the GitHub Actions OIDC issuer.
const DefaultOIDCIssuer = "https://token.actions.githubusercontent.com"

// Bounds on untrusted input, in one place.
const (
	// MaxRegistrationBody bounds POST /api/v1/bundles (a bundle with a delta manifest of
	// tens of thousands of files fits).
	MaxRegistrationBody = 8 << 20
	// MaxWebhookBody is GitHub's own cap on webhook payloads (25 MB).
	MaxWebhookBody = 25 << 20
	// MaxAdminBody bounds admin API request bodies.
	MaxAdminBody = 64 << 10
	// MaxManifestEntries bounds the files of a delta manifest.
	MaxManifestEntries = 50000
	// HMACWindow is how far X-Ferry-Timestamp may be from the relay's clock.
	HMACWindow = 5 * time.Minute
	// DeliveryTTL is how long a processed webhook delivery id is remembered. GitHub lets
	// maintainers redeliver deliveries of the last three days.
	DeliveryTTL = 7 * 24 * time.Hour
	// DefaultDeliveryLease is how long a webhook delivery id stays marked while it is being
	// processed (see [Options].DeliveryLease). Processing takes a few store round trips,
	// milliseconds; the lease only has to outlast the slowest of them.
	DefaultDeliveryLease = 2 * time.Minute
	// RetryAfter is the Retry-After, in seconds, sent with 503 when the store is unavailable.
	RetryAfter = 5
)

// Options configures an [API]. Config and Store are required. Each secret left empty
// disables the surface it protects: the admin API, the webhook endpoint, or HMAC
// registration. OIDC registration is enabled when OIDCAudience is set.
type Options struct {
	// Config lists the apps, their repositories, channels and ref rules.
	Config *channel.Config
	// Store persists bundles, channel state, audit entries and pending promotions.
	Store Store
	// Logger receives structured logs; nil discards them. A request served through the
	// relay's middleware logs through the request-scoped logger it put in the request's
	// context (package reqlog: the relay's logger with request_id and route) instead.
	Logger *slog.Logger
	// AdminToken (FERRY_ADMIN_TOKEN) is the bootstrap token: admin of every app, unless the
	// configuration's access.bootstrap_token is false. Empty disables it; API tokens and
	// single sign-on sessions still work (docs/access.md).
	AdminToken string
	// WebhookSecret (FERRY_WEBHOOK_SECRET) is the relay-wide GitHub webhook secret: it
	// authenticates pushes for the apps that name no webhook_secret_env of their own (a
	// fallback; a secret per app keeps one repository's secret from promoting another's
	// apps). With neither, /webhooks/github answers 404 webhooks_disabled.
	WebhookSecret string
	// Getenv reads the environment variables the configuration names (an app's
	// webhook_secret_env, access.sso.client_secret_env); nil reads none, and New then
	// refuses a configuration that names one. It is called only by New.
	Getenv func(string) string
	// HMACSecret (FERRY_HMAC_SECRET) is the relay-wide HMAC registration secret: it
	// authenticates registrations of the apps that name no hmac_secret_env of their own.
	// With neither, HMAC registration is disabled.
	HMACSecret string
	// OIDCIssuer is the issuer of registration tokens; default [DefaultOIDCIssuer].
	OIDCIssuer string
	// OIDCAudience is the audience registration tokens must carry; empty disables OIDC
	// registration.
	OIDCAudience string
	// HTTPClient fetches the issuer's discovery document and JWKS, and talks to the single
	// sign-on provider; nil means a client with a 10 s timeout.
	HTTPClient *http.Client
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// OnChange is called with the app id after every state change (the relay drops its
	// cache); nil means no call. It must not block.
	OnChange func(app string)
	// Registerer, when set, receives the control plane's metrics.
	Registerer prometheus.Registerer
	// Notifier, when set, gets an event for every promotion, rollback and rollout change
	// once it is stored, and serves GET /api/v1/apps/:app/notifications; nil sends none.
	Notifier Notifier
	// DeliveryLease is how long a webhook delivery id is marked while its processing runs;
	// 0 means [DefaultDeliveryLease]. Copies of the delivery arriving within it answer
	// "duplicate". Processed deliveries are then marked for [DeliveryTTL]; if the relay dies
	// mid-processing, the lease expires and GitHub's redelivery is processed. It must be
	// longer than any processing (a copy arriving after it while the first is still running
	// is processed too) and shorter than the wait before a redelivery is worth accepting.
	DeliveryLease time.Duration
	// PublicURL (--public-url) is the address devices reach the relay at. Bundles of a
	// private repository (channel.Bundle.Assets) are registered with download URLs under
	// PublicURL + "/dl/"; New refuses a configuration with release_access and no PublicURL.
	PublicURL string
}

// API serves registration, webhooks and the admin API. It is safe for concurrent use.
type API struct {
	cfg      *channel.Config
	store    Store
	log      *slog.Logger
	now      func() time.Time
	onChange func(app string)
	apps     map[string]*channel.App
	// lease is the webhook delivery lease ([Options].DeliveryLease).
	lease time.Duration
	// publicURL is [Options].PublicURL without a trailing slash.
	publicURL string

	adminToken string
	// hmacKeys are the distinct HMAC registration secrets (relay-wide and per app); empty
	// disables HMAC registration.
	hmacKeys []*sharedKey
	// webhookKeys are the distinct webhook secrets (relay-wide and per app); empty
	// disables webhooks.
	webhookKeys []*sharedKey

	tokens   *lookupCache[*access.Token]
	sessions *lookupCache[*access.Session] // by id hash
	failures *failureLimiter
	bg       sync.WaitGroup // background work: recording the last use of tokens and sessions

	oidc *oidcVerifier // nil when OIDC registration is disabled
	sso  *sso          // nil when single sign-on (access.sso) is not configured

	metrics  *metrics
	notifier Notifier // nil when notifications are off
}

// New validates opts and returns an API. It does no I/O: the OIDC issuer's discovery
// document and keys are fetched on the first OIDC registration (and retried on the next
// one if that fails), so an issuer outage does not stop the relay from starting.
func New(ctx context.Context, opts Options) (*API, error) {
	_ = ctx // reserved for start-up I/O; New does none today.
	var errs []error
	if opts.Config == nil {
		errs = append(errs, errors.New("control: config is required"))
	}
	if opts.Store == nil {
		errs = append(errs, errors.New("control: store is required"))
	}
	if opts.OIDCIssuer != "" && !strings.HasPrefix(opts.OIDCIssuer, "https://") && !strings.HasPrefix(opts.OIDCIssuer, "http://") {
		errs = append(errs, fmt.Errorf("control: OIDC issuer %q is not an http(s) URL", opts.OIDCIssuer))
	}
	if opts.DeliveryLease < 0 || opts.DeliveryLease > DeliveryTTL {
		errs = append(errs, fmt.Errorf("control: delivery lease %v is not between 0 and %v", opts.DeliveryLease, DeliveryTTL))
	}
	var keys, hmacKeys []*sharedKey
	var signOn *sso
	if opts.Config != nil {
		var err error
		keys, err = sharedKeys(opts.Config, opts.WebhookSecret, opts.Getenv, webhookEnv)
		errs = append(errs, err)
		hmacKeys, err = sharedKeys(opts.Config, opts.HMACSecret, opts.Getenv, hmacEnv)
		errs = append(errs, err)
		signOn, err = newSSO(opts.Config, opts.Getenv, opts.HTTPClient)
		errs = append(errs, err)
		errs = append(errs, checkReleaseAccess(opts.Config, opts.PublicURL, opts.Getenv))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	a := &API{
		cfg:         opts.Config,
		store:       opts.Store,
		log:         opts.Logger,
		now:         opts.Now,
		onChange:    opts.OnChange,
		lease:       opts.DeliveryLease,
		publicURL:   strings.TrimRight(opts.PublicURL, "/"),
		apps:        map[string]*channel.App{},
		adminToken:  opts.AdminToken,
		hmacKeys:    hmacKeys,
		webhookKeys: keys,
		tokens:      newLookupCache(TokenCacheTTL, opts.Store.GetToken),
		sessions:    newLookupCache(SessionCacheTTL, opts.Store.GetSession),
		failures:    newFailureLimiter(),
		sso:         signOn,
		notifier:    opts.Notifier,
	}
	if a.log == nil {
		a.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.lease == 0 {
		a.lease = DefaultDeliveryLease
	}
	if a.onChange == nil {
		a.onChange = func(string) {}
	}
	for i := range opts.Config.Apps {
		app := &opts.Config.Apps[i]
		a.apps[app.ID] = app
	}
	if opts.OIDCAudience != "" {
		issuer := opts.OIDCIssuer
		if issuer == "" {
			issuer = DefaultOIDCIssuer
		}
		hc := opts.HTTPClient
		if hc == nil {
			hc = &http.Client{Timeout: 10 * time.Second}
		}
		a.oidc = newOIDCVerifier(issuer, opts.OIDCAudience, hc, a.now)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	a.metrics = m
	return a, nil
}

// Mount registers the control plane's routes on r:
//
//	POST   /api/v1/bundles                                 registration (OIDC, HMAC or a publisher token)
//	POST   /api/v1/bundles/preflight                       a registration's checks, changing nothing
//	POST   /webhooks/github                                GitHub webhooks
//	POST   /api/v1/tokens                                  create an API token
//	GET    /api/v1/tokens                                  list the tokens the caller may manage
//	DELETE /api/v1/tokens/:id                              revoke one
//	GET  /api/v1/apps/:app/channels                        admin API (see authz.go) …
//	GET  /api/v1/apps/:app/bundles
//	GET  /api/v1/apps/:app/bundles/:version
//	POST /api/v1/apps/:app/channels/:channel/promote
//	POST /api/v1/apps/:app/channels/:channel/rollback
//	PUT  /api/v1/apps/:app/channels/:channel/rollout
//	POST /api/v1/apps/:app/channels/:channel/rollout/pause|resume|complete
//	PUT  /api/v1/apps/:app/channels/:channel/policy
//	GET  /api/v1/apps/:app/stats
//	GET  /api/v1/apps/:app/audit
//	GET  /api/v1/apps/:app/notifications
//	GET  /auth/login, /auth/callback, /auth/whoami          single sign-on, when access.sso is set
//	POST /auth/logout, /auth/cli/token
//
// The routes limit their own body sizes; a relay mounting them also enforces [API.BodyLimit]
// and its process-wide body budget before they run.
func (a *API) Mount(r gin.IRouter) {
	r.POST("/api/v1/bundles", a.handle(a.register))
	r.POST("/api/v1/bundles/preflight", a.handle(a.preflight))
	r.POST("/webhooks/github", a.handle(a.webhook))
	a.mountAdmin(r)
	a.mountTokens(r)
	a.mountSSO(r)
}

// BodyLimit returns the largest request body the route template accepts:
// [MaxRegistrationBody] for registrations, [MaxWebhookBody] for webhooks and
// [MaxAdminBody] for preflights and the admin API. The relay calls it to refuse longer declared bodies
// before they are read (relay.BodyLimiter).
func (a *API) BodyLimit(route string) int64 {
	switch route {
	case "/api/v1/bundles":
		return MaxRegistrationBody
	case "/webhooks/github":
		return MaxWebhookBody
	}
	return MaxAdminBody
}

// logger returns the request-scoped logger in ctx (the relay's middleware's, or the one
// [API.handle] put there), or the API's logger.
func (a *API) logger(ctx context.Context) *slog.Logger {
	if l, ok := reqlog.FromContext(ctx); ok {
		return l
	}
	return a.log
}

// httpError is an error with the status, code and public message to answer with. Err is
// the private cause, logged and never sent.
type httpError struct {
	Status int
	Code   string
	Msg    string
	Err    error
	// retryAfter, when set, is sent as Retry-After (a 429).
	retryAfter time.Duration
}

func (e *httpError) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Msg + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Msg
}

func (e *httpError) Unwrap() error { return e.Err }

func errorf(status int, code, format string, args ...any) *httpError {
	return &httpError{Status: status, Code: code, Msg: fmt.Sprintf(format, args...)}
}

// storeError maps a store failure to the answer: 503 with Retry-After when the store is
// unavailable, 500 otherwise.
func storeError(step string, err error) error {
	if errors.Is(err, channel.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return &httpError{Status: http.StatusServiceUnavailable, Code: "store_unavailable",
			Msg: "the relay's store is unavailable; nothing was acknowledged, retry later", Err: fmt.Errorf("%s: %w", step, err)}
	}
	return fmt.Errorf("%s: %w", step, err)
}

// handle adapts a handler returning an error to gin: an *httpError becomes its status and
// {error, message}; anything else is a 500 {"error":"internal","message":"internal error"}.
// Nothing is written once the request's context is cancelled.
func (a *API) handle(h func(c *gin.Context) error) gin.HandlerFunc {
	return func(c *gin.Context) {
		if _, ok := reqlog.FromContext(c.Request.Context()); !ok {
			// Not served through the relay's middleware: log with the route at least.
			c.Request = c.Request.WithContext(reqlog.NewContext(c.Request.Context(), a.log, "", c.FullPath()))
		}
		err := h(c)
		if err == nil {
			return
		}
		ctx := c.Request.Context()
		if ctx.Err() != nil {
			a.logger(ctx).InfoContext(ctx, "request cancelled", "error", err)
			c.Abort()
			return
		}
		var he *httpError
		if !errors.As(err, &he) {
			a.logger(ctx).ErrorContext(ctx, "internal error", "error", err)
			c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{"error": "internal", "message": "internal error"})
			return
		}
		level := slog.LevelInfo
		if he.Status >= 500 {
			level = slog.LevelError
		}
		a.logger(ctx).Log(ctx, level, "request refused", "status", he.Status, "code", he.Code, "message", he.Msg, "error", he.Err)
		switch {
		case he.retryAfter > 0:
			c.Header("Retry-After", retryAfterSeconds(he.retryAfter))
		case he.Status == http.StatusServiceUnavailable:
			c.Header("Retry-After", fmt.Sprint(RetryAfter))
		}
		if he.Status == http.StatusUnauthorized {
			c.Header("WWW-Authenticate", `Bearer realm="ferry"`)
		}
		c.AbortWithStatusJSON(he.Status, gin.H{"error": he.Code, "message": he.Msg})
	}
}

// readBody reads the request body up to limit bytes; a longer body is a 413, before
// anything is read when its declared length already says so.
func readBody(c *gin.Context, limit int64) ([]byte, error) {
	if c.Request.ContentLength > limit {
		return nil, errorf(http.StatusRequestEntityTooLarge, "body_too_large", "request body exceeds %d bytes", limit)
	}
	r := http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	var body []byte
	var err error
	if n := c.Request.ContentLength; n >= 0 {
		// One buffer of the declared size (the server never delivers more), rather than
		// io.ReadAll's doubling, which leaves up to twice the body behind as garbage.
		body = make([]byte, n)
		_, err = io.ReadFull(r, body)
	} else {
		body, err = io.ReadAll(r)
	}
	if err != nil {
		return nil, bodyError(err, limit)
	}
	return body, nil
}

func bodyError(err error, limit int64) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errorf(http.StatusRequestEntityTooLarge, "body_too_large", "request body exceeds %d bytes", limit)
	}
	return &httpError{Status: http.StatusBadRequest, Code: "bad_body", Msg: "cannot read the request body", Err: err}
}

// appsForRepository returns the apps whose configured repository is repo (GitHub
// repository names are case-insensitive).
func (a *API) appsForRepository(repo string) []*channel.App {
	var out []*channel.App
	for i := range a.cfg.Apps {
		if strings.EqualFold(a.cfg.Apps[i].Repository, repo) {
			out = append(out, &a.cfg.Apps[i])
		}
	}
	return out
}

// causeSource reduces a cause to a bounded metrics label.
func causeSource(cause string) string {
	switch {
	case strings.HasPrefix(cause, "webhook:"):
		return "webhook"
	case strings.HasPrefix(cause, "registration"):
		return "registration"
	case strings.HasPrefix(cause, "admin"):
		return "admin"
	default:
		return "other"
	}
}
