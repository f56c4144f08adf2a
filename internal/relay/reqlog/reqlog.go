// Package reqlog carries a request's logger in the request's context. The relay's
// middleware names each request once, by its request id and route, and every handler
// serving it, the device side's and the control plane's, logs through the same logger.
//
// It is a leaf shared by internal/relay and internal/relay/control, so that neither has to
// import the other.
package reqlog

import (
	"context"
	"log/slog"
)

type key struct{}

// scope is a request's logger, built on first use so that requests which log nothing (most
// update checks) do not pay for it. A request is served by one goroutine, its only user.
// It is also the context that carries it (one allocation per request rather than two, as
// context.WithValue would take): it answers Value for its key and delegates everything else
// to the context it wraps.
type scope struct {
	context.Context
	base      *slog.Logger
	id, route string
	l         *slog.Logger
}

func (s *scope) Value(k any) any {
	if k == (key{}) {
		return s
	}
	return s.Context.Value(k)
}

// NewContext returns a copy of ctx carrying the logger of one request: base with the
// attributes request_id (omitted when id is empty) and route. A nil base discards.
func NewContext(ctx context.Context, base *slog.Logger, id, route string) context.Context {
	return &scope{Context: ctx, base: base, id: id, route: route}
}

// FromContext returns the request's logger ctx carries, and false when it carries none.
func FromContext(ctx context.Context) (*slog.Logger, bool) {
	s, ok := ctx.Value(key{}).(*scope)
	if !ok {
		return nil, false
	}
	if s.l == nil {
		switch {
		case s.base == nil:
			s.l = discard
		case s.id == "":
			s.l = s.base.With("route", s.route)
		default:
			s.l = s.base.With("request_id", s.id, "route", s.route)
		}
	}
	return s.l, true
}

var discard = slog.New(slog.DiscardHandler)
