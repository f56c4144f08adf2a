package relay

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDeviceRateLimitInvalidID: device ids the decision refuses (too long, not printable
// ASCII) create no bucket of their own: they share one per app, so made-up ids cannot grow
// the limiter.
func TestDeviceRateLimitInvalidID(t *testing.T) {
	t.Parallel()
	st := openBolt(t)
	seed(t, st)
	s := newServer(t, st, func(o *Options) { o.DeviceRateLimit, o.DeviceRateBurst = 0.5, 60 })
	h := s.Handler()
	for i, id := range []string{strings.Repeat("a", 1000), strings.Repeat("b", 129), "tab\there", "é-device", strings.Repeat("c", 900)} {
		do(t, h, http.MethodPost, "/updates", info(map[string]any{"device_id": id}))
		do(t, h, http.MethodPost, "/updates/manifest_size", info(map[string]any{"device_id": id + strings.Repeat("x", i), "version": "1.2.0"}))
	}
	valid := "11111111-1111-4111-8111-111111111111"
	if w := do(t, h, http.MethodPost, "/updates", info(map[string]any{"device_id": valid})); w.Code != http.StatusOK {
		t.Fatalf("valid device = %d", w.Code)
	}
	n := 0
	for i := range s.deviceLimiter.shards {
		sh := &s.deviceLimiter.shards[i]
		sh.mu.Lock()
		n += len(sh.full)
		sh.mu.Unlock()
	}
	if n != 2 {
		t.Errorf("%d device buckets, want 2 (the valid device and one shared by invalid ids)", n)
	}
}

// TestRateLimiterBucket: a bucket holds burst tokens, refills at the limit, says how long
// until the next token, and is evicted once it has refilled completely.
func TestRateLimiterBucket(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	rl := newRateLimiter(0.5, 3, func() time.Time { return now })
	for i := range 3 {
		if _, ok := rl.allow("a"); !ok {
			t.Fatalf("request %d refused within the burst", i+1)
		}
	}
	wait, ok := rl.allow("a")
	if ok || wait != 2*time.Second {
		t.Fatalf("4th request = (%v, %v), want refused with a 2s wait", wait, ok)
	}
	if _, ok := rl.allow("b"); !ok {
		t.Fatal("another key shares the first key's bucket")
	}
	now = now.Add(time.Second)
	if wait, ok := rl.allow("a"); ok || wait != time.Second {
		t.Fatalf("after 1s = (%v, %v), want refused with a 1s wait", wait, ok)
	}
	now = now.Add(time.Second)
	if _, ok := rl.allow("a"); !ok {
		t.Fatal("refused after a token refilled")
	}
	if n := rl.sweep(); n != 1 {
		t.Fatalf("sweep kept %d buckets, want 1 (b took one token 2s ago: full again)", n)
	}
	now = now.Add(6 * time.Second) // a's bucket is full again too
	if n := rl.sweep(); n != 0 {
		t.Fatalf("sweep kept %d buckets, want 0", n)
	}
}
