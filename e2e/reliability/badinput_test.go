package reliability

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relay/relaytest"
	"github.com/google/go-cmp/cmp"
)

// TestHostileRequests sends a table of hostile requests to every endpoint of a running relay
// (embedded store, OIDC issuer on httptest) and checks each gets the documented status and
// error code, and that nothing the admin API shows (channels, bundles, audit, stats of both
// apps) changed.
func TestHostileRequests(t *testing.T) {
	iss := newIssuer(t)
	relay := startRelay(t, relayOpts{OIDCIssuer: iss.srv.URL})
	ctx := t.Context()

	// The state to protect: a production and a beta bundle, one tag promotion by webhook.
	for _, b := range []channel.Bundle{bundleFor(appID, "1.0.0", "refs/tags/v1.0.0"), bundleFor(appID, "0.9.0", "refs/heads/main")} {
		if rep, err := relay.register(ctx, mustJSON(t, b)); err != nil || rep.Status != http.StatusCreated {
			t.Fatalf("register: %v %s", err, rep)
		}
	}
	if rep, err := relay.webhook(ctx, "setup-delivery", webhookPayload(repository, "refs/tags/channel/staging", "", relaytest.Commit(appID+"@0.9.0"))); err != nil || rep.Status != http.StatusOK {
		t.Fatalf("webhook: %v %s", err, rep)
	}

	json10MB := append(append([]byte(`{"app_id":"`+appID+`","pad":"`), bytes.Repeat([]byte("a"), 10<<20)...), `"}`...)
	valid := bundleFor(appID, "1.1.0", "refs/tags/v1.1.0")
	withManifest := func(name string) []byte {
		b := valid
		b.Manifest = []channel.ManifestEntry{{FileName: name, FileHash: relaytest.Hex(name, 64), DownloadURL: "https://cdn.example.com/f/" + relaytest.Hex(name, 8)}}
		return mustJSON(t, b)
	}
	conflict := bundleFor(appID, "1.0.0", "refs/tags/v1.0.0")
	conflict.Checksum, conflict.SHA256 = relaytest.Hex("other", 64), relaytest.Hex("other", 64)
	dev := string(deviceBody(appID, deviceID(1), "production", "builtin"))
	jsonCT := map[string]string{"Content-Type": "application/json"}
	signed := func(body []byte) map[string]string { return relaytest.HMACHeaders(hmacSecret, body, time.Now()) }
	bearer := func(tok string) map[string]string {
		return map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + tok}
	}
	oidcBody := mustJSON(t, valid) // ref and commit come from the token
	tok := func(o tokenOpts) string {
		if o.Ref == "" {
			o.Ref, o.SHA = valid.Ref, valid.Commit
		}
		return iss.token(t, o)
	}
	hook := func(delivery string, body []byte) map[string]string {
		return relaytest.WebhookHeaders(webhookSecret, "push", delivery, body)
	}
	moveStaging := webhookPayload(repository, "refs/tags/channel/staging", relaytest.Commit(appID+"@0.9.0"), relaytest.Commit(appID+"@1.0.0"))
	admin := func(token string) map[string]string {
		h := map[string]string{"Content-Type": "application/json"}
		if token != "" {
			h["Authorization"] = "Bearer " + token
		}
		return h
	}
	adminOK := admin(adminToken)
	promote := "/api/v1/apps/" + appID + "/channels/production/promote"

	cases := []struct {
		name   string
		method string
		path   string
		hdr    map[string]string
		body   []byte
		status int
		code   string
	}{
		// Device protocol.
		{"updates malformed json", "POST", "/updates", jsonCT, []byte(`{"app_id":`), 400, "invalid_json_body"},
		{"updates truncated", "POST", "/updates", jsonCT, []byte(dev[:len(dev)/2]), 400, "invalid_json_body"},
		{"updates array", "POST", "/updates", jsonCT, []byte(`[` + dev + `]`), 400, "invalid_json_body"},
		{"updates wrong types", "POST", "/updates", jsonCT, []byte(`{"app_id":123,"device_id":["x"],"version_name":{}}`), 400, ""},
		{"updates missing device", "POST", "/updates", jsonCT, []byte(`{"app_id":"` + appID + `"}`), 400, "missing_device_id"},
		{"updates 10MB", "POST", "/updates", jsonCT, json10MB, 413, ""},
		{"updates unknown app", "POST", "/updates", jsonCT, deviceBody("com.unknown.app", deviceID(1), "production", "builtin"), 200, "app_not_found"},
		{"stats malformed", "POST", "/stats", jsonCT, []byte(`{"action":"set","app_id":`), 400, ""},
		{"stats wrong types", "POST", "/stats", jsonCT, []byte(`{"action":7,"app_id":"` + appID + `","device_id":{}}`), 400, ""},
		{"stats 10MB", "POST", "/stats", jsonCT, json10MB, 413, ""},
		{"channel_self malformed", "POST", "/channel_self", jsonCT, []byte(`{"channel":`), 400, ""},
		{"channel_self unknown channel", "POST", "/channel_self", jsonCT, []byte(strings.TrimSuffix(dev, "}") + `,"channel":"../../production"}`), 200, "channel_not_found"},
		{"manifest_size malformed", "POST", "/updates/manifest_size", jsonCT, []byte(`{"files":[`), 400, ""},
		{"manifest_size 10MB", "POST", "/updates/manifest_size", jsonCT, json10MB, 413, ""},

		// Registration.
		{"register unsigned", "POST", "/api/v1/bundles", jsonCT, mustJSON(t, valid), 401, "unauthenticated"},
		{"register wrong hmac", "POST", "/api/v1/bundles", relaytest.HMACHeaders("not-the-secret", mustJSON(t, valid), time.Now()), mustJSON(t, valid), 401, "bad_signature"},
		{"register stale hmac", "POST", "/api/v1/bundles", relaytest.HMACHeaders(hmacSecret, mustJSON(t, valid), time.Now().Add(-10*time.Minute)), mustJSON(t, valid), 401, "stale_signature"},
		{"register future hmac", "POST", "/api/v1/bundles", relaytest.HMACHeaders(hmacSecret, mustJSON(t, valid), time.Now().Add(10*time.Minute)), mustJSON(t, valid), 401, "stale_signature"},
		{"register malformed json", "POST", "/api/v1/bundles", signed([]byte(`{"app_id":"x",`)), []byte(`{"app_id":"x",`), 400, "invalid_json"},
		{"register truncated", "POST", "/api/v1/bundles", signed(mustJSON(t, valid)[:60]), mustJSON(t, valid)[:60], 400, "invalid_json"},
		{"register wrong types", "POST", "/api/v1/bundles", signed([]byte(`{"app_id":"` + appID + `","version":1,"size":"big"}`)), []byte(`{"app_id":"` + appID + `","version":1,"size":"big"}`), 400, "invalid_json"},
		{"register 10MB", "POST", "/api/v1/bundles", signed(json10MB), json10MB, 413, "body_too_large"},
		{"register unknown app", "POST", "/api/v1/bundles", signed(mustJSON(t, bundleFor("com.unknown.app", "1.0.0", "refs/heads/main"))), mustJSON(t, bundleFor("com.unknown.app", "1.0.0", "refs/heads/main")), 404, "app_not_found"},
		{"register manifest traversal", "POST", "/api/v1/bundles", signed(withManifest("../../etc/passwd")), withManifest("../../etc/passwd"), 400, "invalid_bundle"},
		{"register manifest absolute", "POST", "/api/v1/bundles", signed(withManifest("/etc/passwd")), withManifest("/etc/passwd"), 400, "invalid_bundle"},
		{"register manifest backslash", "POST", "/api/v1/bundles", signed(withManifest(`..\..\evil.js`)), withManifest(`..\..\evil.js`), 400, "invalid_bundle"},
		{"register conflicting checksum", "POST", "/api/v1/bundles", signed(mustJSON(t, conflict)), mustJSON(t, conflict), 409, "version_conflict"},
		{"register oidc expired", "POST", "/api/v1/bundles", bearer(tok(tokenOpts{Expiry: time.Now().Add(-time.Minute)})), oidcBody, 401, "token_expired"},
		{"register oidc wrong audience", "POST", "/api/v1/bundles", bearer(tok(tokenOpts{Audience: "https://other.example"})), oidcBody, 401, "invalid_token"},
		{"register oidc other repository", "POST", "/api/v1/bundles", bearer(tok(tokenOpts{Repository: "mallory/fork"})), oidcBody, 403, "repository_not_allowed"},
		{"register oidc other app's repository", "POST", "/api/v1/bundles", bearer(tok(tokenOpts{Repository: otherRepo})), oidcBody, 403, "repository_not_allowed"},
		{"register oidc other key", "POST", "/api/v1/bundles", bearer(tok(tokenOpts{Key: rsaKey(t)})), oidcBody, 401, "invalid_token"},
		{"register oidc garbage", "POST", "/api/v1/bundles", bearer("not.a.jwt"), oidcBody, 401, "invalid_token"},

		// GitHub webhooks.
		{"webhook unsigned", "POST", "/webhooks/github", map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "u1", "Content-Type": "application/json"}, moveStaging, 401, "bad_signature"},
		{"webhook wrong secret", "POST", "/webhooks/github", relaytest.WebhookHeaders("nope", "push", "u2", moveStaging), moveStaging, 401, "bad_signature"},
		{"webhook sha1 only", "POST", "/webhooks/github", sha1Headers("u3", moveStaging), moveStaging, 401, "bad_signature"},
		{"webhook replayed delivery", "POST", "/webhooks/github", hook("setup-delivery", moveStaging), moveStaging, 200, ""},
		{"webhook missing delivery", "POST", "/webhooks/github", withoutKey(hook("", moveStaging), "X-GitHub-Delivery"), moveStaging, 400, "bad_delivery"},
		{"webhook signed malformed", "POST", "/webhooks/github", hook("u4", []byte(`{"ref":`)), []byte(`{"ref":`), 400, "bad_payload"},
		{"webhook 10MB unsigned", "POST", "/webhooks/github", map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "u5"}, json10MB, 401, "bad_signature"},
		{"webhook foreign repository", "POST", "/webhooks/github", hook("u6", webhookPayload("mallory/fork", "refs/tags/v9.9.9", "", relaytest.Commit(appID+"@1.0.0"))), webhookPayload("mallory/fork", "refs/tags/v9.9.9", "", relaytest.Commit(appID+"@1.0.0")), 200, ""},

		// Admin API.
		{"admin no token", "POST", promote, admin(""), []byte(`{"version":"0.9.0"}`), 401, "unauthorized"},
		{"admin wrong token", "POST", promote, admin("guess"), []byte(`{"version":"0.9.0"}`), 401, "unauthorized"},
		{"admin token prefix", "POST", promote, admin(adminToken[:len(adminToken)-1]), []byte(`{"version":"0.9.0"}`), 401, "unauthorized"},
		{"admin list no token", "GET", "/api/v1/apps/" + appID + "/audit", admin(""), nil, 401, "unauthorized"},
		{"admin malformed", "POST", promote, adminOK, []byte(`{"version":`), 400, ""},
		{"admin wrong types", "POST", promote, adminOK, []byte(`{"version":1.5}`), 400, ""},
		{"admin unknown field", "POST", promote, adminOK, []byte(`{"version":"0.9.0","force":true}`), 400, ""},
		{"admin unregistered version", "POST", promote, adminOK, []byte(`{"version":"7.7.7"}`), 404, "bundle_not_found"},
		{"admin unknown app", "POST", "/api/v1/apps/com.unknown.app/channels/production/promote", adminOK, []byte(`{"version":"1.0.0"}`), 404, ""},
		{"admin unknown channel", "POST", "/api/v1/apps/" + appID + "/channels/nope/promote", adminOK, []byte(`{"version":"1.0.0"}`), 404, ""},
		{"admin traversal channel", "POST", "/api/v1/apps/" + appID + "/channels/..%2F..%2Fproduction/promote", adminOK, []byte(`{"version":"0.9.0"}`), 404, ""},
		{"admin rollout 101%", "PUT", "/api/v1/apps/" + appID + "/channels/production/rollout", adminOK, []byte(`{"version":"0.9.0","percent":101}`), 400, ""},
		{"admin 10MB", "POST", promote, adminOK, json10MB, 413, ""},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := fullSnapshot(t, relay)
			rep, err := do(context.Background(), tc.method, relay.URL+tc.path, tc.body, tc.hdr)
			if err != nil {
				t.Fatalf("%s %s: %v", tc.method, tc.path, err)
			}
			if rep.Status != tc.status || (tc.code != "" && rep.errCode() != tc.code) {
				t.Errorf("%s %s: %s, want %d %s", tc.method, tc.path, rep, tc.status, tc.code)
			}
			if tc.code == "" && rep.Status >= 400 && rep.errCode() == "" {
				t.Errorf("%s %s: %s has no error code", tc.method, tc.path, rep)
			}
			if after := fullSnapshot(t, relay); after != before {
				t.Errorf("state changed:\n%s", cmp.Diff(before, after))
			}
		})
	}
	// The relay is still healthy and devices get the same answers.
	if u, _, err := relay.check(ctx, appID, "production", 1); err != nil || u.Version != "1.0.0" {
		t.Errorf("production after the hostile requests: %v %+v", err, u)
	}
}

// fullSnapshot is snapshot plus the stats of both apps.
func fullSnapshot(t *testing.T, r *relayProc) string {
	t.Helper()
	s := r.snapshot(t)
	for _, app := range []string{appID, otherApp} {
		rep, err := r.admin(context.Background(), http.MethodGet, app+"/stats", nil)
		if err != nil || rep.Status != http.StatusOK {
			t.Fatalf("stats: %v %s", err, rep)
		}
		var v map[string]any
		if err := json.Unmarshal(rep.Body, &v); err != nil {
			t.Fatal(err)
		}
		delete(v, "time") // when the answer was made, not stored state
		s += app + "/stats: " + string(mustJSON(t, v)) + "\n"
	}
	return s
}

// sha1Headers signs a delivery only with GitHub's legacy SHA-1 header.
func sha1Headers(delivery string, body []byte) map[string]string {
	m := hmac.New(sha1.New, []byte(webhookSecret))
	m.Write(body)
	return map[string]string{"Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": delivery,
		"X-Hub-Signature": "sha1=" + hex.EncodeToString(m.Sum(nil))}
}

func withoutKey(h map[string]string, k string) map[string]string {
	delete(h, k)
	return h
}
