package relay

import (
	"net/http"
	"strings"
	"testing"
)

// TestDeviceRateLimitInvalidID: device ids the decision refuses (too long, not printable
// ASCII) create no bucket of their own: they share one per app, so the limiter's keys stay
// at most app + 129 bytes however long the posted ids are.
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
	var keys []string
	for i := range s.deviceLimiter.shards {
		sh := &s.deviceLimiter.shards[i]
		sh.mu.Lock()
		for k := range sh.buckets {
			keys = append(keys, k)
		}
		sh.mu.Unlock()
	}
	if len(keys) != 2 {
		t.Errorf("%d device buckets %q, want 2 (the valid device and one shared by invalid ids)", len(keys), keys)
	}
	for _, k := range keys {
		if len(k) > len(testApp)+1+128 {
			t.Errorf("bucket key of %d bytes, want at most %d", len(k), len(testApp)+1+128)
		}
	}
}
