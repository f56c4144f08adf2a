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

	"github.com/ferryhq/ferry/internal/redact"
	"github.com/ferryhq/ferry/internal/relay"
)

// errUsage means the flag package has already printed what was wrong.
var errUsage = errors.New("usage")

// errHelp is --help: the usage is printed like errUsage, but it was asked for, so main
// exits 0 (errors.Is matches both errUsage and flag.ErrHelp).
var errHelp = fmt.Errorf("%w: %w", errUsage, flag.ErrHelp)

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
	RolloutInterval time.Duration // --rollout-interval, FERRY_ROLLOUT_INTERVAL
	BodyBudget      int64         // --body-budget, FERRY_BODY_BUDGET (request-body bytes held at once; 0 disables)
	MaxConns        int           // --max-conns, FERRY_MAX_CONNS (open connections; 0 means no cap)
	MetricsAddr     string        // --metrics-addr, FERRY_METRICS_ADDR (serve /metrics there only; empty: on --addr)
	PublicURL       string        // --public-url, FERRY_PUBLIC_URL (where devices reach the relay; needed by release_access)
	LogLevel        string        // --log-level, LOG_LEVEL: debug, info, warn, error
	LogFormat       string        // --log-format, LOG_FORMAT: json or text
	// RedisAllowEviction (--redis-allow-eviction, FERRY_REDIS_ALLOW_EVICTION) starts the
	// relay on a Redis whose maxmemory-policy may evict its keys, reporting it as degraded.
	RedisAllowEviction bool

	AdminToken    string // FERRY_ADMIN_TOKEN: the bootstrap token (docs/access.md); empty disables it
	WebhookSecret string // FERRY_WEBHOOK_SECRET; empty: only apps with webhook_secret_env take webhooks
	HMACSecret    string // FERRY_HMAC_SECRET; empty: only apps with hmac_secret_env take HMAC registrations

	// Getenv reads the variables the YAML file names (an app's webhook_secret_env and
	// hmac_secret_env).
	Getenv       func(string) string
	MetricsToken string // FERRY_METRICS_TOKEN; set: GET /metrics needs it as a bearer token
}

// flagSpec binds one flag to its environment fallback and to the Config field it sets.
type flagSpec struct {
	name, env, def, usage string
	value                 flagValue
}

// flagSpecs lists the relay's flags, each bound to its field of c.
func (c *Config) flagSpecs() []flagSpec {
	return []flagSpec{
		{"config", "FERRY_CONFIG", "", "YAML file listing the apps, channels and ref rules (required)", stringFlag{&c.ConfigPath}},
		{"addr", "FERRY_ADDR", ":8080", "address to listen on", stringFlag{&c.Addr}},
		{"redis-url", "REDIS_URL", "", "Redis URL (redis://, rediss://, redis-sentinel://, redis-cluster://); empty keeps state in an embedded file in --data-dir", stringFlag{&c.RedisURL}},
		{"data-dir", "FERRY_DATA_DIR", "./data", "directory of the embedded store (ferry.db) when no Redis is configured", stringFlag{&c.DataDir}},
		{"oidc-issuer", "FERRY_OIDC_ISSUER", defaultOIDCIssuer, "issuer of the OIDC tokens CI registers bundles with", stringFlag{&c.OIDCIssuer}},
		{"oidc-audience", "FERRY_OIDC_AUDIENCE", "", "audience registration tokens must carry; empty disables OIDC registration", stringFlag{&c.OIDCAudience}},
		{"trusted-proxies", "FERRY_TRUSTED_PROXIES", "", "comma-separated IPs or CIDRs of reverse proxies whose X-Forwarded-For is believed; empty trusts none", listFlag{&c.TrustedProxies}},
		{"trusted-platform", "FERRY_TRUSTED_PLATFORM", "", "header a CDN sets to the client IP (e.g. CF-Connecting-IP), believed from any peer", stringFlag{&c.TrustedPlatform}},
		{"rate-limit", "FERRY_RATE_LIMIT", "50", "requests per second allowed per client IP on device and API routes; 0 disables", rateFlag(&c.RateLimit)},
		{"rate-burst", "FERRY_RATE_BURST", "200", "burst allowed per client IP", burstFlag(&c.RateBurst)},
		{"device-rate-limit", "FERRY_DEVICE_RATE_LIMIT", "0.5", "update checks per second allowed per app and device_id; 0 disables", rateFlag(&c.DeviceRateLimit)},
		{"device-rate-burst", "FERRY_DEVICE_RATE_BURST", "60", "burst of update checks allowed per device", burstFlag(&c.DeviceRateBurst)},
		{"snapshot-ttl", "FERRY_SNAPSHOT_TTL", "10s", "how long cached channel state is used without a change notification", durationFlag(&c.SnapshotTTL, "a duration between 100ms and 1h", between(100*time.Millisecond, time.Hour))},
		{"shutdown-timeout", "FERRY_SHUTDOWN_TIMEOUT", "10s", "how long to wait for requests in flight on shutdown", durationFlag(&c.ShutdownTimeout, "a positive duration", func(d time.Duration) bool { return d > 0 })},
		{"webhook-lease", "FERRY_WEBHOOK_LEASE", "2m", "how long a webhook delivery id stays claimed while it is processed; a relay that dies mid-delivery frees it after this, so GitHub's redelivery is processed", durationFlag(&c.WebhookLease, "a duration between 100ms and 1h", between(100*time.Millisecond, time.Hour))},
		{"rollout-interval", "FERRY_ROLLOUT_INTERVAL", "15s", "how often the rollout controller judges running plans; the instance holding its lease (three intervals long) acts, another takes over within the lease after it dies", durationFlag(&c.RolloutInterval, "a duration between 1s and 10m", between(time.Second, 10*time.Minute))},
		{"body-budget", "FERRY_BODY_BUDGET", "48MiB", "request-body bytes the relay holds at once over every route (bytes, or with KiB, MiB or GiB); a body that does not fit is answered 503 with Retry-After; at least 29MiB, 0 disables", bytesFlag(&c.BodyBudget)},
		{"max-conns", "FERRY_MAX_CONNS", "2048", "open connections at most; when full an idle keep-alive connection is closed to make room; 0 means no cap", countFlag(&c.MaxConns)},
		{"metrics-addr", "FERRY_METRICS_ADDR", "", "address to serve GET /metrics on instead of --addr (a private port); empty serves it on --addr", stringFlag{&c.MetricsAddr}},
		{"public-url", "FERRY_PUBLIC_URL", "", "the https address devices reach the relay at; bundles of private repositories are registered with download URLs under it (required when an app has release_access)", stringFlag{&c.PublicURL}},
		{"redis-allow-eviction", "FERRY_REDIS_ALLOW_EVICTION", "false", "start even if Redis has a maxmemory-policy other than noeviction, which can delete the relay's state (reported as degraded in /readyz)", boolFlag(&c.RedisAllowEviction)},
		{"log-level", "LOG_LEVEL", "info", "debug, info, warn or error", stringFlag{&c.LogLevel}},
		{"log-format", "LOG_FORMAT", "json", "json or text", stringFlag{&c.LogFormat}},
	}
}

// parseFlags reads args and the environment into a validated Config. It reports every
// problem at once.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (*Config, error) {
	c := &Config{
		AdminToken:    getenv("FERRY_ADMIN_TOKEN"),
		WebhookSecret: getenv("FERRY_WEBHOOK_SECRET"),
		HMACSecret:    getenv("FERRY_HMAC_SECRET"),
		MetricsToken:  getenv("FERRY_METRICS_TOKEN"),
		Getenv:        getenv,
	}
	specs := c.flagSpecs()
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, f := range specs {
		def := f.def
		if v := getenv(f.env); v != "" {
			def = v
		}
		_ = f.value.Set(def) // a flagValue's Set never fails; bind checks the text below
		fs.Var(f.value, f.name, f.usage+" (env "+f.env+")")
	}
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: relay --config FILE [flags]")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "Secrets come from the environment only: FERRY_ADMIN_TOKEN (admin API),")
		fmt.Fprintln(stderr, "FERRY_WEBHOOK_SECRET (GitHub webhooks), FERRY_HMAC_SECRET (HMAC registration),")
		fmt.Fprintln(stderr, "FERRY_METRICS_TOKEN (bearer token GET /metrics requires; empty: none).")
		fmt.Fprintln(stderr)
		printDefaults(fs, stderr)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelp
		}
		return nil, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "relay: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		fs.Usage()
		return nil, errUsage
	}
	var errs []error
	for _, f := range specs {
		if err := f.value.bind(f.name, f.env); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// flagValue is a flag bound to a Config field. Set keeps the text (the flag's, else its
// variable's, else the default) and never fails; bind then parses the text into the field.
// So a bad number in a flag or in a variable is reported with every other problem, naming
// both the flag and its variable, and one that flag.Parse would refuse as out of range
// (1e400) gets the same message as NaN.
type flagValue interface {
	flag.Value
	// typeName is what --help shows after the flag's name.
	typeName() string
	// bind stores the parsed value in the field, or says what is wrong with the text.
	bind(name, env string) error
}

// stringFlag sets a string field.
type stringFlag struct{ dst *string }

func (f stringFlag) Set(s string) error { *f.dst = s; return nil }
func (f stringFlag) String() string {
	if f.dst == nil {
		return ""
	}
	return *f.dst
}
func (stringFlag) typeName() string       { return "string" }
func (stringFlag) bind(_, _ string) error { return nil }

// listFlag sets a list field from comma-separated text, dropping empty items.
type listFlag struct{ dst *[]string }

func (f listFlag) Set(s string) error {
	*f.dst = nil
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*f.dst = append(*f.dst, p)
		}
	}
	return nil
}
func (f listFlag) String() string {
	if f.dst == nil {
		return ""
	}
	return strings.Join(*f.dst, ",")
}
func (listFlag) typeName() string       { return "list" }
func (listFlag) bind(_, _ string) error { return nil }

// typedFlag sets a field of type T from text that parse reads and valid accepts; want says
// what is accepted, for the error.
type typedFlag[T any] struct {
	dst   *T
	text  string
	typ   string
	parse func(string) (T, error)
	valid func(T) bool
	want  string
}

func (f *typedFlag[T]) Set(s string) error { f.text = s; return nil }
func (f *typedFlag[T]) String() string {
	if f == nil {
		return ""
	}
	return f.text
}
func (f *typedFlag[T]) typeName() string { return f.typ }
func (f *typedFlag[T]) bind(name, env string) error {
	v, err := f.parse(f.text)
	if err != nil || !f.valid(v) {
		return fmt.Errorf("--%s (%s) %q: want %s", name, env, f.text, f.want)
	}
	*f.dst = v
	return nil
}

// rateFlag is a rate in events per second: a finite float >= 0.
func rateFlag(dst *float64) *typedFlag[float64] {
	return &typedFlag[float64]{dst: dst, typ: "float", want: "a finite number >= 0", valid: finiteNonNegative,
		parse: func(s string) (float64, error) { return strconv.ParseFloat(s, 64) }}
}

// burstFlag is a token bucket's size: an int >= 1.
func burstFlag(dst *int) *typedFlag[int] {
	return &typedFlag[int]{dst: dst, typ: "int", want: "an integer >= 1", parse: strconv.Atoi,
		valid: func(n int) bool { return n >= 1 }}
}

// bytesFlag is a byte count (digits, optionally with KiB, MiB or GiB): 0, or at least
// relay.MinBodyBudget.
func bytesFlag(dst *int64) *typedFlag[int64] {
	return &typedFlag[int64]{dst: dst, typ: "size", want: fmt.Sprintf("0 or a size of at least %dMiB (such as 48MiB)", relay.MinBodyBudget>>20),
		parse: parseBytes, valid: func(n int64) bool { return n == 0 || n >= relay.MinBodyBudget }}
}

// countFlag is an int >= 0.
func countFlag(dst *int) *typedFlag[int] {
	return &typedFlag[int]{dst: dst, typ: "int", want: "an integer >= 0", parse: strconv.Atoi,
		valid: func(n int) bool { return n >= 0 }}
}

// boolFlag is true or false; the flag alone (--name) means true.
func boolFlag(dst *bool) boolValue {
	return boolValue{&typedFlag[bool]{dst: dst, typ: "bool", want: "true or false", parse: strconv.ParseBool,
		valid: func(bool) bool { return true }}}
}

// boolValue tells the flag package that the flag needs no value.
type boolValue struct{ *typedFlag[bool] }

func (boolValue) IsBoolFlag() bool { return true }

// durationFlag is a duration that valid accepts; want says which, for the error.
func durationFlag(dst *time.Duration, want string, valid func(time.Duration) bool) *typedFlag[time.Duration] {
	return &typedFlag[time.Duration]{dst: dst, typ: "duration", want: want, parse: time.ParseDuration, valid: valid}
}

// between accepts durations from lo to hi.
func between(lo, hi time.Duration) func(time.Duration) bool {
	return func(d time.Duration) bool { return d >= lo && d <= hi }
}

// printDefaults is flag.PrintDefaults with the type of each flag after its name (the flag
// package shows "value" for every flag.Value it does not define itself).
func printDefaults(fs *flag.FlagSet, w io.Writer) {
	fs.VisitAll(func(f *flag.Flag) {
		typ := "value"
		if v, ok := f.Value.(flagValue); ok {
			typ = v.typeName()
		}
		fmt.Fprintf(w, "  -%s %s\n    \t%s", f.Name, typ, strings.ReplaceAll(f.Usage, "\n", "\n    \t"))
		switch {
		case f.DefValue == "":
		case typ == "string":
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		default:
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
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
		slog.String("redis_url", redact.Passwords(c.RedisURL)),
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
		slog.String("rollout_interval", c.RolloutInterval.String()),
		slog.Int64("body_budget", c.BodyBudget),
		slog.Int("max_conns", c.MaxConns),
		slog.String("metrics_addr", c.MetricsAddr),
		slog.String("public_url", c.PublicURL),
		slog.String("log_level", c.LogLevel),
		slog.Bool("redis_allow_eviction", c.RedisAllowEviction),
		slog.String("admin_token", set(c.AdminToken)),
		slog.String("webhook_secret", set(c.WebhookSecret)),
		slog.String("hmac_secret", set(c.HMACSecret)),
		slog.String("metrics_token", set(c.MetricsToken)),
	)
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
