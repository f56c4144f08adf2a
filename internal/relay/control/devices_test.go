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
	t.Run("bolt", func(t *testing.T) {
		t.Parallel()
		testClearFailedVersions(t, newBolt(t))
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		srv := testpeers.Redis(t)
		st, err := store.OpenRedis(t.Context(), "redis://"+srv.Addr+"/0", store.RedisOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		testClearFailedVersions(t, st)
	})
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
