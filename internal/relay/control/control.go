package control

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/internal/channel"
)

// Store is the subset of the relay's store (internal/relay.Store) the control plane uses.
// The method signatures are identical, so any relay store satisfies it.
type Store interface {
	PutBundle(ctx context.Context, b *channel.Bundle) (stored *channel.Bundle, created bool, err error)
	GetBundle(ctx context.Context, app, version string) (*channel.Bundle, error)
	ListBundles(ctx context.Context, app string, limit int) ([]*channel.Bundle, error)
	BundleByCommit(ctx context.Context, app, commit string) (*channel.Bundle, error)
	GetState(ctx context.Context, app, ch string) (*channel.State, error)
	ListStates(ctx context.Context, app string) ([]*channel.State, error)
	UpdateState(ctx context.Context, app, ch string, fn func(s *channel.State) (*channel.AuditEntry, error)) (*channel.State, error)
	AppendAudit(ctx context.Context, e channel.AuditEntry) error
	ListAudit(ctx context.Context, app string, limit int) ([]channel.AuditEntry, error)
	AddPending(ctx context.Context, app, commit string, p channel.Pending) error
	ListPending(ctx context.Context, app, commit string) ([]channel.Pending, error)
	DeletePending(ctx context.Context, app, commit string) error
	SeenDelivery(ctx context.Context, id string, ttl time.Duration) (seen bool, err error)
	Stats(ctx context.Context, app string) ([]channel.VersionStats, error)
}

// DefaultOIDCIssuer is the GitHub Actions OIDC issuer.
const DefaultOIDCIssuer = "https://token.actions.githubusercontent.com"

// Options configures an [API]. Config and Store are required. Each secret left empty
// disables the surface it protects: the admin API, the webhook endpoint, or HMAC
// registration. OIDC registration is enabled when OIDCAudience is set.
type Options struct {
	// Config lists the apps, their repositories, channels and ref rules.
	Config *channel.Config
	// Store persists bundles, channel state, audit entries and pending promotions.
	Store Store
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// AdminToken is the bearer token for /api/v1/apps/...; empty disables the admin API
	// (its routes answer 404 admin_disabled).
	AdminToken string
	// WebhookSecret is the GitHub webhook secret; empty disables /webhooks/github.
	WebhookSecret string
	// HMACSecret (FERRY_HMAC_SECRET) enables HMAC-signed registrations; empty disables them.
	HMACSecret string
	// OIDCIssuer is the issuer of registration tokens; default [DefaultOIDCIssuer].
	OIDCIssuer string
	// OIDCAudience is the audience registration tokens must carry; empty disables OIDC
	// registration.
	OIDCAudience string
	// HTTPClient fetches the issuer's discovery document and JWKS; nil means a client with
	// a 10 s timeout.
	HTTPClient *http.Client
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// OnChange is called with the app id after every state change (the relay drops its
	// cache); nil means no call.
	OnChange func(app string)
	// Registerer, when set, receives the control plane's metrics.
	Registerer prometheus.Registerer
}

// API serves registration, webhooks and the admin API. It is safe for concurrent use.
type API struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time
	apps map[string]*channel.App
}

// New validates opts and returns an API. With OIDCAudience set it fetches the issuer's
// discovery document (blocking, bounded by ctx), so a wrong issuer fails at start-up.
func New(ctx context.Context, opts Options) (*API, error) {
	var errs []error
	if opts.Config == nil {
		errs = append(errs, errors.New("config is required"))
	}
	if opts.Store == nil {
		errs = append(errs, errors.New("store is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	a := &API{opts: opts, log: opts.Logger, now: opts.Now, apps: map[string]*channel.App{}}
	if a.log == nil {
		a.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if a.now == nil {
		a.now = time.Now
	}
	for i := range opts.Config.Apps {
		app := &opts.Config.Apps[i]
		a.apps[app.ID] = app
	}
	return a, nil
}

// Mount registers the control plane's routes on r: POST /api/v1/bundles, POST
// /webhooks/github and the admin routes under /api/v1/apps/:app/.
func (a *API) Mount(r gin.IRouter) {
	r.POST("/api/v1/bundles", a.notImplemented)
	r.POST("/webhooks/github", a.notImplemented)
}

func (a *API) notImplemented(c *gin.Context) {
	c.JSON(http.StatusNotImplemented, gin.H{"error": "not_implemented", "message": "not implemented yet"})
}
