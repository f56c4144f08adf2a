package store

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/internal/redact"
)

// parseRedisURL turns a Redis URL into go-redis universal options. The forms (documented
// on [OpenRedis]) are:
//
//	redis://[user:pass@]host[:port][/db][?opt=v…]          single node (rediss:// for TLS)
//	redis://host:port?addr=host2:port&addr=…               cluster, go-redis's form
//	redis://[sentinel creds@]host:port?master_name=m&addr=… Sentinel, go-redis's form
//	redis-cluster://[user:pass@]h1:p1,h2:p2[?opt=v…]      cluster (rediss-cluster:// for TLS)
//	redis-sentinel://[user:pass@]h1:p1,h2:p2/master[/db][?opt=v…]
//	                                                       Sentinel (rediss-sentinel://)
//
// In redis-sentinel URLs the user info holds the master's credentials, and the options
// sentinel_username and sentinel_password those of the Sentinels. Options are go-redis's
// URL options (dial_timeout, read_timeout, pool_size, …); unknown ones are an error.
func parseRedisURL(raw string) (*redis.UniversalOptions, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, fmt.Errorf("redis url %q: missing scheme: %w", redact.Passwords(raw), ErrInvalid)
	}
	var (
		o   *redis.UniversalOptions
		err error
	)
	switch strings.ToLower(scheme) {
	case "redis", "rediss":
		o, err = parseNative(raw)
	case "redis-cluster", "rediss-cluster":
		o, err = parseCluster(strings.TrimSuffix(strings.ToLower(scheme), "-cluster"), rest)
	case "redis-sentinel", "rediss-sentinel":
		o, err = parseSentinel(strings.TrimSuffix(strings.ToLower(scheme), "-sentinel"), rest)
	default:
		shown := "(not a URL scheme)"
		if redact.ValidScheme(scheme) {
			shown = strconv.Quote(scheme)
		}
		err = fmt.Errorf("unsupported scheme %s (want redis, rediss, redis-cluster, rediss-cluster, redis-sentinel or rediss-sentinel)", shown)
	}
	if err != nil {
		// url.Parse errors quote the whole URL, password included.
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			ue.URL = redact.Passwords(ue.URL)
		}
		return nil, fmt.Errorf("redis url %q: %w: %w", redact.Passwords(raw), ErrInvalid, withoutSecrets(err, raw))
	}
	return o, nil
}

// parseNative handles redis:// and rediss:// with go-redis's own parsers, choosing the
// cluster or failover parser when the query names extra addresses or a master.
func parseNative(raw string) (*redis.UniversalOptions, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	switch {
	case q.Has("master_name"):
		fo, err := redis.ParseFailoverURL(raw)
		if err != nil {
			return nil, err
		}
		if fo.MasterName == "" {
			return nil, fmt.Errorf("empty master_name")
		}
		return fromFailover(fo), nil
	case q.Has("addr"):
		co, err := redis.ParseClusterURL(raw)
		if err != nil {
			return nil, err
		}
		return fromCluster(co), nil
	}
	if u.Host == "" {
		return nil, fmt.Errorf("missing host")
	}
	so, err := redis.ParseURL(raw)
	if err != nil {
		return nil, err
	}
	return fromSimple(so), nil
}

// splitAuthority splits "user:pass@h1:p1,h2:p2/path?query" into its parts; hosts get
// defPort when they have none.
func splitAuthority(rest, defPort string) (userinfo string, hosts []string, path, query string, err error) {
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, rest = rest[:i], rest[i:]
	} else {
		rest = ""
	}
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo, authority = authority[:i], authority[i+1:]
	}
	rest, _, _ = strings.Cut(rest, "#")
	path, query, _ = strings.Cut(rest, "?")
	for h := range strings.SplitSeq(authority, ",") {
		if h == "" {
			return "", nil, "", "", fmt.Errorf("empty host in %q", authority)
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			// No port: a bare name or a bracketed IPv6 literal.
			host, port = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), defPort
			if strings.ContainsAny(host, "[]") || host == "" {
				return "", nil, "", "", fmt.Errorf("bad host %q", h)
			}
		}
		if host == "" || port == "" {
			return "", nil, "", "", fmt.Errorf("bad host %q", h)
		}
		hosts = append(hosts, net.JoinHostPort(host, port))
	}
	return userinfo, hosts, path, query, nil
}

func parseCluster(scheme, rest string) (*redis.UniversalOptions, error) {
	userinfo, hosts, path, query, err := splitAuthority(rest, "6379")
	if err != nil {
		return nil, err
	}
	if strings.Trim(path, "/") != "" {
		return nil, fmt.Errorf("cluster urls take no path (Redis Cluster has only db 0), got %q", path)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, err
	}
	for _, h := range hosts[1:] {
		q.Add("addr", h)
	}
	native := scheme + "://" + withUser(userinfo) + hosts[0] + encodeQuery(q)
	co, err := redis.ParseClusterURL(native)
	if err != nil {
		return nil, err
	}
	o := fromCluster(co)
	o.IsClusterMode = true
	return o, nil
}

func parseSentinel(scheme, rest string) (*redis.UniversalOptions, error) {
	userinfo, hosts, path, query, err := splitAuthority(rest, "26379")
	if err != nil {
		return nil, err
	}
	parts := strings.FieldsFunc(path, func(r rune) bool { return r == '/' })
	if len(parts) == 0 || len(parts) > 2 {
		return nil, fmt.Errorf("sentinel urls need /<master name>[/<db>], got path %q", path)
	}
	master, err := url.PathUnescape(parts[0])
	if err != nil {
		return nil, err
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, err
	}
	if q.Has("master_name") || q.Has("username") || q.Has("password") {
		return nil, fmt.Errorf("put the master name in the path and its credentials in the user info")
	}
	q.Set("master_name", master)
	if len(parts) == 2 {
		q.Set("db", parts[1])
	}
	if userinfo != "" {
		ui, err := url.Parse("x://" + userinfo + "@h")
		if err != nil {
			return nil, fmt.Errorf("bad user info")
		}
		if n := ui.User.Username(); n != "" {
			q.Set("username", n)
		}
		if p, ok := ui.User.Password(); ok {
			q.Set("password", p)
		}
	}
	sentinelUser := url.UserPassword(q.Get("sentinel_username"), q.Get("sentinel_password")).String()
	if !q.Has("sentinel_password") {
		sentinelUser = url.User(q.Get("sentinel_username")).String()
	}
	q.Del("sentinel_username")
	q.Del("sentinel_password")
	for _, h := range hosts[1:] {
		q.Add("addr", h)
	}
	native := scheme + "://" + withUser(sentinelUser) + hosts[0] + encodeQuery(q)
	fo, err := redis.ParseFailoverURL(native)
	if err != nil {
		return nil, err
	}
	return fromFailover(fo), nil
}

func withUser(userinfo string) string {
	if userinfo == "" || userinfo == ":" {
		return ""
	}
	return userinfo + "@"
}

func encodeQuery(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// withoutSecrets returns err, or, when its text shows a part of raw that may be a password
// (anything between a ':' and a later '@', wherever go-redis or net/url quoted it from),
// an error that says what is wrong without it.
func withoutSecrets(err error, raw string) error {
	msg := err.Error()
	for i := 0; i < len(raw); i++ {
		if raw[i] != ':' {
			continue
		}
		if j := strings.IndexByte(raw[i+1:], '@'); j > 0 && strings.Contains(msg, raw[i+1:i+1+j]) {
			return errors.New("malformed URL (the details are withheld because they would show credentials)")
		}
	}
	return err
}

func fromSimple(o *redis.Options) *redis.UniversalOptions {
	return &redis.UniversalOptions{
		Addrs:              []string{o.Addr},
		ClientName:         o.ClientName,
		DB:                 o.DB,
		Protocol:           o.Protocol,
		Username:           o.Username,
		Password:           o.Password,
		MaxRetries:         o.MaxRetries,
		MinRetryBackoff:    o.MinRetryBackoff,
		MaxRetryBackoff:    o.MaxRetryBackoff,
		DialTimeout:        o.DialTimeout,
		DialerRetries:      o.DialerRetries,
		DialerRetryTimeout: o.DialerRetryTimeout,
		ReadTimeout:        o.ReadTimeout,
		WriteTimeout:       o.WriteTimeout,
		PoolFIFO:           o.PoolFIFO,
		PoolSize:           o.PoolSize,
		PoolTimeout:        o.PoolTimeout,
		MinIdleConns:       o.MinIdleConns,
		MaxIdleConns:       o.MaxIdleConns,
		MaxActiveConns:     o.MaxActiveConns,
		ConnMaxIdleTime:    o.ConnMaxIdleTime,
		ConnMaxLifetime:    o.ConnMaxLifetime,
		TLSConfig:          o.TLSConfig,
	}
}

func fromCluster(o *redis.ClusterOptions) *redis.UniversalOptions {
	return &redis.UniversalOptions{
		Addrs:              o.Addrs,
		ClientName:         o.ClientName,
		Protocol:           o.Protocol,
		Username:           o.Username,
		Password:           o.Password,
		MaxRetries:         o.MaxRetries,
		MinRetryBackoff:    o.MinRetryBackoff,
		MaxRetryBackoff:    o.MaxRetryBackoff,
		DialTimeout:        o.DialTimeout,
		DialerRetries:      o.DialerRetries,
		DialerRetryTimeout: o.DialerRetryTimeout,
		ReadTimeout:        o.ReadTimeout,
		WriteTimeout:       o.WriteTimeout,
		PoolFIFO:           o.PoolFIFO,
		PoolSize:           o.PoolSize,
		PoolTimeout:        o.PoolTimeout,
		MinIdleConns:       o.MinIdleConns,
		MaxIdleConns:       o.MaxIdleConns,
		MaxActiveConns:     o.MaxActiveConns,
		ConnMaxIdleTime:    o.ConnMaxIdleTime,
		ConnMaxLifetime:    o.ConnMaxLifetime,
		TLSConfig:          o.TLSConfig,
		MaxRedirects:       o.MaxRedirects,
		ReadOnly:           o.ReadOnly,
		RouteByLatency:     o.RouteByLatency,
		RouteRandomly:      o.RouteRandomly,
		IsClusterMode:      true,
	}
}

func fromFailover(o *redis.FailoverOptions) *redis.UniversalOptions {
	return &redis.UniversalOptions{
		Addrs:              o.SentinelAddrs,
		MasterName:         o.MasterName,
		ClientName:         o.ClientName,
		DB:                 o.DB,
		Protocol:           o.Protocol,
		Username:           o.Username,
		Password:           o.Password,
		SentinelUsername:   o.SentinelUsername,
		SentinelPassword:   o.SentinelPassword,
		MaxRetries:         o.MaxRetries,
		MinRetryBackoff:    o.MinRetryBackoff,
		MaxRetryBackoff:    o.MaxRetryBackoff,
		DialTimeout:        o.DialTimeout,
		DialerRetries:      o.DialerRetries,
		DialerRetryTimeout: o.DialerRetryTimeout,
		ReadTimeout:        o.ReadTimeout,
		WriteTimeout:       o.WriteTimeout,
		PoolFIFO:           o.PoolFIFO,
		PoolSize:           o.PoolSize,
		PoolTimeout:        o.PoolTimeout,
		MinIdleConns:       o.MinIdleConns,
		MaxIdleConns:       o.MaxIdleConns,
		MaxActiveConns:     o.MaxActiveConns,
		ConnMaxIdleTime:    o.ConnMaxIdleTime,
		ConnMaxLifetime:    o.ConnMaxLifetime,
		TLSConfig:          o.TLSConfig,
		RouteByLatency:     o.RouteByLatency,
		RouteRandomly:      o.RouteRandomly,
	}
}
