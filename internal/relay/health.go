package relay

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// healthz answers GET /healthz: 200 while the process serves requests. It touches nothing
// else, so an orchestrator restarts the relay only when the relay itself is stuck.
func (s *Server) healthz(c *gin.Context) {
	writeJSON(c, http.StatusOK, statusOK{Status: "ok"})
}

// readyz answers GET /readyz: 200 when the store answers a ping within the store timeout,
// else 503 with the reason (a load balancer stops sending traffic meanwhile; devices would
// still be answered from cached state). With [Options].Degraded set, the 200 says
// {"status":"degraded","message":...}. The result is reused for [readyCacheTTL], and
// concurrent requests wait for one ping, so a flood of readiness checks (the route is
// unauthenticated and, like /healthz, not rate limited: probes must not be refused because
// of someone else's traffic) costs at most one store ping per second.
func (s *Server) readyz(c *gin.Context) {
	ctx := c.Request.Context()
	if err := s.ready.check(ctx, s.now, s.pingStore); err != nil {
		writeJSON(c, http.StatusServiceUnavailable, errorBody{Error: "store_unreachable", Message: "The store does not answer"})
		return
	}
	if s.opts.Degraded != "" {
		writeJSON(c, http.StatusOK, degradedBody{Status: "degraded", Message: s.opts.Degraded})
		return
	}
	writeJSON(c, http.StatusOK, statusOK{Status: "ok"})
}

// degradedBody is /readyz's answer while the relay runs with a risk the operator accepted.
type degradedBody struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func (s *Server) pingStore(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.StoreTimeout)
	defer cancel()
	err := s.store.Ping(ctx)
	if err != nil {
		s.metrics.storeErrors.WithLabelValues("ping").Inc()
		loggerFrom(ctx, s.log).WarnContext(ctx, "readiness: store unreachable", "error", err)
	}
	return err
}

// readiness caches the last store ping.
type readiness struct {
	mu  sync.Mutex
	at  time.Time // zero: never checked
	err error
}

// check returns the last ping's result when it is younger than readyCacheTTL, else pings
// (one caller at a time; the others wait and reuse its result).
func (r *readiness) check(ctx context.Context, now func() time.Time, ping func(context.Context) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t := now(); !r.at.IsZero() && t.Sub(r.at) < readyCacheTTL && !t.Before(r.at) {
		return r.err
	}
	r.err = ping(ctx)
	r.at = now()
	return r.err
}
