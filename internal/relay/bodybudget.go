package relay

import (
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

// limitBody enforces a route's body limit and the process-wide budget (see bodyBudget):
// a declared length over limit is 413 before anything is read; a body that does not fit in
// the budget is 503 with Retry-After; otherwise the body is capped at limit (handlers map
// *http.MaxBytesError to 413) and its bytes are counted until the handler returns. limit
// receives the request (mounted routes have their limit by route template). cost is what
// the handler holds per body byte while it runs: 1 for a body checked as raw bytes, more
// for one decoded whole into strings and slices (see decodeCost). Requests without a body
// pass untouched. device selects the answer's shape: the device protocol's, with kind
// failed, or the control plane's {error, message}.
func (s *Server) limitBody(limit func(c *gin.Context) int64, cost int64, device bool) gin.HandlerFunc {
	kind := ""
	if device {
		kind = channel.KindFailed
	}
	return func(c *gin.Context) {
		n := limit(c)
		cl := c.Request.ContentLength
		if cl > n {
			writeTooLarge(c, n, kind)
			c.Abort()
			return
		}
		if cl == 0 || c.Request.Body == nil || c.Request.Body == http.NoBody {
			c.Next()
			return
		}
		w := cl
		if w < 0 {
			w = n
		}
		w *= cost
		if s.budget != nil {
			if !s.budget.acquire(w) {
				s.metrics.bodyBudgetRefused.Inc()
				c.Header("Retry-After", strconv.Itoa(bodyRetryAfter))
				writeJSON(c, http.StatusServiceUnavailable, errorBody{
					Error:   "body_budget_exhausted",
					Message: "The relay is receiving too many large requests at once; retry after " + strconv.Itoa(bodyRetryAfter) + "s",
					Kind:    kind,
				})
				c.Abort()
				return
			}
			defer s.budget.release(w)
		}
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, n)
		c.Next()
	}
}

// bodyLimit is limitBody for a device route with a fixed limit and cost.
func (s *Server) bodyLimit(n, cost int64) gin.HandlerFunc {
	return s.limitBody(func(*gin.Context) int64 { return n }, cost, true)
}

// readAllSized reads r to its end into a buffer sized once from the declared length (the
// server guarantees a body never exceeds it), instead of io.ReadAll's doubling, which
// would leave up to twice the body in garbage.
func readAllSized(r io.Reader, declared int64) ([]byte, error) {
	if declared < 0 || declared > MaxMountedBody {
		return io.ReadAll(r)
	}
	buf := make([]byte, declared)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	return buf, nil
}
