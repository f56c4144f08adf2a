package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relay/control"
	"github.com/ferryhq/ferry/internal/relay/reqlog"
)

// Store is what the console reads from the relay's store directly (everything that changes
// state goes through the control plane). Each method keeps the contract documented on
// [github.com/ferryhq/ferry/internal/store.Store].
type Store interface {
	ListBundles(ctx context.Context, app string, limit int) ([]*channel.Bundle, error)
	GetBundles(ctx context.Context, app string, versions []string) (map[string]*channel.Bundle, error)
	Stats(ctx context.Context, app string) ([]channel.VersionStats, error)
	FailedVersions(ctx context.Context, app, device string) ([]string, error)
}

// Series is the store's time-bucketed counters ([github.com/ferryhq/ferry/internal/store.Series]),
// which the console charts.
type Series interface {
	Series(ctx context.Context, app string, q channel.SeriesQuery) ([]channel.SeriesPoint, error)
}

// Paths of the console.
const (
	// Root is where the console is mounted; / and /ui redirect to it.
	Root = "/console/"
	// CSRFField is the form field every state-changing form carries: the session's CSRF
	// token (the sign-in form carries the value of [signinCookie] instead).
	CSRFField = "csrf"
	// signinCookie holds a random value the sign-in form must echo, so another site cannot
	// sign a browser in with its own token (login CSRF).
	signinCookie = "ferry_console_signin"
	// MaxBody bounds the console's form bodies.
	MaxBody = 64 << 10
	// bundleLimit is how many bundles the app page and the promote form list.
	bundleLimit = 200
)

// Options configures a [Console]. API and Store are required.
type Options struct {
	// API is the control plane: sessions, permissions and every action.
	API *control.API
	// Store is read for bundles, stats and devices' failed versions.
	Store Store
	// Series, when set, feeds the stats charts and the apps page's trends.
	Series Series
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Console serves the web console. It is safe for concurrent use.
type Console struct {
	api    *control.API
	store  Store
	series Series
	log    *slog.Logger
	now    func() time.Time
	pages  map[string]*template.Template
	static http.Handler
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// New parses the templates and returns a Console.
func New(opts Options) (*Console, error) {
	if opts.API == nil || opts.Store == nil {
		return nil, errors.New("console: API and Store are required")
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("console: static files: %w", err)
	}
	c := &Console{api: opts.API, store: opts.Store, series: opts.Series, log: opts.Logger, now: opts.Now,
		pages: pages, static: http.StripPrefix(Root+"static/", http.FileServer(http.FS(sub)))}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// Mount registers the console's routes on r (docs/console.md lists them).
func (c *Console) Mount(r gin.IRouter) {
	toRoot := func(g *gin.Context) { g.Redirect(http.StatusFound, Root) }
	r.GET("/", toRoot)
	r.GET("/ui", toRoot)
	r.GET("/console", toRoot)

	g := r.Group(Root, securityHeaders)
	g.GET("static/*file", c.serveStatic)
	g.GET("signin", c.signinPage)
	g.POST("signin", c.signin)

	in := g.Group("", c.signedIn)
	in.GET("", c.appsPage)
	in.POST("signout", c.signout)
	app := in.Group("apps/:app")
	app.GET("", c.appPage)
	app.GET("channels/:channel", c.channelPage)
	app.GET("channels/:channel/promote", c.promoteConfirm)
	app.POST("channels/:channel/promote", c.promote)
	app.POST("channels/:channel/rollback", c.rollback)
	app.POST("channels/:channel/rollout", c.setRollout)
	app.POST("channels/:channel/rollout/:op", c.rolloutOp)
	app.POST("channels/:channel/policy", c.setPolicy)
	app.GET("bundles/:version", c.bundlePage)
	app.GET("audit", c.auditPage)
	app.GET("devices", c.devicesPage)
	app.POST("devices/clear-failed", c.clearFailed)
	app.GET("stats", c.statsPage)
	app.GET("stats.csv", c.statsCSV)
}

// BodyLimit is the largest body a console route accepts (relay.BodyLimiter).
func (c *Console) BodyLimit(string) int64 { return MaxBody }

// contentSecurityPolicy allows the console's own scripts, styles and images only: no
// inline script or style, no other origin, no framing.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

// securityHeaders sets the headers every console response carries.
func securityHeaders(g *gin.Context) {
	h := g.Writer.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if g.Request.TLS != nil {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
}

func (c *Console) serveStatic(g *gin.Context) {
	g.Header("Cache-Control", "public, max-age=3600")
	c.static.ServeHTTP(g.Writer, g.Request)
}

// sessionKey is where signedIn keeps the request's *access.Session.
const sessionKey = "ferry.console.session"

// signedIn resolves the browser's session; without one, a GET is sent to the sign-in page
// (coming back afterwards) and anything else is refused. A POST must carry the session's
// CSRF token in the form field [CSRFField], or it is refused with 403 and changes nothing.
func (c *Console) signedIn(g *gin.Context) {
	s, err := c.api.Session(g)
	if err != nil {
		if status, _ := control.Refusal(err); status != http.StatusUnauthorized {
			c.fail(g, err)
			g.Abort()
			return
		}
		s = nil
	}
	if s == nil {
		if g.Request.Method == http.MethodGet {
			g.Redirect(http.StatusSeeOther, Root+"signin?return="+url.QueryEscape(g.Request.URL.RequestURI()))
		} else {
			c.errorPage(g, http.StatusUnauthorized, "You are not signed in (or your session ended). Sign in and try again.")
		}
		g.Abort()
		return
	}
	if g.Request.Method != http.MethodGet && g.Request.Method != http.MethodHead {
		if !access.HashEqual(g.PostForm(CSRFField), s.CSRF) || s.CSRF == "" {
			c.errorPage(g, http.StatusForbidden, "This form is missing its security token (CSRF). Reload the page and try again.")
			g.Abort()
			return
		}
	}
	g.Set(sessionKey, s)
	g.Header("Cache-Control", "no-store")
	g.Next()
}

func sessionOf(g *gin.Context) *access.Session { return g.MustGet(sessionKey).(*access.Session) }

// caller is the signed-in principal with the client address, for the control plane's actions.
func caller(g *gin.Context) control.Caller {
	return control.Caller{Principal: sessionOf(g).Principal(), IP: g.ClientIP()}
}

// logger returns the request-scoped logger (the relay's middleware puts it in the context).
func (c *Console) logger(ctx context.Context) *slog.Logger {
	if l, ok := reqlog.FromContext(ctx); ok {
		return l
	}
	return c.log
}

// fail renders the page for an error of the control plane or the store: its refusal
// message, or "internal error" (logged) for anything else.
func (c *Console) fail(g *gin.Context, err error) {
	ctx := g.Request.Context()
	status, msg := control.Refusal(err)
	if errors.Is(err, channel.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		status, msg = http.StatusServiceUnavailable, "The relay's store is unavailable; nothing was changed. Retry in a moment."
	}
	if status >= 500 {
		c.logger(ctx).ErrorContext(ctx, "console", "error", err)
		if status == http.StatusServiceUnavailable {
			g.Header("Retry-After", "5")
		}
	}
	c.errorPage(g, status, msg)
}

// Permissions as the pages ask for them.
const (
	readPerm   = access.Read
	deployPerm = access.Deploy
	managePerm = access.Manage
)

// storeErr wraps a failure of a store read the console makes itself.
func storeErr(step string, err error) error { return fmt.Errorf("console: %s: %w", step, err) }

// appOf resolves :app for the signed-in principal with perm, or renders the refusal.
func (c *Console) appOf(g *gin.Context, perm access.Permission) (*channel.App, bool) {
	app, err := c.api.App(sessionOf(g).Principal(), g.Param("app"), perm)
	if err != nil {
		c.fail(g, err)
		return nil, false
	}
	return app, true
}

// localPath checks a path to return to after signing in: a console path, nothing else.
func localPath(s string) string {
	if !strings.HasPrefix(s, Root) || strings.HasPrefix(s, "//") || strings.ContainsAny(s, "\\\r\n") {
		return Root
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return Root
	}
	return s
}
