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

// downloads resolves and caches the signed URLs of private release assets, per relay
// instance: one GitHub call per asset per URL lifetime at most, concurrent requests for an
// asset coalesced into one call, and no call at all while GitHub's rate limit or an outage
// pauses an app.
type downloads struct {
	links map[string]LinkFunc
	now   func() time.Time
	log   *slog.Logger
	calls *prometheus.CounterVec // result

	mu      sync.Mutex
	cache   map[linkKey]cachedLink
	pending map[linkKey]*linkCall
	paused  map[string]time.Time // app → no GitHub call before this
}

func newDownloads(links map[string]LinkFunc, now func() time.Time, log *slog.Logger, reg prometheus.Registerer) (*downloads, error) {
	d := &downloads{links: links, now: now, log: log, cache: map[linkKey]cachedLink{}, pending: map[linkKey]*linkCall{}, paused: map[string]time.Time{},
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_release_links_total",
			Help: "Download links of private release assets by result: cached, fetched (a GitHub call), coalesced (waited for another request's call), paused (GitHub not asked: rate limit or outage), rate_limited, error.",
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

// link returns a usable signed URL for asset id of app.
func (d *downloads) link(ctx context.Context, app string, id int64) (string, error) {
	k := linkKey{app, id}
	d.mu.Lock()
	now := d.now()
	if c, ok := d.cache[k]; ok && now.Before(c.useUntil) {
		d.mu.Unlock()
		d.calls.WithLabelValues("cached").Inc()
		return c.url, nil
	}
	if until := d.paused[app]; now.Before(until) {
		d.mu.Unlock()
		d.calls.WithLabelValues("paused").Inc()
		return "", errLinkPaused{until}
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

	// The call outlives the device that caused it: others may be waiting for it.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), linkCallTimeout)
	u, expires, err := d.links[app](cctx, id)
	cancel()

	d.mu.Lock()
	delete(d.pending, k)
	now = d.now()
	result := "fetched"
	var ra interface{ RetryAt() time.Time }
	switch {
	case err == nil:
		margin := min(linkMargin, expires.Sub(now)/2)
		if len(d.cache) >= maxCachedLinks {
			for key, e := range d.cache {
				if !now.Before(e.useUntil) {
					delete(d.cache, key)
				}
			}
		}
		if len(d.cache) < maxCachedLinks {
			d.cache[k] = cachedLink{url: u, useUntil: expires.Add(-margin)}
		}
	case errors.As(err, &ra):
		result = "rate_limited"
		d.paused[app] = ra.RetryAt()
	case ctx.Err() == nil:
		result = "error"
		var status interface{ StatusCode() int }
		if !errors.As(err, &status) || status.StatusCode() >= 500 {
			d.paused[app] = now.Add(linkOutagePause)
		}
	}
	until := d.paused[app]
	d.mu.Unlock()
	d.calls.WithLabelValues(result).Inc()
	if err != nil {
		loggerFrom(ctx, d.log).WarnContext(ctx, "GitHub gave no download link; devices of the app are offered no private bundle until it does",
			"app", app, "asset_id", id, "paused_until", until, "error", err)
	}
	c.url, c.err = u, err
	close(c.done)
	return u, err
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
	sctx, cancel := context.WithTimeout(ctx, s.opts.StoreTimeout)
	b, err := s.store.GetBundle(sctx, app, version)
	cancel()
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
