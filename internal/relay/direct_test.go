package relay

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/relay/relaytest"
)

// TestDirectRouteOf: the router takes exactly the device routes' method and path; every
// other request goes to the engine.
func TestDirectRouteOf(t *testing.T) {
	t.Parallel()
	for _, rt := range directRoutes {
		if got := directRouteOf(rt.method, rt.path); got != rt {
			t.Errorf("directRouteOf(%s, %s) = %v, want its route", rt.method, rt.path, got)
		}
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions, http.MethodPatch} {
			if got := directRouteOf(m, rt.path); got != nil && got.method != m {
				t.Errorf("directRouteOf(%s, %s) = the %s route", m, rt.path, got.method)
			}
		}
		for _, p := range []string{rt.path + "/", strings.ToUpper(rt.path), rt.path + "x", "/x" + rt.path} {
			if got := directRouteOf(rt.method, p); got != nil {
				t.Errorf("directRouteOf(%s, %s) = %s, want nil", rt.method, p, got.path)
			}
		}
	}
}

// TestDirectRoutesAsBefore pins what the device routes answered while the engine served
// them: other methods are 404 (counted as "unmatched"), a trailing slash is redirected, and
// each answer has a request id and is counted under its route.
func TestDirectRoutesAsBefore(t *testing.T) {
	t.Parallel()
	st := openBolt(t)
	seed(t, st)
	s := newServer(t, st, nil)
	h := s.Handler()

	w := do(t, h, http.MethodGet, "/updates", "")
	if w.Code != http.StatusNotFound || w.Body.String() != `{"error":"not_found","message":"No such endpoint"}` {
		t.Errorf("GET /updates = %d %s, want the engine's 404", w.Code, w.Body)
	}
	if w.Header().Get(RequestIDHeader) == "" {
		t.Error("GET /updates has no request id")
	}
	w = do(t, h, http.MethodPost, "/updates/", info(nil))
	if w.Code != http.StatusTemporaryRedirect || w.Header().Get("Location") != "/updates" {
		t.Errorf("POST /updates/ = %d Location %q, want 307 to /updates", w.Code, w.Header().Get("Location"))
	}

	for _, tc := range []struct {
		method, path, body string
	}{
		{http.MethodPost, "/updates", info(nil)},
		{http.MethodPost, "/updates/manifest_size", info(map[string]any{"version": "1.2.0"})},
		{http.MethodPost, "/stats", info(map[string]any{"action": "set", "version_name": "1.1.0"})},
		{http.MethodPost, "/channel_self", info(map[string]any{"channel": "beta"})},
		{http.MethodPut, "/channel_self", info(nil)},
		{http.MethodGet, "/channel_self?app_id=" + testApp + "&device_id=7239a82f-4ea8-4e33-9085-f4ad974d3fc4", ""},
		{http.MethodDelete, "/channel_self?app_id=" + testApp + "&device_id=7239a82f-4ea8-4e33-9085-f4ad974d3fc4", ""},
	} {
		r := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
		r.Header.Set(RequestIDHeader, "req-"+tc.method)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Errorf("%s %s = %d %s", tc.method, tc.path, w.Code, w.Body)
		}
		if got := w.Header().Get(RequestIDHeader); got != "req-"+tc.method {
			t.Errorf("%s %s: X-Request-ID = %q, want the client's", tc.method, tc.path, got)
		}
		if got := w.Header().Get("Content-Type"); got != "application/json; charset=utf-8" {
			t.Errorf("%s %s: Content-Type = %q", tc.method, tc.path, got)
		}
	}

	metrics := do(t, h, http.MethodGet, "/metrics", "").Body.String()
	for _, want := range []string{
		`ferry_http_requests_total{code="200",method="POST",route="/updates"} 1`,
		`ferry_http_requests_total{code="200",method="POST",route="/updates/manifest_size"} 1`,
		`ferry_http_requests_total{code="200",method="POST",route="/stats"} 1`,
		`ferry_http_requests_total{code="200",method="POST",route="/channel_self"} 1`,
		`ferry_http_requests_total{code="200",method="PUT",route="/channel_self"} 1`,
		`ferry_http_requests_total{code="200",method="GET",route="/channel_self"} 1`,
		`ferry_http_requests_total{code="200",method="DELETE",route="/channel_self"} 1`,
		`ferry_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`ferry_http_request_duration_seconds_count{method="POST",route="/updates"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestDirectRecovery: a panic in a device handler is a logged 500 with the JSON body,
// counted under its route; http.ErrAbortHandler goes on to net/http.
func TestDirectRecovery(t *testing.T) {
	t.Parallel()
	var boom atomic.Pointer[any] // what Now panics with, when set
	panicWith := func(v any) { boom.Store(&v) }
	var logs relaytest.Buffer
	s := newServer(t, openBolt(t), func(o *Options) {
		o.RateLimit = -1
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		o.Now = func() time.Time {
			if v := boom.Load(); v != nil {
				panic(*v)
			}
			return time.Now()
		}
	})
	h := s.Handler()
	panicWith("boom")
	r := httptest.NewRequest(http.MethodPost, "/updates", strings.NewReader(info(nil)))
	r.Header.Set(RequestIDHeader, "req-boom")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusInternalServerError || w.Body.String() != `{"error":"internal_error","message":"Internal error","kind":"failed"}` {
		t.Errorf("panicking check = %d %s, want 500 and a JSON body", w.Code, w.Body)
	}
	if got := w.Header().Get(RequestIDHeader); got != "req-boom" {
		t.Errorf("X-Request-ID = %q, want req-boom", got)
	}
	out := logs.String()
	for _, want := range []string{`msg=panic request_id=req-boom route=/updates error=boom stack=`, `msg=request request_id=req-boom route=/updates method=POST path=/updates status=500`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}

	panicWith(http.ErrAbortHandler)
	func() {
		defer func() {
			if rec := recover(); rec == nil || !errors.Is(rec.(error), http.ErrAbortHandler) {
				t.Errorf("ErrAbortHandler: recovered %v, want it to reach net/http", rec)
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/updates", strings.NewReader(info(nil))))
	}()

	boom.Store(nil)
	if !strings.Contains(do(t, h, http.MethodGet, "/metrics", "").Body.String(), `ferry_http_requests_total{code="500",method="POST",route="/updates"} 1`) {
		t.Error("/metrics does not count the 500")
	}
}

// TestDirectAccessLog: the access-log line of a device request, at debug level.
func TestDirectAccessLog(t *testing.T) {
	t.Parallel()
	var logs relaytest.Buffer
	s := newServer(t, openBolt(t), func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	r := httptest.NewRequest(http.MethodPost, "/updates", strings.NewReader(info(nil)))
	r.Header.Set(RequestIDHeader, "req-log")
	r.RemoteAddr = "203.0.113.9:1234"
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	want := `level=DEBUG msg=request request_id=req-log route=/updates method=POST path=/updates status=200 duration=`
	if out := logs.String(); !strings.Contains(out, want) || !strings.Contains(out, "client_ip=203.0.113.9 bytes="+strconv.Itoa(w.Body.Len())) {
		t.Errorf("log = %s, want a line with %s … client_ip=203.0.113.9 bytes=%d", out, want, w.Body.Len())
	}
}

// TestClientIPIsTheEngines: the device routes see the client IP the engine's routes see,
// trusted proxies and platform header included.
func TestClientIPIsTheEngines(t *testing.T) {
	t.Parallel()
	for _, opts := range []Options{
		{},
		{TrustedProxies: []string{"10.0.0.0/8", "2001:db8::/32"}},
		{TrustedPlatform: "CF-Connecting-IP"},
	} {
		s := newServer(t, openBolt(t), func(o *Options) {
			o.TrustedProxies, o.TrustedPlatform = opts.TrustedProxies, opts.TrustedPlatform
			o.RateLimit = -1
		})
		s.Mount(mountFunc(func(r gin.IRouter) {
			r.GET("/api/ip", func(c *gin.Context) { c.String(http.StatusOK, c.ClientIP()) })
		}))
		h := s.Handler()
		for _, tc := range []struct{ remote, xff, realIP, platform string }{
			{"203.0.113.1:5", "", "", ""},
			{"10.1.2.3:5", "198.51.100.7", "", ""},
			{"10.1.2.3:5", "198.51.100.7, 10.9.9.9", "", ""},
			{"10.1.2.3:5", "not-an-ip", "198.51.100.8", ""},
			{"203.0.113.1:5", "198.51.100.7", "", "192.0.2.55"},
			{"[2001:db8::1]:5", "2001:db8:1::7", "", ""},
			{"[2001:db9::1]:5", "2001:db8:1::7", "", ""},
		} {
			r := httptest.NewRequest(http.MethodGet, "/api/ip", nil)
			r.RemoteAddr = tc.remote
			for k, v := range map[string]string{"X-Forwarded-For": tc.xff, "X-Real-IP": tc.realIP, "CF-Connecting-IP": tc.platform} {
				if v != "" {
					r.Header.Set(k, v)
				}
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if got := s.clientIP(r); got != w.Body.String() {
				t.Errorf("%+v with %+v: clientIP = %q, the engine's ClientIP %q", opts, tc, got, w.Body.String())
			}
		}
	}
}

// TestDirectDate: the device routes' Date header, which they set from a value cached per
// second, is what net/http would have written: the current time in http.TimeFormat, moving
// on with the clock.
func TestDirectDate(t *testing.T) {
	t.Parallel()
	st := openBolt(t)
	seed(t, st)
	srv := httptest.NewServer(newServer(t, st, nil).Handler())
	t.Cleanup(srv.Close)
	check := func() time.Time {
		t.Helper()
		before := time.Now().Truncate(time.Second)
		res, err := srv.Client().Post(srv.URL+"/updates", "application/json", strings.NewReader(info(nil)))
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		after := time.Now()
		if len(res.Header.Values("Date")) != 1 {
			t.Fatalf("Date headers: %q, want one", res.Header.Values("Date"))
		}
		d, err := http.ParseTime(res.Header.Get("Date"))
		if err != nil || res.Header.Get("Date") != d.UTC().Format(http.TimeFormat) {
			t.Fatalf("Date %q is not in http.TimeFormat (%v)", res.Header.Get("Date"), err)
		}
		if d.Before(before) || d.After(after) {
			t.Fatalf("Date %v outside [%v, %v]", d, before, after)
		}
		return d
	}
	first := check()
	time.Sleep(time.Until(first.Add(1100 * time.Millisecond)))
	if second := check(); !second.After(first) {
		t.Errorf("Date did not move on: %v then %v", first, second)
	}
}
