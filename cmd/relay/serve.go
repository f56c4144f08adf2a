package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/ferryhq/ferry/internal/assetlink"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/console"
	"github.com/ferryhq/ferry/internal/notify"
	"github.com/ferryhq/ferry/internal/relay"
	"github.com/ferryhq/ferry/internal/relay/control"
	"github.com/ferryhq/ferry/internal/rollout"
	"github.com/ferryhq/ferry/internal/store"
)

// boltFile is the embedded store's file name inside --data-dir.
const boltFile = "ferry.db"

// rolloutLeaseIntervals is the rollout controller's lease in --rollout-interval: a
// renewal may miss two ticks before another instance takes over.
const rolloutLeaseIntervals = 3

// serve runs the relay with a validated Config until ctx ends. ready, when set, is called
// with the listening address once the relay accepts connections.
func serve(ctx context.Context, cfg *Config, stdout io.Writer, ready func(addr string)) error {
	logger, err := newLogger(cfg, stdout)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(cfg.ConfigPath)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	apps, err := channel.ParseConfig(data)
	if err != nil {
		return fmt.Errorf("config %s is invalid:\n%w", cfg.ConfigPath, err)
	}

	st, storeDesc, degraded, err := openStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil {
			logger.Error("close store", "error", cerr)
		}
	}()

	// relay.Options: zero means the default, negative disables.
	rateLimit, deviceRateLimit, bodyBudget, maxConns := cfg.RateLimit, cfg.DeviceRateLimit, cfg.BodyBudget, cfg.MaxConns
	if rateLimit == 0 {
		rateLimit = -1
	}
	if deviceRateLimit == 0 {
		deviceRateLimit = -1
	}
	if bodyBudget == 0 {
		bodyBudget = -1
	}
	if maxConns == 0 {
		maxConns = -1
	}
	links, err := releaseLinks(apps, cfg.Getenv)
	if err != nil {
		return err
	}
	srv, err := relay.New(relay.Options{
		Links:           links,
		LinkStore:       st, // signed URLs shared by every instance on the store
		Config:          apps,
		Store:           st,
		Logger:          logger,
		TrustedProxies:  cfg.TrustedProxies,
		TrustedPlatform: cfg.TrustedPlatform,
		RateLimit:       rateLimit,
		RateBurst:       cfg.RateBurst,
		DeviceRateLimit: deviceRateLimit,
		DeviceRateBurst: cfg.DeviceRateBurst,
		SnapshotTTL:     cfg.SnapshotTTL,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Degraded:        degraded,
		BodyBudget:      bodyBudget,
		MaxConns:        maxConns,
		MetricsToken:    cfg.MetricsToken,
		SeparateMetrics: cfg.MetricsAddr != "",
		Series:          st, // counts flushed every relay.DefaultSeriesFlush and on shutdown
	})
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	notifier, err := notify.New(notify.Options{
		Config:     apps,
		Getenv:     cfg.Getenv,
		Logger:     logger,
		Registerer: srv.Registry(),
	})
	if err != nil {
		return fmt.Errorf("notifications: %w", err)
	}
	defer func() {
		// After the control plane: drain what is queued, as long as requests in flight
		// were given (--shutdown-timeout); what is left then is dropped and logged.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
		defer cancel()
		if nerr := notifier.Close(dctx); nerr != nil {
			logger.Error("notifications", "error", nerr)
		}
	}()
	api, err := control.New(ctx, control.Options{
		Config:        apps,
		Store:         st,
		Logger:        logger,
		AdminToken:    cfg.AdminToken,
		WebhookSecret: cfg.WebhookSecret,
		Getenv:        cfg.Getenv,
		HMACSecret:    cfg.HMACSecret,
		OIDCIssuer:    cfg.OIDCIssuer,
		OIDCAudience:  cfg.OIDCAudience,
		DeliveryLease: cfg.WebhookLease,
		OnChange:      srv.Invalidate,
		Registerer:    srv.Registry(),
		Notifier:      notifier,
		PublicURL:     cfg.PublicURL,
	})
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	defer api.Close() // before the store closes
	// The rollout controller: every instance runs it, the one holding the store lease acts.
	// It stops before the notifier drains (deferred later, so run earlier) and gives the
	// lease up, so another instance takes over at its next tick.
	ctl, err := rollout.New(rollout.Options{
		Config:     apps,
		Store:      st,
		Interval:   cfg.RolloutInterval,
		LeaseTTL:   rolloutLeaseIntervals * cfg.RolloutInterval,
		Logger:     logger,
		Events:     notifier,
		OnChange:   srv.Invalidate,
		Registerer: srv.Registry(),
	})
	if err != nil {
		return err
	}
	ctlCtx, stopCtl := context.WithCancel(ctx)
	ctlDone := make(chan struct{})
	go func() {
		defer close(ctlDone)
		_ = ctl.Run(ctlCtx) // Run logs its ticks' errors and returns nil when stopped
	}()
	defer func() {
		stopCtl()
		<-ctlDone
	}()
	srv.Mount(api) // the relay also passes the store's notifications to it (relay.Watcher)
	copts := console.Options{API: api, Store: st, Series: st, Logger: logger}
	con, err := console.New(copts)
	if err != nil {
		return err
	}
	srv.Mount(con) // /console/, and / and /ui redirecting to it

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	ids := make([]string, 0, len(apps.Apps))
	for _, a := range apps.Apps {
		ids = append(ids, a.ID)
	}
	// With --metrics-addr, /metrics is served on its own listener, stopped with the relay.
	metricsCtx, stopMetrics := context.WithCancel(ctx)
	defer stopMetrics()
	metricsDone := make(chan error, 1)
	if cfg.MetricsAddr == "" {
		metricsDone <- nil
	} else {
		mln, err := lc.Listen(ctx, "tcp", cfg.MetricsAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen on %s (--metrics-addr): %w", cfg.MetricsAddr, err)
		}
		logger.Info("metrics listening", "addr", mln.Addr().String())
		go func() { metricsDone <- srv.ServeMetrics(metricsCtx, mln) }()
	}
	logger.Info("relay listening", "addr", ln.Addr().String(), "store", storeDesc, "apps", ids, "settings", cfg)
	if cfg.HMACSecret == "" && cfg.OIDCAudience == "" && !slices.ContainsFunc(apps.Apps, func(a channel.App) bool { return a.HMACSecretEnv != "" }) {
		logger.Warn(noRegistration)
	}
	if ready != nil {
		ready(ln.Addr().String())
	}
	err = srv.Serve(ctx, ln)
	stopMetrics()
	if merr := <-metricsDone; merr != nil {
		logger.Error("metrics listener", "error", merr)
	}
	logger.Info("relay stopped", "error", err)
	return err
}

// noRegistration is logged at start-up when neither OIDC nor HMAC registration is
// configured (API tokens with the publisher role may still register). It is a warning, not a refusal: relays that only answer devices from a Redis
// that others write to need neither secret.
const noRegistration = "no way to register bundles: set FERRY_HMAC_SECRET (HMAC from any CI) or --oidc-audience " +
	"(FERRY_OIDC_AUDIENCE, GitHub OIDC), or create an API token with the publisher role; until then every POST /api/v1/bundles is refused and devices get no update"

// openStore opens Redis when a URL is configured, else the embedded bbolt file in the data
// directory. It returns the whole store contract, of which the relay and the control plane
// each take the methods they call, a description for the start-up line, and the risk the
// operator accepted, if any (see openRedis).
func openStore(ctx context.Context, cfg *Config, logger *slog.Logger) (st store.Store, desc, degraded string, err error) {
	if cfg.RedisURL != "" {
		return openRedis(ctx, cfg, logger)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, "", "", fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(cfg.DataDir, boltFile)
	b, err := store.OpenBolt(path, store.BoltOptions{Logger: logger})
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return nil, "", "", fmt.Errorf("open %s: another relay uses this data dir; run one relay per embedded store, or use --redis-url: %w", path, err)
		}
		return nil, "", "", fmt.Errorf("open embedded store: %w", err)
	}
	return b, "bolt " + path, "", nil
}

func newLogger(cfg *Config, stdout io.Writer) (*slog.Logger, error) {
	level, err := parseLevel(cfg.LogLevel)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(stdout, opts)), nil
	}
	return slog.New(slog.NewJSONHandler(stdout, opts)), nil
}

// releaseLinks builds the download-link source of every app with release_access: a GitHub
// App installation or a fine-grained token read from the variables the config names. A
// variable that is unset is reported by the control plane; a key that does not parse
// stops the relay here.
func releaseLinks(apps *channel.Config, getenv func(string) string) (map[string]relay.LinkFunc, error) {
	links := map[string]relay.LinkFunc{}
	var errs []error
	for i := range apps.Apps {
		a := &apps.Apps[i]
		ra := a.ReleaseAccess
		if ra == nil || getenv == nil {
			continue
		}
		opts := assetlink.Options{APIURL: ra.APIURL, Token: getenv(ra.TokenEnv)}
		if ra.PrivateKeyEnv != "" {
			opts.Token = ""
			key := getenv(ra.PrivateKeyEnv)
			if key == "" {
				continue
			}
			opts.App = &assetlink.App{AppID: ra.AppID, InstallationID: ra.InstallationID, PrivateKey: []byte(key)}
		} else if opts.Token == "" {
			continue
		}
		l, err := assetlink.New(a.Repository, opts)
		if err != nil {
			errs = append(errs, fmt.Errorf("app %q: release_access: %w (private_key_env must hold the GitHub App's private key PEM, as downloaded from the App's settings)", a.ID, err))
			continue
		}
		links[a.ID] = func(ctx context.Context, id int64) (string, time.Time, error) {
			link, err := l.Link(ctx, id)
			if err != nil {
				return "", time.Time{}, err
			}
			return link.URL, link.Expires, nil
		}
	}
	return links, errors.Join(errs...)
}
