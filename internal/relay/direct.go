package relay

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relay/reqlog"
)

// The device routes (POST /updates, /updates/manifest_size, /stats and the four methods of
// /channel_self) carry nearly all of a relay's traffic, and are served without Gin: router
// dispatches their exact method and path to the handler, in front of the engine, which
// serves everything else. serveDirect gives them what the engine's middleware gives its
// routes, in the same order and through the same code: request id, request-scoped logger
// and access-log line, metrics under the route's path, panic recovery, the per-client rate
// limit, then the body limit and budget. The handlers take the request-scoped context
// (r's, with the logger) beside w and r, so the request is not copied to carry it.
//
// The engine keeps the same routes with its middleware and the same handlers, so that it
// still redirects "/updates/" to "/updates" (307) and refuses a mounted route of the same
// path; the router answers the exact paths first.

// directHandler is a device route's handler. ctx is r's context with the request's logger
// (package reqlog): use it rather than r.Context(). body is the request body, read within
// the route's limit, for the routes that take one: a string, so that what is decoded from
// it is slices of it rather than a copy per field.
type directHandler func(s *Server, ctx context.Context, w http.ResponseWriter, r *http.Request, body string)

// directRoute is a device route the router serves.
type directRoute struct {
	method string
	path   string // also the route label of the metrics and the log
	limit  int64  // body limit (see admitBody)
	cost   int64  // body-budget weight per byte
	body   bool   // the handler takes the body (else it reads the query string)
	handle directHandler
}

var (
	routeUpdates      = directRoute{http.MethodPost, "/updates", MaxUpdateBody, 1, true, (*Server).updates}
	routeManifestSize = directRoute{http.MethodPost, "/updates/manifest_size", MaxManifestSizeBody, decodeCost, true, (*Server).manifestSize}
	routeStats        = directRoute{http.MethodPost, "/stats", MaxStatsBody, decodeCost, true, (*Server).stats}
	routeChannelSet   = directRoute{http.MethodPost, "/channel_self", MaxUpdateBody, 1, true, (*Server).channelSet}
	routeChannelGet   = directRoute{http.MethodPut, "/channel_self", MaxUpdateBody, 1, true, (*Server).channelGet}
	routeChannelList  = directRoute{http.MethodGet, "/channel_self", MaxUpdateBody, 1, false, (*Server).channelList}
	routeChannelUnset = directRoute{http.MethodDelete, "/channel_self", MaxUpdateBody, 1, false, (*Server).channelUnset}

	// directRoutes lists every route directRouteOf returns.
	directRoutes = []*directRoute{&routeUpdates, &routeManifestSize, &routeStats, &routeChannelSet, &routeChannelGet, &routeChannelList, &routeChannelUnset}
)

// directRouteOf returns the device route of method and path, or nil.
func directRouteOf(method, path string) *directRoute {
	switch path {
	case "/updates":
		if method == http.MethodPost {
			return &routeUpdates
		}
	case "/updates/manifest_size":
		if method == http.MethodPost {
			return &routeManifestSize
		}
	case "/stats":
		if method == http.MethodPost {
			return &routeStats
		}
	case "/channel_self":
		switch method {
		case http.MethodPost:
			return &routeChannelSet
		case http.MethodPut:
			return &routeChannelGet
		case http.MethodGet:
			return &routeChannelList
		case http.MethodDelete:
			return &routeChannelUnset
		}
	}
	return nil
}

// router is the relay's http.Handler: the device routes directly, the rest through the
// engine.
type router struct {
	s *Server
}

func (h router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rt := directRouteOf(r.Method, r.URL.Path); rt != nil {
		h.s.serveDirect(w, r, rt)
		return
	}
	h.s.engine.ServeHTTP(w, r)
}

// ginHandler adapts a device route to the engine (see the comment at the top).
func (s *Server) ginHandler(rt *directRoute) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx := c.Request.Context()
		var body string
		if rt.body {
			b, ok := readBody(ctx, c.Writer, c.Request, nil)
			if !ok {
				return
			}
			body = string(b)
		}
		rt.handle(s, ctx, c.Writer, c.Request, body)
	}
}

// exchange is the per-request state of serveDirect, pooled.
type exchange struct {
	w statusWriter
	// body is the buffer request bodies are read into (see maxPooledBody).
	body []byte
}

var exchangePool = sync.Pool{New: func() any { return &exchange{body: make([]byte, 0, 1024)} }}

// maxPooledBody is the largest body buffer an exchange keeps: a real info object is about
// 500 bytes.
const maxPooledBody = 4 << 10

// serveDirect serves a device route: the engine's middleware (requestContext, metrics,
// recovery, rateLimit, limitBody) and the handler.
func (s *Server) serveDirect(w http.ResponseWriter, r *http.Request, rt *directRoute) {
	start := time.Now()
	x := exchangePool.Get().(*exchange)
	x.w = statusWriter{ResponseWriter: w}
	w.Header()["Date"] = httpDate(start)
	id := assignRequestID(w, r)
	ctx := reqlog.NewContext(r.Context(), s.log, id, rt.path)

	s.runDirect(ctx, x, r, rt)

	status := x.w.status
	if status == 0 {
		status = http.StatusOK // what net/http answers when nothing was written
	}
	d := time.Since(start)
	s.metrics.observe(r.Method, rt.path, status, d)
	if level := requestLevel(rt.path, status); s.log.Enabled(ctx, level) {
		s.logRequest(ctx, level, r, status, x.w.size, d, s.clientIP(r))
	}
	x.w = statusWriter{}
	exchangePool.Put(x)
}

// httpDate returns the Date header of an answer started at now. net/http formats the Date
// of every answer that has none; the device routes reuse one value per second instead.
func httpDate(now time.Time) []string {
	sec := now.Unix()
	if d := lastDate.Load(); d != nil && d.sec == sec {
		return d.value
	}
	d := &dateValue{sec: sec, value: []string{now.UTC().Format(http.TimeFormat)}}
	lastDate.Store(d)
	return d.value
}

// dateValue is a Date header value (never modified once stored) and its Unix second.
type dateValue struct {
	sec   int64
	value []string
}

var lastDate atomic.Pointer[dateValue]

// runDirect is the part of serveDirect a panic is recovered from.
func (s *Server) runDirect(ctx context.Context, x *exchange, r *http.Request, rt *directRoute) {
	w := &x.w
	defer func() {
		if rec := recover(); rec != nil {
			s.recovered(ctx, w, w.status != 0, rec)
		}
	}()
	if s.limiter != nil && !s.clientAllowed(ctx, w, s.clientIP(r)) {
		return
	}
	held, ok := s.admitBody(ctx, w, r, rt.limit, rt.cost, channel.KindFailed)
	if !ok {
		return
	}
	if held > 0 {
		defer s.budget.release(held)
	}
	var body string
	if rt.body {
		b, ok := readBody(ctx, w, r, x.body)
		if !ok {
			return
		}
		if cap(b) <= maxPooledBody {
			x.body = b[:0]
		}
		body = string(b)
	}
	rt.handle(s, ctx, w, r, body)
}

// statusWriter records the status and size of an answer.
type statusWriter struct {
	http.ResponseWriter
	status int // 0 until the header is written
	size   int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.size += n
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// clientIP is the engine's ClientIP for r (trusted proxies, the trusted platform's header),
// for requests the engine does not serve: through a context of the engine kept for that.
func (s *Server) clientIP(r *http.Request) string {
	c := s.ipContexts.Get().(*gin.Context)
	c.Request = r
	ip := c.ClientIP()
	c.Request = nil
	s.ipContexts.Put(c)
	return ip
}
