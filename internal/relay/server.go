package relay

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/internal/channel"
)

// Options configures a [Server]. Config and Store are required; every other field has a
// documented default for its zero value.
type Options struct {
	// Config lists the apps the relay serves, their channels and policies. It must already
	// be valid (channel.ParseConfig validates it).
	Config *channel.Config
	// Store holds channel state, bundles, stats and per-device failures.
	Store Store
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// TrustedProxies lists the IPs or CIDRs whose X-Forwarded-For / X-Real-IP headers are
	// believed when finding the client IP (for rate limiting and logs). Empty trusts none:
	// the client IP is the TCP peer.
	TrustedProxies []string
	// TrustedPlatform, when set, names a header a CDN sets to the client IP (for example
	// "CF-Connecting-IP"); it is believed from any peer, so set it only when every request
	// comes through that CDN.
	TrustedPlatform string
	// RateLimit is the sustained requests per second allowed per client IP on the device
	// and API routes; 0 means [DefaultRateLimit], a negative value disables rate limiting.
	RateLimit float64
	// RateBurst is the bucket size per client IP; 0 means [DefaultRateBurst].
	RateBurst int
	// DeviceRateLimit is the sustained update checks per second allowed per app and
	// device_id (POST /updates and /updates/manifest_size); 0 means
	// [DefaultDeviceRateLimit], a negative value disables it.
	DeviceRateLimit float64
	// DeviceRateBurst is the bucket size per device; 0 means [DefaultDeviceRateBurst].
	DeviceRateBurst int
	// BodyBudget bounds the request-body bytes held at once over every route, mounted
	// ones included: a request reserves its declared length (its route's limit when
	// undeclared) before it is read, and what does not fit is refused with 503 and
	// Retry-After. 0 means [DefaultBodyBudget], a negative value disables the budget;
	// otherwise it must be at least [MinBodyBudget].
	BodyBudget int64
	// SnapshotTTL is how long an app's cached state is used without a change notification;
	// 0 means [DefaultSnapshotTTL].
	SnapshotTTL time.Duration
	// StoreTimeout bounds each store call made while answering a device; 0 means
	// [DefaultStoreTimeout].
	StoreTimeout time.Duration
	// MaxConns caps the connections [Server.Serve] keeps open at once; when the cap is
	// reached an idle keep-alive connection is closed to make room, else new connections
	// wait in the backlog. 0 means [DefaultMaxConns], a negative value means no cap.
	MaxConns int
	// MetricsToken, when set, is the bearer token GET /metrics requires ("Authorization:
	// Bearer <token>"); empty serves the metrics to anyone who can reach the route.
	MetricsToken string
	// SeparateMetrics leaves /metrics out of [Server.Handler]; serve it with
	// [Server.ServeMetrics] on a listener of its own (a private port) instead.
	SeparateMetrics bool
	// ShutdownTimeout bounds the graceful drain in [Server.Serve]; 0 means
	// [DefaultShutdownTimeout].
	ShutdownTimeout time.Duration
	// Registry receives the relay's metrics and is served on /metrics; nil means a new
	// registry with the Go and process collectors.
	Registry *prometheus.Registry
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Series, when set, receives the relay's time-bucketed counts of update checks and
	// stats events (docs/stats.md), flushed every SeriesFlush and when [Server.Serve]
	// returns. cmd/relay passes the store; nil records nothing.
	Series SeriesStore
	// SeriesFlush is how often the counts are written to Series; 0 means
	// [DefaultSeriesFlush].
	SeriesFlush time.Duration
	// Links, keyed by app id, resolve the release assets of bundles published to a private
	// repository (channel.Bundle.Assets): GET /dl/{app}/{version}/{asset} redirects to the
	// URL its LinkFunc returns, cached until shortly before it expires. Apps without one
	// answer 404 there.
	Links map[string]LinkFunc
	// LinkStore, when set, shares the signed URLs Links return between the relay instances
	// using the same store: a URL one instance got from GitHub is handed out by all until
	// shortly before it expires. cmd/relay passes the store; nil keeps each URL in this
	// instance only.
	LinkStore LinkStore
	// Degraded, when set, names a risk the operator accepted at start-up (a Redis that may
	// evict keys): /readyz reports it with status "degraded" (still 200, so traffic flows).
	Degraded string
}

// Mounter adds routes to the relay's engine. The control plane (package control) is one.
type Mounter interface {
	Mount(r gin.IRouter)
}

// BodyLimiter is implemented by a [Mounter] whose routes accept bodies of different sizes.
// BodyLimit returns the largest body the route accepts, by route template (as
// gin.Context.FullPath reports it); values above [MaxMountedBody] count as that. The relay
// then answers 413 at once for a longer declared body and counts each body against
// [Options].BodyBudget. A Mounter that does not implement it gets [MaxMountedBody] on
// every route.
type BodyLimiter interface {
	BodyLimit(route string) int64
}

// Watcher is implemented by a [Mounter] that caches what the store's change notifications
// invalidate (the control plane caches API tokens). [Server.Watch] passes it every message
// of Store.Subscribe, app ids and others alike, and "" when messages may have been lost
// (after the subscription was re-established), so it does not subscribe a second time. It
// must not block.
type Watcher interface {
	StoreChanged(msg string)
}

// Server is the relay's HTTP server. Create it with [New]; it is safe for concurrent use.
type Server struct {
	opts    Options
	log     *slog.Logger
	store   Store
	apps    map[string]*appEntry
	engine  *gin.Engine
	api     *gin.RouterGroup // rate-limited group for mounted routes
	metrics *metrics
	limiter *rateLimiter // per client IP
	budget  *bodyBudget  // nil when disabled
	// deviceLimiter limits update checks per app and device id.
	deviceLimiter *rateLimiter
	now           func() time.Time
	// ready caches the readiness ping (GET /readyz).
	ready readiness
	// failedGate skips Store.FailedVersions after a failure; see failedVersions.
	failedGate storeGate
	// localLookups: the store's FailedVersions needs no deadline (see localLookups).
	localLookups bool
	// failedFilter is the store's, when it has one (see failedFilter).
	failedFilter failedFilter
	// series counts checks and stats events for Options.Series; nil when that is nil.
	series *seriesRecorder
	// downloads serves GET /dl/…; nil when Options.Links is empty.
	downloads *downloads
	// ipContexts hold contexts of engine that serve no request, for clientIP.
	ipContexts sync.Pool
	// watchers receive the store's change notifications (see [Watcher]).
	watchersMu sync.Mutex
	watchers   []Watcher
}

// New validates opts and builds a server. It does not start any goroutine or touch the
// store; [Server.Serve] does.
func New(opts Options) (*Server, error) {
	var errs []error
	if opts.Config == nil {
		errs = append(errs, errors.New("config is required"))
	}
	if opts.Store == nil {
		errs = append(errs, errors.New("store is required"))
	}
	if opts.RateBurst < 0 || opts.DeviceRateBurst < 0 {
		errs = append(errs, fmt.Errorf("rate bursts must not be negative (%d, %d)", opts.RateBurst, opts.DeviceRateBurst))
	}
	if opts.BodyBudget > 0 && opts.BodyBudget < MinBodyBudget {
		errs = append(errs, fmt.Errorf("body budget %d is below the minimum %d (the largest body plus the reserve for small ones)", opts.BodyBudget, int64(MinBodyBudget)))
	}
	if opts.SnapshotTTL < 0 || opts.StoreTimeout < 0 || opts.ShutdownTimeout < 0 || opts.SeriesFlush < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = discardLogger
	}
	if opts.RateLimit == 0 {
		opts.RateLimit = DefaultRateLimit
	}
	if opts.RateBurst == 0 {
		opts.RateBurst = DefaultRateBurst
	}
	if opts.DeviceRateLimit == 0 {
		opts.DeviceRateLimit = DefaultDeviceRateLimit
	}
	if opts.DeviceRateBurst == 0 {
		opts.DeviceRateBurst = DefaultDeviceRateBurst
	}
	if opts.BodyBudget == 0 {
		opts.BodyBudget = DefaultBodyBudget
	}
	if opts.SnapshotTTL == 0 {
		opts.SnapshotTTL = DefaultSnapshotTTL
	}
	if opts.StoreTimeout == 0 {
		opts.StoreTimeout = DefaultStoreTimeout
	}
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	if opts.MaxConns == 0 {
		opts.MaxConns = DefaultMaxConns
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SeriesFlush == 0 {
		opts.SeriesFlush = DefaultSeriesFlush
	}
	m, err := newMetrics(opts.Registry)
	if err != nil {
		return nil, err
	}
	var series *seriesRecorder
	if opts.Series != nil {
		if series, err = newSeriesRecorder(opts.Series, opts.SeriesFlush, opts.StoreTimeout, opts.Now, m.reg); err != nil {
			return nil, err
		}
	}
	s := &Server{
		opts:    opts,
		log:     opts.Logger,
		store:   opts.Store,
		apps:    make(map[string]*appEntry, len(opts.Config.Apps)),
		metrics: m,
		now:     opts.Now,
		series:  series,
	}
	if f, ok := opts.Store.(failedFilter); ok {
		s.failedFilter = f
	}
	if l, ok := opts.Store.(localLookups); ok {
		s.localLookups = l.LocalLookups()
	}
	for i := range opts.Config.Apps {
		app := &opts.Config.Apps[i]
		if _, dup := s.apps[app.ID]; dup {
			return nil, fmt.Errorf("app %q is configured twice", app.ID)
		}
		s.apps[app.ID] = newAppEntry(app)
	}
	if len(opts.Links) > 0 {
		if s.downloads, err = newDownloads(opts.Links, opts.Now, opts.Logger, m.reg); err != nil {
			return nil, err
		}
		s.downloads.store, s.downloads.storeTimeout, s.downloads.storeErrors = opts.LinkStore, opts.StoreTimeout, m.storeErrors
	}
	if opts.BodyBudget > 0 {
		s.budget = newBodyBudget(opts.BodyBudget)
		m.bodyBudgetInUse(s.budget)
	}
	if opts.RateLimit > 0 {
		s.limiter = newRateLimiter(opts.RateLimit, opts.RateBurst, opts.Now)
	}
	if opts.DeviceRateLimit > 0 {
		s.deviceLimiter = newRateLimiter(opts.DeviceRateLimit, opts.DeviceRateBurst, opts.Now)
	}
	if err := s.buildEngine(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) buildEngine() error {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.ContextWithFallback = true
	e.HandleMethodNotAllowed = false
	if err := e.SetTrustedProxies(s.opts.TrustedProxies); err != nil {
		return fmt.Errorf("trusted proxies: %w", err)
	}
	e.TrustedPlatform = s.opts.TrustedPlatform
	e.Use(s.requestContext(), s.metrics.middleware(), s.recovery())
	e.NoRoute(func(c *gin.Context) {
		writeJSON(c, http.StatusNotFound, errorBody{Error: "not_found", Message: "No such endpoint"})
	})

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	if !s.opts.SeparateMetrics {
		e.GET("/metrics", s.metricsAuth(), s.metrics.handler())
	}

	dev := e.Group("/", s.rateLimit())
	// The device routes are served by router (see direct.go); the engine keeps them for its
	// trailing-slash redirects and route conflicts.
	for _, rt := range directRoutes {
		dev.Handle(rt.method, rt.path, s.bodyLimit(rt.limit, rt.cost), s.ginHandler(rt))
	}
	dev.GET("/dl/:app/:version/:name", s.download)

	s.api = e.Group("/", s.rateLimit())
	s.engine = e
	s.ipContexts.New = func() any { return gin.CreateTestContextOnly(nil, e) }
	return nil
}

// Mount lets m add its routes (rate limited, with request ids, logs and metrics like every
// route, and with body limits and the body budget: see [BodyLimiter]). Call it before
// serving; it is not safe to call concurrently with requests.
func (s *Server) Mount(m Mounter) {
	limit := func(*gin.Context) int64 { return MaxMountedBody }
	if bl, ok := m.(BodyLimiter); ok {
		limit = func(c *gin.Context) int64 { return min(bl.BodyLimit(c.FullPath()), MaxMountedBody) }
	}
	m.Mount(s.api.Group("", s.limitBody(limit, 1, false)))
	if w, ok := m.(Watcher); ok {
		s.watchersMu.Lock()
		s.watchers = append(s.watchers, w)
		s.watchersMu.Unlock()
	}
}

// notify passes a store notification to the mounted watchers.
func (s *Server) notify(msg string) {
	s.watchersMu.Lock()
	ws := s.watchers
	s.watchersMu.Unlock()
	for _, w := range ws {
		w.StoreChanged(msg)
	}
}

// Handler returns the relay's http.Handler. Without [Server.Serve] running, nothing listens
// to the store's change notifications; snapshots then refresh only on [Server.Invalidate]
// and after [Options.SnapshotTTL].
func (s *Server) Handler() http.Handler { return router{s} }

// Registry returns the registry /metrics serves, so other parts (the control plane) can
// register their metrics on it.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.reg }

// Invalidate drops the cached snapshot of app, so the next update check reloads it. The
// control plane calls it after every change it makes; changes made through other relay
// instances arrive through Store.Subscribe. Unknown apps are ignored. Safe for concurrent use.
func (s *Server) Invalidate(app string) {
	if e, ok := s.apps[app]; ok {
		e.invalidate()
	}
}

// ListenAndServe listens on addr and calls [Server.Serve].
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends, then shuts down gracefully: it stops accepting, waits
// up to [Options.ShutdownTimeout] (on a fresh context) for requests in flight, and returns.
// While serving it follows the store's change notifications. It closes ln; it does not close
// the store (the caller does, after Serve returns).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := s.httpServer(ctx, s.Handler())
	ln = lazyListener{ln}
	if s.opts.MaxConns > 0 {
		ll := newLimitListener(ln, s.opts.MaxConns)
		ln, srv.ConnState = ll, ll.connState
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		s.Watch(watchCtx)
	}()
	for _, rl := range []*rateLimiter{s.limiter, s.deviceLimiter} {
		if rl != nil {
			go rl.sweepLoop(watchCtx)
		}
	}
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		if s.series != nil {
			s.series.run(watchCtx)
		}
	}()

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	var err error
	select {
	case err = <-served:
		// the listener failed before ctx ended
	case <-ctx.Done():
		shutCtx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
		err = srv.Shutdown(shutCtx)
		cancel()
		if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
	}
	stopWatch()
	<-watched
	<-flushed
	if s.series != nil {
		// The requests in flight are answered: write what they counted.
		s.series.flush(ctx)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// httpServer is the http.Server of h with the relay's timeouts and limits: a request's
// headers must arrive within readHeaderTimeout (slow-header clients cannot hold a
// connection), the whole request within readTimeout, the answer within writeTimeout, and
// a keep-alive connection is closed after idleTimeout without a request.
func (s *Server) httpServer(ctx context.Context, h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
}

// MetricsHandler serves GET /metrics alone (with [Options].MetricsToken when set).
func (s *Server) MetricsHandler() http.Handler {
	e := gin.New()
	e.GET("/metrics", s.metricsAuth(), s.metrics.handler())
	return e
}

// ServeMetrics serves [Server.MetricsHandler] on ln, with the relay's timeouts and at most
// metricsMaxConns connections, until ctx ends; then it closes ln and returns. Use it with
// [Options].SeparateMetrics to keep the metrics off the public port.
func (s *Server) ServeMetrics(ctx context.Context, ln net.Listener) error {
	srv := s.httpServer(ctx, s.MetricsHandler())
	ll := newLimitListener(ln, metricsMaxConns)
	srv.ConnState = ll.connState
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ll) }()
	var err error
	select {
	case err = <-served:
	case <-ctx.Done():
		shutCtx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
		err = srv.Shutdown(shutCtx)
		cancel()
		<-served //nolint:errcheck // Serve's own ErrServerClosed; Shutdown's result is the one to report
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve metrics: %w", err)
	}
	return nil
}

// metricsAuth requires [Options].MetricsToken as a bearer token when one is set.
func (s *Server) metricsAuth() gin.HandlerFunc {
	want := sha256.Sum256([]byte("Bearer " + s.opts.MetricsToken))
	return func(c *gin.Context) {
		if s.opts.MetricsToken == "" {
			c.Next()
			return
		}
		// Compared as hashes, in constant time: neither the token nor its length leaks.
		got := sha256.Sum256([]byte(c.GetHeader("Authorization")))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			c.Header("WWW-Authenticate", `Bearer realm="ferry-metrics"`)
			writeJSON(c, http.StatusUnauthorized, errorBody{Error: "unauthorized", Message: "GET /metrics needs Authorization: Bearer <FERRY_METRICS_TOKEN>"})
			c.Abort()
			return
		}
		c.Next()
	}
}

// Watch drops cached snapshots when the store reports a change, until ctx ends. [Server.Serve]
// runs it; call it yourself only when serving [Server.Handler] some other way.
func (s *Server) Watch(ctx context.Context) {
	for {
		ch := s.store.Subscribe(ctx)
		for app := range ch {
			s.Invalidate(app)
			s.notify(app)
		}
		// The channel closes when ctx ends or the store closes; after a store-side close
		// while ctx lives, subscribe again after a pause (and expire everything, since
		// notifications may have been lost).
		select {
		case <-ctx.Done():
			return
		case <-time.After(storeRetry):
		}
		for app := range s.apps {
			s.Invalidate(app)
		}
		s.notify("")
	}
}
