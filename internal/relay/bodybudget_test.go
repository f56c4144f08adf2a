package relay

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// limitedMounter mounts routes with their own body limits (a relay.BodyLimiter), like the
// control plane: /api/v1/big holds its request until release is closed.
type limitedMounter struct {
	entered, release chan struct{}
}

func (m *limitedMounter) Mount(r gin.IRouter) {
	r.POST("/api/v1/big", func(c *gin.Context) {
		m.entered <- struct{}{}
		<-m.release
		n, err := io.Copy(io.Discard, c.Request.Body)
		if err != nil {
			c.String(http.StatusBadRequest, err.Error())
			return
		}
		c.String(http.StatusOK, "read %d", n)
	})
	r.POST("/api/v1/small", func(c *gin.Context) { c.String(http.StatusOK, "ok") })
}

func (m *limitedMounter) BodyLimit(route string) int64 {
	if route == "/api/v1/big" {
		return 20 << 20
	}
	return 1 << 10
}

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// mustNotRead fails the test when a refused body is read.
type mustNotRead struct{ t *testing.T }

func (m mustNotRead) Read([]byte) (int, error) {
	m.t.Error("the body of a request refused by its declared length was read")
	return 0, io.EOF
}

func post(h http.Handler, target string, body io.Reader, length int64) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, target, body)
	r.ContentLength = length
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestBodyBudget: the process-wide body budget counts every route's bodies, device and
// mounted: a large body that does not fit is refused at once with 503 and Retry-After,
// while small bodies still pass (the reserve); declared lengths over a route's limit
// (mounted routes included, by their BodyLimiter) are 413 without reading; a chunked body
// reserves its route's limit; everything is given back when the handler returns.
func TestBodyBudget(t *testing.T) {
	t.Parallel()
	st := openBolt(t)
	seed(t, st)
	s := newServer(t, st, func(o *Options) { o.BodyBudget = MinBodyBudget })
	m := &limitedMounter{entered: make(chan struct{}), release: make(chan struct{})}
	s.Mount(m)
	h := s.Handler()

	held := make(chan *httptest.ResponseRecorder)
	go func() { held <- post(h, "/api/v1/big", io.LimitReader(zeros{}, 20<<20), 20<<20) }()
	<-m.entered // 20 MiB of the 29 MiB budget are reserved; 25 MiB may go to large bodies

	if w := post(h, "/updates/manifest_size", mustNotRead{t}, 8<<20); w.Code != http.StatusServiceUnavailable ||
		w.Header().Get("Retry-After") != "1" || !strings.Contains(w.Body.String(), `"error":"body_budget_exhausted"`) ||
		!strings.Contains(w.Body.String(), `"kind":"failed"`) {
		t.Errorf("manifest_size of 8 MiB while 20 MiB are held = %d %s (Retry-After %q), want 503 body_budget_exhausted with Retry-After 1",
			w.Code, w.Body, w.Header().Get("Retry-After"))
	}
	if w := post(h, "/api/v1/big", io.LimitReader(zeros{}, 1<<20), -1); w.Code != http.StatusServiceUnavailable {
		t.Errorf("chunked body on a 20 MiB route while 20 MiB are held = %d %s, want 503 (it reserves its route's limit)", w.Code, w.Body)
	}
	if w := do(t, h, http.MethodPost, "/updates", info(nil)); w.Code != http.StatusOK {
		t.Errorf("update check while large bodies hold the budget = %d %s, want 200 (small bodies have a reserve)", w.Code, w.Body)
	}
	if w := post(h, "/api/v1/big", mustNotRead{t}, 20<<20+1); w.Code != http.StatusRequestEntityTooLarge ||
		w.Body.String() != `{"error":"body_too_large","message":"Request body is larger than 20971520 bytes"}` {
		t.Errorf("mounted route, declared length over its limit = %d %s, want 413 in the control plane's shape", w.Code, w.Body)
	}
	if w := post(h, "/api/v1/small", mustNotRead{t}, 2<<10); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("mounted route with a 1 KiB limit, 2 KiB declared = %d, want 413", w.Code)
	}
	if w := post(h, "/api/v1/small", strings.NewReader("{}"), 2); w.Code != http.StatusOK {
		t.Errorf("mounted route, small body = %d %s", w.Code, w.Body)
	}

	close(m.release)
	if w := <-held; w.Code != http.StatusOK || w.Body.String() != "read 20971520" {
		t.Errorf("held request = %d %s", w.Code, w.Body)
	}
	if w := post(h, "/updates/manifest_size", io.LimitReader(zeros{}, 8<<20), 8<<20); w.Code != http.StatusBadRequest {
		t.Errorf("manifest_size of 8 MiB of zeros once the budget is free = %d %.200s, want 400 (read and refused as JSON)", w.Code, w.Body)
	}
	if got := s.budget.used.Load(); got != 0 {
		t.Errorf("budget holds %d bytes after every request ended, want 0", got)
	}
	metrics := do(t, h, http.MethodGet, "/metrics", "").Body.String()
	for _, want := range []string{"ferry_body_budget_refused_total 2", "ferry_body_budget_bytes_in_use 0", "ferry_body_budget_bytes 3.0408704e+07"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestBodyBudgetOptions: a budget too small for the largest body is refused by New; a
// negative one disables the budget (mounted routes keep MaxMountedBody without a
// BodyLimiter).
func TestBodyBudgetOptions(t *testing.T) {
	t.Parallel()
	st := openBolt(t)
	if _, err := New(Options{Config: testAppConfig(t), Store: st, BodyBudget: MinBodyBudget - 1}); err == nil ||
		!strings.Contains(err.Error(), "body budget") {
		t.Errorf("New with a budget below the minimum = %v, want an error", err)
	}
	s := newServer(t, st, func(o *Options) { o.BodyBudget = -1 })
	if s.budget != nil {
		t.Error("a negative BodyBudget did not disable the budget")
	}
	s.Mount(mountFunc(func(r gin.IRouter) {
		r.POST("/api/v1/any", func(c *gin.Context) { c.String(http.StatusOK, "ok") })
	}))
	if w := post(s.Handler(), "/api/v1/any", mustNotRead{t}, MaxMountedBody+1); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("mounted route without BodyLimiter, %d bytes declared = %d, want 413", MaxMountedBody+1, w.Code)
	}
}
