package store

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"
)

// urlView is the part of the parsed options the table checks.
type urlView struct {
	Addrs            []string
	MasterName       string
	DB               int
	Username         string
	Password         string
	SentinelUsername string
	SentinelPassword string
	TLS              bool
	Cluster          bool
	DialTimeout      time.Duration
	PoolSize         int
}

func view(o *redis.UniversalOptions) urlView {
	return urlView{
		Addrs: o.Addrs, MasterName: o.MasterName, DB: o.DB,
		Username: o.Username, Password: o.Password,
		SentinelUsername: o.SentinelUsername, SentinelPassword: o.SentinelPassword,
		TLS: o.TLSConfig != nil, Cluster: o.IsClusterMode,
		DialTimeout: o.DialTimeout, PoolSize: o.PoolSize,
	}
}

func TestParseRedisURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		url  string
		want urlView
		kind string // the client go-redis builds: simple, cluster, failover
	}{
		{"single", "redis://localhost:6380", urlView{Addrs: []string{"localhost:6380"}}, "simple"},
		{"single default port and db", "redis://:pw@cache.internal/3", urlView{Addrs: []string{"cache.internal:6379"}, DB: 3, Password: "pw"}, "simple"},
		{"single tls acl user", "rediss://ferry:pw@cache.internal:6380/0?dial_timeout=3s&pool_size=7", urlView{Addrs: []string{"cache.internal:6380"}, Username: "ferry", Password: "pw", TLS: true, DialTimeout: 3 * time.Second, PoolSize: 7}, "simple"},
		{"single ipv6", "redis://[::1]:6390", urlView{Addrs: []string{"[::1]:6390"}}, "simple"},
		{"cluster scheme", "redis-cluster://n1:7000,n2:7001,n3", urlView{Addrs: []string{"n1:7000", "n2:7001", "n3:6379"}, Cluster: true}, "cluster"},
		{"cluster one seed", "redis-cluster://cfg.example.cache.amazonaws.com:6379", urlView{Addrs: []string{"cfg.example.cache.amazonaws.com:6379"}, Cluster: true}, "cluster"},
		{"cluster tls with creds", "rediss-cluster://u:p@n1:7000,[::1]:7001/?dial_timeout=1s", urlView{Addrs: []string{"n1:7000", "[::1]:7001"}, Username: "u", Password: "p", TLS: true, Cluster: true, DialTimeout: time.Second}, "cluster"},
		{"cluster go-redis form", "redis://n1:7000?addr=n2:7001&addr=n3:7002", urlView{Addrs: []string{"n1:7000", "n2:7001", "n3:7002"}, Cluster: true}, "cluster"},
		{"sentinel scheme", "redis-sentinel://s1:26379,s2,s3:26380/mymaster", urlView{Addrs: []string{"s1:26379", "s2:26379", "s3:26380"}, MasterName: "mymaster"}, "failover"},
		{"sentinel db and creds", "redis-sentinel://app:secret@s1,s2/mymaster/2?sentinel_password=sp&sentinel_username=su", urlView{Addrs: []string{"s1:26379", "s2:26379"}, MasterName: "mymaster", DB: 2, Username: "app", Password: "secret", SentinelUsername: "su", SentinelPassword: "sp"}, "failover"},
		{"sentinel tls", "rediss-sentinel://s1:26379/ferry-master", urlView{Addrs: []string{"s1:26379"}, MasterName: "ferry-master", TLS: true}, "failover"},
		{"sentinel go-redis form", "redis://su:sp@s1:26379/1?master_name=mymaster&addr=s2:26379&password=mp", urlView{Addrs: []string{"s1:26379", "s2:26379"}, MasterName: "mymaster", DB: 1, Password: "mp", SentinelUsername: "su", SentinelPassword: "sp"}, "failover"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o, err := parseRedisURL(tc.url)
			if err != nil {
				t.Fatalf("parseRedisURL(%q): %v", tc.url, err)
			}
			if diff := cmp.Diff(tc.want, view(o), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("parseRedisURL(%q) (-want +got):\n%s", tc.url, diff)
			}
			c := redis.NewUniversalClient(o)
			defer c.Close()
			var kind string
			switch c.(type) {
			case *redis.ClusterClient:
				kind = "cluster"
			case *redis.Client:
				kind = "simple"
				if o.MasterName != "" {
					kind = "failover"
				}
			}
			if kind != tc.kind {
				t.Errorf("parseRedisURL(%q) builds a %s client (%T), want %s", tc.url, kind, c, tc.kind)
			}
		})
	}
}

func TestParseRedisURLErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		url  string
	}{
		{"no scheme", "localhost:6379"},
		{"unknown scheme", "memcached://localhost"},
		{"unknown option", "redis://localhost?frobnicate=1"},
		{"bad db", "redis://localhost/abc"},
		{"no host", "redis://"},
		{"empty host in list", "redis-cluster://n1:1,,n2:2"},
		{"cluster with db", "redis-cluster://n1:1/3"},
		{"sentinel without master", "redis-sentinel://s1:26379"},
		{"sentinel extra path", "redis-sentinel://s1/m/1/x"},
		{"sentinel bad db", "redis-sentinel://s1/m/zero"},
		{"sentinel master in query", "redis-sentinel://s1/m?master_name=other"},
		{"sentinel bad port", "redis-sentinel://s1:port/m"},
		{"empty master name", "redis://s1:26379?master_name="},
		{"bad duration", "redis-cluster://n1?dial_timeout=soon"},
		{"unix socket", "unix:///run/redis.sock"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if o, err := parseRedisURL(tc.url); !errors.Is(err, ErrInvalid) {
				t.Errorf("parseRedisURL(%q) = %+v, %v; want ErrInvalid", tc.url, o, err)
			}
		})
	}
}

func TestOptionPrecedence(t *testing.T) {
	t.Parallel()
	o, err := parseRedisURL("redis://h:1?dial_timeout=5s&read_timeout=4s")
	if err != nil {
		t.Fatal(err)
	}
	applyRedisOptions(o, RedisOptions{DialTimeout: 300 * time.Millisecond, PoolSize: 3})
	got := []time.Duration{o.DialTimeout, o.ReadTimeout, o.WriteTimeout}
	want := []time.Duration{300 * time.Millisecond, 4 * time.Second, 2 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("timeouts (dial, read, write) (-want +got):\n%s", diff)
	}
	if o.PoolSize != 3 || o.MaxRetries != 1 {
		t.Errorf("PoolSize, MaxRetries = %d, %d; want 3, 1", o.PoolSize, o.MaxRetries)
	}
}

// FuzzParseRedisURL checks that no URL makes the parser panic, that every error wraps
// ErrInvalid without leaking a password, and that accepted URLs name at least one address.
func FuzzParseRedisURL(f *testing.F) {
	for _, s := range []string{
		"redis://localhost:6379/0", "rediss://u:p@h:1/2?dial_timeout=1s",
		"redis-cluster://a:1,b:2,c", "rediss-cluster://u:p@[::1]:1,[::2]",
		"redis-sentinel://s1,s2:26380/m/1?sentinel_password=x", "redis://s?master_name=m&addr=t:1",
		"redis://h?addr=i:2", "redis-sentinel://:pw@s/m", "redis-cluster://@,", "redis://%zz", "redis-cluster://u:SECRETPW@h1:1,,h2", "redis://u:SECRETPW@h?bogus=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		o, err := parseRedisURL(raw)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("parseRedisURL(%q) error %v does not wrap ErrInvalid", raw, err)
			}
			// The marker counts as a password only where it is the sole occurrence: a URL
			// such as "SECRETPW://:SECRETPW@" names it as its scheme too, which the error
			// may quote.
			if strings.Count(raw, "SECRETPW") == 1 && strings.Contains(raw, ":SECRETPW@") &&
				strings.Contains(err.Error(), "SECRETPW") {
				t.Errorf("error leaks the password: %v", err)
			}
			return
		}
		if len(o.Addrs) == 0 {
			t.Errorf("parseRedisURL(%q) accepted a URL with no address", raw)
		}
	})
}
