package control

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relay"
)

// TestWithTheRelay mounts the control plane on the real relay server, as cmd/relay does, and
// checks that devices see every change at once: registration, tag promotion, rollback.
func TestWithTheRelay(t *testing.T) {
	t.Parallel()
	cfg, err := channel.ParseConfig([]byte(testConfigY))
	if err != nil {
		t.Fatal(err)
	}
	st := newBolt(t) // one store.Store serves both, as in cmd/relay
	srv, err := relay.New(relay.Options{Config: cfg, Store: st, Logger: testLogger(t), SnapshotTTL: time.Hour, RateLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	api, err := New(t.Context(), Options{Config: cfg, Store: st, Logger: testLogger(t), AdminToken: adminToken,
		WebhookSecret: hookSecret, HMACSecret: hmacSecret, OnChange: srv.Invalidate, Registerer: srv.Registry()})
	if err != nil {
		t.Fatal(err)
	}
	srv.Mount(api)
	h := srv.Handler()
	send := func(method, path string, body []byte, hdr http.Header) *httptest.ResponseRecorder {
		t.Helper()
		req := httptest.NewRequestWithContext(t.Context(), method, path, bytes.NewReader(body))
		for k, v := range hdr {
			req.Header[k] = v
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	// check asks for an update as a device on ch running builtin and returns the version offered.
	check := func(ch string) string {
		t.Helper()
		body := mustJSON(t, channel.DeviceInfo{Platform: "android", DeviceID: "4a1f2c3e-1111-2222-3333-444455556666", AppID: appID,
			VersionBuild: "1.0.0", VersionCode: "1", VersionOS: "14", VersionName: "builtin", PluginVersion: "8.51.23", IsProd: true, DefaultChannel: ch})
		w := send("POST", "/updates", body, http.Header{"Content-Type": {"application/json"}})
		var r channel.UpdateResponse
		if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil || w.Code != http.StatusOK {
			t.Fatalf("updates: %d %s", w.Code, w.Body)
		}
		return r.Version
	}
	if v := check("production"); v != "" {
		t.Fatalf("production offers %q before anything registered", v)
	}
	check("beta") // warm the relay's cache: the changes below must invalidate it

	body := mustJSON(t, testBundle("1.0.0", commitA))
	if w := send("POST", "/api/v1/bundles", body, hmacHeaders(hmacSecret, time.Now(), body)); w.Code != http.StatusCreated {
		t.Fatalf("register: %d %s", w.Code, w.Body)
	}
	if w := send("POST", "/api/v1/bundles", body, hmacHeaders(hmacSecret, time.Now(), body)); w.Header().Get("X-Request-ID") == "" {
		t.Error("the relay's middleware did not run on the control plane's routes")
	}
	if v := check("beta"); v != "1.0.0" {
		t.Errorf("beta offers %q after registration, want 1.0.0", v)
	}

	push := payload(t, "push_tag_created.json", nil)
	if w := send("POST", "/webhooks/github", push, githubHeaders("push", "d1", hookSecret, push)); w.Code != http.StatusOK {
		t.Fatalf("webhook: %d %s", w.Code, w.Body)
	}
	if v := check("production"); v != "1.0.0" {
		t.Errorf("production offers %q after the tag push, want 1.0.0", v)
	}

	body = mustJSON(t, testBundle("1.0.1", commitB))
	send("POST", "/api/v1/bundles", body, hmacHeaders(hmacSecret, time.Now(), body))
	if v := check("beta"); v != "1.0.1" {
		t.Errorf("beta offers %q, want 1.0.1", v)
	}
	if w := send("POST", "/api/v1/apps/"+appID+"/channels/beta/rollback", nil, adminHeader()); w.Code != http.StatusOK {
		t.Fatalf("rollback: %d %s", w.Code, w.Body)
	}
	if v := check("beta"); v != "1.0.0" {
		t.Errorf("beta offers %q after rollback, want 1.0.0", v)
	}
	if w := send("GET", "/metrics", nil, nil); !bytes.Contains(w.Body.Bytes(), []byte(`ferry_promotions_total{source="webhook"} 1`)) {
		t.Errorf("/metrics lacks the control plane's counters:\n%.2000s", w.Body)
	}
}
