package relay

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRateKeyIPv6Prefix: the per-client bucket is per IPv4 address and per IPv6 /64, so a
// client rotating through the addresses of its /64 shares one bucket, while another /64
// (or another IPv4 address) has its own.
func TestRateKeyIPv6Prefix(t *testing.T) {
	t.Parallel()
	s := newServer(t, openBolt(t), func(o *Options) { o.RateLimit, o.RateBurst = 0.001, 2 })
	h := s.Handler()
	post := func(ip string) int {
		r := httptest.NewRequest(http.MethodPost, "/updates", strings.NewReader(info(nil)))
		r.RemoteAddr = net.JoinHostPort(ip, "40000")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for i, ip := range []string{"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"} {
		if code := post(ip); code != http.StatusOK {
			t.Fatalf("request %d from the /64 within the burst = %d", i, code)
		}
	}
	if code := post("2001:db8:1:2:abcd::9"); code != http.StatusTooManyRequests {
		t.Errorf("third address of the same /64 = %d, want 429 (one bucket per /64)", code)
	}
	if code := post("2001:db8:1:3::1"); code != http.StatusOK {
		t.Errorf("another /64 = %d, want 200", code)
	}
	if code := post("192.0.2.10"); code != http.StatusOK {
		t.Errorf("an IPv4 client = %d, want 200", code)
	}
	if n := s.limiter.sweep(); n != 3 {
		t.Errorf("%d buckets, want 3 (one /64, another /64, one IPv4 address)", n)
	}
	for ip, want := range map[string]string{
		"192.0.2.10":        "\xc0\x00\x02\x0a",
		"::ffff:192.0.2.10": "\xc0\x00\x02\x0a",
		"2001:db8::1":       "\x20\x01\x0d\xb8\x00\x00\x00\x00",
		"not an ip":         "not an ip",
	} {
		if got := rateKey(ip); got != want {
			t.Errorf("rateKey(%q) = %q, want %q", ip, got, want)
		}
	}
}

// pingCounter counts the store pings.
type pingCounter struct {
	Store
	pings atomic.Int64
}

func (p *pingCounter) Ping(ctx context.Context) error {
	p.pings.Add(1)
	time.Sleep(10 * time.Millisecond)
	return p.Store.Ping(ctx)
}

// TestReadyzCached: a flood of readiness checks costs one store ping per second, not one
// each.
func TestReadyzCached(t *testing.T) {
	t.Parallel()
	st := &pingCounter{Store: openBolt(t)}
	var clock atomic.Int64
	clock.Store(time.Unix(1_700_000_000, 0).UnixNano())
	s := newServer(t, st, func(o *Options) { o.Now = func() time.Time { return time.Unix(0, clock.Load()) } })
	h := s.Handler()
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			if w := do(t, h, http.MethodGet, "/readyz", ""); w.Code != http.StatusOK {
				t.Errorf("GET /readyz = %d", w.Code)
			}
		})
	}
	wg.Wait()
	if n := st.pings.Load(); n != 1 {
		t.Errorf("200 readiness checks within a second pinged the store %d times, want 1", n)
	}
	clock.Add(int64(readyCacheTTL))
	do(t, h, http.MethodGet, "/readyz", "")
	if n := st.pings.Load(); n != 2 {
		t.Errorf("after %s: %d pings, want 2", readyCacheTTL, n)
	}
}

// TestMetricsExposure: with a token /metrics needs it; with SeparateMetrics it is not on
// the main handler but on ServeMetrics' listener.
func TestMetricsExposure(t *testing.T) {
	t.Parallel()
	get := func(h http.Handler, auth string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	s := newServer(t, openBolt(t), func(o *Options) { o.MetricsToken = "s3cret" })
	for _, auth := range []string{"", "Bearer s3cre", "Bearer s3cret2", "Basic s3cret"} {
		if w := get(s.Handler(), auth); w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("GET /metrics with %q = %d, want 401 with WWW-Authenticate", auth, w.Code)
		}
	}
	if w := get(s.Handler(), "Bearer s3cret"); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "ferry_http_requests_total") {
		t.Errorf("GET /metrics with the token = %d", w.Code)
	}

	sep := newServer(t, openBolt(t), func(o *Options) { o.SeparateMetrics = true })
	if w := get(sep.Handler(), ""); w.Code != http.StatusNotFound {
		t.Errorf("GET /metrics on the main handler with SeparateMetrics = %d, want 404", w.Code)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- sep.ServeMetrics(ctx, ln) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /metrics on the metrics listener = %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ServeMetrics = %v", err)
	}
}

// serveLoopback runs s.Serve on a loopback listener until the test ends (then checks that
// Serve returned nil) and returns the listener's address.
func serveLoopback(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve = %v", err)
		}
	})
	return ln.Addr().String()
}

// TestConnLimit: the relay keeps at most MaxConns connections open. Clients that park
// keep-alive connections lose the idle ones to newer clients, which are served.
func TestConnLimit(t *testing.T) {
	t.Parallel()
	s := newServer(t, openBolt(t), func(o *Options) { o.MaxConns = 2 })
	addr := serveLoopback(t, s)

	// Five clients each make one keep-alive request and keep the connection.
	var conns []net.Conn
	for i := range 5 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("client %d: %d", i, resp.StatusCode)
		}
		conns = append(conns, c)
	}
	// At most two may still be open; the others were closed by the relay (EOF).
	open := 0
	for _, c := range conns {
		if err := c.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		var b [1]byte
		_, err := c.Read(b[:])
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			open++
		}
	}
	if open > 2 {
		t.Errorf("%d connections still open, want at most MaxConns = 2", open)
	}
}
