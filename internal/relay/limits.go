package relay

import (
	"sync/atomic"
	"time"
)

// Bounds on untrusted input and the defaults of [Options]. A zero option takes these values.
const (
	// MaxUpdateBody bounds the body of POST /updates and /channel_self: the info object
	// (docs/protocol.md §1.2), about 500 bytes from a real plugin; its 14 string fields at
	// MaxFieldLen each, with keys, are under 20 KiB, and escapes may triple that.
	MaxUpdateBody = 64 << 10
	// MaxStatsBody bounds the body of POST /stats (the plugin batches at most 200 events,
	// each with at most 30 metadata entries).
	MaxStatsBody = 4 << 20
	// MaxStatsEvents bounds the number of events in one /stats batch.
	MaxStatsEvents = 1000
	// MaxManifestSizeBody bounds the body of POST /updates/manifest_size: the info object
	// plus the entries the plugin asks about, which come from the manifest the relay sent
	// it (docs/protocol.md §1.5), so a real request is never larger than the delta
	// manifest of the largest bundle a registration may carry (8 MiB with everything else,
	// internal/relay/control.MaxRegistrationBody). The handler also refuses a request
	// asking about more files than the version has.
	MaxManifestSizeBody = 8 << 20
	// MaxManifestFiles bounds the number of files one manifest_size request asks about.
	MaxManifestFiles = 50000
	// MaxMountedBody bounds the body of routes mounted by a [Mounter] that does not
	// implement [BodyLimiter], and caps what one that does may declare: GitHub's own cap on
	// webhook payloads (25 MB), the largest body any route of Ferry accepts.
	MaxMountedBody = 25 << 20
	// DefaultBodyBudget is the default of [Options].BodyBudget: the request-body bytes the
	// whole relay holds at once (weighted by decode cost). It admits one webhook of
	// GitHub's maximum size, or one largest manifest_size body and a few stats batches,
	// with the reserve for small bodies beside, and keeps the relay inside a 256 MiB
	// container under a flood of large bodies (docs/reliability.md).
	DefaultBodyBudget = 48 << 20
	// MinBodyBudget is the smallest [Options].BodyBudget accepted: the largest body plus
	// the reserve for small ones.
	MinBodyBudget = MaxMountedBody + bodyReserve
	// bodyReserve is the part of the body budget only small bodies (at most MaxUpdateBody)
	// may use, so update checks and channel calls go on while large bodies hold the rest.
	bodyReserve = 4 << 20
	// decodeCost is the body-budget weight per byte of the device routes that decode a large
	// body whole (manifest_size, stats): the body, the strings and slices decoded from it,
	// and garbage from growing them, about three times the body (an 8 MiB manifest_size
	// body held ~25 MiB). Small bodies and the control plane's (checked as raw bytes before
	// any decoding, which happens only once they are authenticated) weigh 1.
	decodeCost = 3
	// bodyRetryAfter is the Retry-After, in seconds, of a 503 for an exhausted body budget.
	bodyRetryAfter = 1
	// MaxRequestIDLen bounds an X-Request-ID accepted from a client.
	MaxRequestIDLen = 128
	// MaxFieldLen bounds each string field of a device's info object.
	MaxFieldLen = 1024

	// DefaultSnapshotTTL is how long a cached app snapshot is used without a change
	// notification before it is reloaded.
	DefaultSnapshotTTL = 10 * time.Second
	// DefaultStoreTimeout bounds each store call made while answering a device.
	DefaultStoreTimeout = 2 * time.Second
	// DefaultRateLimit and DefaultRateBurst are the per-client-IP token bucket: requests per
	// second and burst. Generous, because whole carrier-grade NATs share one address; they
	// stop floods, not devices.
	DefaultRateLimit = 50
	DefaultRateBurst = 200
	// DefaultDeviceRateLimit and DefaultDeviceRateBurst are the token bucket per app and
	// device_id on POST /updates and /updates/manifest_size: a device checks on every move
	// to the foreground and on JS calls, a few times an hour; these stop an app stuck in a
	// loop of checks without touching normal use.
	DefaultDeviceRateLimit = 0.5
	DefaultDeviceRateBurst = 60
	// rateSweep is how often idle rate-limit buckets are evicted.
	rateSweep = 30 * time.Second
	// readyCacheTTL is how long a readiness result (GET /readyz, one store ping) is reused.
	readyCacheTTL = time.Second
	// storeRetry is how long the relay waits after a failed snapshot fill before asking the
	// store again, so an outage does not turn every request into a store call.
	storeRetry = time.Second

	// DefaultMaxConns is the default of [Options].MaxConns: about 40 MiB of connection
	// buffers and goroutines if every one is idle, far more than a relay behind a load
	// balancer uses (it pools a few) and enough for a fleet reaching it directly, since idle
	// keep-alive connections are closed to make room.
	DefaultMaxConns = 2048
	// metricsMaxConns caps the connections of the separate metrics listener.
	metricsMaxConns = 16

	// Server timeouts (http.Server).
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
	// DefaultShutdownTimeout bounds the graceful drain once the serving context ends.
	DefaultShutdownTimeout = 10 * time.Second
)

// storeGate stops a caller from asking a failing store for a while after a failure, so an
// outage costs one timeout per interval rather than one per request. The zero value is
// open.
type storeGate struct {
	until atomic.Int64 // unix ns before which the store is not asked; 0: open
}

// open reports whether the store may be asked now (now is called only while the gate is
// shut, so an open gate costs no clock read).
func (g *storeGate) open(now func() time.Time) bool {
	u := g.until.Load()
	return u == 0 || now().UnixNano() >= u
}

// shut keeps the store from being asked for d after now.
func (g *storeGate) shut(now time.Time, d time.Duration) { g.until.Store(now.Add(d).UnixNano()) }
