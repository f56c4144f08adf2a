package relay

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/channel"
)

// bodyBudget bounds the request-body bytes the relay holds at once, over every route of the
// engine (the control plane's included): a process-wide semaphore weighted in bytes. A
// request takes its declared Content-Length (its route's limit when the length is not
// declared, chunked), times its route's decode cost, before anything is read, and gives it
// back when its handler returns.
// What does not fit is refused at once with 503 and Retry-After rather than queued, so a
// burst of large bodies cannot grow memory nor pile up goroutines.
//
// The last reserve bytes are kept for small bodies (at most [MaxUpdateBody]): update checks,
// channel calls and small stats batches go on while large bodies hold the rest.
type bodyBudget struct {
	max, reserve int64
	used         atomic.Int64
}

func newBodyBudget(max int64) *bodyBudget {
	return &bodyBudget{max: max, reserve: bodyReserve}
}

// acquire takes n bytes, or reports false when they do not fit.
func (b *bodyBudget) acquire(n int64) bool {
	limit := b.max
	if n > MaxUpdateBody {
		limit -= b.reserve
	}
	for {
		u := b.used.Load()
		if u+n > limit {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (b *bodyBudget) release(n int64) { b.used.Add(-n) }

// limitBody enforces a route's body limit and the process-wide budget (see admitBody) for
// a Gin route. limit receives the request (mounted routes have their limit by route
// template).
func (s *Server) limitBody(limit func(c *gin.Context) int64, cost int64, device bool) gin.HandlerFunc {
	kind := ""
	if device {
		kind = channel.KindFailed
	}
	return func(c *gin.Context) {
		held, ok := s.admitBody(c.Request.Context(), c.Writer, c.Request, limit(c), cost, kind)
		if !ok {
			c.Abort()
			return
		}
		if held > 0 {
			defer s.budget.release(held)
		}
		c.Next()
	}
}

// bodyLimit is limitBody for a device route with a fixed limit and cost.
func (s *Server) bodyLimit(n, cost int64) gin.HandlerFunc {
	return s.limitBody(func(*gin.Context) int64 { return n }, cost, true)
}

// admitBody enforces body limit n and the process-wide budget (see bodyBudget) on r: a
// declared length over n is 413 before anything is read; a body that does not fit in the
// budget is 503 with Retry-After; otherwise the body is capped at n (handlers map
// *http.MaxBytesError to 413) and held bytes are reserved in the budget, which the caller
// releases when the handler returns. cost is what the handler holds per body byte while it
// runs: 1 for a body checked as raw bytes, more for one decoded whole into strings and
// slices (see decodeCost). Requests without a body pass untouched. kind is the answer's
// kind: the device protocol's "failed", or "" for the control plane's {error, message}.
// When it answers the request itself it returns ok=false.
func (s *Server) admitBody(ctx context.Context, w http.ResponseWriter, r *http.Request, n, cost int64, kind string) (held int64, ok bool) {
	cl := r.ContentLength
	if cl > n {
		writeTooLarge(ctx, w, n, kind)
		return 0, false
	}
	if cl == 0 || r.Body == nil || r.Body == http.NoBody {
		return 0, true
	}
	weight := cl
	if weight < 0 {
		weight = n
	}
	weight *= cost
	if s.budget != nil {
		if !s.budget.acquire(weight) {
			s.metrics.bodyBudgetRefused.Inc()
			w.Header().Set("Retry-After", strconv.Itoa(bodyRetryAfter))
			respond(ctx, w, http.StatusServiceUnavailable, errorBody{
				Error:   "body_budget_exhausted",
				Message: "The relay is receiving too many large requests at once; retry after " + strconv.Itoa(bodyRetryAfter) + "s",
				Kind:    kind,
			})
			return 0, false
		}
		held = weight
	}
	r.Body = http.MaxBytesReader(w, r.Body, n)
	return held, true
}

// readAllSized reads r to its end into a buffer sized once from the declared length (the
// server guarantees a body never exceeds it), instead of io.ReadAll's doubling, which
// would leave up to twice the body in garbage. The buffer is buf when the body fits in it.
func readAllSized(r io.Reader, declared int64, buf []byte) ([]byte, error) {
	if declared < 0 || declared > MaxMountedBody {
		return io.ReadAll(r)
	}
	if int64(cap(buf)) >= declared {
		buf = buf[:declared]
	} else {
		buf = make([]byte, declared)
	}
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	return buf, nil
}
