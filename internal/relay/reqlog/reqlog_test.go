package reqlog_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/ferryhq/ferry/internal/relay/reqlog"
)

func TestFromContext(t *testing.T) {
	t.Parallel()
	if l, ok := reqlog.FromContext(context.Background()); ok || l != nil {
		t.Errorf("FromContext(empty) = %v, %v; want nil, false", l, ok)
	}
	for _, tc := range []struct {
		name, id, want string
	}{
		{"with id", "req-1", "msg=hello request_id=req-1 route=/updates\n"},
		{"without id", "", "msg=hello route=/updates\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			base := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
				ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
					if a.Key == slog.TimeKey || a.Key == slog.LevelKey {
						return slog.Attr{}
					}
					return a
				},
			}))
			ctx := reqlog.NewContext(context.Background(), base, tc.id, "/updates")
			l, ok := reqlog.FromContext(ctx)
			if !ok {
				t.Fatal("FromContext found no logger")
			}
			l.Info("hello")
			if again, _ := reqlog.FromContext(ctx); again != l {
				t.Error("FromContext built a second logger for the same request")
			}
			if got := buf.String(); got != tc.want {
				t.Errorf("log = %q, want %q", got, tc.want)
			}
		})
	}
	l, ok := reqlog.FromContext(reqlog.NewContext(context.Background(), nil, "req-1", "/updates"))
	if !ok || l == nil || l.Enabled(context.Background(), slog.LevelError) {
		t.Errorf("with a nil base: %v, %v; want a logger that discards", l, ok)
	}
}

// TestNewContextIsItsParent: the request's context keeps its parent's values, deadline and
// cancellation, for itself and for contexts derived from it.
func TestNewContextIsItsParent(t *testing.T) {
	t.Parallel()
	type other struct{}
	parent, cancel := context.WithCancelCause(context.WithValue(context.Background(), other{}, "v"))
	ctx := reqlog.NewContext(parent, nil, "req-1", "/updates")
	child, stop := context.WithCancel(ctx)
	defer stop()
	if got := ctx.Value(other{}); got != "v" {
		t.Errorf("Value(other) = %v, want the parent's", got)
	}
	cause := errors.New("client gone")
	cancel(cause)
	<-child.Done()
	if !errors.Is(ctx.Err(), context.Canceled) || !errors.Is(context.Cause(child), cause) {
		t.Errorf("after the parent is cancelled: Err %v, Cause of a child %v; want Canceled and %v", ctx.Err(), context.Cause(child), cause)
	}
}
