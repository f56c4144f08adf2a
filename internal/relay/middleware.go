package relay

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relay/reqlog"
)

// RequestIDHeader carries the request id in both directions.
const RequestIDHeader = "X-Request-ID"

// loggerFrom returns the request-scoped logger the middleware put in ctx, or fallback.
func loggerFrom(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	if l, ok := reqlog.FromContext(ctx); ok {
		return l
	}
	if fallback == nil {
		return discardLogger
	}
	return fallback
}

var discardLogger = slog.New(slog.DiscardHandler)

// deviceRoutes are the high-volume routes whose successful requests are logged at debug
// level; every other request is logged at info, server errors at error.
var deviceRoutes = map[string]bool{
	"/updates":               true,
	"/updates/manifest_size": true,
	"/stats":                 true,
	"/channel_self":          true,
	"/healthz":               true,
	"/readyz":                true,
	"/metrics":               true,
}

// requestContext assigns the request id, puts a request-scoped logger (package reqlog) in
// the request's context, for the control plane's handlers too, and writes one access-log line
// when the request is done.
func (s *Server) requestContext() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		id := assignRequestID(c.Writer, c.Request)
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		reqCtx := reqlog.NewContext(c.Request.Context(), s.log, id, route)
		c.Request = c.Request.WithContext(reqCtx)

		c.Next()

		status := c.Writer.Status()
		if level := requestLevel(route, status); s.log.Enabled(reqCtx, level) {
			s.logRequest(reqCtx, level, c.Request, status, c.Writer.Size(), time.Since(start), c.ClientIP())
		}
	}
}

// requestIDKey is RequestIDHeader in the canonical form net/http keeps header keys in.
var requestIDKey = http.CanonicalHeaderKey(RequestIDHeader)

// assignRequestID returns r's request id, the client's X-Request-ID when it is well formed
// or a new one, and sets it on the answer.
func assignRequestID(w http.ResponseWriter, r *http.Request) string {
	var id string
	if v := r.Header[requestIDKey]; len(v) > 0 {
		id = v[0]
	}
	if !validRequestID(id) {
		id = newRequestID()
	}
	w.Header()[requestIDKey] = []string{id}
	return id
}

// requestLevel is the level of a request's access-log line: debug for a successful request
// to one of the high-volume deviceRoutes, error for a server error, else info.
func requestLevel(route string, status int) slog.Level {
	switch {
	case status >= 500:
		return slog.LevelError
	case deviceRoutes[route] && status < 400:
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// logRequest writes a request's access-log line through the request's logger in ctx.
func (s *Server) logRequest(ctx context.Context, level slog.Level, r *http.Request, status, size int, d time.Duration, clientIP string) {
	loggerFrom(ctx, s.log).LogAttrs(ctx, level, "request",
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Duration("duration", d),
		slog.String("client_ip", clientIP),
		slog.Int("bytes", size),
	)
}

func validRequestID(id string) bool {
	if id == "" || len(id) > MaxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		b := id[i]
		if b < 0x21 || b > 0x7e { // visible ASCII only: no spaces, controls or unicode
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	u1, u2 := rand.Uint64(), rand.Uint32()
	for i := range 8 {
		b[i] = byte(u1 >> (8 * i))
	}
	for i := range 4 {
		b[8+i] = byte(u2 >> (8 * i))
	}
	var out [24]byte
	hex.Encode(out[:], b[:])
	return string(out[:])
}

// recovery turns a panic in a handler into a logged 500 with a JSON body (see recovered).
func (s *Server) recovery() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if rec := recover(); rec != nil {
				s.recovered(c.Request.Context(), c.Writer, c.Writer.Written(), rec)
				c.Abort()
			}
		}()
		c.Next()
	}
}

// recovered handles what a handler's panic left, rec: a panic with http.ErrAbortHandler
// goes on (net/http aborts the connection quietly); any other is logged with its stack and
// answered with a 500 and a JSON body unless the answer was already written.
func (s *Server) recovered(ctx context.Context, w http.ResponseWriter, written bool, rec any) {
	if err, ok := rec.(error); ok && errors.Is(err, http.ErrAbortHandler) {
		panic(rec)
	}
	loggerFrom(ctx, s.log).ErrorContext(ctx, "panic", "error", fmt.Sprint(rec), "stack", string(debug.Stack()))
	if !written {
		respond(ctx, w, http.StatusInternalServerError, errorBody{Error: "internal_error", Message: "Internal error", Kind: channel.KindFailed})
	}
}

func writeTooLarge(ctx context.Context, w http.ResponseWriter, n int64, kind string) {
	respond(ctx, w, http.StatusRequestEntityTooLarge, errorBody{
		Error:   "body_too_large",
		Message: "Request body is larger than " + strconv.FormatInt(n, 10) + " bytes",
		Kind:    kind,
	})
}

// rateLimit applies the per-client token bucket (see clientAllowed) to a Gin route.
func (s *Server) rateLimit() gin.HandlerFunc {
	return func(c *gin.Context) {
		if s.limiter != nil && !s.clientAllowed(c.Request.Context(), c.Writer, c.ClientIP()) {
			c.Abort()
			return
		}
		c.Next()
	}
}

// clientAllowed takes a token from the bucket of client IP ip (per IPv4 address or IPv6
// /64, see rateKey), or answers 429 with Retry-After (whole seconds, at least 1) and returns
// false when the bucket is empty. s.limiter must not be nil.
func (s *Server) clientAllowed(ctx context.Context, w http.ResponseWriter, ip string) bool {
	wait, ok := s.limiter.allow(rateKey(ip))
	if ok {
		return true
	}
	who := ip
	if strings.Contains(ip, ":") {
		who = "the IPv6 /64 of " + ip
	}
	s.tooMany(ctx, w, wait, "Too many requests from "+who)
	return false
}

// rateKey is the per-client bucket key of a client IP: the address itself for IPv4 (and
// IPv4-mapped IPv6), its /64 prefix for IPv6, since one subscriber usually holds a whole
// /64 and could otherwise take 2^64 buckets. Anything unparsable is its own key.
func rateKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return string(b[:])
	}
	b := a.As16()
	return string(b[:8])
}

// tooMany answers 429 with Retry-After in whole seconds (at least 1), which the plugin
// honours by pausing its checks that long.
func (s *Server) tooMany(ctx context.Context, w http.ResponseWriter, wait time.Duration, what string) {
	secs := int64((wait + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	s.metrics.rateLimited.Inc()
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	respond(ctx, w, http.StatusTooManyRequests, errorBody{
		Error:   "rate_limited",
		Message: what + "; retry after " + strconv.FormatInt(secs, 10) + "s",
		Kind:    channel.KindFailed,
	})
}

// deviceAllowed takes a token from the device's bucket, or answers 429 and returns false.
// Device ids that are not valid (see channel.ValidDeviceID; the update decision refuses them) share
// one bucket per app, so a flood of made-up ids does not create a bucket each.
func (s *Server) deviceAllowed(ctx context.Context, w http.ResponseWriter, app, device string) bool {
	if s.deviceLimiter == nil {
		return true
	}
	key, who := app+"\x00"+device, "device "+device
	if !channel.ValidDeviceID(device) {
		key, who = app+"\x00", "devices with an invalid device_id"
	}
	wait, ok := s.deviceLimiter.allow(key)
	if !ok {
		s.tooMany(ctx, w, wait, "Too many update checks from "+who)
	}
	return ok
}
