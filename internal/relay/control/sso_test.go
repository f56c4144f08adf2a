package control

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relay"
	"github.com/ferryhq/ferry/internal/relay/relaytest"
	"github.com/ferryhq/ferry/internal/relayclient"
	"github.com/ferryhq/ferry/internal/store"
	"github.com/ferryhq/ferry/internal/testpeers"
)

// The people of the test OpenID Provider, and the secret's variable.
var ssoUsers = relaytest.SSOUsers

const ssoSecretEnv = relaytest.SSOSecretEnv

// ssoYAML is testConfigY with an access.sso section for op, relay public URL and client,
// followed by extra keys of that section.
func ssoYAML(issuer, publicURL, clientID, extra string) string {
	return testConfigY + relaytest.SSOConfig(issuer, publicURL, clientID) + extra
}

// ssoRelay is one relay instance (the real relay server with the control plane mounted)
// with single sign-on, on a real HTTP listener.
type ssoRelay struct {
	srv   *httptest.Server
	url   string
	api   *API
	store fullStore
	// offset moves the relay's clock.
	offset atomic.Int64
}

// reserveRelay makes a listener whose URL the provider must know before the relay starts.
func reserveRelay(t *testing.T) *ssoRelay {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	t.Cleanup(srv.Close)
	return &ssoRelay{srv: srv, url: "http://" + srv.Listener.Addr().String()}
}

func (r *ssoRelay) callback() string { return r.url + "/auth/callback" }

// start runs the relay with config yml on st, logging into logs.
func (r *ssoRelay) start(t *testing.T, st fullStore, yml string, logs io.Writer) {
	t.Helper()
	cfg, err := channel.ParseConfig([]byte(yml))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(logs, tlogWriter{t}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	rs, err := relay.New(relay.Options{Config: cfg, Store: st, Logger: logger, SnapshotTTL: time.Hour, RateLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	api, err := New(t.Context(), Options{Config: cfg, Store: st, Logger: logger, AdminToken: adminToken,
		Getenv: func(k string) string {
			if k == ssoSecretEnv {
				return testpeers.OPWebClientSecret
			}
			return ""
		},
		Now: func() time.Time { return time.Now().Add(time.Duration(r.offset.Load())) }})
	if err != nil {
		t.Fatal(err)
	}
	rs.Mount(api)
	// Forward the store's notifications (a logout through another instance) as the relay
	// binary does.
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan struct{})
	go func() { defer close(done); rs.Watch(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	r.api, r.store = api, st
	r.srv.Config.Handler = rs.Handler()
	r.srv.Start()
}

// browser is an HTTP client with a cookie jar that follows redirects, like a browser,
// unless stop says to stop before a request.
type browser struct {
	t    *testing.T
	jar  *cookiejar.Jar
	c    *http.Client
	stop func(*http.Request) bool
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, jar: jar}
	b.c = &http.Client{Jar: jar, Timeout: 20 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) > 20 {
			return fmt.Errorf("too many redirects")
		}
		if b.stop != nil && b.stop(req) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	return b
}

// get sends GET url and returns the answer with its body read.
func (b *browser) get(u string) (*answer, string) {
	b.t.Helper()
	resp, err := b.c.Get(u)
	if err != nil {
		b.t.Fatalf("GET %s: %v", u, err)
	}
	return readResp(b.t, resp)
}

// answer is a response whose body was read and closed.
type answer struct {
	StatusCode int
	Request    *http.Request
	Header     http.Header
	cookies    []*http.Cookie
}

// Cookies returns the cookies the answer set.
func (a *answer) Cookies() []*http.Cookie { return a.cookies }

func readResp(t *testing.T, resp *http.Response) (*answer, string) {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return &answer{StatusCode: resp.StatusCode, Request: resp.Request, Header: resp.Header, cookies: resp.Cookies()}, string(body)
}

var formID = regexp.MustCompile(`name="id" value="([^"]+)"`)

// signIn starts at startURL (a relay's /auth/login...), fills the provider's login form as
// user and returns the last answer (where the redirects ended, or stopped).
func (b *browser) signIn(startURL, user, pass string) (*answer, string) {
	b.t.Helper()
	resp, page := b.get(startURL)
	m := formID.FindStringSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		b.t.Fatalf("GET %s ended at %s %d, not at the provider's login form:\n%.500s", startURL, resp.Request.URL, resp.StatusCode, page)
	}
	action := resp.Request.URL.ResolveReference(&url.URL{Path: "/login/username"})
	r, err := b.c.PostForm(action.String(), url.Values{"id": {m[1]}, "username": {user}, "password": {pass}})
	if err != nil {
		b.t.Fatalf("POST login form: %v", err)
	}
	return readResp(b.t, r)
}

// cookie returns the value of the jar's cookie name for u.
func (b *browser) cookie(u, name string) string {
	pu, _ := url.Parse(u)
	for _, c := range b.jar.Cookies(pu) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// whoami asks relayURL who the session is, with the jar's cookies plus hdr.
func (b *browser) whoami(relayURL string, hdr http.Header) (int, relayclient.WhoAmI, string) {
	b.t.Helper()
	req, _ := http.NewRequestWithContext(b.t.Context(), "GET", relayURL+"/auth/whoami", nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	raw, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	resp, body := readResp(b.t, raw)
	var w relayclient.WhoAmI
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal([]byte(body), &w); err != nil {
			b.t.Fatalf("whoami body %q: %v", body, err)
		}
	}
	return resp.StatusCode, w, body
}

// post sends POST relayURL+path with the jar's cookies, hdr and form.
func (b *browser) post(u string, hdr http.Header, form url.Values) (int, string) {
	b.t.Helper()
	req, _ := http.NewRequestWithContext(b.t.Context(), "POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header[k] = v
	}
	raw, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	resp, body := readResp(b.t, raw)
	return resp.StatusCode, body
}

func errCode(body string) string {
	var e struct{ Error string }
	_ = json.Unmarshal([]byte(body), &e)
	return e.Error
}

func newRedisStore(t *testing.T, addr string) fullStore {
	t.Helper()
	st, err := store.OpenRedis(t.Context(), "redis://"+addr+"/0", store.RedisOptions{})
	if err != nil {
		t.Fatalf("OpenRedis: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestSSOSignInOnBoltAndRedis drives the browser flow end to end against the real provider,
// on both stores: sign in, whoami, sign out, the cookie refused after.
func TestSSOSignInOnBoltAndRedis(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"bolt", "redis"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			var st fullStore
			if kind == "bolt" {
				st = newBolt(t)
			} else {
				st = newRedisStore(t, testpeers.Redis(t).Addr)
			}
			r := reserveRelay(t)
			op := testpeers.OpenIDProvider(t, testpeers.OPOptions{RedirectURIs: []string{r.callback()}, Users: ssoUsers})
			logs := &relaytest.Buffer{}
			r.start(t, st, ssoYAML(op.Issuer, r.url, testpeers.OPWebClientID, ""), logs)
			testSignInWhoamiLogout(t, r, r, logs)
		})
	}
}

// testSignInWhoamiLogout signs ana in on a, uses the session on b, signs out on b, and
// checks a refuses the cookie at once.
func testSignInWhoamiLogout(t *testing.T, a, b *ssoRelay, logs *relaytest.Buffer) {
	br := newBrowser(t)
	var cb string
	br.stop = func(req *http.Request) bool {
		if isCallback(req, a.url) {
			cb = req.URL.String()
		}
		return false
	}
	resp, body := br.signIn(a.url+"/auth/login?return=/auth/whoami", "ana", "ana-pass")
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/auth/whoami" {
		t.Fatalf("sign-in ended at %s %d: %s", resp.Request.URL, resp.StatusCode, body)
	}
	var w relayclient.WhoAmI
	if err := json.Unmarshal([]byte(body), &w); err != nil {
		t.Fatal(err)
	}
	if w.Email != "ana@example.com" || w.Subject != "u-ana" || w.Name != "Ana Admin" || len(w.Grants) != 1 || w.Grants[0] != "*:admin" || w.CSRF == "" {
		t.Fatalf("whoami = %+v", w)
	}
	cookie := br.cookie(a.url, access.SessionCookie)
	if !strings.HasPrefix(cookie, access.SessionPrefix) {
		t.Fatalf("session cookie %q", cookie)
	}
	// The store keeps only the hash of the id.
	if s, err := a.store.GetSession(t.Context(), access.HashToken(cookie)); err != nil || s.Email != "ana@example.com" {
		t.Fatalf("stored session: %+v, %v", s, err)
	}
	if _, err := a.store.GetSession(t.Context(), cookie); err == nil {
		t.Fatal("the session is stored under its id in plain")
	}
	// The other instance knows the session (the jar sends the cookie to it: same host).
	if code, w2, body := br.whoami(b.url, nil); code != http.StatusOK || w2.Subject != "u-ana" {
		t.Fatalf("whoami on the other instance: %d %s", code, body)
	}
	// Signing out needs the CSRF token with a cookie session.
	if code, body := br.post(b.url+"/auth/logout", nil, nil); code != http.StatusForbidden || errCode(body) != "csrf" {
		t.Fatalf("logout without CSRF: %d %s", code, body)
	}
	if code, body := br.post(b.url+"/auth/logout", http.Header{CSRFHeader: {"wrong" + w.CSRF}}, nil); code != http.StatusForbidden {
		t.Fatalf("logout with a wrong CSRF token: %d %s", code, body)
	}
	if code, _, body := br.whoami(a.url, nil); code != http.StatusOK {
		t.Fatalf("a refused logout ended the session: %d %s", code, body)
	}
	// Let the first instance's subscription settle (Redis pub/sub drops what is published
	// before a subscriber listens).
	time.Sleep(200 * time.Millisecond)
	if code, body := br.post(b.url+"/auth/logout", nil, url.Values{"csrf": {w.CSRF}}); code != http.StatusNoContent {
		t.Fatalf("logout: %d %s", code, body)
	}
	if br.cookie(a.url, access.SessionCookie) != "" {
		t.Error("logout left the session cookie in the browser")
	}
	// The old cookie, replayed, is refused by the first instance, which had the session
	// cached, as soon as the store's notification arrives: well within SessionCacheTTL.
	replay := func() (int, string) {
		code, _, body := br.whoami(a.url, http.Header{"Cookie": {access.SessionCookie + "=" + cookie}})
		return code, body
	}
	start := time.Now()
	relaytest.WaitFor(t, SessionCacheTTL/2, "the first instance to refuse the session ended on the second", func() bool {
		code, _ := replay()
		return code == http.StatusUnauthorized
	})
	t.Logf("the logout reached the first instance after %v", time.Since(start))
	if code, body := replay(); code != http.StatusUnauthorized || errCode(body) != "session_ended" {
		t.Fatalf("cookie after logout: %d %s", code, body)
	}
	checkNoSecrets(t, logs.String(), map[string]string{"session id": cookie, "csrf": w.CSRF,
		"code": queryParam(cb, "code"), "state": queryParam(cb, "state"), "client secret": testpeers.OPWebClientSecret + "\x00"})
}

func queryParam(u, name string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Query().Get(name)
}

// checkNoSecrets fails if logs contain any of the values.
func checkNoSecrets(t *testing.T, logs string, values map[string]string) {
	t.Helper()
	if logs == "" {
		t.Fatal("no logs captured")
	}
	for what, v := range values {
		if v == "" {
			t.Errorf("no %s to look for in the logs", what)
			continue
		}
		if strings.Contains(logs, v) {
			t.Errorf("the logs contain the %s", what)
		}
	}
}

// TestSSOTwoInstancesOnOneRedis: sign in on one relay, use the cookie on the other, sign
// out on the other, and the first refuses the cookie at once.
func TestSSOTwoInstancesOnOneRedis(t *testing.T) {
	t.Parallel()
	rdb := testpeers.Redis(t)
	a, b := reserveRelay(t), reserveRelay(t)
	op := testpeers.OpenIDProvider(t, testpeers.OPOptions{RedirectURIs: []string{a.callback(), b.callback()}, Users: ssoUsers})
	logs := &relaytest.Buffer{}
	a.start(t, newRedisStore(t, rdb.Addr), ssoYAML(op.Issuer, a.url, testpeers.OPWebClientID, ""), logs)
	b.start(t, newRedisStore(t, rdb.Addr), ssoYAML(op.Issuer, b.url, testpeers.OPWebClientID, ""), logs)
	testSignInWhoamiLogout(t, a, b, logs)
}

// ssoSetup is one relay on bbolt with its own provider.
func ssoSetup(t *testing.T, extra string) (*ssoRelay, *testpeers.OP) {
	t.Helper()
	r := reserveRelay(t)
	op := testpeers.OpenIDProvider(t, testpeers.OPOptions{RedirectURIs: []string{r.callback()}, Users: ssoUsers})
	r.start(t, newBolt(t), ssoYAML(op.Issuer, r.url, testpeers.OPWebClientID, extra), &relaytest.Buffer{})
	return r, op
}

// isCallback reports whether req goes to the callback of the relay at relayURL (the test
// provider has an /auth/callback of its own).
func isCallback(req *http.Request, relayURL string) bool {
	return req.URL.Path == "/auth/callback" && "http://"+req.URL.Host == relayURL
}

// stopAtCallback makes the browser stop before the relay's callback and returns a function
// giving its URL.
func stopAtCallback(b *browser, relayURL string) func() string {
	var cb string
	b.stop = func(req *http.Request) bool {
		if isCallback(req, relayURL) {
			cb = req.URL.String()
			return true
		}
		return false
	}
	return func() string { return cb }
}

// TestSSOHostile runs the refusals against one relay and provider.
func TestSSOHostile(t *testing.T) {
	t.Parallel()
	r, _ := ssoSetup(t, "    session_idle: 1h\n    session_max: 3h\n")
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	t.Run("CallbackReplayed", func(t *testing.T) {
		b := newBrowser(t)
		cb := stopAtCallback(b, r.url)
		b.signIn(r.url+"/auth/login", "ana", "ana-pass")
		b.stop = nil
		req, _ := http.NewRequestWithContext(t.Context(), "GET", cb(), nil)
		for _, c := range b.jar.Cookies(req.URL) {
			req.AddCookie(c)
		}
		raw, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp, body := readResp(t, raw)
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/" {
			t.Fatalf("callback: %d %s %s", resp.StatusCode, resp.Header.Get("Location"), body)
		}
		var sc *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == access.SessionCookie {
				sc = c
			}
		}
		if sc == nil || !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode || sc.Path != "/" || sc.Secure || sc.MaxAge <= 0 {
			t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Lax, Path=/, not Secure over http, a max age", sc)
		}
		resp, body = b.get(cb())
		if resp.StatusCode != http.StatusBadRequest || errCode(body) != "invalid_state" {
			t.Fatalf("replayed callback: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("StateFromAnotherBrowser", func(t *testing.T) {
		for _, name := range []string{"other browser", "no cookie"} {
			victim := newBrowser(t)
			cb := stopAtCallback(victim, r.url)
			victim.signIn(r.url+"/auth/login", "ana", "ana-pass")
			var resp *answer
			var body string
			if name == "other browser" {
				attacker := newBrowser(t)
				attacker.get(r.url + "/auth/login") // the attacker's own binding cookie
				resp, body = attacker.get(cb())
			} else {
				resp, body = newBrowser(t).get(cb())
			}
			if resp.StatusCode != http.StatusBadRequest || errCode(body) != "wrong_browser" {
				t.Fatalf("%s: %d %s", name, resp.StatusCode, body)
			}
			// The state was used up by the refused attempt: the victim cannot be tricked later either.
			victim.stop = nil
			if resp, body := victim.get(cb()); resp.StatusCode != http.StatusBadRequest || errCode(body) != "invalid_state" {
				t.Fatalf("%s, then the victim: %d %s", name, resp.StatusCode, body)
			}
		}
	})

	t.Run("ForgedCookies", func(t *testing.T) {
		b := newBrowser(t)
		b.signIn(r.url+"/auth/login", "ana", "ana-pass")
		real := b.cookie(r.url, access.SessionCookie)
		tampered := real[:len(real)-1] + "a"
		if strings.HasSuffix(real, "a") {
			tampered = real[:len(real)-1] + "b"
		}
		random, _ := access.RandomID(randomBytes)
		for name, v := range map[string]string{"tampered": tampered, "random": access.SessionPrefix + random,
			"malformed": "ferrys_../../x", "no prefix": random, "hash of real": access.HashToken(real)} {
			code, _, body := newBrowser(t).whoami(r.url, http.Header{"Cookie": {access.SessionCookie + "=" + v}})
			if code != http.StatusUnauthorized {
				t.Errorf("%s cookie: %d %s", name, code, body)
			}
			code, _, body = newBrowser(t).whoami(r.url, http.Header{"Authorization": {"Bearer " + v}})
			if code != http.StatusUnauthorized {
				t.Errorf("%s bearer: %d %s", name, code, body)
			}
		}
		if code, _, body := newBrowser(t).whoami(r.url, http.Header{"Authorization": {"Bearer " + real}}); code != http.StatusOK {
			t.Errorf("the real session id as a bearer token: %d %s", code, body)
		}
	})

	t.Run("OpenRedirect", func(t *testing.T) {
		for _, ret := range []string{"//evil.example", "https://evil.example", "/\\evil.example", "\\\\evil.example",
			"evil.example", "/\r\nSet-Cookie:x", "javascript:alert(1)", "///evil.example"} {
			resp, body := newBrowser(t).get(r.url + "/auth/login?return=" + url.QueryEscape(ret))
			if resp.StatusCode != http.StatusBadRequest || errCode(body) != "bad_return" {
				t.Errorf("return=%q: %d %s", ret, resp.StatusCode, body)
			}
		}
	})

	t.Run("NoRoleAndDomains", func(t *testing.T) {
		for _, tc := range []struct{ user, code string }{
			{"bob", "no_role"},            // in the allowed domain, but no mapping matches
			{"eve", "domain_not_allowed"}, // mapped, but outside allowed_domains
			{"uno", "domain_not_allowed"}, // email not verified
		} {
			b := newBrowser(t)
			resp, body := b.signIn(r.url+"/auth/login", tc.user, tc.user+"-pass")
			if resp.StatusCode != http.StatusForbidden || errCode(body) != tc.code {
				t.Errorf("%s: %d %s", tc.user, resp.StatusCode, body)
			}
			if b.cookie(r.url, access.SessionCookie) != "" {
				t.Errorf("%s got a session cookie", tc.user)
			}
		}
	})

	t.Run("BadNonce", func(t *testing.T) {
		b := newBrowser(t)
		cb := stopAtCallback(b, r.url)
		b.signIn(r.url+"/auth/login", "ana", "ana-pass")
		state := queryParam(cb(), "state")
		l, err := r.store.TakeLogin(t.Context(), state)
		if err != nil {
			t.Fatal(err)
		}
		l.Nonce, _ = access.RandomID(randomBytes)
		if err := r.store.PutLogin(t.Context(), l); err != nil {
			t.Fatal(err)
		}
		b.stop = nil
		if resp, body := b.get(cb()); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "nonce") {
			t.Fatalf("callback with another nonce: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("ProviderError", func(t *testing.T) {
		b := newBrowser(t)
		var state string
		b.stop = func(req *http.Request) bool {
			if q := req.URL.Query(); q.Has("state") && "http://"+req.URL.Host != r.url {
				state = q.Get("state")
			}
			return false
		}
		b.get(r.url + "/auth/login") // at the provider's login form, the person cancels
		resp, body := b.get(r.url + "/auth/callback?error=access_denied&state=" + state)
		if resp.StatusCode != http.StatusUnauthorized || errCode(body) != "sso_refused" {
			t.Fatalf("provider error: %d %s", resp.StatusCode, body)
		}
		if resp, body := b.get(r.url + "/auth/callback?code=x&state=" + state); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("the state after the provider's error: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("Expiry", func(t *testing.T) {
		b := newBrowser(t)
		b.signIn(r.url+"/auth/login", "dev", "dev-pass")
		cookie := b.cookie(r.url, access.SessionCookie)
		hash := access.HashToken(cookie)
		before, err := r.store.GetSession(t.Context(), hash)
		if err != nil {
			t.Fatal(err)
		}
		step := func(d time.Duration) int {
			at := time.Now().Add(time.Duration(r.offset.Add(int64(d))))
			code, _, _ := b.whoami(r.url, nil)
			if code == http.StatusOK {
				// LastSeen is written in the background: wait for it before moving on.
				relaytest.WaitFor(t, 5*time.Second, "LastSeen written back", func() bool {
					s, err := r.store.GetSession(t.Context(), hash)
					return err == nil && !s.LastSeen.Before(at.Add(-time.Second))
				})
			}
			return code
		}
		t.Cleanup(func() { r.offset.Store(0) })
		// 50 minutes later (within the idle hour): fine, and LastSeen moves.
		if code := step(50 * time.Minute); code != http.StatusOK {
			t.Fatalf("after 50m: %d", code)
		}
		after, err := r.store.GetSession(t.Context(), hash)
		if err != nil || !after.LastSeen.After(before.LastSeen.Add(49*time.Minute)) {
			t.Fatalf("LastSeen not refreshed: %v -> %+v, %v", before.LastSeen, after, err)
		}
		// Twice more within the idle hour: 100 and 150 minutes after signing in, still fine.
		if code := step(50 * time.Minute); code != http.StatusOK {
			t.Fatalf("after 100m: %d", code)
		}
		if code := step(50 * time.Minute); code != http.StatusOK {
			t.Fatalf("after 150m: %d", code)
		}
		// Past session_max (3h) although never idle an hour: refused.
		if code := step(40 * time.Minute); code != http.StatusUnauthorized {
			t.Fatalf("after 190m (session_max 3h): %d", code)
		}
		r.offset.Store(0)

		// Idle: a fresh session left alone 61 minutes.
		b2 := newBrowser(t)
		b2.signIn(r.url+"/auth/login", "dev", "dev-pass")
		r.offset.Store(int64(61 * time.Minute))
		if code, _, body := b2.whoami(r.url, nil); code != http.StatusUnauthorized || errCode(body) != "session_ended" {
			t.Fatalf("idle 61m: %d %s", code, body)
		}
	})

	t.Run("CLICode", func(t *testing.T) {
		var got atomic.Value
		cli := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			got.Store(req.URL.Query().Get("code"))
			_, _ = io.WriteString(w, "signed in")
		}))
		defer cli.Close()
		port := cli.Listener.Addr().(*net.TCPAddr).Port
		verifier := oauth2.GenerateVerifier()
		start := fmt.Sprintf("%s/auth/login?cli_port=%d&cli_challenge=%s", r.url, port, oauth2.S256ChallengeFromVerifier(verifier))
		b := newBrowser(t)
		resp, body := b.signIn(start, "ana", "ana-pass")
		code, _ := got.Load().(string)
		if resp.StatusCode != http.StatusOK || body != "signed in" || code == "" {
			t.Fatalf("the browser did not reach the CLI: %d %s", resp.StatusCode, body)
		}
		if b.cookie(r.url, access.SessionCookie) != "" {
			t.Error("a CLI sign-in set a session cookie in the browser")
		}
		c, err := relayclient.New(r.url, relayclient.Options{})
		if err != nil {
			t.Fatal(err)
		}
		// A wrong verifier is refused, and uses the code up.
		if _, err := c.ExchangeCLICode(t.Context(), code, oauth2.GenerateVerifier()); err == nil {
			t.Fatal("a wrong verifier was accepted")
		}
		if _, err := c.ExchangeCLICode(t.Context(), code, verifier); err == nil {
			t.Fatal("a code was accepted after a failed attempt")
		}
		// Again, properly.
		got.Store("")
		b.signIn(start, "ana", "ana-pass")
		code, _ = got.Load().(string)
		tok, err := c.ExchangeCLICode(t.Context(), code, verifier)
		if err != nil || !strings.HasPrefix(tok.Token, access.SessionPrefix) || tok.Email != "ana@example.com" {
			t.Fatalf("exchange: %+v, %v", tok, err)
		}
		if _, err := c.ExchangeCLICode(t.Context(), code, verifier); err == nil {
			t.Fatal("a code was accepted twice")
		}
		bc, _ := relayclient.New(r.url, relayclient.Options{AdminToken: tok.Token})
		if w, err := bc.WhoAmI(t.Context()); err != nil || w.Subject != "u-ana" {
			t.Fatalf("whoami with the CLI's session: %+v, %v", w, err)
		}
		// Bearer sessions sign out without CSRF (a bearer token is not sent by browsers on their own).
		if err := bc.Logout(t.Context()); err != nil {
			t.Fatal(err)
		}
		if _, err := bc.WhoAmI(t.Context()); err == nil {
			t.Fatal("the CLI's session works after logout")
		}
		// Loopback only, and a port number.
		for _, q := range []string{"cli_port=0&cli_challenge=" + oauth2.S256ChallengeFromVerifier(verifier),
			"cli_port=80.evil.example&cli_challenge=" + oauth2.S256ChallengeFromVerifier(verifier),
			"cli_port=65536&cli_challenge=" + oauth2.S256ChallengeFromVerifier(verifier),
			"cli_port=8080", "cli_port=8080&cli_challenge=short"} {
			if resp, body := newBrowser(t).get(r.url + "/auth/login?" + q); resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%s: %d %s", q, resp.StatusCode, body)
			}
		}
	})
}

// TestSSOTokenFromAnotherAudienceOrIssuer verifies real ID tokens minted for another
// client of the provider, and by another provider, with the relay's verifier.
func TestSSOTokenFromAnotherAudienceOrIssuer(t *testing.T) {
	t.Parallel()
	r := reserveRelay(t)
	op := testpeers.OpenIDProvider(t, testpeers.OPOptions{RedirectURIs: []string{r.callback()}, Users: ssoUsers})
	op2 := testpeers.OpenIDProvider(t, testpeers.OPOptions{RedirectURIs: []string{r.callback()}, Users: ssoUsers})
	r.start(t, newBolt(t), ssoYAML(op.Issuer, r.url, testpeers.OPWebClientID, ""), &relaytest.Buffer{})
	p, err := r.api.sso.discover(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// idToken runs the authorization-code flow as client at issuer and returns its ID token
	// and nonce.
	idToken := func(issuer, client string) (raw, nonce string) {
		t.Helper()
		pr, err := oidc.NewProvider(t.Context(), issuer)
		if err != nil {
			t.Fatal(err)
		}
		conf := &oauth2.Config{ClientID: client, ClientSecret: testpeers.OPWebClientSecret, Endpoint: pr.Endpoint(),
			RedirectURL: r.callback(), Scopes: []string{"openid", "email"}}
		verifier := oauth2.GenerateVerifier()
		nonce, _ = access.RandomID(randomBytes)
		b := newBrowser(t)
		cb := stopAtCallback(b, r.url)
		b.signIn(conf.AuthCodeURL("st", oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), "ana", "ana-pass")
		tok, err := conf.Exchange(t.Context(), queryParam(cb(), "code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ = tok.Extra("id_token").(string)
		return raw, nonce
	}
	raw, nonce := idToken(op.Issuer, testpeers.OPWebClientID)
	if _, err := r.api.verifyIDToken(t.Context(), p, raw, nonce); err != nil {
		t.Fatalf("the relay's own client's token: %v", err)
	}
	if _, err := r.api.verifyIDToken(t.Context(), p, raw, "x"+nonce); err == nil {
		t.Error("a token with another nonce was accepted")
	}
	raw, nonce = idToken(op.Issuer, testpeers.OPOtherClientID)
	if _, err := r.api.verifyIDToken(t.Context(), p, raw, nonce); err == nil || !strings.Contains(err.Error(), "audience") {
		t.Errorf("a token for another client: %v", err)
	}
	// Another provider signs with its own keys, which the relay's provider does not publish:
	// refused (by the signature check, which go-oidc runs before the issuer's).
	raw, nonce = idToken(op2.Issuer, testpeers.OPWebClientID)
	if _, err := r.api.verifyIDToken(t.Context(), p, raw, nonce); err == nil || !strings.Contains(err.Error(), "invalid_id_token") {
		t.Errorf("a token from another issuer: %v", err)
	}
}

// TestSSOConfigRefused: a client secret variable that is named but empty stops the relay.
func TestSSOConfigRefused(t *testing.T) {
	t.Parallel()
	cfg, err := channel.ParseConfig([]byte(ssoYAML("https://idp.example.com", "https://relay.example.com", "ferry", "")))
	if err != nil {
		t.Fatal(err)
	}
	for name, getenv := range map[string]func(string) string{"nil": nil, "empty": func(string) string { return "" }} {
		_, err := New(context.Background(), Options{Config: cfg, Store: newBolt(t), Getenv: getenv})
		if err == nil || !strings.Contains(err.Error(), ssoSecretEnv) {
			t.Errorf("getenv %s: %v", name, err)
		}
	}
	api, err := New(context.Background(), Options{Config: cfg, Store: newBolt(t), Getenv: func(string) string { return "s" }})
	if err != nil || !api.sso.secure {
		t.Fatalf("https public_url: %v (secure cookies: %v)", err, api != nil && api.sso.secure)
	}
}

func TestLocalReturn(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"": "/", "/": "/", "/console?app=x#y": "/console?app=x#y", "/a/b": "/a/b"} {
		if got, err := localReturn(in); err != nil || got != want {
			t.Errorf("localReturn(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"//x", "/\\x", "http://x", "x", "/\x00", "/\tx", " /x", strings.Repeat("/a", 2000)} {
		if _, err := localReturn(in); err == nil {
			t.Errorf("localReturn(%q) accepted", in)
		}
	}
}

// A signed-in browser uses the admin API with its cookie: reads need nothing more, a change
// needs the session's CSRF token in X-Ferry-CSRF (a cross-site form cannot set it), a
// viewer's session is refused a change, and nothing changes on refusal.
func TestSSOSessionOnTheAdminAPI(t *testing.T) {
	r, _ := ssoSetup(t, "")
	const app = "com.example.app"
	policyURL := r.url + "/api/v1/apps/" + app + "/channels/production/policy"
	put := func(b *browser, hdr http.Header) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), "PUT", policyURL, strings.NewReader(`{"policy":{"public":true}}`))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header[k] = v
		}
		raw, err := b.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp, body := readResp(t, raw)
		return resp.StatusCode, body
	}
	overridden := func() bool {
		st, err := r.store.GetState(t.Context(), app, "production")
		if err != nil {
			t.Fatal(err)
		}
		return st.Policy != nil
	}

	ana := newBrowser(t)
	if resp, body := ana.signIn(r.url+"/auth/login?return=/auth/whoami", "ana", "ana-pass"); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in ended %d: %.300s", resp.StatusCode, body)
	}
	_, who, _ := ana.whoami(r.url, nil)
	if resp, body := ana.get(r.url + "/api/v1/apps/" + app + "/channels"); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET channels with the session cookie: %d %.300s", resp.StatusCode, body)
	}
	for _, hdr := range []http.Header{nil, {HeaderCSRF: {"wrong"}}} {
		if code, body := put(ana, hdr); code != http.StatusForbidden || errCode(body) != "csrf" {
			t.Errorf("PUT policy with CSRF header %q: %d %s; want 403 csrf", hdr.Get(HeaderCSRF), code, body)
		}
	}
	if overridden() {
		t.Fatal("a refused change changed the policy")
	}
	if code, body := put(ana, http.Header{HeaderCSRF: {who.CSRF}}); code != http.StatusOK {
		t.Fatalf("PUT policy with the session's CSRF token: %d %s", code, body)
	}
	if !overridden() {
		t.Fatal("the accepted change did not change the policy")
	}
	es, err := r.store.ListAudit(t.Context(), app, 1)
	if err != nil || len(es) != 1 || es[0].Actor == nil || es[0].Actor.Kind != "person" || es[0].Actor.Email != "ana@example.com" {
		t.Fatalf("audit entry of the change: %+v, %v; want actor person ana@example.com", es, err)
	}

	dev := newBrowser(t) // viewer of the app
	dev.signIn(r.url+"/auth/login?return=/auth/whoami", "dev", "dev-pass")
	_, dw, _ := dev.whoami(r.url, nil)
	if code, body := put(dev, http.Header{HeaderCSRF: {dw.CSRF}}); code != http.StatusForbidden || errCode(body) == "csrf" {
		t.Errorf("a viewer's PUT policy: %d %s; want 403 for the role", code, body)
	}
}

// countingStore counts the session lookups that reach the store.
type countingStore struct {
	fullStore
	gets atomic.Int64
}

func (c *countingStore) GetSession(ctx context.Context, idHash string) (*access.Session, error) {
	c.gets.Add(1)
	return c.fullStore.GetSession(ctx, idHash)
}

// TestSessionLookupsAreCached signs in once and uses the session for many requests: the
// store is asked for the session once, not once per request (the cache keeps it for
// SessionCacheTTL), and after signing out the cookie is refused at once.
func TestSessionLookupsAreCached(t *testing.T) {
	t.Parallel()
	st := &countingStore{fullStore: newBolt(t)}
	r := reserveRelay(t)
	op := testpeers.OpenIDProvider(t, testpeers.OPOptions{RedirectURIs: []string{r.callback()}, Users: ssoUsers})
	r.start(t, st, ssoYAML(op.Issuer, r.url, testpeers.OPWebClientID, ""), &relaytest.Buffer{})
	br := newBrowser(t)
	if resp, body := br.signIn(r.url+"/auth/login?return=/auth/whoami", "ana", "ana-pass"); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, body)
	}
	before := st.gets.Load()
	var w relayclient.WhoAmI
	const n = 50
	for range n {
		code, got, body := br.whoami(r.url, nil)
		if code != http.StatusOK || got.Subject != "u-ana" {
			t.Fatalf("whoami: %d %s", code, body)
		}
		w = got
	}
	if got := st.gets.Load() - before; got > 1 {
		t.Errorf("%d requests with one session looked it up in the store %d times; want at most 1", n, got)
	}
	if code, body := br.post(r.url+"/auth/logout", http.Header{CSRFHeader: {w.CSRF}}, nil); code != http.StatusOK && code != http.StatusNoContent {
		t.Fatalf("logout: %d %s", code, body)
	}
	if code, _, body := br.whoami(r.url, nil); code != http.StatusUnauthorized {
		t.Fatalf("whoami after logout on the same instance: %d %s; want 401", code, body)
	}
}
