package control

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relayclient"
)

func TestRegisterOIDC(t *testing.T) {
	t.Parallel()
	now := time.Now()
	tests := []struct {
		name     string
		token    func(e *env) string
		body     func() *channel.Bundle
		wantCode int
		wantErr  string // error code of a refusal
		// for accepted registrations:
		wantChannel  string
		wantPromoted bool
		wantRef      string
	}{
		{
			name:     "valid push to main moves beta",
			token:    func(e *env) string { return e.issuer.token(t, e.issuer.claims(now)) },
			wantCode: http.StatusCreated, wantChannel: "beta", wantPromoted: true, wantRef: mainRef,
		},
		{
			name: "wrong audience",
			token: func(e *env) string {
				c := e.issuer.claims(now)
				c["aud"] = "https://someone-else.example.com"
				return e.issuer.token(t, c)
			},
			wantCode: http.StatusUnauthorized, wantErr: "invalid_token",
		},
		{
			name: "expired",
			token: func(e *env) string {
				c := e.issuer.claims(now.Add(-time.Hour))
				return e.issuer.token(t, c)
			},
			wantCode: http.StatusUnauthorized, wantErr: "token_expired",
		},
		{
			name: "another repository",
			token: func(e *env) string {
				c := e.issuer.claims(now)
				c["repository"] = "mallory/fork-of-mobile-app"
				return e.issuer.token(t, c)
			},
			wantCode: http.StatusForbidden, wantErr: "repository_not_allowed",
		},
		{
			name: "signed by another key with the issuer's key id",
			token: func(e *env) string {
				_, kid := e.issuer.current()
				return signJWT(t, testRSAKey(t, 1), kid, e.issuer.claims(now))
			},
			wantCode: http.StatusUnauthorized, wantErr: "invalid_token",
		},
		{
			name: "another issuer",
			token: func(e *env) string {
				c := e.issuer.claims(now)
				c["iss"] = "https://token.actions.githubusercontent.com"
				return e.issuer.token(t, c)
			},
			wantCode: http.StatusUnauthorized, wantErr: "invalid_token",
		},
		{
			name:     "not a JWT",
			token:    func(e *env) string { return "not.a.jwt" },
			wantCode: http.StatusUnauthorized, wantErr: "invalid_token",
		},
		{
			name: "token without GitHub claims",
			token: func(e *env) string {
				c := e.issuer.claims(now)
				delete(c, "sha")
				delete(c, "repository")
				return e.issuer.token(t, c)
			},
			wantCode: http.StatusUnauthorized, wantErr: "invalid_token",
		},
		{
			name: "pull request ref registers but moves nothing",
			token: func(e *env) string {
				c := e.issuer.claims(now)
				c["ref"] = "refs/pull/42/merge"
				c["event_name"] = "pull_request"
				return e.issuer.token(t, c)
			},
			wantCode: http.StatusCreated, wantChannel: "", wantPromoted: false, wantRef: "refs/pull/42/merge",
		},
		{
			name: "pull request with an explicit channel moves nothing",
			token: func(e *env) string {
				c := e.issuer.claims(now)
				c["ref"] = "refs/pull/42/merge"
				c["event_name"] = "pull_request"
				return e.issuer.token(t, c)
			},
			body: func() *channel.Bundle {
				b := testBundle("1.0.0", "")
				b.Channel = "production"
				return b
			},
			wantCode: http.StatusCreated, wantChannel: "production", wantPromoted: false, wantRef: "refs/pull/42/merge",
		},
		{
			name: "pull_request_target is refused",
			token: func(e *env) string {
				c := e.issuer.claims(now)
				c["event_name"] = "pull_request_target"
				return e.issuer.token(t, c)
			},
			wantCode: http.StatusForbidden, wantErr: "event_not_allowed",
		},
		{
			name: "pull_request registers but moves nothing",
			token: func(e *env) string {
				c := e.issuer.claims(now)
				c["event_name"] = "pull_request"
				return e.issuer.token(t, c)
			},
			wantCode: http.StatusCreated, wantChannel: "beta", wantPromoted: false, wantRef: "refs/heads/main",
		},
		{
			name: "tag ref moves production",
			token: func(e *env) string {
				c := e.issuer.claims(now)
				c["ref"] = "refs/tags/v1.0.0"
				return e.issuer.token(t, c)
			},
			wantCode: http.StatusCreated, wantChannel: "production", wantPromoted: true, wantRef: "refs/tags/v1.0.0",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{})
			before := e.snapshot()
			b := testBundle("1.0.0", "")
			if tc.body != nil {
				b = tc.body()
			}
			b.Ref = "" // ref and commit come from the token
			w := e.do("POST", "/api/v1/bundles", mustJSON(t, b), bearerHeader(tc.token(e)))
			if w.Code != tc.wantCode {
				t.Fatalf("status = %d, want %d: %s", w.Code, tc.wantCode, w.Body)
			}
			if tc.wantErr != "" {
				code, msg := errorBody(t, w)
				if code != tc.wantErr {
					t.Errorf("error = %q (%s), want %q", code, msg, tc.wantErr)
				}
				if got := w.Header().Get("WWW-Authenticate"); w.Code == http.StatusUnauthorized && got == "" {
					t.Error("401 without WWW-Authenticate")
				}
				e.unchanged(before)
				if n := e.changes.count(); n != 0 {
					t.Errorf("OnChange called %d times for a refusal", n)
				}
				return
			}
			r := decodeRegistration(t, w)
			if r.Channel != tc.wantChannel || r.Promoted != tc.wantPromoted || !r.Created {
				t.Errorf("registration = channel %q promoted %v created %v, want %q %v true (%s)", r.Channel, r.Promoted, r.Created, tc.wantChannel, tc.wantPromoted, r.Reason)
			}
			stored, err := e.store.GetBundle(t.Context(), appID, "1.0.0")
			if err != nil {
				t.Fatal(err)
			}
			if stored.Commit != commitA || stored.Ref != tc.wantRef || stored.Repository != repo {
				t.Errorf("stored commit/ref/repository = %q %q %q, want %q %q %q", stored.Commit, stored.Ref, stored.Repository, commitA, tc.wantRef, repo)
			}
			if tc.wantChannel != "" {
				st := e.state(tc.wantChannel)
				want := ""
				if tc.wantPromoted {
					want = "1.0.0"
				}
				if st.Version != want {
					t.Errorf("channel %s serves %q, want %q", tc.wantChannel, st.Version, want)
				}
			}
			for _, ch := range []string{"production", "beta", "staging"} {
				if ch != tc.wantChannel || !tc.wantPromoted {
					if v := e.state(ch).Version; v != "" {
						t.Errorf("channel %s moved to %q", ch, v)
					}
				}
			}
		})
	}
}

func TestRegisterOIDCTokenClaimsWinOverBody(t *testing.T) {
	t.Parallel()
	testRegisterOIDCTokenClaimsWinOverBody(t, newBolt)
}

func testRegisterOIDCTokenClaimsWinOverBody(t *testing.T, mk storeMaker) {
	e := newEnv(t, envOptions{store: mk(t)})
	b := testBundle("1.0.0", commitB)   // the body claims commitB…
	b.Ref = "refs/tags/channel/staging" // …and a ref that would move staging
	w := e.do("POST", "/api/v1/bundles", mustJSON(t, b), bearerHeader(e.issuer.token(t, e.issuer.claims(time.Now()))))
	if w.Code != http.StatusCreated {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	stored, err := e.store.GetBundle(t.Context(), appID, "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if stored.Commit != commitA || stored.Ref != mainRef {
		t.Errorf("stored commit, ref = %q, %q; want the token's %q, %q", stored.Commit, stored.Ref, commitA, mainRef)
	}
	if v := e.state("staging").Version; v != "" {
		t.Errorf("staging moved to %q from the body's ref", v)
	}
	if v := e.state("beta").Version; v != "1.0.0" {
		t.Errorf("beta = %q, want 1.0.0 (the token's ref)", v)
	}
}

func TestRegisterOIDCDiscoveryOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	for i, v := range []string{"1.0.0", "1.0.1", "1.0.2"} {
		w := e.do("POST", "/api/v1/bundles", mustJSON(t, testBundle(v, "")), bearerHeader(e.issuer.token(t, e.issuer.claims(time.Now()))))
		if w.Code != http.StatusCreated {
			t.Fatalf("registration %d: status %d: %s", i, w.Code, w.Body)
		}
	}
	if n := e.issuer.hits.Load(); n != 1 {
		t.Errorf("discovery fetched %d times, want 1", n)
	}
}

func TestRegisterOIDCIssuerDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	tok := e.issuer.token(t, e.issuer.claims(time.Now()))
	e.issuer.srv.Close()
	before := e.snapshot()
	w := e.do("POST", "/api/v1/bundles", mustJSON(t, testBundle("1.0.0", "")), bearerHeader(tok))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q, want 503 with Retry-After: %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	if code, _ := errorBody(t, w); code != "oidc_unavailable" {
		t.Errorf("error = %q, want oidc_unavailable", code)
	}
	e.unchanged(before)
}

func TestRegisterHMAC(t *testing.T) {
	t.Parallel()
	now := time.Now()
	tests := []struct {
		name     string
		env      envOptions
		headers  func(body []byte) http.Header
		wantCode int
		wantErr  string
	}{
		{"valid", envOptions{}, func(b []byte) http.Header { return hmacHeaders(hmacSecret, now, b) }, http.StatusCreated, ""},
		{"valid, clock 4 minutes ahead", envOptions{}, func(b []byte) http.Header { return hmacHeaders(hmacSecret, now.Add(4*time.Minute), b) }, http.StatusCreated, ""},
		{"stale", envOptions{}, func(b []byte) http.Header { return hmacHeaders(hmacSecret, now.Add(-6*time.Minute), b) }, http.StatusUnauthorized, "stale_signature"},
		{"from the future", envOptions{}, func(b []byte) http.Header { return hmacHeaders(hmacSecret, now.Add(6*time.Minute), b) }, http.StatusUnauthorized, "stale_signature"},
		{"wrong secret", envOptions{}, func(b []byte) http.Header { return hmacHeaders("guess", now, b) }, http.StatusUnauthorized, "bad_signature"},
		{"signature of another body", envOptions{}, func(b []byte) http.Header { return hmacHeaders(hmacSecret, now, append([]byte(" "), b...)) }, http.StatusUnauthorized, "bad_signature"},
		{"timestamp changed after signing", envOptions{}, func(b []byte) http.Header {
			h := hmacHeaders(hmacSecret, now, b)
			h.Set(relayclient.HeaderTimestamp, fmt.Sprint(now.Unix()+1))
			return h
		}, http.StatusUnauthorized, "bad_signature"},
		{"missing timestamp", envOptions{}, func(b []byte) http.Header {
			h := hmacHeaders(hmacSecret, now, b)
			h.Del(relayclient.HeaderTimestamp)
			return h
		}, http.StatusUnauthorized, "bad_signature"},
		{"no sha256= prefix", envOptions{}, func(b []byte) http.Header {
			h := hmacHeaders(hmacSecret, now, b)
			h.Set(relayclient.HeaderSignature, strings.TrimPrefix(h.Get(relayclient.HeaderSignature), "sha256="))
			return h
		}, http.StatusUnauthorized, "bad_signature"},
		{"no credentials", envOptions{}, func(b []byte) http.Header { return http.Header{} }, http.StatusUnauthorized, "unauthenticated"},
		{"basic auth", envOptions{}, func(b []byte) http.Header { return http.Header{"Authorization": {"Basic YTpi"}} }, http.StatusUnauthorized, "unauthenticated"},
		{"HMAC disabled", envOptions{noHMAC: true}, func(b []byte) http.Header { return hmacHeaders(hmacSecret, now, b) }, http.StatusUnauthorized, "hmac_disabled"},
		{"OIDC disabled", envOptions{noOIDC: true}, func(b []byte) http.Header { return bearerHeader("x.y.z") }, http.StatusUnauthorized, "oidc_disabled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.env)
			before := e.snapshot()
			body := mustJSON(t, testBundle("1.0.0", commitA))
			w := e.do("POST", "/api/v1/bundles", body, tc.headers(body))
			if w.Code != tc.wantCode {
				t.Fatalf("status = %d, want %d: %s", w.Code, tc.wantCode, w.Body)
			}
			if tc.wantErr == "" {
				r := decodeRegistration(t, w)
				if !r.Promoted || r.Channel != "beta" || r.Bundle.Repository != repo || r.Bundle.Commit != commitA || r.Bundle.CreatedAt.IsZero() {
					t.Errorf("registration = %+v", r)
				}
				return
			}
			if code, msg := errorBody(t, w); code != tc.wantErr {
				t.Errorf("error = %q (%s), want %q", code, msg, tc.wantErr)
			}
			e.unchanged(before)
		})
	}
}

func TestRegisterIdempotentAndConflict(t *testing.T) {
	t.Parallel()
	testRegisterIdempotentAndConflict(t, newBolt)
}

func testRegisterIdempotentAndConflict(t *testing.T, mk storeMaker) {
	e := newEnv(t, envOptions{store: mk(t)})
	b := testBundle("1.0.0", commitA)
	first := decodeRegistration(t, e.registerHMAC(b, http.StatusCreated))
	auditAfterFirst := e.audit()
	if len(auditAfterFirst) != 2 {
		t.Fatalf("audit after first registration = %+v, want register and promote", auditAfterFirst)
	}
	wantActions := []string{"promote", "register"} // newest first
	for i, a := range auditAfterFirst {
		if a.Action != wantActions[i] || a.Version != "1.0.0" || !strings.HasPrefix(a.Cause, "registration acme/mobile-app@"+commitA+" refs/heads/main") {
			t.Errorf("audit[%d] = %+v", i, a)
		}
	}

	// The same registration again is a no-op success.
	again := decodeRegistration(t, e.registerHMAC(b, http.StatusOK))
	if again.Created || again.Promoted {
		t.Errorf("re-registration created=%v promoted=%v, want false false", again.Created, again.Promoted)
	}
	if diff := cmp.Diff(first.Bundle, again.Bundle); diff != "" {
		t.Errorf("re-registration returned another bundle (-first +again):\n%s", diff)
	}

	// Same version, another checksum: 409 and nothing changes.
	before := e.snapshot()
	other := testBundle("1.0.0", commitA)
	other.Checksum = strings.Repeat("0", 64)
	other.SHA256 = other.Checksum
	body := mustJSON(t, other)
	w := e.do("POST", "/api/v1/bundles", body, hmacHeaders(hmacSecret, time.Now(), body))
	if w.Code != http.StatusConflict {
		t.Fatalf("conflicting registration: status %d: %s", w.Code, w.Body)
	}
	if code, msg := errorBody(t, w); code != "version_conflict" || !strings.Contains(msg, "another checksum") {
		t.Errorf("conflict error = %q %q", code, msg)
	}
	e.unchanged(before)
}

func TestRegisterLateRetryDoesNotMoveChannelBack(t *testing.T) {
	t.Parallel()
	testRegisterLateRetryDoesNotMoveChannelBack(t, newBolt)
}

func testRegisterLateRetryDoesNotMoveChannelBack(t *testing.T, mk storeMaker) {
	e := newEnv(t, envOptions{store: mk(t)})
	e.registerHMAC(testBundle("1.0.0", commitA), http.StatusCreated)
	e.registerHMAC(testBundle("1.0.1", commitB), http.StatusCreated)
	// A delayed retry of the first registration arrives.
	r := decodeRegistration(t, e.registerHMAC(testBundle("1.0.0", commitA), http.StatusOK))
	if r.Promoted {
		t.Error("late retry promoted")
	}
	if v := e.state("beta").Version; v != "1.0.1" {
		t.Errorf("beta = %q, want 1.0.1", v)
	}
}

func TestRegisterRetryCompletesInterruptedPromotion(t *testing.T) {
	t.Parallel()
	testRegisterRetryCompletesInterruptedPromotion(t, newBolt)
}

func testRegisterRetryCompletesInterruptedPromotion(t *testing.T, mk storeMaker) {
	e := newEnv(t, envOptions{store: mk(t)})
	e.store.failNext("UpdateState", 1)
	b := testBundle("1.0.0", commitA)
	body := mustJSON(t, b)
	w := e.do("POST", "/api/v1/bundles", body, hmacHeaders(hmacSecret, time.Now(), body))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q; want 503 with Retry-After: %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	if code, _ := errorBody(t, w); code != "store_unavailable" {
		t.Errorf("error = %q", code)
	}
	// The bundle was stored but the channel did not move; the action retries.
	r := decodeRegistration(t, e.registerHMAC(b, http.StatusOK))
	if !r.Promoted || e.state("beta").Version != "1.0.0" {
		t.Errorf("retry: promoted=%v beta=%q; want the interrupted promotion completed", r.Promoted, e.state("beta").Version)
	}
}

func TestRegisterReplyLost(t *testing.T) {
	t.Parallel()
	testRegisterReplyLost(t, newBolt)
}

// testRegisterReplyLost: the store commits the bundle but the relay never answers (killed,
// or the store's reply lost). The action's retry finds the bundle already stored; the
// register audit entry must exist all the same, exactly once.
func testRegisterReplyLost(t *testing.T, mk storeMaker) {
	e := newEnv(t, envOptions{store: mk(t)})
	e.store.loseNext("PutBundle", 1)
	b := testBundle("1.0.0", commitA)
	body := mustJSON(t, b)
	w := e.do("POST", "/api/v1/bundles", body, hmacHeaders(hmacSecret, time.Now(), body))
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503 (nothing acknowledged): %s", w.Code, w.Body)
	}
	r := decodeRegistration(t, e.registerHMAC(b, http.StatusOK))
	if r.Created {
		t.Errorf("retry created = true, want false (the first attempt stored the bundle)")
	}
	var registers []channel.AuditEntry
	for _, a := range e.audit() {
		if a.Action == "register" {
			registers = append(registers, a)
		}
	}
	if len(registers) != 1 || registers[0].Version != "1.0.0" || !strings.HasPrefix(registers[0].Cause, "registration acme/mobile-app@"+commitA) {
		t.Errorf("register audit entries after an acknowledged retry = %+v, want exactly one for 1.0.0", registers)
	}
}

func TestRegisterStoreUnavailable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	before := e.snapshot()
	e.store.failNext("PutBundle", 1)
	body := mustJSON(t, testBundle("1.0.0", commitA))
	w := e.do("POST", "/api/v1/bundles", body, hmacHeaders(hmacSecret, time.Now(), body))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != fmt.Sprint(RetryAfter) {
		t.Fatalf("status %d Retry-After %q: %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	e.unchanged(before)
}

func TestRegisterExplicitChannel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := testBundle("1.0.0", commitA)
	b.Channel = "staging"
	r := decodeRegistration(t, e.registerHMAC(b, http.StatusCreated))
	if r.Channel != "staging" || !r.Promoted {
		t.Errorf("registration = %+v", r)
	}
	if e.state("staging").Version != "1.0.0" || e.state("beta").Version != "" {
		t.Errorf("staging=%q beta=%q; want only staging moved", e.state("staging").Version, e.state("beta").Version)
	}

	before := e.snapshot()
	b = testBundle("1.0.1", commitB)
	b.Channel = "nightly"
	body := mustJSON(t, b)
	w := e.do("POST", "/api/v1/bundles", body, hmacHeaders(hmacSecret, time.Now(), body))
	if w.Code != http.StatusBadRequest {
		t.Fatalf("unknown channel: status %d: %s", w.Code, w.Body)
	}
	if code, _ := errorBody(t, w); code != "channel_not_found" {
		t.Errorf("error = %q", code)
	}
	e.unchanged(before)
}

func TestRegisterNoRuleMatches(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := testBundle("1.0.0", commitA)
	b.Ref = "refs/heads/feature/login"
	r := decodeRegistration(t, e.registerHMAC(b, http.StatusCreated))
	if r.Channel != "" || r.Promoted || !strings.Contains(r.Reason, "no rule") {
		t.Errorf("registration = %+v", r)
	}
	// The reason lists the app's rules, so the action can say which refs would ship.
	if !strings.Contains(r.Reason, "its rules: refs/heads/main → beta") {
		t.Errorf("reason %q does not list the app's rules", r.Reason)
	}
}

func TestRegisterRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		mutate   func(b *channel.Bundle)
		raw      string // body used instead of the bundle when set
		wantCode int
		wantErr  string
		wantMsg  string
	}{
		{name: "unknown field", raw: `{"app_id":"com.example.app","version":"1.0.0","evil":true}`, wantCode: 400, wantErr: "invalid_json", wantMsg: "evil"},
		{name: "two objects", raw: `{"app_id":"x"}{"app_id":"y"}`, wantCode: 400, wantErr: "invalid_json"},
		{name: "not JSON", raw: `app_id=x`, wantCode: 400, wantErr: "invalid_json"},
		{name: "array", raw: `[]`, wantCode: 400, wantErr: "invalid_json"},
		{name: "unknown app", mutate: func(b *channel.Bundle) { b.AppID = "com.example.nope" }, wantCode: 404, wantErr: "app_not_found"},
		{name: "empty version", mutate: func(b *channel.Bundle) { b.Version = "" }, wantCode: 400, wantErr: "invalid_bundle", wantMsg: "version: required"},
		{name: "builtin version", mutate: func(b *channel.Bundle) { b.Version = "builtin" }, wantCode: 400, wantErr: "invalid_bundle", wantMsg: "reserved"},
		{name: "unknown version", mutate: func(b *channel.Bundle) { b.Version = "unknown" }, wantCode: 400, wantErr: "invalid_bundle", wantMsg: "reserved"},
		{name: "version with slash", mutate: func(b *channel.Bundle) { b.Version = "1.0/../2" }, wantCode: 400, wantErr: "invalid_bundle"},
		{name: "ftp url", mutate: func(b *channel.Bundle) { b.URL = "ftp://example.com/web.zip" }, wantCode: 400, wantErr: "invalid_bundle", wantMsg: "url: must be an http or https URL"},
		{name: "url with credentials", mutate: func(b *channel.Bundle) { b.URL = "https://user:pw@example.com/web.zip" }, wantCode: 400, wantErr: "invalid_bundle", wantMsg: "credentials"},
		{name: "relative url", mutate: func(b *channel.Bundle) { b.URL = "/web.zip" }, wantCode: 400, wantErr: "invalid_bundle"},
		{name: "short checksum", mutate: func(b *channel.Bundle) { b.Checksum = "abc" }, wantCode: 400, wantErr: "invalid_bundle", wantMsg: "64 lowercase hex"},
		{name: "uppercase checksum", mutate: func(b *channel.Bundle) { b.Checksum = strings.ToUpper(b.Checksum) }, wantCode: 400, wantErr: "invalid_bundle"},
		{name: "plain checksum differs from sha256", mutate: func(b *channel.Bundle) { b.Checksum = strings.Repeat("1", 64) }, wantCode: 400, wantErr: "invalid_bundle", wantMsg: "equal sha256"},
		{name: "V3 checksum without session key", mutate: func(b *channel.Bundle) { b.Checksum = strings.Repeat("a", 512) }, wantCode: 400, wantErr: "invalid_bundle", wantMsg: "session_key is empty"},
		{name: "encrypted with plain checksum", mutate: func(b *channel.Bundle) {
			*b = *encryptedBundle("1.0.0", commitA)
			b.Checksum = b.SHA256
		}, wantCode: 400, wantErr: "invalid_bundle", wantMsg: "512 lowercase hex"},
		{name: "encrypted without key id", mutate: func(b *channel.Bundle) {
			*b = *encryptedBundle("1.0.0", commitA)
			b.KeyID = ""
		}, wantCode: 400, wantErr: "invalid_bundle", wantMsg: "key_id is required"},
		{name: "session key one part", mutate: func(b *channel.Bundle) {
			*b = *encryptedBundle("1.0.0", commitA)
			b.SessionKey = "abcd"
		}, wantCode: 400, wantErr: "invalid_bundle", wantMsg: "session_key"},
		{name: "session key short iv", mutate: func(b *channel.Bundle) {
			*b = *encryptedBundle("1.0.0", commitA)
			_, key, _ := strings.Cut(b.SessionKey, ":")
			b.SessionKey = "AAAA:" + key
		}, wantCode: 400, wantErr: "invalid_bundle", wantMsg: "IV must be 16 bytes"},
		{name: "key id without session key", mutate: func(b *channel.Bundle) { b.KeyID = "MIIBCgKCAQEAwsCct5LR" }, wantCode: 400, wantErr: "invalid_bundle", wantMsg: "key_id is set"},
		{name: "sha256 missing", mutate: func(b *channel.Bundle) { b.SHA256 = "" }, wantCode: 400, wantErr: "invalid_bundle", wantMsg: "sha256"},
		{name: "zero size", mutate: func(b *channel.Bundle) { b.Size = 0 }, wantCode: 400, wantErr: "invalid_bundle", wantMsg: "size"},
		{name: "negative size", mutate: func(b *channel.Bundle) { b.Size = -5 }, wantCode: 400, wantErr: "invalid_bundle", wantMsg: "size"},
		{name: "bad native range", mutate: func(b *channel.Bundle) { b.Native = ">=banana" }, wantCode: 400, wantErr: "invalid_bundle", wantMsg: "native"},
		{name: "short commit", mutate: func(b *channel.Bundle) { b.Commit = "6113728" }, wantCode: 400, wantErr: "invalid_bundle", wantMsg: "commit"},
		{name: "HMAC without commit", mutate: func(b *channel.Bundle) { b.Commit = "" }, wantCode: 400, wantErr: "invalid_bundle", wantMsg: "commit is required"},
		{name: "short ref", mutate: func(b *channel.Bundle) { b.Ref = "main" }, wantCode: 400, wantErr: "invalid_bundle", wantMsg: "ref"},
		{name: "created_at set", mutate: func(b *channel.Bundle) { b.CreatedAt = time.Unix(1, 0) }, wantCode: 400, wantErr: "invalid_bundle", wantMsg: "created_at"},
		{name: "foreign repository", mutate: func(b *channel.Bundle) { b.Repository = "mallory/app" }, wantCode: 403, wantErr: "repository_not_allowed"},
		{name: "manifest traversal", mutate: func(b *channel.Bundle) {
			b.Manifest = []channel.ManifestEntry{{FileName: "../../etc/passwd", FileHash: b.SHA256, DownloadURL: "https://cdn.example.com/x"}}
		}, wantCode: 400, wantErr: "invalid_bundle", wantMsg: "contains . or .. segments"},
		{name: "manifest absolute", mutate: func(b *channel.Bundle) {
			b.Manifest = []channel.ManifestEntry{{FileName: "/index.html", FileHash: b.SHA256, DownloadURL: "https://cdn.example.com/x"}}
		}, wantCode: 400, wantErr: "invalid_bundle", wantMsg: "absolute path"},
		{name: "manifest backslash", mutate: func(b *channel.Bundle) {
			b.Manifest = []channel.ManifestEntry{{FileName: "assets\\app.js", FileHash: b.SHA256, DownloadURL: "https://cdn.example.com/x"}}
		}, wantCode: 400, wantErr: "invalid_bundle", wantMsg: "backslash"},
		{name: "manifest NUL", mutate: func(b *channel.Bundle) {
			b.Manifest = []channel.ManifestEntry{{FileName: "index.html\x00.png", FileHash: b.SHA256, DownloadURL: "https://cdn.example.com/x"}}
		}, wantCode: 400, wantErr: "invalid_bundle", wantMsg: "NUL"},
		{name: "manifest duplicate target", mutate: func(b *channel.Bundle) {
			b.Manifest = []channel.ManifestEntry{
				{FileName: "app.js", FileHash: b.SHA256, DownloadURL: "https://cdn.example.com/a"},
				{FileName: "app.js.br", FileHash: b.SHA256, DownloadURL: "https://cdn.example.com/b"},
			}
		}, wantCode: 400, wantErr: "invalid_bundle", wantMsg: "same file"},
		{name: "manifest bad hash", mutate: func(b *channel.Bundle) {
			b.Manifest = []channel.ManifestEntry{{FileName: "index.html", FileHash: "nothex", DownloadURL: "https://cdn.example.com/x"}}
		}, wantCode: 400, wantErr: "invalid_bundle", wantMsg: "file_hash"},
		{name: "every problem at once", mutate: func(b *channel.Bundle) {
			b.Version, b.URL, b.Size = "", "nope", 0
		}, wantCode: 400, wantErr: "invalid_bundle", wantMsg: "size must be"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{})
			e.registerHMAC(testBundle("0.9.0", commitC), http.StatusCreated)
			before := e.snapshot()
			var body []byte
			if tc.raw != "" {
				body = []byte(tc.raw)
			} else {
				b := testBundle("1.0.0", commitA)
				tc.mutate(b)
				body = mustJSON(t, b)
			}
			w := e.do("POST", "/api/v1/bundles", body, hmacHeaders(hmacSecret, time.Now(), body))
			if w.Code != tc.wantCode {
				t.Fatalf("status = %d, want %d: %s", w.Code, tc.wantCode, w.Body)
			}
			code, msg := errorBody(t, w)
			if code != tc.wantErr || !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("error = %q %q, want %q containing %q", code, msg, tc.wantErr, tc.wantMsg)
			}
			e.unchanged(before)
		})
	}
}

func TestRegisterEveryProblemListed(t *testing.T) {
	t.Parallel()
	b := testBundle("", commitA)
	b.URL, b.Size, b.SHA256 = "nope", 0, "x"
	_, err := parseBundle(mustJSON(t, b))
	if err == nil {
		t.Fatal("parseBundle accepted a bad bundle")
	}
	for _, want := range []string{"version: required", "url:", "size must be", "sha256 must be"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not list %q", err, want)
		}
	}
}

func TestRegisterEncryptedBundle(t *testing.T) {
	t.Parallel()
	testRegisterEncryptedBundle(t, newBolt)
}

func testRegisterEncryptedBundle(t *testing.T, mk storeMaker) {
	e := newEnv(t, envOptions{store: mk(t)})
	b := encryptedBundle("2.0.0", commitA)
	r := decodeRegistration(t, e.registerHMAC(b, http.StatusCreated))
	b.Repository = repo
	b.CreatedAt = r.Bundle.CreatedAt
	if diff := cmp.Diff(b, r.Bundle); diff != "" {
		t.Errorf("stored bundle (-sent +stored):\n%s", diff)
	}
}

func TestRegisterBodyTooLarge(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	before := e.snapshot()
	body := make([]byte, MaxRegistrationBody+1)
	w := e.do("POST", "/api/v1/bundles", body, hmacHeaders(hmacSecret, time.Now(), body))
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	e.unchanged(before)
}

// TestHMACShellRecipe runs the openssl one-liner documented in docs/admin-api.md and
// registers with the signature it computes.
func TestHMACShellRecipe(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "admin-api.md"))
	if err != nil {
		t.Fatal(err)
	}
	var sigLine string
	for _, line := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(line, "SIG=$(") && strings.Contains(line, "openssl dgst") {
			sigLine = line
		}
	}
	if sigLine == "" {
		t.Fatal("docs/admin-api.md has no SIG=$(… openssl dgst …) line")
	}
	dir := t.TempDir()
	body := mustJSON(t, testBundle("1.0.0", commitA))
	if err := os.WriteFile(filepath.Join(dir, "bundle.json"), body, 0o600); err != nil {
		t.Fatal(err)
	}
	script := "set -eu\nBODY=$(cat bundle.json)\nTS=$(date +%s)\n" + sigLine + "\nprintf '%s %s' \"$TS\" \"$SIG\"\n"
	cmd := exec.CommandContext(t.Context(), "sh", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "FERRY_HMAC_SECRET="+hmacSecret)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("recipe: %v\n%s", err, out)
	}
	ts, sig, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	e := newEnv(t, envOptions{})
	h := http.Header{"Content-Type": {"application/json"}, relayclient.HeaderTimestamp: {ts}, relayclient.HeaderSignature: {"sha256=" + sig}}
	if w := e.do("POST", "/api/v1/bundles", body, h); w.Code != http.StatusCreated {
		t.Fatalf("registration signed by the documented recipe: %d %s", w.Code, w.Body)
	}
}

func TestRegisterRuleNamesUnconfiguredChannel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := testBundle("1.0.0", commitA)
	b.Ref = "refs/tags/channel/nightly" // "refs/tags/channel/*" -> "$1" = nightly, not configured
	r := decodeRegistration(t, e.registerHMAC(b, http.StatusCreated))
	if r.Promoted || r.Channel != "" || !strings.Contains(r.Reason, "not configured") {
		t.Errorf("registration = %+v", r)
	}
	states, err := e.store.ListStates(t.Context(), appID)
	if err != nil || len(states) != 0 {
		t.Errorf("states = %+v, %v; want none written", states, err)
	}
}

func TestRegisterCredentialsCheckedBeforeTheBodyIsRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	huge := make([]byte, MaxRegistrationBody+1)
	c := e.issuer.claims(time.Now())
	c["aud"] = "someone-else"
	if w := e.do("POST", "/api/v1/bundles", huge, bearerHeader(e.issuer.token(t, c))); w.Code != http.StatusUnauthorized {
		t.Errorf("bad token with a huge body: %d, want 401 before reading it", w.Code)
	}
	if w := e.do("POST", "/api/v1/bundles", huge, hmacHeaders(hmacSecret, time.Now().Add(-time.Hour), huge)); w.Code != http.StatusUnauthorized {
		t.Errorf("stale HMAC with a huge body: %d, want 401 before reading it", w.Code)
	}
}

func TestRegisterOIDCKeyRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	oldKey, oldKID := e.issuer.current()
	oldToken := e.issuer.token(t, e.issuer.claims(time.Now()))
	if w := e.do("POST", "/api/v1/bundles", mustJSON(t, testBundle("1.0.0", "")), bearerHeader(oldToken)); w.Code != http.StatusCreated {
		t.Fatalf("before rotation: %d %s", w.Code, w.Body)
	}
	e.issuer.rotate(testRSAKey(t, 2), "test-key-2")
	// A token with the new key id makes the relay fetch the JWKS again.
	if w := e.do("POST", "/api/v1/bundles", mustJSON(t, testBundle("1.0.1", "")), bearerHeader(e.issuer.token(t, e.issuer.claims(time.Now())))); w.Code != http.StatusCreated {
		t.Fatalf("after rotation: %d %s", w.Code, w.Body)
	}
	// The retired key is no longer trusted.
	before := e.snapshot()
	if w := e.do("POST", "/api/v1/bundles", mustJSON(t, testBundle("1.0.2", "")), bearerHeader(signJWT(t, oldKey, oldKID, e.issuer.claims(time.Now())))); w.Code != http.StatusUnauthorized {
		t.Errorf("retired key: %d %s, want 401", w.Code, w.Body)
	}
	e.unchanged(before)
}

// A deterministic rebuild of the same commit for a tag registers the same bundle again: it
// is not a new bundle, but it moves the tag's channel.
func TestRegisterSameBundleFromATagMovesTheTagsChannel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.registerHMAC(testBundle("1.4.0", commitA), http.StatusCreated) // main -> beta
	b := testBundle("1.4.0", commitA)
	b.Ref = "refs/tags/v1.4.0"
	r := decodeRegistration(t, e.registerHMAC(b, http.StatusOK))
	if r.Created || !r.Promoted || r.Channel != "production" {
		t.Errorf("registration = %+v", r)
	}
	if e.state("production").Version != "1.4.0" || e.state("beta").Version != "1.4.0" {
		t.Errorf("production=%q beta=%q", e.state("production").Version, e.state("beta").Version)
	}
	if a := e.audit()[0]; a.Channel != "production" || a.Cause != "registration acme/mobile-app@"+commitA+" refs/tags/v1.4.0" {
		t.Errorf("audit = %+v", a)
	}
}

// Only runs of events whose token names the code built may register; runs a fork can
// trigger against the base branch are refused with a message naming the event and the
// allowed ones.
func TestRegistrationEventAllowList(t *testing.T) {
	t.Parallel()
	now := time.Now()
	for _, ev := range []string{"push", "workflow_dispatch", "release", "schedule"} {
		t.Run(ev, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{})
			c := e.issuer.claims(now)
			c["event_name"] = ev
			b := testBundle("1.0.0", "")
			b.Ref = ""
			w := e.do("POST", "/api/v1/bundles", mustJSON(t, b), bearerHeader(e.issuer.token(t, c)))
			if w.Code != http.StatusCreated {
				t.Fatalf("status = %d, want 201: %s", w.Code, w.Body)
			}
			if r := decodeRegistration(t, w); !r.Promoted || e.state("beta").Version != "1.0.0" {
				t.Errorf("a %s run did not move beta: %+v", ev, r)
			}
		})
	}
	for _, ev := range []string{"workflow_run", "issue_comment", "pull_request_review", "pull_request_review_comment", "pull_request_target", "merge_group", ""} {
		t.Run("refused_"+ev, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{})
			before := e.snapshot()
			c := e.issuer.claims(now)
			if ev == "" {
				delete(c, "event_name")
			} else {
				c["event_name"] = ev
			}
			b := testBundle("1.0.0", "")
			b.Ref = ""
			w := e.do("POST", "/api/v1/bundles", mustJSON(t, b), bearerHeader(e.issuer.token(t, c)))
			if w.Code != http.StatusForbidden {
				t.Fatalf("status = %d, want 403: %s", w.Code, w.Body)
			}
			code, msg := errorBody(t, w)
			if code != "event_not_allowed" || !strings.Contains(msg, fmt.Sprintf("%q", ev)) || !strings.Contains(msg, "push, workflow_dispatch, release, schedule, pull_request") {
				t.Errorf("error = %s: %s; want event_not_allowed naming %q and the allowed events", code, msg, ev)
			}
			e.unchanged(before)
		})
	}
}

// An OIDC registration may name a channel explicitly only if the ref its token carries
// may move that channel: the app's rules map the ref there, or the channel's allow_refs
// list it. Otherwise the bundle registers and moves nothing, and the answer says why; any
// branch's workflow could otherwise move production.
func TestRegisterOIDCExplicitChannelNeedsTheRef(t *testing.T) {
	t.Parallel()
	cfg := `
apps:
  - id: com.example.app
    repository: acme/mobile-app
    default_channel: production
    channels:
      production: { allow_refs: ["refs/heads/release/*"] }
      beta: {}
      staging: {}
    rules:
      - { ref: refs/heads/main, channel: beta }
      - { ref: "refs/tags/v*", channel: production }
      - { ref: "refs/tags/channel/*", channel: "$1" }
`
	now := time.Now()
	tests := []struct {
		name, ref, event, channel string
		wantPromoted              bool
	}{
		{"feature branch push names production", "refs/heads/feature-x", "push", "production", false},
		{"feature branch dispatch names production", "refs/heads/feature-x", "workflow_dispatch", "production", false},
		{"feature branch schedule names beta", "refs/heads/feature-x", "schedule", "beta", false},
		{"main names production", mainRef, "push", "production", false},
		{"main names its own channel", mainRef, "push", "beta", true},
		{"tag names production", "refs/tags/v2.0.0", "release", "production", true},
		{"channel tag names another channel", "refs/tags/channel/staging", "push", "beta", false},
		{"channel tag names its channel", "refs/tags/channel/staging", "push", "staging", true},
		{"allow_refs lists the branch", "refs/heads/release/2.0", "workflow_dispatch", "production", true},
		{"allow_refs is per channel", "refs/heads/release/2.0", "push", "staging", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{config: cfg})
			c := e.issuer.claims(now)
			c["ref"], c["event_name"] = tc.ref, tc.event
			b := testBundle("1.0.0", "")
			b.Ref, b.Channel = "", tc.channel
			w := e.do("POST", "/api/v1/bundles", mustJSON(t, b), bearerHeader(e.issuer.token(t, c)))
			if w.Code != http.StatusCreated {
				t.Fatalf("status %d, want 201 (the bundle registers either way): %s", w.Code, w.Body)
			}
			r := decodeRegistration(t, w)
			if r.Promoted != tc.wantPromoted {
				t.Errorf("promoted = %v, want %v (%s)", r.Promoted, tc.wantPromoted, r.Reason)
			}
			if !tc.wantPromoted && !strings.Contains(r.Reason, "may not name channel") {
				t.Errorf("reason = %q, want it to say the ref may not name the channel", r.Reason)
			}
			for _, ch := range []string{"production", "beta", "staging"} {
				want := ""
				if tc.wantPromoted && ch == tc.channel {
					want = "1.0.0"
				}
				if v := e.state(ch).Version; v != want {
					t.Errorf("channel %s serves %q, want %q", ch, v, want)
				}
			}
			if _, err := e.store.GetBundle(t.Context(), appID, "1.0.0"); err != nil {
				t.Errorf("bundle not registered: %v", err)
			}
		})
	}
}

// HMAC registrations hold the relay-wide shared secret, which is full trust: their
// explicit channel is honoured whatever the ref (documented in docs/security.md).
func TestRegisterHMACExplicitChannelIsFullTrust(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := testBundle("1.0.0", commitA)
	b.Ref, b.Channel = "refs/heads/feature-x", "production"
	if r := decodeRegistration(t, e.registerHMAC(b, http.StatusCreated)); !r.Promoted || e.state("production").Version != "1.0.0" {
		t.Errorf("HMAC registration with an explicit channel: %+v, production = %q", r, e.state("production").Version)
	}
}

// The token's iat is checked: not in the future beyond OIDCClockSkew, not older than
// OIDCMaxTokenAge, and present.
func TestRegisterOIDCIssuedAt(t *testing.T) {
	t.Parallel()
	now := time.Now()
	for _, tc := range []struct {
		name     string
		iat      any // nil: no claim
		wantCode int
		wantErr  string
	}{
		{"now", now.Unix(), http.StatusCreated, ""},
		{"within the skew", now.Add(OIDCClockSkew / 2).Unix(), http.StatusCreated, ""},
		{"in the future", now.Add(10 * time.Minute).Unix(), http.StatusUnauthorized, "invalid_token"},
		{"older than a token lives", now.Add(-OIDCMaxTokenAge - time.Minute).Unix(), http.StatusUnauthorized, "token_expired"},
		{"absent", nil, http.StatusUnauthorized, "invalid_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{})
			before := e.snapshot()
			c := e.issuer.claims(now)
			c["exp"] = now.Add(time.Hour).Unix()
			if tc.iat == nil {
				delete(c, "iat")
			} else {
				c["iat"] = tc.iat
			}
			b := testBundle("1.0.0", "")
			b.Ref = ""
			w := e.do("POST", "/api/v1/bundles", mustJSON(t, b), bearerHeader(e.issuer.token(t, c)))
			if w.Code != tc.wantCode {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.wantCode, w.Body)
			}
			if tc.wantErr != "" {
				if code, msg := errorBody(t, w); code != tc.wantErr {
					t.Errorf("error = %s (%s), want %s", code, msg, tc.wantErr)
				}
				e.unchanged(before)
			}
		})
	}
}
