package relay

import "time"

// Bounds on untrusted input and the defaults of [Options]. A zero option takes these values.
const (
	// MaxUpdateBody bounds the body of POST /updates and /channel_self (a real one is
	// about 500 bytes).
	MaxUpdateBody = 64 << 10
	// MaxStatsBody bounds the body of POST /stats (the plugin batches at most 200 events,
	// each with at most 30 metadata entries).
	MaxStatsBody = 4 << 20
	// MaxStatsEvents bounds the number of events in one /stats batch.
	MaxStatsEvents = 1000
	// MaxManifestSizeBody bounds the body of POST /updates/manifest_size, which lists files.
	MaxManifestSizeBody = 8 << 20
	// MaxManifestFiles bounds the number of files one manifest_size request asks about.
	MaxManifestFiles = 50000
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
	// storeRetry is how long the relay waits after a failed snapshot fill before asking the
	// store again, so an outage does not turn every request into a store call.
	storeRetry = time.Second

	// Server timeouts (http.Server).
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
	// DefaultShutdownTimeout bounds the graceful drain once the serving context ends.
	DefaultShutdownTimeout = 10 * time.Second
)
