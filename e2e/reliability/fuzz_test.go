package reliability

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relay"
	"github.com/ferryhq/ferry/internal/relay/control"
	"github.com/ferryhq/ferry/internal/relay/relaytest"
	"github.com/ferryhq/ferry/internal/store"
)

// fuzzRoutes are the relay's routes that read a body from outside. Registration and
// webhook bodies are signed by the fuzz harness with the right secrets, so the fuzzer
// reaches their parsers rather than stopping at authentication.
var fuzzRoutes = []struct {
	method, path string
	auth         string // "", "admin", "hmac", "github"
}{
	{"POST", "/updates", ""},
	{"POST", "/stats", ""},
	{"POST", "/channel_self", ""},
	{"PUT", "/channel_self", ""},
	{"GET", "/channel_self", ""},
	{"DELETE", "/channel_self", ""},
	{"POST", "/updates/manifest_size", ""},
	{"POST", "/api/v1/bundles", "hmac"},
	{"POST", "/webhooks/github", "github"},
	{"POST", "/api/v1/apps/" + appID + "/channels/production/promote", "admin"},
	{"PUT", "/api/v1/apps/" + appID + "/channels/production/rollout", "admin"},
	{"PUT", "/api/v1/apps/" + appID + "/channels/beta/policy", "admin"},
	{"POST", "/api/v1/apps/" + appID + "/channels/production/rollback", "admin"},
}

// FuzzRelayHTTP sends fuzzed bodies to every body-reading route of the whole relay (device
// protocol, registration, webhooks, admin API) mounted in process on the embedded store, as
// cmd/relay mounts it. No input may cause a 5xx or a non-JSON answer. This covers the admin
// API's request bodies, which have no parser-level fuzz target of their own.
func FuzzRelayHTTP(f *testing.F) {
	cfg, err := channel.ParseConfig([]byte(relayConfig))
	if err != nil {
		f.Fatal(err)
	}
	st, err := store.OpenBolt(filepath.Join(f.TempDir(), "ferry.db"), store.BoltOptions{SweepInterval: -1})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := relay.New(relay.Options{Config: cfg, Store: st, Logger: log, SnapshotTTL: time.Hour, RateLimit: -1, DeviceRateLimit: -1})
	if err != nil {
		f.Fatal(err)
	}
	api, err := control.New(f.Context(), control.Options{Config: cfg, Store: st, Logger: log, AdminToken: adminToken,
		WebhookSecret: webhookSecret, HMACSecret: hmacSecret, OnChange: srv.Invalidate, Registerer: srv.Registry()})
	if err != nil {
		f.Fatal(err)
	}
	srv.Mount(api)
	h := srv.Handler()

	dev := deviceBody(appID, deviceID(1), "production", "builtin")
	seeds := [][]byte{
		dev, []byte(`[` + string(dev) + `]`), []byte(`{"version":"1.0.0"}`), []byte(`{"version":"1.0.0","percent":10}`),
		[]byte(`{"policy":{"public":true,"platforms":["ios"]}}`), []byte(`{"policy":null}`),
		mustJSON(f, bundleFor(appID, "1.0.0", "refs/tags/v1.0.0")),
		webhookPayload(repository, "refs/tags/v1.0.0", "", relaytest.Commit(appID+"@1.0.0")),
		[]byte(`{"app_id":"` + appID + `","device_id":"x","files":[{"file_name":"a.js","file_hash":"00"}]}`),
		[]byte(`{`), []byte(`null`), []byte(`"\u0000"`), []byte(`{"a":1e999}`),
	}
	for i := range fuzzRoutes {
		for _, s := range seeds {
			f.Add(uint8(i), s)
		}
	}
	n := 0
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		req := httptest.NewRequestWithContext(t.Context(), rt.method, rt.path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		switch rt.auth {
		case "admin":
			req.Header.Set("Authorization", "Bearer "+adminToken)
		case "hmac":
			for k, v := range relaytest.HMACHeaders(hmacSecret, body, time.Now()) {
				req.Header.Set(k, v)
			}
		case "github":
			n++
			for k, v := range relaytest.WebhookHeaders(webhookSecret, "push", "fuzz-"+relaytest.Hex(string(body), 16)+"-"+string(rune('a'+n%26)), body) {
				req.Header.Set(k, v)
			}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", rt.method, rt.path, body, w.Code, w.Body)
		}
		if !json.Valid(w.Body.Bytes()) {
			t.Fatalf("%s %s %q: %d answer is not JSON: %q", rt.method, rt.path, body, w.Code, w.Body)
		}
		if w.Code == http.StatusTooManyRequests {
			t.Fatalf("%s %s: 429 without rate limiting", rt.method, rt.path)
		}
	})
}
