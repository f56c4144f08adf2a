package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ferryhq/ferry/internal/relay"
)

// errUsage means the flag package has already printed what was wrong.
var errUsage = errors.New("usage")

// defaultOIDCIssuer is GitHub Actions' token issuer.
const defaultOIDCIssuer = "https://token.actions.githubusercontent.com"

// Config is everything the relay is started with. Flags win over their environment
// fallbacks, which win over the defaults; secrets come only from the environment.
type Config struct {
	ConfigPath      string        // --config, FERRY_CONFIG (required)
	Addr            string        // --addr, FERRY_ADDR, default :8080
	RedisURL        string        // --redis-url, REDIS_URL; empty means the embedded store
	DataDir         string        // --data-dir, FERRY_DATA_DIR, default ./data
	OIDCIssuer      string        // --oidc-issuer, FERRY_OIDC_ISSUER
	OIDCAudience    string        // --oidc-audience, FERRY_OIDC_AUDIENCE; empty disables OIDC registration
	TrustedProxies  []string      // --trusted-proxies, FERRY_TRUSTED_PROXIES (comma-separated IPs/CIDRs)
	TrustedPlatform string        // --trusted-platform, FERRY_TRUSTED_PLATFORM (client-IP header set by a CDN)
	RateLimit       float64       // --rate-limit, FERRY_RATE_LIMIT (per client IP per second; 0 disables)
	RateBurst       int           // --rate-burst, FERRY_RATE_BURST
	DeviceRateLimit float64       // --device-rate-limit, FERRY_DEVICE_RATE_LIMIT (update checks per device per second; 0 disables)
	DeviceRateBurst int           // --device-rate-burst, FERRY_DEVICE_RATE_BURST
	SnapshotTTL     time.Duration // --snapshot-ttl, FERRY_SNAPSHOT_TTL
	ShutdownTimeout time.Duration // --shutdown-timeout, FERRY_SHUTDOWN_TIMEOUT
	WebhookLease    time.Duration // --webhook-lease, FERRY_WEBHOOK_LEASE
	BodyBudget      int64         // --body-budget, FERRY_BODY_BUDGET (request-body bytes held at once; 0 disables)
	MaxConns        int           // --max-conns, FERRY_MAX_CONNS (open connections; 0 means no cap)
	MetricsAddr     string        // --metrics-addr, FERRY_METRICS_ADDR (serve /metrics there only; empty: on --addr)
	LogLevel        string        // --log-level, LOG_LEVEL: debug, info, warn, error
	LogFormat       string        // --log-format, LOG_FORMAT: json or text

	AdminToken    string // FERRY_ADMIN_TOKEN; empty disables the admin API
	WebhookSecret string // FERRY_WEBHOOK_SECRET; empty disables /webhooks/github
	HMACSecret    string // FERRY_HMAC_SECRET; empty disables HMAC registration
	MetricsToken  string // FERRY_METRICS_TOKEN; set: GET /metrics needs it as a bearer token
}

// flagSpec binds one flag to its environment fallback.
type flagSpec struct {
	name, env, def, usage string
}

var flagSpecs = []flagSpec{
	{"config", "FERRY_CONFIG", "", "YAML file listing the apps, channels and ref rules (required)"},
	{"addr", "FERRY_ADDR", ":8080", "address to listen on"},
	{"redis-url", "REDIS_URL", "", "Redis URL (redis://, rediss://, redis-sentinel://, redis-cluster://); empty keeps state in an embedded file in --data-dir"},
	{"data-dir", "FERRY_DATA_DIR", "./data", "directory of the embedded store (ferry.db) when no Redis is configured"},
	{"oidc-issuer", "FERRY_OIDC_ISSUER", defaultOIDCIssuer, "issuer of the OIDC tokens CI registers bundles with"},
	{"oidc-audience", "FERRY_OIDC_AUDIENCE", "", "audience registration tokens must carry; empty disables OIDC registration"},
	{"trusted-proxies", "FERRY_TRUSTED_PROXIES", "", "comma-separated IPs or CIDRs of reverse proxies whose X-Forwarded-For is believed; empty trusts none"},
	{"trusted-platform", "FERRY_TRUSTED_PLATFORM", "", "header a CDN sets to the client IP (e.g. CF-Connecting-IP), believed from any peer"},
	{"rate-limit", "FERRY_RATE_LIMIT", "50", "requests per second allowed per client IP on device and API routes; 0 disables"},
	{"rate-burst", "FERRY_RATE_BURST", "200", "burst allowed per client IP"},
	{"device-rate-limit", "FERRY_DEVICE_RATE_LIMIT", "0.5", "update checks per second allowed per app and device_id; 0 disables"},
	{"device-rate-burst", "FERRY_DEVICE_RATE_BURST", "60", "burst of update checks allowed per device"},
	{"snapshot-ttl", "FERRY_SNAPSHOT_TTL", "10s", "how long cached channel state is used without a change notification"},
	{"shutdown-timeout", "FERRY_SHUTDOWN_TIMEOUT", "10s", "how long to wait for requests in flight on shutdown"},
	{"webhook-lease", "FERRY_WEBHOOK_LEASE", "2m", "how long a webhook delivery id stays claimed while it is processed; a relay that dies mid-delivery frees it after this, so GitHub's redelivery is processed"},
	{"body-budget", "FERRY_BODY_BUDGET", "48MiB", "request-body bytes the relay holds at once over every route (bytes, or with KiB, MiB or GiB); a body that does not fit is answered 503 with Retry-After; at least 29MiB, 0 disables"},
	{"max-conns", "FERRY_MAX_CONNS", "2048", "open connections at most; when full an idle keep-alive connection is closed to make room; 0 means no cap"},
	{"metrics-addr", "FERRY_METRICS_ADDR", "", "address to serve GET /metrics on instead of --addr (a private port); empty serves it on --addr"},
	{"log-level", "LOG_LEVEL", "info", "debug, info, warn or error"},
	{"log-format", "LOG_FORMAT", "json", "json or text"},
}

// parseFlags reads args and the environment into a validated Config. It reports every
// problem at once.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (*Config, error) {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	vals := make(map[string]*string, len(flagSpecs))
	for _, f := range flagSpecs {
		def := f.def
		if v := getenv(f.env); v != "" {
			def = v
		}
		vals[f.name] = fs.String(f.name, def, f.usage+" (env "+f.env+")")
	}
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: relay --config FILE [flags]")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "Secrets come from the environment only: FERRY_ADMIN_TOKEN (admin API),")
		fmt.Fprintln(stderr, "FERRY_WEBHOOK_SECRET (GitHub webhooks), FERRY_HMAC_SECRET (HMAC registration),")
		fmt.Fprintln(stderr, "FERRY_METRICS_TOKEN (bearer token GET /metrics requires; empty: none).")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "relay: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		fs.Usage()
		return nil, errUsage
	}
	c := &Config{
		ConfigPath:      *vals["config"],
		Addr:            *vals["addr"],
		RedisURL:        *vals["redis-url"],
		DataDir:         *vals["data-dir"],
		OIDCIssuer:      *vals["oidc-issuer"],
		OIDCAudience:    *vals["oidc-audience"],
		TrustedPlatform: *vals["trusted-platform"],
		MetricsAddr:     *vals["metrics-addr"],
		LogLevel:        *vals["log-level"],
		LogFormat:       *vals["log-format"],
		AdminToken:      getenv("FERRY_ADMIN_TOKEN"),
		WebhookSecret:   getenv("FERRY_WEBHOOK_SECRET"),
		HMACSecret:      getenv("FERRY_HMAC_SECRET"),
		MetricsToken:    getenv("FERRY_METRICS_TOKEN"),
	}
	var errs []error
	for _, p := range strings.Split(*vals["trusted-proxies"], ",") {
		if p = strings.TrimSpace(p); p != "" {
			c.TrustedProxies = append(c.TrustedProxies, p)
		}
	}
	var err error
	if c.RateLimit, err = strconv.ParseFloat(*vals["rate-limit"], 64); err != nil || !finiteNonNegative(c.RateLimit) {
		errs = append(errs, fmt.Errorf("--rate-limit (FERRY_RATE_LIMIT) %q: want a finite number >= 0", *vals["rate-limit"]))
	}
	if c.RateBurst, err = strconv.Atoi(*vals["rate-burst"]); err != nil || c.RateBurst < 1 {
		errs = append(errs, fmt.Errorf("--rate-burst (FERRY_RATE_BURST) %q: want an integer >= 1", *vals["rate-burst"]))
	}
	if c.DeviceRateLimit, err = strconv.ParseFloat(*vals["device-rate-limit"], 64); err != nil || !finiteNonNegative(c.DeviceRateLimit) {
		errs = append(errs, fmt.Errorf("--device-rate-limit (FERRY_DEVICE_RATE_LIMIT) %q: want a finite number >= 0", *vals["device-rate-limit"]))
	}
	if c.DeviceRateBurst, err = strconv.Atoi(*vals["device-rate-burst"]); err != nil || c.DeviceRateBurst < 1 {
		errs = append(errs, fmt.Errorf("--device-rate-burst (FERRY_DEVICE_RATE_BURST) %q: want an integer >= 1", *vals["device-rate-burst"]))
	}
	if c.SnapshotTTL, err = time.ParseDuration(*vals["snapshot-ttl"]); err != nil || c.SnapshotTTL < 100*time.Millisecond || c.SnapshotTTL > time.Hour {
		errs = append(errs, fmt.Errorf("--snapshot-ttl (FERRY_SNAPSHOT_TTL) %q: want a duration between 100ms and 1h", *vals["snapshot-ttl"]))
	}
	if c.ShutdownTimeout, err = time.ParseDuration(*vals["shutdown-timeout"]); err != nil || c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--shutdown-timeout (FERRY_SHUTDOWN_TIMEOUT) %q: want a positive duration", *vals["shutdown-timeout"]))
	}
	if c.WebhookLease, err = time.ParseDuration(*vals["webhook-lease"]); err != nil || c.WebhookLease < 100*time.Millisecond || c.WebhookLease > time.Hour {
		errs = append(errs, fmt.Errorf("--webhook-lease (FERRY_WEBHOOK_LEASE) %q: want a duration between 100ms and 1h", *vals["webhook-lease"]))
	}
	if c.BodyBudget, err = parseBytes(*vals["body-budget"]); err != nil || c.BodyBudget != 0 && c.BodyBudget < relay.MinBodyBudget {
		errs = append(errs, fmt.Errorf("--body-budget (FERRY_BODY_BUDGET) %q: want 0 or a size of at least %dMiB (such as 48MiB)", *vals["body-budget"], relay.MinBodyBudget>>20))
	}
	if c.MaxConns, err = strconv.Atoi(*vals["max-conns"]); err != nil || c.MaxConns < 0 {
		errs = append(errs, fmt.Errorf("--max-conns (FERRY_MAX_CONNS) %q: want an integer >= 0", *vals["max-conns"]))
	}
	if err := c.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// validate checks the fields that need no I/O and names the flag and variable of each
// problem.
func (c *Config) validate() error {
	var errs []error
	if c.ConfigPath == "" {
		errs = append(errs, errors.New("--config (FERRY_CONFIG) is required"))
	}
	if c.Addr == "" {
		errs = append(errs, errors.New("--addr (FERRY_ADDR) must not be empty"))
	}
	if c.RedisURL == "" && c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir (FERRY_DATA_DIR) must not be empty without --redis-url"))
	}
	if c.OIDCAudience != "" {
		u, err := url.Parse(c.OIDCIssuer)
		if err != nil || u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())) || u.Host == "" {
			errs = append(errs, fmt.Errorf("--oidc-issuer (FERRY_OIDC_ISSUER) %q: want an https URL", c.OIDCIssuer))
		}
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		errs = append(errs, fmt.Errorf("--log-format (LOG_FORMAT) %q: want json or text", c.LogFormat))
	}
	return errors.Join(errs...)
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level (LOG_LEVEL) %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// LogValue logs the config with secrets reduced to whether they are set and the Redis URL
// stripped of its password.
func (c *Config) LogValue() slog.Value {
	set := func(s string) string {
		if s == "" {
			return "unset"
		}
		return "set"
	}
	return slog.GroupValue(
		slog.String("config", c.ConfigPath),
		slog.String("addr", c.Addr),
		slog.String("redis_url", redactURL(c.RedisURL)),
		slog.String("data_dir", c.DataDir),
		slog.String("oidc_issuer", c.OIDCIssuer),
		slog.String("oidc_audience", c.OIDCAudience),
		slog.Any("trusted_proxies", c.TrustedProxies),
		slog.String("trusted_platform", c.TrustedPlatform),
		slog.Float64("rate_limit", c.RateLimit),
		slog.Int("rate_burst", c.RateBurst),
		slog.Float64("device_rate_limit", c.DeviceRateLimit),
		slog.Int("device_rate_burst", c.DeviceRateBurst),
		slog.String("snapshot_ttl", c.SnapshotTTL.String()),
		slog.String("shutdown_timeout", c.ShutdownTimeout.String()),
		slog.String("webhook_lease", c.WebhookLease.String()),
		slog.Int64("body_budget", c.BodyBudget),
		slog.Int("max_conns", c.MaxConns),
		slog.String("metrics_addr", c.MetricsAddr),
		slog.String("log_level", c.LogLevel),
		slog.String("admin_token", set(c.AdminToken)),
		slog.String("webhook_secret", set(c.WebhookSecret)),
		slog.String("hmac_secret", set(c.HMACSecret)),
		slog.String("metrics_token", set(c.MetricsToken)),
	)
}

// redactURL hides the password of a URL; an unparsable one is hidden entirely.
func redactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	q := u.Query()
	for k := range q {
		if strings.Contains(strings.ToLower(k), "password") {
			q.Set(k, "xxxxx")
		}
	}
	u.RawQuery = q.Encode()
	return u.Redacted()
}

// parseBytes reads a byte count: digits, optionally followed by KiB, MiB or GiB.
func parseBytes(v string) (int64, error) {
	num, mult := v, int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if n, ok := strings.CutSuffix(v, suffix); ok {
			num, mult = n, m
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size %q", v)
	}
	return n * mult, nil
}

// finiteNonNegative refuses what strconv.ParseFloat accepts but a rate cannot be: NaN
// (which passes a "< 0" check and would silently disable limiting), infinities and
// negatives.
func finiteNonNegative(f float64) bool {
	return f >= 0 && !math.IsInf(f, 1)
}
