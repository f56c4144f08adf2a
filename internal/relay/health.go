package relay

import (
	"context"
	"net/http"

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
// {"status":"degraded","message":...}.
func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.opts.StoreTimeout)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.metrics.storeErrors.WithLabelValues("ping").Inc()
		loggerFrom(ctx, s.log).WarnContext(ctx, "readiness: store unreachable", "error", err)
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
