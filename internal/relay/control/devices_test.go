package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relay"
	"github.com/ferryhq/ferry/internal/relayclient"
	"github.com/ferryhq/ferry/internal/store"
	"github.com/ferryhq/ferry/internal/testpeers"
)

// TestClearFailedVersions clears a device's failed versions through the admin API with
// relayclient, on the embedded store and on Redis: two relay instances share the store
// (the control plane mounted on one), and both offer the version to the device again at
// once; the audit entry names the admin token; a deployer is refused; a bad device id is a
// 400 that changes nothing.
func TestClearFailedVersions(t *testing.T) {
	t.Parallel()
	onBothStores(t, testClearFailedVersions)
}

func testClearFailedVersions(t *testing.T, st fullStore) {
	ctx := t.Context()
	cfg, err := channel.ParseConfig([]byte(testConfigY))
	if err != nil {
		t.Fatal(err)
	}
	var relays []*relay.Server
	for range 2 {
		// A long snapshot lifetime: the device path must not need a reload to see the clear.
		srv, err := relay.New(relay.Options{Config: cfg, Store: st, Logger: testLogger(t), SnapshotTTL: time.Hour, RateLimit: -1, DeviceRateLimit: -1})
		if err != nil {
			t.Fatal(err)
		}
		relays = append(relays, srv)
	}
	api, err := New(ctx, Options{Config: cfg, Store: st, Logger: testLogger(t), AdminToken: adminToken, HMACSecret: hmacSecret,
		OnChange: relays[0].Invalidate})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)
	relays[0].Mount(api)
	front := httptest.NewServer(relays[0].Handler())
	t.Cleanup(front.Close)

	boot, err := relayclient.New(front.URL, relayclient.Options{HTTPClient: front.Client(), AdminToken: adminToken, HMACSecret: []byte(hmacSecret)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := boot.RegisterBundle(ctx, testBundle("1.0.0", commitA)); err != nil {
		t.Fatal(err)
	}
	if _, err := boot.Promote(ctx, appID, "production", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	const dev = "4a1f2c3e-1111-2222-3333-444455556666"
	check := func(i int) string {
		t.Helper()
		body := mustJSON(t, channel.DeviceInfo{Platform: "android", DeviceID: dev, AppID: appID, VersionBuild: "1.0.0", VersionCode: "1",
			VersionOS: "14", VersionName: "builtin", PluginVersion: "8.51.23", IsProd: true})
		req := httptest.NewRequestWithContext(ctx, "POST", "/updates", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		relays[i].Handler().ServeHTTP(w, req)
		var r channel.UpdateResponse
		if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil || w.Code != http.StatusOK {
			t.Fatalf("updates on relay %d: %d %s", i, w.Code, w.Body)
		}
		return r.Version
	}
	for i := range relays {
		if v := check(i); v != "1.0.0" {
			t.Fatalf("relay %d offers %q before the failure, want 1.0.0", i, v)
		}
	}
	if err := st.RecordStats(ctx, appID, []channel.StatEvent{{Device: dev, Version: "1.0.0", Action: "update_fail"}}); err != nil {
		t.Fatal(err)
	}
	for i := range relays {
		if v := check(i); v != "" {
			t.Fatalf("relay %d offers %q to a device that failed 1.0.0", i, v)
		}
	}

	created, err := boot.CreateToken(ctx, &relayclient.TokenRequest{Name: "support-lead", Grants: grant(appID, access.Admin)})
	if err != nil {
		t.Fatal(err)
	}
	deployer, err := boot.CreateToken(ctx, &relayclient.TokenRequest{Name: "rel-eng", Grants: grant(appID, access.Deployer)})
	if err != nil {
		t.Fatal(err)
	}
	client := func(tok string) *relayclient.Client {
		c, err := relayclient.New(front.URL, relayclient.Options{HTTPClient: front.Client(), AdminToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	admin, dep := client(created.Token), client(deployer.Token)

	// A deployer may look the device up but not clear it; a bad id is refused.
	if v, err := dep.Device(ctx, appID, dev); err != nil || v.Device != dev || len(v.Failed) != 1 || v.Failed[0] != "1.0.0" {
		t.Errorf("Device as a deployer = %+v, %v; want failed [1.0.0]", v, err)
	}
	if _, err := dep.ClearFailed(ctx, appID, dev); !errors.Is(err, &relayclient.Error{StatusCode: http.StatusForbidden, Code: "forbidden"}) {
		t.Errorf("ClearFailed as a deployer = %v, want 403 forbidden", err)
	}
	for _, bad := range []string{"", "a device", string(bytes.Repeat([]byte("x"), 129))} {
		if _, err := admin.ClearFailed(ctx, appID, bad); !errors.Is(err, &relayclient.Error{StatusCode: http.StatusBadRequest, Code: "bad_request"}) {
			t.Errorf("ClearFailed(%q) = %v, want 400 bad_request", bad, err)
		}
	}
	if v := check(1); v != "" {
		t.Fatalf("after refused clears relay 1 offers %q, want nothing", v)
	}

	res, err := admin.ClearFailed(ctx, appID, dev)
	if err != nil || !res.Changed || res.Device != dev || res.App != appID || len(res.Cleared) != 1 || res.Cleared[0] != "1.0.0" {
		t.Fatalf("ClearFailed = %+v, %v; want 1.0.0 cleared", res, err)
	}
	for i := range relays {
		if v := check(i); v != "1.0.0" {
			t.Errorf("relay %d offers %q after the clear, want 1.0.0 again", i, v)
		}
	}
	again, err := admin.ClearFailed(ctx, appID, dev)
	if err != nil || again.Changed || again.Cleared == nil || len(again.Cleared) != 0 {
		t.Errorf("second ClearFailed = %+v, %v; want changed false and cleared []", again, err)
	}
	audit, err := boot.QueryAudit(ctx, appID, relayclient.AuditQuery{Action: "clear_failed"})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := access.ParseToken(created.Token)
	if len(audit.Entries) != 1 {
		t.Fatalf("clear_failed audit entries = %+v, want one", audit.Entries)
	}
	e := audit.Entries[0]
	if e.Device != dev || e.Cause != "admin" || string(e.Before) != `["1.0.0"]` || e.Actor == nil || e.Actor.Kind != "token" ||
		e.Actor.ID != id || e.Actor.Name != "support-lead" || e.Actor.IP == "" {
		t.Errorf("clear_failed audit entry = %+v (actor %+v)", e, e.Actor)
	}
}

// TestPromoteNativeReachesDevices promotes with a native-range override through
// relayclient.PromoteWith, on the embedded store and on Redis, and asks the relay's device
// surface: a device outside the overridden range is not offered the bundle (it gets the
// under-native refusal even though the bundle's own range admits it), one inside is; the
// override survives a relay reading the store afresh, and removing it restores the bundle's
// own range.
func TestPromoteNativeReachesDevices(t *testing.T) {
	t.Parallel()
	onBothStores(t, testPromoteNativeReachesDevices)
}

func testPromoteNativeReachesDevices(t *testing.T, st fullStore) {
	ctx := t.Context()
	cfg, err := channel.ParseConfig([]byte(testConfigY))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := relay.New(relay.Options{Config: cfg, Store: st, Logger: testLogger(t), SnapshotTTL: time.Hour, RateLimit: -1, DeviceRateLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	api, err := New(ctx, Options{Config: cfg, Store: st, Logger: testLogger(t), AdminToken: adminToken, HMACSecret: hmacSecret, OnChange: srv.Invalidate})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)
	srv.Mount(api)
	front := httptest.NewServer(srv.Handler())
	t.Cleanup(front.Close)
	c, err := relayclient.New(front.URL, relayclient.Options{HTTPClient: front.Client(), AdminToken: adminToken, HMACSecret: []byte(hmacSecret)})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []*channel.Bundle{testBundle("1.0.0", commitA), testBundle("1.1.0", commitB)} { // native >=1.0.0
		b.Ref = "refs/heads/feature/x"
		if _, err := c.RegisterBundle(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Promote(ctx, appID, "production", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	check := func(h http.Handler, build string) channel.UpdateResponse {
		t.Helper()
		body := mustJSON(t, channel.DeviceInfo{Platform: "ios", DeviceID: "5b2e3d4f-1111-2222-3333-444455556666", AppID: appID,
			VersionBuild: build, VersionCode: "1", VersionOS: "17", VersionName: "builtin", PluginVersion: "8.51.23", IsProd: true})
		req := httptest.NewRequestWithContext(ctx, "POST", "/updates", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var r channel.UpdateResponse
		if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil || w.Code != http.StatusOK {
			t.Fatalf("updates for version_build %s: %d %s", build, w.Code, w.Body)
		}
		return r
	}

	res, err := c.PromoteWith(ctx, appID, "production", relayclient.PromoteRequest{Version: "1.1.0", Native: new(">=2.0.0")})
	if err != nil || !res.Changed {
		t.Fatalf("PromoteWith = %+v, %v", res, err)
	}
	// The bundle's own range (>=1.0.0) admits 1.5, the override does not: the device is
	// not offered 1.1.0, but the newest older version whose range admits it, 1.0.0.
	if r := check(srv.Handler(), "1.5"); r.Version != "1.0.0" || r.URL == "" {
		t.Errorf("device 1.5 outside the override got %+v, want the fallback 1.0.0", r)
	}
	if r := check(srv.Handler(), "2.3"); r.Version != "1.1.0" || r.URL == "" {
		t.Errorf("device 2.3 inside the override got %+v, want 1.1.0", r)
	}
	// With 1.0.0 narrowed too, nothing admits 1.5: the under-native refusal.
	if _, err := c.Rollback(ctx, appID, "production"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PromoteWith(ctx, appID, "production", relayclient.PromoteRequest{Version: "1.0.0", Native: new(">=3")}); err != nil {
		t.Fatal(err)
	}
	if r := check(srv.Handler(), "1.5"); r.Error != channel.CodeUnderNative || r.Kind != channel.KindBlocked || r.URL != "" {
		t.Errorf("device 1.5 outside the override got %+v, want %s", r, channel.CodeUnderNative)
	}
	// A second relay reading the store afresh applies the stored override.
	fresh, err := relay.New(relay.Options{Config: cfg, Store: st, Logger: testLogger(t), RateLimit: -1, DeviceRateLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	if r := check(fresh.Handler(), "1.5"); r.Error != channel.CodeUnderNative {
		t.Errorf("a fresh relay offers %+v to device 1.5, want %s", r, channel.CodeUnderNative)
	}
	// A bad range changes nothing; removing the override restores the bundle's own range.
	if _, err := c.PromoteWith(ctx, appID, "production", relayclient.PromoteRequest{Version: "1.0.0", Native: new("2.0.0 -")}); !errors.Is(err, &relayclient.Error{StatusCode: http.StatusBadRequest, Code: "bad_request"}) {
		t.Errorf("PromoteWith a bad range = %v, want 400 bad_request", err)
	}
	if _, err := c.PromoteWith(ctx, appID, "production", relayclient.PromoteRequest{Version: "1.0.0", Native: new("")}); err != nil {
		t.Fatal(err)
	}
	if r := check(srv.Handler(), "1.5"); r.Version != "1.0.0" || r.URL == "" {
		t.Errorf("device 1.5 after the override was removed got %+v, want 1.0.0", r)
	}
}

// onBothStores runs test on the embedded store and on a store over its own real
// redis-server, in parallel subtests.
func onBothStores(t *testing.T, test func(t *testing.T, st fullStore)) {
	t.Run("bolt", func(t *testing.T) {
		t.Parallel()
		test(t, newBolt(t))
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		srv := testpeers.Redis(t)
		st, err := store.OpenRedis(t.Context(), "redis://"+srv.Addr+"/0", store.RedisOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		test(t, st)
	})
}
