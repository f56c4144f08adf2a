package relay

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	h := newServer(t, openBolt(t), nil).Handler()
	big := `{"app_id":"` + strings.Repeat("x", MaxUpdateBody) + `"}`
	t.Run("declared length", func(t *testing.T) {
		t.Parallel()
		w := do(t, h, http.MethodPost, "/updates", big)
		if w.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("POST /updates with %d bytes = %d, want 413", len(big), w.Code)
		}
		golden(t, "body_too_large.json", w.Body.Bytes())
	})
	t.Run("chunked", func(t *testing.T) {
		t.Parallel()
		r := httptest.NewRequest(http.MethodPost, "/updates", io.MultiReader(strings.NewReader(big)))
		r.ContentLength = -1 // unknown length: the limit applies while reading
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("chunked POST /updates with %d bytes = %d, want 413", len(big), w.Code)
		}
	})
	t.Run("stats allow big batches", func(t *testing.T) {
		t.Parallel()
		events := make([]string, 200)
		for i := range events {
			events[i] = info(map[string]any{"action": "app_moved_to_foreground", "metadata": map[string]string{"pad": strings.Repeat("m", 1000)}})
		}
		body := "[" + strings.Join(events, ",") + "]"
		if w := do(t, h, http.MethodPost, "/stats", body); w.Code != http.StatusOK {
			t.Fatalf("POST /stats with 200 events (%d bytes) = %d %s", len(body), w.Code, w.Body)
		}
	})
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	s := newServer(t, openBolt(t), func(o *Options) {
		o.RateLimit, o.RateBurst = 2, 3
		o.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	})
	h := s.Handler()
	post := func(ip string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/updates", strings.NewReader(info(nil)))
		r.RemoteAddr = ip + ":40000"
		r.Header.Set("X-Forwarded-For", "198.51.100.7") // not believed: no trusted proxies
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	for i := range 3 {
		if w := post("203.0.113.1"); w.Code != http.StatusOK {
			t.Fatalf("request %d within the burst = %d", i, w.Code)
		}
	}
	w := post("203.0.113.1")
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("request over the burst = %d, want 429", w.Code)
	}
	if ra := w.Header().Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After = %q, want 1 (one token every 500ms)", ra)
	}
	golden(t, "rate_limited.json", w.Body.Bytes())
	if w := post("203.0.113.2"); w.Code != http.StatusOK {
		t.Errorf("another client = %d, want 200: buckets are per IP", w.Code)
	}
	// Health, readiness and metrics are never limited.
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.RemoteAddr = "203.0.113.1:40000"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Errorf("GET %s from a limited client = %d, want 200", path, w.Code)
		}
	}
	clock.Add(int64(600 * time.Millisecond))
	if w := post("203.0.113.1"); w.Code != http.StatusOK {
		t.Errorf("after a token refilled = %d, want 200", w.Code)
	}
	// Buckets are evicted once they have refilled: 203.0.113.2 took one token 600 ms ago
	// (one every 500 ms), so only 203.0.113.1's remains.
	if n := s.limiter.sweep(); n != 1 {
		t.Errorf("buckets right after use = %d, want 1", n)
	}
	clock.Add(int64(time.Duration(s.limiter.span) + time.Millisecond))
	if n := s.limiter.sweep(); n != 0 {
		t.Errorf("buckets after %s idle = %d, want 0", time.Duration(s.limiter.span), n)
	}
	if !strings.Contains(do(t, h, http.MethodGet, "/metrics", "").Body.String(), "ferry_rate_limited_total 1") {
		t.Error("/metrics does not count the 429")
	}
}

func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	s := newServer(t, openBolt(t), func(o *Options) {
		o.RateLimit, o.RateBurst = 0.001, 1
		o.TrustedProxies = []string{"10.0.0.0/8"}
	})
	h := s.Handler()
	post := func(client string) int {
		r := httptest.NewRequest(http.MethodPost, "/updates", strings.NewReader(info(nil)))
		r.RemoteAddr = "10.1.2.3:5555"
		r.Header.Set("X-Forwarded-For", client)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	// Behind the trusted proxy each forwarded client has its own bucket.
	if a, b := post("198.51.100.1"), post("198.51.100.2"); a != 200 || b != 200 {
		t.Errorf("two clients behind a trusted proxy = %d, %d, want 200, 200", a, b)
	}
	if c := post("198.51.100.1"); c != http.StatusTooManyRequests {
		t.Errorf("first client again = %d, want 429", c)
	}
	if _, err := New(Options{Config: testAppConfig(t), Store: openBolt(t), TrustedProxies: []string{"not-an-ip"}}); err == nil {
		t.Error("New accepted an invalid trusted proxy")
	}
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	h := newServer(t, openBolt(t), nil).Handler()
	tests := []struct {
		name, sent string
		echoed     bool
	}{
		{"accepted", "req-123_abc", true},
		{"generated when absent", "", false},
		{"replaced when it has spaces", "a b", false},
		{"replaced when too long", strings.Repeat("x", MaxRequestIDLen+1), false},
	}
	for _, tc := range tests {
		r := httptest.NewRequest(http.MethodGet, "/healthz", nil)
		if tc.sent != "" {
			r.Header.Set(RequestIDHeader, tc.sent)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		got := w.Header().Get(RequestIDHeader)
		if tc.echoed && got != tc.sent {
			t.Errorf("%s: X-Request-ID = %q, want %q", tc.name, got, tc.sent)
		}
		if !tc.echoed && (got == tc.sent || len(got) != 24) {
			t.Errorf("%s: X-Request-ID = %q, want a fresh 24-character id", tc.name, got)
		}
	}
}

// mountFunc adapts a function to Mounter.
type mountFunc func(r gin.IRouter)

func (f mountFunc) Mount(r gin.IRouter) { f(r) }

func TestMountAndRecovery(t *testing.T) {
	t.Parallel()
	s := newServer(t, openBolt(t), func(o *Options) { o.RateLimit, o.RateBurst = 1, 2 })
	s.Mount(mountFunc(func(r gin.IRouter) {
		r.GET("/api/v1/boom", func(c *gin.Context) { panic("boom") })
		r.GET("/api/v1/ok", func(c *gin.Context) { c.String(200, "ok") })
	}))
	h := s.Handler()
	w := do(t, h, http.MethodGet, "/api/v1/boom", "")
	if w.Code != http.StatusInternalServerError || w.Body.String() != `{"error":"internal_error","message":"Internal error","kind":"failed"}` {
		t.Errorf("panicking handler = %d %s, want 500 and a JSON body", w.Code, w.Body)
	}
	if w := do(t, h, http.MethodGet, "/api/v1/ok", ""); w.Code != http.StatusOK {
		t.Errorf("mounted route = %d, want 200", w.Code)
	}
	if w := do(t, h, http.MethodGet, "/api/v1/ok", ""); w.Code != http.StatusTooManyRequests {
		t.Errorf("mounted routes are not rate limited: %d", w.Code)
	}
	if w := do(t, h, http.MethodGet, "/nope", ""); w.Code != http.StatusNotFound {
		t.Errorf("unknown route = %d, want 404", w.Code)
	}
	metrics := do(t, h, http.MethodGet, "/metrics", "").Body.String()
	for _, want := range []string{
		`ferry_http_requests_total{code="500",method="GET",route="/api/v1/boom"} 1`,
		`ferry_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`ferry_http_requests_total{code="429",method="GET",route="/api/v1/ok"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	t.Parallel()
	_, err := New(Options{RateBurst: -1, SnapshotTTL: -time.Second})
	if err == nil {
		t.Fatal("New accepted empty options")
	}
	for _, want := range []string{"config is required", "store is required", "rate bursts must not be negative", "durations must not be negative"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("New error %q does not list %q", err, want)
		}
	}
	dup := testAppConfig(t)
	dup.Apps = append(dup.Apps, dup.Apps[0])
	if _, err := New(Options{Config: dup, Store: openBolt(t)}); err == nil || !strings.Contains(err.Error(), strconv.Quote(testApp)) {
		t.Errorf("New with a duplicate app = %v, want an error naming it", err)
	}
}

// TestDeviceRateLimit: one device looping update checks is answered 429 with Retry-After
// once its bucket is empty; other devices behind the same address are not affected.
func TestDeviceRateLimit(t *testing.T) {
	t.Parallel()
	var clock atomic.Int64
	clock.Store(time.Unix(1_700_000_000, 0).UnixNano())
	st := openBolt(t)
	seed(t, st)
	s := newServer(t, st, func(o *Options) {
		o.DeviceRateLimit, o.DeviceRateBurst = 0.5, 3
		o.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	})
	h := s.Handler()
	loop := info(map[string]any{"device_id": "11111111-1111-4111-8111-111111111111"})
	for i := range 3 {
		if w := do(t, h, http.MethodPost, "/updates", loop); w.Code != http.StatusOK {
			t.Fatalf("check %d within the burst = %d", i, w.Code)
		}
	}
	w := do(t, h, http.MethodPost, "/updates", loop)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "2" {
		t.Fatalf("check over the burst = %d, Retry-After %q; want 429 and 2 (one check per 2 s)", w.Code, w.Header().Get("Retry-After"))
	}
	if w := do(t, h, http.MethodPost, "/updates/manifest_size", info(map[string]any{"device_id": "11111111-1111-4111-8111-111111111111", "version": "1.2.0"})); w.Code != http.StatusTooManyRequests {
		t.Errorf("manifest_size from the same device = %d, want 429", w.Code)
	}
	if w := do(t, h, http.MethodPost, "/updates", info(map[string]any{"device_id": "22222222-2222-4222-8222-222222222222"})); w.Code != http.StatusOK {
		t.Errorf("another device = %d, want 200", w.Code)
	}
	if w := do(t, h, http.MethodPost, "/stats", info(map[string]any{"device_id": "11111111-1111-4111-8111-111111111111", "action": "set", "version_name": "1.1.0"})); w.Code != http.StatusOK {
		t.Errorf("stats from the limited device = %d, want 200 (stats are not limited per device)", w.Code)
	}
	clock.Add(int64(2 * time.Second))
	if w := do(t, h, http.MethodPost, "/updates", loop); w.Code != http.StatusOK {
		t.Errorf("after 2 s = %d, want 200", w.Code)
	}
}
