package relay

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// BenchmarkUpdates measures one update check through the whole handler (middleware, rate
// limiter, decoding, snapshot, decision, per-device lookup when offering, encoding) on each
// store, with the request bodies of 1,000 devices. Run:
//
//	go test -run '^$' -bench BenchmarkUpdates -benchmem ./internal/relay
func BenchmarkUpdates(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			st := be.open(b)
			seed(b, st)
			s := newServer(b, st, func(o *Options) {
				o.Logger = slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
				o.RateLimit = -1
			})
			h := s.Handler()
			for _, sc := range []struct {
				name    string
				current string // version_name the devices run
			}{
				{"up_to_date", "1.1.0"},
				{"offered", "builtin"},
			} {
				bodies := make([]string, 1000)
				for i := range bodies {
					bodies[i] = info(map[string]any{"device_id": fmt.Sprintf("%08x-0000-4000-8000-%012d", i, i), "version_name": sc.current})
				}
				b.Run(sc.name, func(b *testing.B) {
					var n atomic.Int64
					b.ReportAllocs()
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							body := bodies[n.Add(1)%int64(len(bodies))]
							r := httptest.NewRequest(http.MethodPost, "/updates", strings.NewReader(body))
							w := httptest.NewRecorder()
							h.ServeHTTP(w, r)
							if w.Code != http.StatusOK {
								b.Fatalf("POST /updates = %d %s", w.Code, w.Body)
							}
						}
					})
				})
			}
		})
	}
}

// BenchmarkParseObject measures decoding one Android 8.51.23 update-check body.
func BenchmarkParseObject(b *testing.B) {
	body := []byte(info(map[string]any{"key_id": keyID, "defaultChannel": "beta"}))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseObject(body); err != nil {
			b.Fatal(err)
		}
	}
}
