package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/store"
)

func TestUpdates(t *testing.T) {
	onSeededBackends(t, func(t *testing.T, st store.Store) {
		h := newServer(t, st, nil).Handler()
		out := deviceIn(t, "1.2.0", 50, false)
		in := deviceIn(t, "1.2.0", 50, true)

		tests := []struct {
			name     string
			body     string
			wantCode int
			golden   string
		}{
			{"offered", info(map[string]any{"device_id": out}), 200, "updates_offered.json"},
			{"offered rollout with manifest", info(map[string]any{"device_id": in, "version_name": "1.1.0"}), 200, "updates_offered_rollout.json"},
			{"up to date", info(map[string]any{"device_id": out, "version_name": "1.1.0"}), 200, "updates_up_to_date.json"},
			{"encrypted for the device key", info(map[string]any{"device_id": out, "defaultChannel": "beta", "key_id": keyID}), 200, "updates_offered_encrypted.json"},
			{"key id mismatch", info(map[string]any{"device_id": out, "defaultChannel": "beta", "key_id": "MIIBCgKCAQEAqJikYizo"}), 200, "updates_key_id_mismatch.json"},
			{"private channel", info(map[string]any{"device_id": out, "defaultChannel": "locked"}), 200, "updates_private_channel.json"},
			{"dev build refused", info(map[string]any{"device_id": out, "defaultChannel": "internal", "is_prod": false}), 200, "updates_disable_dev_build.json"},
			{"defaults when flags are absent", info(map[string]any{"device_id": out, "defaultChannel": "internal", "is_prod": nil, "is_emulator": nil}), 200, "updates_offered.json"},
			{"old plugin sends bools as strings", info(map[string]any{"device_id": out, "is_prod": "true", "version_code": 7}), 200, "updates_offered.json"},
			{"unknown app", info(map[string]any{"app_id": "com.other.app"}), 200, "updates_unknown_app.json"},
			{"missing platform", info(map[string]any{"platform": nil}), 200, "updates_missing_info.json"},
			{"array body", `[{"app_id":"com.example.app"}]`, 400, "updates_invalid_json_body.json"},
			{"null body", `null`, 400, "updates_invalid_json_body.json"},
			{"string body", `"hello"`, 400, "updates_invalid_json_body.json"},
			{"empty body", ``, 400, "updates_invalid_json_body.json"},
			{"truncated", `{"app_id":"com.example.app"`, 400, "updates_malformed.json"},
			{"object where a string belongs", `{"app_id":"com.example.app","device_id":"x","platform":{"a":1}}`, 400, "updates_wrong_type.json"},
			{"missing app_id", `{"device_id":"7239a82f-4ea8-4e33-9085-f4ad974d3fc4"}`, 400, "updates_missing_app_id.json"},
			{"missing device_id", `{"app_id":"com.example.app"}`, 400, "updates_missing_device_id.json"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				w := do(t, h, http.MethodPost, "/updates", tc.body)
				if w.Code != tc.wantCode {
					t.Errorf("POST /updates = %d %s, want %d", w.Code, w.Body, tc.wantCode)
				}
				if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Errorf("Content-Type = %q, want application/json", ct)
				}
				checkIOSTypes(t, w.Body.Bytes())
				golden(t, tc.golden, w.Body.Bytes())
			})
		}
	})
}

// checkIOSTypes decodes an update answer with the iOS plugin's strict typing rules
// (docs/protocol.md §1.3): the keys it knows must have exactly these JSON types, else the whole
// answer fails to decode on the device.
func checkIOSTypes(t *testing.T, body []byte) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("answer is not a JSON object: %v: %s", err, body)
	}
	kind := func(raw json.RawMessage) string {
		switch raw[0] {
		case '"':
			return "string"
		case 't', 'f':
			return "bool"
		case 'n':
			return "null"
		case '[':
			return "array"
		case '{':
			return "object"
		}
		return "number"
	}
	for key, raw := range m {
		want := ""
		switch key {
		case "version", "url", "checksum", "session_key", "message", "error", "kind", "link", "comment":
			want = "string"
		case "major", "breaking":
			want = "bool"
		case "manifest":
			want = "array"
			var files []map[string]json.RawMessage
			if err := json.Unmarshal(raw, &files); err != nil {
				t.Errorf("manifest is not an array of objects: %v", err)
			}
			for i, f := range files {
				for _, k := range []string{"file_name", "file_hash", "download_url"} {
					if v, ok := f[k]; ok && kind(v) != "string" && kind(v) != "null" {
						t.Errorf("manifest[%d].%s is a %s, iOS needs a string", i, k, kind(v))
					}
				}
			}
		case "data":
			var d map[string]string
			if err := json.Unmarshal(raw, &d); err != nil {
				t.Errorf("data must be {string: string} on iOS: %v", err)
			}
			continue
		}
		if want != "" && kind(raw) != want {
			t.Errorf("%s is a %s, iOS needs a %s: %s", key, kind(raw), want, body)
		}
	}
}

// TestUpdatesFailedVersionNotOfferedAgain: a device that reports update_fail for the
// rollout's version gets the stable version instead, and other devices are unaffected.
func TestUpdatesFailedVersionNotOfferedAgain(t *testing.T) {
	onSeededBackends(t, func(t *testing.T, st store.Store) {
		h := newServer(t, st, nil).Handler()
		in := deviceIn(t, "1.2.0", 50, true)
		check := func(device, wantVersion string) {
			t.Helper()
			w := do(t, h, http.MethodPost, "/updates", info(map[string]any{"device_id": device, "version_name": "1.0.0"}))
			var got channel.UpdateResponse
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got.Version != wantVersion {
				t.Errorf("device %s offered %q (%s), want %q", device, got.Version, w.Body, wantVersion)
			}
		}
		check(in, "1.2.0")
		stat := `[` + info(map[string]any{"device_id": in, "version_name": "1.2.0", "action": "update_fail", "old_version_name": "1.0.0", "timestamp": 1732450000000}) + `]`
		if w := do(t, h, http.MethodPost, "/stats", stat); w.Code != 200 || w.Body.String() != `{"status":"ok"}` {
			t.Fatalf("POST /stats = %d %s", w.Code, w.Body)
		}
		check(in, "1.1.0")
		// A device that never failed it still gets the rollout.
		other := deviceIn2(t, "1.2.0", 50, in)
		check(other, "1.2.0")
	})
}

// deviceIn2 returns a cohort device other than not.
func deviceIn2(t *testing.T, version string, percent int, not string) string {
	t.Helper()
	for i := 5000; i < 20000; i++ {
		id := fmt.Sprintf("00000000-0000-4000-9000-%012d", i)
		if id != not && channel.InCohort(id, version, percent) {
			return id
		}
	}
	t.Fatal("no second cohort device")
	return ""
}

// offeredVersion posts an update check and returns the offered version ("" for none).
func offeredVersion(t *testing.T, h http.Handler, device, current string) string {
	t.Helper()
	w := do(t, h, http.MethodPost, "/updates", info(map[string]any{"device_id": device, "version_name": current}))
	if w.Code != 200 {
		t.Fatalf("POST /updates = %d %s", w.Code, w.Body)
	}
	var got channel.UpdateResponse
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	return got.Version
}

// TestSnapshotInvalidation: a change through the store reaches the next check through
// Store.Subscribe (Watch), through Invalidate, and after the TTL without either.
func TestSnapshotInvalidation(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			out := deviceIn(t, "1.2.0", 50, false)

			t.Run("subscribe", func(t *testing.T) {
				t.Parallel()
				st := be.open(t)
				seed(t, st)
				s := newServer(t, st, func(o *Options) { o.SnapshotTTL = time.Hour })
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan struct{})
				go func() { defer close(done); s.Watch(ctx) }()
				t.Cleanup(func() { cancel(); <-done })
				h := s.Handler()
				if v := offeredVersion(t, h, out, "builtin"); v != "1.1.0" {
					t.Fatalf("before promote: offered %q, want 1.1.0", v)
				}
				time.Sleep(50 * time.Millisecond) // let the subscription start (Redis SUBSCRIBE)
				promote(t, st, "production", "1.2.0")
				waitFor(t, "the promotion to reach the relay", func() bool { return offeredVersion(t, h, out, "builtin") == "1.2.0" })
			})
			t.Run("invalidate", func(t *testing.T) {
				t.Parallel()
				st := be.open(t)
				seed(t, st)
				s := newServer(t, st, func(o *Options) { o.SnapshotTTL = time.Hour })
				h := s.Handler()
				if v := offeredVersion(t, h, out, "builtin"); v != "1.1.0" {
					t.Fatalf("before promote: offered %q, want 1.1.0", v)
				}
				promote(t, st, "production", "1.2.0")
				if v := offeredVersion(t, h, out, "builtin"); v != "1.1.0" {
					t.Fatalf("cached snapshot: offered %q, want the cached 1.1.0", v)
				}
				s.Invalidate(testApp)
				if v := offeredVersion(t, h, out, "builtin"); v != "1.2.0" {
					t.Fatalf("after Invalidate: offered %q, want 1.2.0", v)
				}
			})
			t.Run("ttl", func(t *testing.T) {
				t.Parallel()
				st := be.open(t)
				seed(t, st)
				s := newServer(t, st, func(o *Options) { o.SnapshotTTL = 100 * time.Millisecond })
				h := s.Handler()
				if v := offeredVersion(t, h, out, "builtin"); v != "1.1.0" {
					t.Fatalf("before promote: offered %q, want 1.1.0", v)
				}
				promote(t, st, "production", "1.2.0")
				waitFor(t, "the TTL to expire the snapshot", func() bool { return offeredVersion(t, h, out, "builtin") == "1.2.0" })
			})
		})
	}
}

// TestSnapshotSingleFill: many concurrent checks after an invalidation load the state once.
func TestSnapshotSingleFill(t *testing.T) {
	t.Parallel()
	f := &flaky{Store: openBolt(t)}
	seed(t, f.Store)
	s := newServer(t, f, func(o *Options) { o.SnapshotTTL = time.Hour })
	h := s.Handler()
	out := deviceIn(t, "1.2.0", 50, false)
	body := info(map[string]any{"device_id": out, "version_name": "1.1.0"}) // up to date: no per-device lookup
	do(t, h, http.MethodPost, "/updates", body)
	s.Invalidate(testApp)
	f.calls.Store(0)
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			if w := do(t, h, http.MethodPost, "/updates", body); w.Code != 200 {
				t.Errorf("POST /updates = %d", w.Code)
			}
		})
	}
	wg.Wait()
	if n := f.calls.Load(); n != 2 {
		t.Errorf("store calls for 64 concurrent checks = %d, want 2 (ListStates + GetBundles)", n)
	}
}

// TestUpdatesStoreDown: with the store unreachable the relay keeps answering from its last
// snapshot (and skips the per-device lookup); an app never loaded answers
// service_unavailable, still HTTP 200.
func TestUpdatesStoreDown(t *testing.T) {
	t.Parallel()
	f := &flaky{Store: openBolt(t)}
	seed(t, f.Store)
	s := newServer(t, f, nil)
	h := s.Handler()
	out := deviceIn(t, "1.2.0", 50, false)

	f.down.Store(true)
	w := do(t, h, http.MethodPost, "/updates", info(map[string]any{"device_id": out}))
	if w.Code != 200 {
		t.Fatalf("never loaded, store down: %d", w.Code)
	}
	golden(t, "updates_service_unavailable.json", w.Body.Bytes())

	f.down.Store(false)
	if v := offeredVersion(t, h, out, "builtin"); v != "1.1.0" {
		t.Fatalf("store up: offered %q, want 1.1.0", v)
	}
	f.down.Store(true)
	s.Invalidate(testApp) // force a reload, which fails
	for range 3 {
		if v := offeredVersion(t, h, out, "builtin"); v != "1.1.0" {
			t.Fatalf("store down: offered %q, want 1.1.0 from the last snapshot", v)
		}
	}
	mw := do(t, h, http.MethodGet, "/metrics", "")
	for _, want := range []string{
		`ferry_snapshot_stale_served_total 3`,
		`ferry_store_errors_total{op="list_states"} 2`,
		`ferry_store_errors_total{op="failed_versions"} 1`,
	} {
		if !strings.Contains(mw.Body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if w := do(t, h, http.MethodGet, "/readyz", ""); w.Code != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz with the store down = %d, want 503", w.Code)
	}
	if w := do(t, h, http.MethodGet, "/healthz", ""); w.Code != http.StatusOK {
		t.Errorf("GET /healthz with the store down = %d, want 200", w.Code)
	}
}

func TestDecisionMetrics(t *testing.T) {
	t.Parallel()
	st := openBolt(t)
	seed(t, st)
	h := newServer(t, st, nil).Handler()
	out := deviceIn(t, "1.2.0", 50, false)
	do(t, h, http.MethodPost, "/updates", info(map[string]any{"device_id": out}))
	do(t, h, http.MethodPost, "/updates", info(map[string]any{"device_id": out, "version_name": "1.1.0"}))
	do(t, h, http.MethodPost, "/updates", info(map[string]any{"app_id": "com.nope"}))
	body := do(t, h, http.MethodGet, "/metrics", "").Body.String()
	var got []string
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "ferry_update_decisions_total{") {
			got = append(got, line)
		}
	}
	want := []string{
		`ferry_update_decisions_total{outcome="app_not_found"} 1`,
		`ferry_update_decisions_total{outcome="offered"} 1`,
		`ferry_update_decisions_total{outcome="up_to_date"} 1`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decision metrics (-want +got):\n%s", diff)
	}
	if !strings.Contains(body, `ferry_http_request_duration_seconds_count{method="POST",route="/updates"} 3`) {
		t.Errorf("/metrics lacks the per-route latency of /updates:\n%s", body)
	}
}

// TestBodyLeadingWhitespace: update checks and stats accept JSON whitespace before the
// body's object or array, and refuse any other leading byte.
func TestBodyLeadingWhitespace(t *testing.T) {
	t.Parallel()
	body := info(nil)
	for _, lead := range []string{"", " ", "\t\r\n ", "\n\n"} {
		if _, err := parseObject(lead + body); err != nil {
			t.Errorf("parseObject(%q + body) = %v", lead, err)
		}
		if _, err := parseStats(lead + "[" + body + "]"); err != nil {
			t.Errorf("parseStats(%q + [body]) = %v", lead, err)
		}
	}
	for _, lead := range []string{"\v", "\f", "\u00a0", "x", " \x00"} {
		if _, err := parseObject(lead + body); err == nil {
			t.Errorf("parseObject(%q + body) accepted", lead)
		}
		if _, err := parseStats(lead + body); err == nil {
			t.Errorf("parseStats(%q + body) accepted", lead)
		}
	}
	for _, b := range []string{"", "   ", "\n"} {
		if _, err := parseObject(b); err == nil {
			t.Errorf("parseObject(%q) accepted", b)
		}
	}
}

// discardWriter is an http.ResponseWriter that keeps one header map and drops the body,
// so that what a handler allocates can be counted without the recorder's own allocations.
type discardWriter struct {
	h      http.Header
	status int
	last   []byte // the last body, when keep is set
	keep   bool
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) {
	if w.keep {
		w.last = append(w.last[:0], b...)
	}
	return len(b), nil
}
func (w *discardWriter) WriteHeader(code int) { w.status = code }

// TestUpdateCheckAllocations: the update handler's decision and decoded request stay on its
// stack (respondUpdate's typed argument, parseObjectInto, the picker's copied fields). It
// fails if either escapes to the heap again: each would add one allocation per check.
// Under the race detector sync.Pool drops items, so the counts differ: `make test` runs the
// allocation tests once more without it.
func TestUpdateCheckAllocations(t *testing.T) { //nolint:paralleltest // AllocsPerRun needs a serial test
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	st := openBolt(t)
	seed(t, st)
	s := newServer(t, st, func(o *Options) { o.RateLimit = -1 })
	for _, tc := range []struct {
		name    string
		current string
		answer  string // in the answer's JSON
		want    float64
	}{
		{"up to date", "1.1.0", `"kind":"up_to_date"`, 0},
		{"offered", "builtin", `"version":"1.1.0"`, 0},
	} {
		body := info(map[string]any{"device_id": "00000000-0000-4000-8000-000000000001", "version_name": tc.current})
		w := &discardWriter{h: http.Header{}}
		run := func() {
			w.status = 0
			s.updates(t.Context(), w, nil, body)
			if w.status != http.StatusOK {
				t.Fatalf("%s: status %d", tc.name, w.status)
			}
		}
		w.keep = true
		run() // the first call also creates the metrics and series entries
		if !strings.Contains(string(w.last), tc.answer) {
			t.Fatalf("%s: answer %s lacks %s", tc.name, w.last, tc.answer)
		}
		w.keep = false
		if got := testing.AllocsPerRun(100, run); got > tc.want {
			t.Errorf("%s: %.1f allocations per update check, want at most %.0f", tc.name, got, tc.want)
		}
	}
}
