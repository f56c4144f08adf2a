package relay

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/store"
	"github.com/ferryhq/ferry/internal/testpeers"
)

// openRedis opens the Redis store on a private redis-server (testpeers.Redis); the test skips
// when redis-server is not installed, or fails under FERRY_REQUIRE_PEERS=1.
func openRedis(t testing.TB) store.Store {
	t.Helper()
	srv := testpeers.Redis(t)
	r, err := store.OpenRedis(context.Background(), "redis://"+srv.Addr, store.RedisOptions{})
	if err != nil {
		t.Fatalf("OpenRedis: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestRedisOutage stops the real redis-server under a serving relay: update checks keep
// being answered from the last snapshot, /readyz and /stats report the outage (503, so the
// plugin retries its stats), and everything recovers when Redis is back.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	srv := testpeers.Redis(t)
	st, err := store.OpenRedis(context.Background(), "redis://"+srv.Addr, store.RedisOptions{})
	if err != nil {
		t.Fatalf("OpenRedis: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	seed(t, st)
	s := newServer(t, st, func(o *Options) { o.SnapshotTTL = 200 * time.Millisecond })
	h := s.Handler()
	out := deviceIn(t, "1.2.0", 50, false)
	if v := offeredVersion(t, h, out, "builtin"); v != "1.1.0" {
		t.Fatalf("Redis up: offered %q, want 1.1.0", v)
	}

	srv.Stop()
	time.Sleep(300 * time.Millisecond) // past the TTL: the next check tries to reload
	for range 5 {
		if v := offeredVersion(t, h, out, "builtin"); v != "1.1.0" {
			t.Fatalf("Redis down: offered %q, want 1.1.0 from the last snapshot", v)
		}
	}
	if w := do(t, h, http.MethodGet, "/readyz", ""); w.Code != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz with Redis down = %d, want 503", w.Code)
	}
	stat := info(map[string]any{"device_id": out, "version_name": "1.1.0", "action": "update_fail"})
	if w := do(t, h, http.MethodPost, "/stats", stat); w.Code != http.StatusServiceUnavailable {
		t.Errorf("POST /stats with Redis down = %d %s, want 503", w.Code, w.Body)
	}
	if !strings.Contains(do(t, h, http.MethodGet, "/metrics", "").Body.String(), "ferry_snapshot_stale_served_total") {
		t.Error("/metrics lacks the stale-served counter")
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	// After enough failed dials go-redis fails fast until a background probe (once a second)
	// reaches the server again, so the relay is ready again a little after Redis is.
	waitFor(t, "readiness after Redis restarted", func() bool { return do(t, h, http.MethodGet, "/readyz", "").Code == http.StatusOK })
	// Redis restarted empty (no persistence in this test): the state comes back as seeded.
	seed(t, st)
	if w := do(t, h, http.MethodPost, "/stats", stat); w.Code != http.StatusOK {
		t.Errorf("POST /stats after Redis is back = %d %s", w.Code, w.Body)
	}
	promote(t, st, "production", "1.2.0")
	waitFor(t, "a change made after the outage", func() bool { return offeredVersion(t, h, out, "builtin") == "1.2.0" })
}
