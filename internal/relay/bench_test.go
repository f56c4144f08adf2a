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

	"github.com/ferryhq/ferry/internal/channel"
)

// BenchmarkUpdates measures one update check through the whole handler (middleware,
// decoding, snapshot, decision, encoding) on each store, with the request bodies of 1,000
// devices: all up to date (no store call), or all offered a bundle (one per-device store
// lookup each). Besides the wall time per check it reports cpu-ns/op, the process's CPU
// time per check (the handler, the garbage collector and httptest's request parsing), which
// a machine shared with other work disturbs less. Run:
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
				name     string
				upToDate bool // devices run what they would be offered, else the built-in assets
			}{
				{"up_to_date", true},
				{"offered", false},
			} {
				bodies := make([]string, 1000)
				for i := range bodies {
					id := fmt.Sprintf("%08x-0000-4000-8000-%012d", i, i)
					current := "builtin"
					if sc.upToDate {
						current = "1.1.0"
						if channel.InCohort(id, "1.2.0", 50) {
							current = "1.2.0" // production's rollout
						}
					}
					bodies[i] = info(map[string]any{"device_id": id, "version_name": current})
				}
				b.Run(sc.name, func(b *testing.B) {
					var n atomic.Int64
					b.ReportAllocs()
					cpu := processCPU()
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
					if cpu > 0 {
						b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
					}
				})
			}
		})
	}
}

// BenchmarkParseObject measures decoding one Android 8.51.23 update-check body.
func BenchmarkParseObject(b *testing.B) {
	body := info(map[string]any{"key_id": keyID, "defaultChannel": "beta"})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseObject(body); err != nil {
			b.Fatal(err)
		}
	}
}
