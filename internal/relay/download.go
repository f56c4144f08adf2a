package relay

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/internal/channel"
)

// LinkFunc asks GitHub for a short-lived download URL of one release asset of an app's
// private repository (one API call) and says when the URL expires. An error with a
// RetryAt() time.Time method means GitHub refused the call for its rate limits until
// then. cmd/relay passes one per app with release_access (package assetlink).
type LinkFunc func(ctx context.Context, assetID int64) (url string, expires time.Time, err error)

// LinkStore shares signed URLs between relay instances: [Options].LinkStore. Its contract
// is [github.com/ferryhq/ferry/internal/store.AssetLinks]; cmd/relay passes the store.
type LinkStore interface {
	PutAssetLink(ctx context.Context, app string, assetID int64, url string, expires time.Time) error
	GetAssetLink(ctx context.Context, app string, assetID int64) (url string, expires time.Time, ok bool, err error)
}

// Tuning of the download route (docs/relay.md#private-repositories).
const (
	// linkMargin is how long before its expiry a cached URL stops being handed out (at most
	// half its lifetime), so a device that follows it at once still gets there in time.
	linkMargin = 30 * time.Second
	// linkCallTimeout bounds one GitHub call, whatever the device that caused it does.
	linkCallTimeout = 15 * time.Second
	// linkOutagePause is how long GitHub is not asked again after a failure that carries
	// no rate-limit reset (a 5xx, a timeout).
	linkOutagePause = 30 * time.Second
	// maxCachedLinks bounds the cache; expired entries are dropped when it is full.
	maxCachedLinks = 4096
	// linkStoreSkip is how long the link store is not asked after it failed, so a dead
	// store costs one timeout per interval rather than one per download.
	linkStoreSkip = 10 * time.Second
)

type linkKey struct {
	app string
	id  int64
}

type cachedLink struct {
	url      string
	useUntil time.Time
}

type linkCall struct {
	done chan struct{}
	url  string
	err  error
}

// downloads resolves and caches the signed URLs of private release assets: in memory per
// instance, then in the shared link store, then from GitHub. One GitHub call per asset per
// URL lifetime at most per fleet sharing a store, concurrent requests for an asset on one
// instance coalesced into one lookup, and no call at all while GitHub's rate limit or an
// outage pauses an app.
type downloads struct {
	links map[string]LinkFunc
	now   func() time.Time
	log   *slog.Logger
	calls *prometheus.CounterVec // result
	// store shares links between instances; nil when there is none.
	store        LinkStore
	storeTimeout time.Duration
	storeErrors  *prometheus.CounterVec // op

	mu      sync.Mutex
	cache   map[linkKey]cachedLink
	pending map[linkKey]*linkCall
	paused  map[string]time.Time // app → no GitHub call before this
	// storeGate: the link store is not asked for linkStoreSkip after it failed.
	storeGate storeGate
}

func newDownloads(links map[string]LinkFunc, now func() time.Time, log *slog.Logger, reg prometheus.Registerer) (*downloads, error) {
	d := &downloads{links: links, now: now, log: log, cache: map[linkKey]cachedLink{}, pending: map[linkKey]*linkCall{}, paused: map[string]time.Time{},
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_release_links_total",
			Help: "Download links of private release assets by result: cached, shared (from the link store: another instance's GitHub call), fetched (a GitHub call), coalesced (waited for another request's lookup), paused (GitHub not asked: rate limit or outage), rate_limited, error.",
		}, []string{"result"})}
	if err := reg.Register(d.calls); err != nil {
		return nil, err
	}
	return d, nil
}

// errLinkPaused is returned while an app's GitHub calls are paused.
type errLinkPaused struct{ until time.Time }

func (e errLinkPaused) Error() string {
	return "GitHub calls paused until " + e.until.UTC().Format(time.RFC3339)
}

// available reports whether a device offered asset id of app can download it now: a
// cached URL exists or GitHub may be asked. The update check uses it to answer "no
// update" rather than a URL that would fail.
func (d *downloads) available(app string, id int64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	if c, ok := d.cache[linkKey{app, id}]; ok && now.Before(c.useUntil) {
		return true
	}
	return !now.Before(d.paused[app]) || d.paused[app].IsZero()
}

// link returns a usable signed URL for asset id of app: from this instance's cache, else
// from the link store, else from GitHub (and then into the store).
func (d *downloads) link(ctx context.Context, app string, id int64) (string, error) {
	k := linkKey{app, id}
	d.mu.Lock()
	if c, ok := d.cache[k]; ok && d.now().Before(c.useUntil) {
		d.mu.Unlock()
		d.calls.WithLabelValues("cached").Inc()
		return c.url, nil
	}
	if c := d.pending[k]; c != nil {
		d.mu.Unlock()
		d.calls.WithLabelValues("coalesced").Inc()
		select {
		case <-c.done:
			return c.url, c.err
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	c := &linkCall{done: make(chan struct{})}
	d.pending[k] = c
	d.mu.Unlock()

	// The lookup outlives the device that caused it: others may be waiting for it.
	lctx := context.WithoutCancel(ctx)
	u, useUntil, shared := d.fromStore(lctx, k)
	var err error
	result := "shared"
	var expires time.Time
	if !shared {
		u, expires, result, err = d.fromGitHub(lctx, k)
		useUntil = expires.Add(-min(linkMargin, expires.Sub(d.now())/2))
	}

	d.mu.Lock()
	delete(d.pending, k)
	if err == nil {
		d.remember(k, cachedLink{url: u, useUntil: useUntil})
	}
	until := d.paused[app]
	d.mu.Unlock()
	d.calls.WithLabelValues(result).Inc()
	if err != nil && result != "paused" {
		loggerFrom(ctx, d.log).WarnContext(ctx, "GitHub gave no download link; devices of the app are offered no private bundle until it does",
			"app", app, "asset_id", id, "paused_until", until, "error", err)
	}
	c.url, c.err = u, err
	close(c.done)
	if err == nil && !shared {
		d.toStore(lctx, k, u, expires)
	}
	return u, err
}

// remember caches a link in memory; d.mu is held.
func (d *downloads) remember(k linkKey, l cachedLink) {
	now := d.now()
	if len(d.cache) >= maxCachedLinks {
		for key, e := range d.cache {
			if !now.Before(e.useUntil) {
				delete(d.cache, key)
			}
		}
	}
	if len(d.cache) < maxCachedLinks {
		d.cache[k] = l
	}
}

// fromGitHub asks GitHub for a link unless the app's calls are paused, and pauses them
// after a refusal: result is the metric's label.
func (d *downloads) fromGitHub(ctx context.Context, k linkKey) (u string, expires time.Time, result string, err error) {
	d.mu.Lock()
	if until := d.paused[k.app]; d.now().Before(until) {
		d.mu.Unlock()
		return "", time.Time{}, "paused", errLinkPaused{until}
	}
	d.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, linkCallTimeout)
	u, expires, err = d.links[k.app](cctx, k.id)
	cancel()
	if err == nil {
		return u, expires, "fetched", nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var ra interface{ RetryAt() time.Time }
	var status interface{ StatusCode() int }
	switch {
	case errors.As(err, &ra):
		d.paused[k.app] = ra.RetryAt()
		return "", time.Time{}, "rate_limited", err
	case !errors.As(err, &status) || status.StatusCode() >= 500:
		d.paused[k.app] = d.now().Add(linkOutagePause)
	}
	return "", time.Time{}, "error", err
}

// storeUsable reports whether the link store may be asked now (there is one and it has
// not failed within linkStoreSkip).
func (d *downloads) storeUsable() bool {
	return d.store != nil && d.storeGate.open(d.now)
}

// storeFailed counts a failed link store call, logs it and skips the store for
// linkStoreSkip: downloads go to GitHub meanwhile.
func (d *downloads) storeFailed(ctx context.Context, op string, k linkKey, err error) {
	d.storeErrors.WithLabelValues(op).Inc()
	d.storeGate.shut(d.now(), linkStoreSkip)
	loggerFrom(ctx, d.log).WarnContext(ctx, "link store failed; asking GitHub directly for a while",
		"app", k.app, "asset_id", k.id, "op", op, "skip", linkStoreSkip.String(), "error", err)
}

// fromStore returns the link another instance stored for k, when there is one that is
// not within linkMargin of its expiry (its full lifetime is not known here).
func (d *downloads) fromStore(ctx context.Context, k linkKey) (string, time.Time, bool) {
	if !d.storeUsable() {
		return "", time.Time{}, false
	}
	sctx, cancel := context.WithTimeout(ctx, d.storeTimeout)
	u, expires, ok, err := d.store.GetAssetLink(sctx, k.app, k.id)
	cancel()
	if err != nil {
		d.storeFailed(ctx, "get_asset_link", k, err)
		return "", time.Time{}, false
	}
	useUntil := expires.Add(-linkMargin)
	if !ok || !d.now().Before(useUntil) {
		return "", time.Time{}, false
	}
	return u, useUntil, true
}

// toStore shares a link GitHub gave with the other instances, unless it is too close to
// its expiry to be handed out by them.
func (d *downloads) toStore(ctx context.Context, k linkKey, u string, expires time.Time) {
	if !d.storeUsable() || !d.now().Before(expires.Add(-linkMargin)) {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, d.storeTimeout)
	err := d.store.PutAssetLink(sctx, k.app, k.id, u, expires)
	cancel()
	if err != nil {
		d.storeFailed(ctx, "put_asset_link", k, err)
	}
}

// downloadBundle returns the bundle of app at version: from the app's snapshot when a
// channel serves it (so downloads of what devices are offered survive a store outage),
// else from the store.
func (s *Server) downloadBundle(ctx context.Context, app, version string) (*channel.Bundle, error) {
	if snap, err := s.snapshot(ctx, s.apps[app]); err == nil {
		if b := snap.Bundles[version]; b != nil {
			return b, nil
		}
	}
	sctx, cancel := context.WithTimeout(ctx, s.opts.StoreTimeout)
	defer cancel()
	return s.store.GetBundle(sctx, app, version)
}

// download answers GET /dl/:app/:version/:name: a 302 to the short-lived URL of a
// registered bundle's release asset. The relay never carries the bytes. Anything not
// registered is a 404 before GitHub is asked.
func (s *Server) download(c *gin.Context) {
	app, version, name := c.Param("app"), c.Param("version"), c.Param("name")
	notFound := func() {
		writeJSON(c, http.StatusNotFound, errorBody{Error: "not_found", Message: "No such download"})
	}
	if s.downloads == nil || s.downloads.links[app] == nil || s.apps[app] == nil {
		notFound()
		return
	}
	ctx := c.Request.Context()
	b, err := s.downloadBundle(ctx, app, version)
	if errors.Is(err, channel.ErrNotFound) {
		notFound()
		return
	}
	if err != nil {
		s.metrics.storeErrors.WithLabelValues("get_bundle").Inc()
		c.Header("Retry-After", "5")
		writeJSON(c, http.StatusServiceUnavailable, errorBody{Error: codeUnavailable, Message: "The update server cannot reach its store; try again later"})
		return
	}
	a := b.Assets.Find(name)
	if a == nil {
		notFound()
		return
	}
	u, err := s.downloads.link(ctx, app, a.ID)
	if err != nil {
		retry := 30 * time.Second
		var p errLinkPaused
		if errors.As(err, &p) {
			retry = max(p.until.Sub(s.now()), time.Second)
		}
		c.Header("Retry-After", strconv.Itoa(int(retry.Round(time.Second)/time.Second)))
		writeJSON(c, http.StatusServiceUnavailable, errorBody{Error: "download_unavailable", Message: "GitHub gives no download link right now; try again later"})
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusFound, u)
}
