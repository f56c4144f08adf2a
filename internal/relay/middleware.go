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
		id := c.GetHeader(RequestIDHeader)
		if !validRequestID(id) {
			id = newRequestID()
		}
		c.Header(RequestIDHeader, id)
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		reqCtx := reqlog.NewContext(c.Request.Context(), s.log, id, route)
		c.Request = c.Request.WithContext(reqCtx)

		c.Next()

		status := c.Writer.Status()
		level := slog.LevelInfo
		switch {
		case status >= 500:
			level = slog.LevelError
		case deviceRoutes[route] && status < 400:
			level = slog.LevelDebug
		}
		ctx := c.Request.Context()
		if !s.log.Enabled(ctx, level) {
			return
		}
		l, _ := reqlog.FromContext(reqCtx)
		l.LogAttrs(ctx, level, "request",
			slog.String("method", c.Request.Method),
			slog.String("path", c.Request.URL.Path),
			slog.Int("status", status),
			slog.Duration("duration", time.Since(start)),
			slog.String("client_ip", c.ClientIP()),
			slog.Int("bytes", c.Writer.Size()),
		)
	}
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
	return hex.EncodeToString(b[:])
}

// recovery turns a panic in a handler into a logged 500 with a JSON body.
func (s *Server) recovery() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			rec := recover()
			if rec == nil {
				return
			}
			if err, ok := rec.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(rec)
			}
			loggerFrom(c.Request.Context(), s.log).ErrorContext(c.Request.Context(), "panic",
				"error", fmt.Sprint(rec), "stack", string(debug.Stack()))
			if !c.Writer.Written() {
				writeJSON(c, http.StatusInternalServerError, errorBody{Error: "internal_error", Message: "Internal error", Kind: channel.KindFailed})
			}
			c.Abort()
		}()
		c.Next()
	}
}

func writeTooLarge(c *gin.Context, n int64, kind string) {
	writeJSON(c, http.StatusRequestEntityTooLarge, errorBody{
		Error:   "body_too_large",
		Message: "Request body is larger than " + strconv.FormatInt(n, 10) + " bytes",
		Kind:    kind,
	})
}

// rateLimit applies the per-client token bucket (per IPv4 address or IPv6 /64, see rateKey). It answers 429 with Retry-After (whole
// seconds, at least 1) when the bucket is empty.
func (s *Server) rateLimit() gin.HandlerFunc {
	return func(c *gin.Context) {
		if s.limiter == nil {
			c.Next()
			return
		}
		ip := c.ClientIP()
		wait, ok := s.limiter.allow(rateKey(ip))
		if ok {
			c.Next()
			return
		}
		who := ip
		if strings.Contains(ip, ":") {
			who = "the IPv6 /64 of " + ip
		}
		s.tooMany(c, wait, "Too many requests from "+who)
	}
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
func (s *Server) tooMany(c *gin.Context, wait time.Duration, what string) {
	secs := int64((wait + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	s.metrics.rateLimited.Inc()
	c.Header("Retry-After", strconv.FormatInt(secs, 10))
	writeJSON(c, http.StatusTooManyRequests, errorBody{
		Error:   "rate_limited",
		Message: what + "; retry after " + strconv.FormatInt(secs, 10) + "s",
		Kind:    channel.KindFailed,
	})
	c.Abort()
}

// deviceAllowed takes a token from the device's bucket, or answers 429 and returns false.
// Device ids that are not valid (see channel.ValidDeviceID; the update decision refuses them) share
// one bucket per app, so a flood of made-up ids does not create a bucket each.
func (s *Server) deviceAllowed(c *gin.Context, app, device string) bool {
	if s.deviceLimiter == nil {
		return true
	}
	key, who := app+"\x00"+device, "device "+device
	if !channel.ValidDeviceID(device) {
		key, who = app+"\x00", "devices with an invalid device_id"
	}
	wait, ok := s.deviceLimiter.allow(key)
	if !ok {
		s.tooMany(c, wait, "Too many update checks from "+who)
	}
	return ok
}
