package control

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relay/relaytest"
	"github.com/ferryhq/ferry/internal/relayclient"
)

const otherApp = "com.example.other"

func tokenHeader(text string) http.Header {
	return http.Header{"Authorization": {"Bearer " + text}, "Content-Type": {"application/json"}}
}

// createToken creates a token through the API with the credential in auth.
func (e *env) createToken(auth http.Header, req relayclient.TokenRequest, want int) relayclient.CreatedToken {
	e.t.Helper()
	w := e.do("POST", relayclient.TokensPath, mustJSON(e.t, req), auth)
	if w.Code != want {
		e.t.Fatalf("create token %+v: status %d, want %d: %s", req, w.Code, want, w.Body)
	}
	var out relayclient.CreatedToken
	if want == http.StatusCreated {
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			e.t.Fatal(err)
		}
	}
	return out
}

func grant(app string, role access.Role) []access.Grant {
	return []access.Grant{{App: app, Role: role}}
}

// mutations are the state-changing admin requests, with the role each needs.
var mutations = []struct {
	method, path, body string
	role               access.Role
}{
	{"POST", "/channels/production/promote", `{"version":"1.0.1"}`, access.Deployer},
	{"POST", "/channels/production/promote", `{"version":"1.0.0","native":">=2"}`, access.Deployer},
	{"POST", "/channels/production/rollback", "", access.Deployer},
	{"PUT", "/channels/production/rollout", `{"version":"1.1.0","percent":10}`, access.Deployer},
	{"POST", "/channels/production/rollout/pause", "", access.Deployer},
	{"PUT", "/channels/production/policy", `{"policy":{"public":true}}`, access.Admin},
	{"POST", "/devices/clear-failed", `{"device":"4a1f2c3e-1111-2222-3333-444455556666"}`, access.Admin},
}

// The roles of a token decide what it may do on its app, and nothing on another app; a
// refused request changes nothing (state and audit alike).
func TestTokenRolesAndScope(t *testing.T) {
	t.Parallel()
	e := seeded(t)
	viewer := e.createToken(adminHeader(), relayclient.TokenRequest{Name: "viewer", Grants: grant(appID, access.Viewer)}, http.StatusCreated).Token
	deployer := e.createToken(adminHeader(), relayclient.TokenRequest{Name: "deployer", Grants: grant(appID, access.Deployer)}, http.StatusCreated).Token
	publisher := e.createToken(adminHeader(), relayclient.TokenRequest{Name: "ci", Grants: grant(appID, access.Publisher)}, http.StatusCreated).Token
	other := e.createToken(adminHeader(), relayclient.TokenRequest{Name: "other", Grants: grant(otherApp, access.Admin)}, http.StatusCreated).Token
	if !strings.HasPrefix(viewer, access.TokenPrefix) {
		t.Fatalf("token %q lacks the prefix", viewer)
	}
	before := e.snapshot()
	for _, tc := range []struct {
		name, token string
		allowed     func(access.Role) bool
	}{
		{"viewer", viewer, func(access.Role) bool { return false }},
		{"publisher", publisher, func(access.Role) bool { return false }},
		{"other app's admin", other, func(access.Role) bool { return false }},
		{"deployer", deployer, func(r access.Role) bool { return r == access.Deployer }},
	} {
		for _, m := range mutations {
			if tc.allowed(m.role) {
				continue
			}
			w := e.do(m.method, "/api/v1/apps/"+appID+m.path, []byte(m.body), tokenHeader(tc.token))
			if w.Code != http.StatusForbidden {
				t.Errorf("%s: %s %s = %d, want 403: %s", tc.name, m.method, m.path, w.Code, w.Body)
				continue
			}
			if code, msg := errorBody(t, w); code != "forbidden" || !strings.Contains(msg, string(m.role)) {
				t.Errorf("%s: %s %s: %s %q; want forbidden naming the role %s", tc.name, m.method, m.path, code, msg, m.role)
			}
		}
	}
	e.unchanged(before)

	// Reading: viewers and deployers of the app may, the publisher and the other app's
	// admin may not.
	for tok, want := range map[string]int{viewer: 200, deployer: 200, publisher: 403, other: 403} {
		if w := e.do("GET", "/api/v1/apps/"+appID+"/channels", nil, tokenHeader(tok)); w.Code != want {
			t.Errorf("GET channels with %s: %d, want %d", tok[:18], w.Code, want)
		}
	}
	// The deployer promotes; the audit entry names it.
	w := e.do("POST", "/api/v1/apps/"+appID+"/channels/production/promote", []byte(`{"version":"1.0.1"}`), tokenHeader(deployer))
	if w.Code != http.StatusOK {
		t.Fatalf("deployer promote: %d %s", w.Code, w.Body)
	}
	got := e.audit()[0]
	id, _ := access.ParseToken(deployer)
	if got.Actor == nil || got.Actor.Kind != "token" || got.Actor.ID != id || got.Actor.Name != "deployer" || got.Actor.IP == "" || got.Cause != "admin" {
		t.Errorf("audit entry = %+v (actor %+v), want the deployer token with an IP", got, got.Actor)
	}
	// The other app's admin works there.
	if w := e.do("GET", "/api/v1/apps/"+otherApp+"/channels", nil, tokenHeader(other)); w.Code != 200 {
		t.Errorf("other app: %d %s", w.Code, w.Body)
	}
}

// An app that is not configured is answered like a forbidden one to a credential limited to
// some apps, and 404 to one that may read every app.
func TestUnknownAppDoesNotLeak(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	narrow := e.createToken(adminHeader(), relayclient.TokenRequest{Name: "n", Grants: grant(otherApp, access.Viewer)}, http.StatusCreated).Token
	wide := e.createToken(adminHeader(), relayclient.TokenRequest{Name: "w", Grants: grant("*", access.Viewer)}, http.StatusCreated).Token
	known := e.do("GET", "/api/v1/apps/"+appID+"/channels", nil, tokenHeader(narrow))
	unknown := e.do("GET", "/api/v1/apps/com.example.nope/channels", nil, tokenHeader(narrow))
	if known.Code != 403 || unknown.Code != 403 {
		t.Fatalf("narrow token: known app %d, unknown app %d; want 403 for both", known.Code, unknown.Code)
	}
	kc, km := errorBody(t, known)
	uc, um := errorBody(t, unknown)
	if kc != uc || strings.ReplaceAll(km, appID, "X") != strings.ReplaceAll(um, "com.example.nope", "X") {
		t.Errorf("answers differ: %s %q vs %s %q", kc, km, uc, um)
	}
	if w := e.do("GET", "/api/v1/apps/com.example.nope/channels", nil, tokenHeader(wide)); w.Code != 404 {
		t.Errorf("every-app viewer on an unknown app: %d, want 404", w.Code)
	}
}

// Expired, revoked, unknown and altered tokens are 401 with WWW-Authenticate, and change
// nothing.
func TestTokenExpiredRevokedUnknown(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newEnv(t, envOptions{now: clock})
	for _, v := range []struct{ version, commit string }{{"1.0.0", commitA}, {"1.0.1", commitB}} {
		b := testBundle(v.version, v.commit)
		b.Ref = "refs/heads/feature/x"
		e.registerHMAC(b, http.StatusCreated)
	}
	e.admin("POST", "/channels/production/promote", `{"version":"1.0.0"}`, http.StatusOK)
	expiring := e.createToken(adminHeader(), relayclient.TokenRequest{Name: "short", Grants: grant(appID, access.Admin), ExpiresIn: "1h"}, http.StatusCreated)
	revoked := e.createToken(adminHeader(), relayclient.TokenRequest{Name: "gone", Grants: grant(appID, access.Admin)}, http.StatusCreated)
	// Both work, and the revoked one is cached by its use.
	for _, tok := range []string{expiring.Token, revoked.Token} {
		if w := e.do("GET", "/api/v1/apps/"+appID+"/channels", nil, tokenHeader(tok)); w.Code != 200 {
			t.Fatalf("fresh token: %d %s", w.Code, w.Body)
		}
	}
	if w := e.do("DELETE", relayclient.TokensPath+"/"+revoked.Record.ID, nil, adminHeader()); w.Code != 200 {
		t.Fatalf("revoke: %d %s", w.Code, w.Body)
	}
	mu.Lock()
	now = now.Add(time.Hour + time.Second)
	mu.Unlock()
	altered := expiring.Token[:len(expiring.Token)-1] + map[bool]string{true: "b", false: "a"}[strings.HasSuffix(expiring.Token, "a")]
	unknown, _, err := access.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	before := e.snapshot()
	for name, tok := range map[string]string{"expired": expiring.Token, "revoked": revoked.Token, "altered": altered, "unknown": unknown, "malformed": "ferry_nope"} {
		for _, m := range mutations[:3] { // 15 failures stay below AuthFailureBurst
			w := e.do(m.method, "/api/v1/apps/"+appID+m.path, []byte(m.body), tokenHeader(tok))
			if w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("%s token: %s %s = %d (WWW-Authenticate %q), want 401 with the header", name, m.method, m.path, w.Code, w.Header().Get("WWW-Authenticate"))
			}
			if strings.Contains(w.Body.String(), tok) {
				t.Errorf("%s token: the answer repeats the token", name)
			}
		}
	}
	e.unchanged(before)
}

// A revoked token stops working on another instance sharing the store once the store's
// notification reaches it (StoreChanged), well before the cache's TTL.
func TestRevokeDropsOtherInstancesCache(t *testing.T) {
	t.Parallel()
	st := newBolt(t)
	e1 := newEnv(t, envOptions{store: st})
	e2 := newEnv(t, envOptions{store: st})
	tok := e1.createToken(adminHeader(), relayclient.TokenRequest{Name: "x", Grants: grant(appID, access.Viewer)}, http.StatusCreated)
	if w := e2.do("GET", "/api/v1/apps/"+appID+"/channels", nil, tokenHeader(tok.Token)); w.Code != 200 {
		t.Fatalf("instance 2: %d", w.Code)
	}
	if w := e1.do("DELETE", relayclient.TokensPath+"/"+tok.Record.ID, nil, adminHeader()); w.Code != 200 {
		t.Fatalf("revoke: %d", w.Code)
	}
	// Instance 2 still has it cached: without the notification it works until the TTL.
	if w := e2.do("GET", "/api/v1/apps/"+appID+"/channels", nil, tokenHeader(tok.Token)); w.Code != 200 {
		t.Fatalf("instance 2 before the notification: %d (the cache should hold the token)", w.Code)
	}
	e2.api.StoreChanged(appID) // an app's change keeps the cache
	if w := e2.do("GET", "/api/v1/apps/"+appID+"/channels", nil, tokenHeader(tok.Token)); w.Code != 200 {
		t.Fatalf("instance 2 after an app notification: %d", w.Code)
	}
	e2.api.StoreChanged("\x00access")
	if w := e2.do("GET", "/api/v1/apps/"+appID+"/channels", nil, tokenHeader(tok.Token)); w.Code != 401 {
		t.Fatalf("instance 2 after the access notification: %d, want 401", w.Code)
	}
}

// With access.bootstrap_token false, FERRY_ADMIN_TOKEN is refused even when set.
func TestBootstrapDisabled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{config: testConfigY + "access:\n  bootstrap_token: false\n"})
	before := e.snapshot()
	w := e.do("POST", "/api/v1/apps/"+appID+"/channels/production/rollback", nil, adminHeader())
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("bootstrap token with bootstrap disabled: %d, want 401", w.Code)
	}
	if _, msg := errorBody(t, w); !strings.Contains(msg, "disabled") {
		t.Errorf("message %q does not say the bootstrap token is disabled", msg)
	}
	if w := e.do("POST", relayclient.TokensPath, mustJSON(t, relayclient.TokenRequest{Name: "x", Grants: grant("*", access.Admin)}), adminHeader()); w.Code != 401 {
		t.Errorf("create token with the disabled bootstrap token: %d, want 401", w.Code)
	}
	e.unchanged(before)
}

// After AuthFailureBurst failed attempts from one address, even a valid credential from it
// is answered 429 with Retry-After (without being checked), a warning is logged and the
// metric counts; other addresses are unaffected.
func TestBruteForceThrottled(t *testing.T) {
	t.Parallel()
	cfg, err := channel.ParseConfig([]byte(testConfigY))
	if err != nil {
		t.Fatal(err)
	}
	var buf relaytest.Buffer
	reg := prometheus.NewRegistry()
	api, err := New(t.Context(), Options{Config: cfg, Store: newBolt(t), AdminToken: adminToken, Registerer: reg,
		Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	engine := gin.New()
	api.Mount(engine)
	send := func(ip, auth string) *httptest.ResponseRecorder {
		req := httptest.NewRequestWithContext(t.Context(), "GET", "/api/v1/apps/"+appID+"/channels", nil)
		req.RemoteAddr = ip + ":1234"
		req.Header.Set("Authorization", auth)
		w := httptest.NewRecorder()
		engine.ServeHTTP(w, req)
		return w
	}
	for i := range AuthFailureBurst {
		if w := send("198.51.100.7", fmt.Sprintf("Bearer guess-%d", i)); w.Code != 401 {
			t.Fatalf("attempt %d: %d, want 401", i, w.Code)
		}
	}
	w := send("198.51.100.7", "Bearer "+adminToken)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("after %d failures: %d (Retry-After %q), want 429 with Retry-After", AuthFailureBurst, w.Code, w.Header().Get("Retry-After"))
	}
	if w := send("198.51.100.8", "Bearer "+adminToken); w.Code != 200 {
		t.Errorf("another address: %d, want 200", w.Code)
	}
	if line := logLine(buf.String(), "authentication attempts throttled"); !strings.Contains(line, "198.51.100.7") || !strings.Contains(line, "level=WARN") {
		t.Errorf("throttling log line = %q", line)
	}
	if strings.Contains(buf.String(), "guess-") || strings.Contains(buf.String(), adminToken) {
		t.Errorf("the log holds a presented credential:\n%s", buf.String())
	}
	if got := testutil.ToFloat64(api.metrics.authThrottled); got != 1 {
		t.Errorf("throttled = %v, want 1", got)
	}
	if got := testutil.ToFloat64(api.metrics.authFailures.WithLabelValues("bootstrap")); got != AuthFailureBurst {
		t.Errorf("failures = %v, want %d", got, AuthFailureBurst)
	}
}

// gatherText is what GET /metrics would show of reg.
func gatherText(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	w := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(w, httptest.NewRequestWithContext(t.Context(), "GET", "/metrics", nil))
	return w.Body.String()
}

// Creating tokens: the creator needs Manage on every app a grant names ("*" needs Manage on
// every app); bad requests are refused whole; the hash is never shown.
func TestTokenCreateRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	appAdmin := e.createToken(adminHeader(), relayclient.TokenRequest{Name: "app-admin", Grants: grant(appID, access.Admin)}, http.StatusCreated)
	deployer := e.createToken(adminHeader(), relayclient.TokenRequest{Name: "dep", Grants: grant(appID, access.Deployer)}, http.StatusCreated)
	if strings.Contains(mustJSONString(t, appAdmin), "hash") {
		t.Errorf("the answer shows the hash: %s", mustJSONString(t, appAdmin))
	}
	// The app's admin may grant any role there, publisher included.
	e.createToken(tokenHeader(appAdmin.Token), relayclient.TokenRequest{Name: "ci", Grants: grant(appID, access.Publisher), ExpiresIn: "90d"}, http.StatusCreated)
	for name, tc := range map[string]struct {
		auth http.Header
		req  relayclient.TokenRequest
		want int
	}{
		"deployer creates":             {tokenHeader(deployer.Token), relayclient.TokenRequest{Name: "x", Grants: grant(appID, access.Viewer)}, 403},
		"app admin grants every app":   {tokenHeader(appAdmin.Token), relayclient.TokenRequest{Name: "x", Grants: grant("*", access.Viewer)}, 403},
		"app admin grants other app":   {tokenHeader(appAdmin.Token), relayclient.TokenRequest{Name: "x", Grants: grant(otherApp, access.Viewer)}, 403},
		"app admin grants unknown app": {tokenHeader(appAdmin.Token), relayclient.TokenRequest{Name: "x", Grants: grant("com.example.nope", access.Viewer)}, 403},
		"unknown app":                  {adminHeader(), relayclient.TokenRequest{Name: "x", Grants: grant("com.example.nope", access.Viewer)}, 400},
		"no name":                      {adminHeader(), relayclient.TokenRequest{Grants: grant(appID, access.Viewer)}, 400},
		"long name":                    {adminHeader(), relayclient.TokenRequest{Name: strings.Repeat("n", 65), Grants: grant(appID, access.Viewer)}, 400},
		"control character":            {adminHeader(), relayclient.TokenRequest{Name: "a\nb", Grants: grant(appID, access.Viewer)}, 400},
		"no grants":                    {adminHeader(), relayclient.TokenRequest{Name: "x"}, 400},
		"bad role":                     {adminHeader(), relayclient.TokenRequest{Name: "x", Grants: grant(appID, "owner")}, 400},
		"bad lifetime":                 {adminHeader(), relayclient.TokenRequest{Name: "x", Grants: grant(appID, access.Viewer), ExpiresIn: "forever"}, 400},
		"too many grants": {adminHeader(), relayclient.TokenRequest{Name: "x", Grants: func() []access.Grant {
			var gs []access.Grant
			for i := range relayclient.MaxTokenGrants + 1 {
				gs = append(gs, access.Grant{App: fmt.Sprintf("app%d", i), Role: access.Viewer})
			}
			return gs
		}()}, 400},
	} {
		before, err := e.store.ListTokens(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		w := e.do("POST", relayclient.TokensPath, mustJSON(t, tc.req), tc.auth)
		if w.Code != tc.want {
			t.Errorf("%s: %d, want %d: %s", name, w.Code, tc.want, w.Body)
		}
		after, _ := e.store.ListTokens(t.Context())
		if len(after) != len(before) {
			t.Errorf("%s: a refused request stored a token", name)
		}
	}

	// Lists show only what the caller may manage, never hashes.
	var list relayclient.TokenList
	w := e.do("GET", relayclient.TokensPath, nil, tokenHeader(appAdmin.Token))
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil || w.Code != 200 {
		t.Fatalf("list: %d %s", w.Code, w.Body)
	}
	if len(list.Tokens) != 3 || strings.Contains(w.Body.String(), "hash") {
		t.Errorf("app admin's list = %s; want its app's 3 tokens without hashes", w.Body)
	}
	w = e.do("GET", relayclient.TokensPath, nil, tokenHeader(deployer.Token))
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil || len(list.Tokens) != 0 {
		t.Errorf("deployer's list = %s; want none", w.Body)
	}
	// Revoking needs Manage over the token's apps; an unknown id looks the same.
	if w := e.do("DELETE", relayclient.TokensPath+"/"+appAdmin.Record.ID, nil, tokenHeader(deployer.Token)); w.Code != 403 {
		t.Errorf("deployer revokes the admin: %d, want 403", w.Code)
	}
	if w := e.do("DELETE", relayclient.TokensPath+"/aaaaaaaaaaaa", nil, tokenHeader(deployer.Token)); w.Code != 403 {
		t.Errorf("deployer revokes an unknown id: %d, want 403", w.Code)
	}
	if w := e.do("DELETE", relayclient.TokensPath+"/aaaaaaaaaaaa", nil, adminHeader()); w.Code != 404 {
		t.Errorf("bootstrap revokes an unknown id: %d, want 404", w.Code)
	}
	// Audit: creations and the revocation in the app's log, with the actor; a "*" grant in
	// every app's.
	if w := e.do("DELETE", relayclient.TokensPath+"/"+deployer.Record.ID, nil, tokenHeader(appAdmin.Token)); w.Code != 200 {
		t.Fatalf("revoke: %d %s", w.Code, w.Body)
	}
	wide := e.createToken(adminHeader(), relayclient.TokenRequest{Name: "wide", Grants: grant("*", access.Viewer)}, http.StatusCreated)
	var actions []string
	for _, en := range e.audit() {
		actions = append(actions, en.Action+" "+en.Actor.String())
	}
	want := []string{"token_create bootstrap", "token_revoke token app-admin (" + appAdmin.Record.ID + ")", "token_create token app-admin (" + appAdmin.Record.ID + ")",
		"token_create bootstrap", "token_create bootstrap"}
	if strings.Join(actions, "|") != strings.Join(want, "|") {
		t.Errorf("audit = %q, want %q", actions, want)
	}
	otherLog, err := e.store.ListAudit(t.Context(), otherApp, 10)
	if err != nil || len(otherLog) != 1 || !strings.Contains(string(otherLog[0].After), wide.Record.ID) {
		t.Errorf("the other app's log = %+v, want the every-app token's creation", otherLog)
	}
}

func mustJSONString(t *testing.T, v any) string { return string(mustJSON(t, v)) }

// The audit log names the actor of registrations (ci, with the run id for OIDC), webhooks
// (the delivery) and admin calls, records policies before and after, and filters.
func TestAuditActorsAndFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.registerHMAC(testBundle("1.0.0", commitA), http.StatusCreated) // main → beta
	b := testBundle("1.0.1", commitB)
	w := e.do("POST", "/api/v1/bundles", mustJSON(t, b), bearerHeader(e.issuer.token(t, e.issuer.claims(time.Now()))))
	if w.Code != http.StatusCreated {
		t.Fatalf("OIDC registration: %d %s", w.Code, w.Body)
	}
	e.deliver("push", "d-actor", tagCreated(t, "v1.0.0", commitA), http.StatusOK)
	e.admin("PUT", "/channels/beta/policy", `{"policy":{"public":true,"platforms":["ios"]}}`, http.StatusOK)

	es := e.audit()
	find := func(action, ch string) channel.AuditEntry {
		for _, en := range es {
			if en.Action == action && en.Channel == ch {
				return en
			}
		}
		t.Fatalf("no %s entry on %q in %+v", action, ch, es)
		return channel.AuditEntry{}
	}
	for _, en := range es {
		if en.Actor == nil {
			t.Errorf("entry without actor: %+v", en)
		}
	}
	if a := find("promote", "production").Actor; a.Kind != "webhook" || a.ID != "d-actor" || a.Name != repo {
		t.Errorf("webhook actor = %+v", a)
	}
	var oidcReg, hmacReg *channel.Actor
	for _, en := range es {
		if en.Action == "register" && en.Version == "1.0.1" {
			oidcReg = en.Actor
		}
		if en.Action == "register" && en.Version == "1.0.0" {
			hmacReg = en.Actor
		}
	}
	if oidcReg == nil || oidcReg.Kind != "ci" || oidcReg.ID != "9876543210" || oidcReg.Name != repo || !strings.Contains(oidcReg.Workflow, "release.yml") {
		t.Errorf("OIDC registration actor = %+v", oidcReg)
	}
	if hmacReg == nil || hmacReg.Kind != "ci" || hmacReg.ID != "hmac" || hmacReg.Name != repo {
		t.Errorf("HMAC registration actor = %+v", hmacReg)
	}
	pol := find("policy", "beta")
	if pol.Actor.Kind != "bootstrap" || pol.Actor.IP == "" {
		t.Errorf("policy actor = %+v", pol.Actor)
	}
	var before, after channel.Policy
	if err := json.Unmarshal(pol.Before, &before); err != nil || !before.AllowDeviceSelfSet || before.Public {
		t.Errorf("policy before = %s (%v), want the configured policy", pol.Before, err)
	}
	if err := json.Unmarshal(pol.After, &after); err != nil || !after.Public || len(after.Platforms) != 1 {
		t.Errorf("policy after = %s (%v)", pol.After, err)
	}

	query := func(q string) []channel.AuditEntry {
		t.Helper()
		w := e.do("GET", "/api/v1/apps/"+appID+"/audit"+q, nil, adminHeader())
		if w.Code != 200 {
			t.Fatalf("audit%s: %d %s", q, w.Code, w.Body)
		}
		var l relayclient.AuditList
		if err := json.Unmarshal(w.Body.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		return l.Entries
	}
	if got := query("?actor=WEBHOOK"); len(got) == 0 || got[0].Actor.Kind != "webhook" {
		t.Errorf("actor=WEBHOOK: %+v", got)
	}
	for _, en := range query("?actor=" + repo) {
		if en.Actor.Name != repo {
			t.Errorf("actor=%s returned %+v", repo, en.Actor)
		}
	}
	if got := query("?actor=9876543210"); len(got) != 2 || got[0].Version != "1.0.1" || got[1].Version != "1.0.1" {
		t.Errorf("actor=<run id>: %+v", got)
	}
	if got := query("?action=policy"); len(got) != 1 {
		t.Errorf("action=policy: %d entries", len(got))
	}
	if got := query("?action=register&limit=1"); len(got) != 1 || got[0].Version != "1.0.1" {
		t.Errorf("action=register&limit=1: %+v", got)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if got := query("?since=" + future); len(got) != 0 {
		t.Errorf("since the future: %d entries", len(got))
	}
	if got := query("?until=" + future); len(got) != len(es) {
		t.Errorf("until the future: %d entries, want %d", len(got), len(es))
	}
	if w := e.do("GET", "/api/v1/apps/"+appID+"/audit?since=yesterday", nil, adminHeader()); w.Code != 400 {
		t.Errorf("since=yesterday: %d, want 400", w.Code)
	}
}

// Publisher tokens register bundles of their apps only; the body supplies ref and commit
// (as with HMAC), and an explicit channel is honoured only where the ref may go (as with
// OIDC).
func TestPublisherTokenRegisters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{noHMAC: true, noOIDC: true})
	pub := e.createToken(adminHeader(), relayclient.TokenRequest{Name: "ci", Grants: grant(appID, access.Publisher)}, http.StatusCreated)
	dep := e.createToken(adminHeader(), relayclient.TokenRequest{Name: "dep", Grants: grant(appID, access.Admin)}, http.StatusCreated)
	b := testBundle("1.0.0", commitA) // refs/heads/main → beta
	w := e.do("POST", "/api/v1/bundles", mustJSON(t, b), tokenHeader(pub.Token))
	if w.Code != http.StatusCreated {
		t.Fatalf("publisher registration: %d %s", w.Code, w.Body)
	}
	if r := decodeRegistration(t, w); !r.Promoted || r.Channel != "beta" {
		t.Errorf("registration = %+v, want beta promoted", r)
	}
	// The audit entry names the token (id and name), and its cause the repository.
	if got := e.audit()[0]; got.Actor == nil || got.Actor.Kind != "token" || got.Actor.ID != pub.Record.ID || got.Actor.Name != "ci" ||
		got.Actor.IP == "" || !strings.Contains(got.Cause, repo) {
		t.Errorf("register entry = %+v, actor %+v; want the token %s named ci, the repository in the cause", got, got.Actor, pub.Record.ID)
	}
	// An explicit channel the ref may not move: registered, not promoted.
	b = testBundle("1.0.1", commitB)
	b.Channel = "production"
	w = e.do("POST", "/api/v1/bundles", mustJSON(t, b), tokenHeader(pub.Token))
	if r := decodeRegistration(t, w); w.Code != http.StatusCreated || r.Promoted {
		t.Errorf("explicit production from main: %d %+v, want registered without promotion", w.Code, r)
	}
	before := e.snapshot()
	for name, tc := range map[string]struct {
		tok  string
		app  string
		want int
	}{
		"admin is no publisher": {dep.Token, appID, 403},
		"other app":             {pub.Token, otherApp, 403},
		"unknown app":           {pub.Token, "com.example.nope", 403},
		"bad token":             {pub.Token + "x", appID, 401},
	} {
		b := testBundle("2.0.0", commitC)
		b.AppID = tc.app
		if w := e.do("POST", "/api/v1/bundles", mustJSON(t, b), tokenHeader(tc.tok)); w.Code != tc.want {
			t.Errorf("%s: %d, want %d: %s", name, w.Code, tc.want, w.Body)
		}
	}
	e.unchanged(before)
}

// An app with hmac_secret_env accepts HMAC registrations only under its own secret; the
// relay-wide secret keeps working for the other apps; an unset variable stops New.
func TestPerAppHMACSecret(t *testing.T) {
	t.Parallel()
	const own = "own-app-secret"
	cfg := strings.Replace(testConfigY, "    repository: acme/mobile-app\n", "    repository: acme/mobile-app\n    hmac_secret_env: APP_HMAC\n", 1)
	e := newEnv(t, envOptions{config: cfg, getenv: func(k string) string {
		if k == "APP_HMAC" {
			return own
		}
		return ""
	}})
	b := testBundle("1.0.0", commitA)
	body := mustJSON(t, b)
	before := e.snapshot()
	if w := e.do("POST", "/api/v1/bundles", body, hmacHeaders(hmacSecret, time.Now(), body)); w.Code != http.StatusUnauthorized {
		t.Fatalf("relay-wide secret for an app with its own: %d, want 401: %s", w.Code, w.Body)
	}
	e.unchanged(before)
	if w := e.do("POST", "/api/v1/bundles", body, hmacHeaders(own, time.Now(), body)); w.Code != http.StatusCreated {
		t.Fatalf("own secret: %d %s", w.Code, w.Body)
	}
	ob := testBundle("1.0.0", commitA)
	ob.AppID = otherApp
	ob.URL = "https://github.com/acme/other-app/releases/download/v1/web.zip"
	obody := mustJSON(t, ob)
	if w := e.do("POST", "/api/v1/bundles", obody, hmacHeaders(own, time.Now(), obody)); w.Code != http.StatusUnauthorized {
		t.Errorf("one app's secret for another app: %d, want 401", w.Code)
	}
	if w := e.do("POST", "/api/v1/bundles", obody, hmacHeaders(hmacSecret, time.Now(), obody)); w.Code != http.StatusCreated {
		t.Errorf("relay-wide secret for an app without its own: %d %s", w.Code, w.Body)
	}

	parsed, err := channel.ParseConfig([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(t.Context(), Options{Config: parsed, Store: newBolt(t), HMACSecret: hmacSecret, Getenv: func(string) string { return "" }})
	if err == nil || !strings.Contains(err.Error(), "hmac_secret_env names APP_HMAC") {
		t.Errorf("New with the variable unset: %v", err)
	}
}

// Nothing secret reaches logs, metrics or answers: tokens created, used and revoked, bad
// attempts, the bootstrap token and HMAC secrets.
func TestSecretsStayOut(t *testing.T) {
	t.Parallel()
	const own = "per-app-hmac-secret-value"
	cfg := strings.Replace(testConfigY, "    repository: acme/other-app\n", "    repository: acme/other-app\n    hmac_secret_env: OTHER_HMAC\n", 1)
	parsed, err := channel.ParseConfig([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	var logs relaytest.Buffer
	reg := prometheus.NewRegistry()
	api, err := New(t.Context(), Options{Config: parsed, Store: newBolt(t), AdminToken: adminToken, HMACSecret: hmacSecret, Registerer: reg,
		Getenv: func(string) string { return own }, Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)
	engine := gin.New()
	api.Mount(engine)
	var bodies strings.Builder
	send := func(method, path string, body []byte, h http.Header) *httptest.ResponseRecorder {
		req := httptest.NewRequestWithContext(t.Context(), method, path, strings.NewReader(string(body)))
		req.Header = h
		w := httptest.NewRecorder()
		engine.ServeHTTP(w, req)
		bodies.WriteString(w.Body.String())
		for k, v := range w.Header() {
			bodies.WriteString(k + ": " + strings.Join(v, ",") + "\n")
		}
		return w
	}
	w := send("POST", relayclient.TokensPath, mustJSON(t, relayclient.TokenRequest{Name: "t", Grants: grant(appID, access.Admin)}), adminHeader())
	var created relayclient.CreatedToken
	if err := json.Unmarshal(w.Body.Bytes(), &created); err != nil || w.Code != 201 {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	secrets := map[string]string{"token": created.Token, "token secret": created.Token[len(access.TokenPrefix)+13:],
		"bootstrap": adminToken, "hmac": hmacSecret, "per-app hmac": own}
	send("GET", relayclient.TokensPath, nil, tokenHeader(created.Token))
	send("GET", "/api/v1/apps/"+appID+"/channels", nil, tokenHeader(created.Token))
	send("GET", "/api/v1/apps/"+otherApp+"/channels", nil, tokenHeader(created.Token))
	send("GET", "/api/v1/apps/"+appID+"/channels", nil, tokenHeader(created.Token+"x"))
	send("GET", "/api/v1/apps/"+appID+"/channels", nil, tokenHeader(adminToken+"x"))
	send("GET", "/api/v1/apps/"+appID+"/audit", nil, adminHeader())
	b := testBundle("1.0.0", commitA)
	b.AppID = otherApp
	body := mustJSON(t, b)
	send("POST", "/api/v1/bundles", body, hmacHeaders(hmacSecret, time.Now(), body))
	send("POST", "/api/v1/bundles", body, hmacHeaders(own, time.Now(), body))
	send("DELETE", relayclient.TokensPath+"/"+created.Record.ID, nil, adminHeader())
	send("GET", "/api/v1/apps/"+appID+"/channels", nil, tokenHeader(created.Token))
	send("GET", "/api/v1/apps/"+otherApp+"/audit", nil, adminHeader())
	api.Close()

	// The token's text legitimately appears once: in the answer that created it.
	answers := strings.Replace(bodies.String(), created.Token, "", 1)
	for where, text := range map[string]string{"logs": logs.String(), "metrics": gatherText(t, reg), "answers": answers} {
		for name, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("the %s contain the %s", where, name)
			}
		}
	}
	if !strings.Contains(logs.String(), "authentication failed") {
		t.Errorf("the logs do not show the failed attempts:\n%s", logs.String())
	}
}

// A token's use is recorded (LastUsed) in the background, at most once a minute.
func TestTokenLastUsed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	tok := e.createToken(adminHeader(), relayclient.TokenRequest{Name: "x", Grants: grant(appID, access.Viewer)}, http.StatusCreated)
	if w := e.do("GET", "/api/v1/apps/"+appID+"/channels", nil, tokenHeader(tok.Token)); w.Code != 200 {
		t.Fatal(w.Code)
	}
	e.api.Close()
	got, err := e.store.GetToken(context.WithoutCancel(t.Context()), tok.Record.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.LastUsed.IsZero() {
		t.Errorf("LastUsed not recorded")
	}
	if e.api.tokens.touchDue(tok.Record.ID, time.Now(), TokenTouchInterval) {
		t.Errorf("a second use within a minute would be recorded again")
	}
}
