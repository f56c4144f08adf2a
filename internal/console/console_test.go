package console_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/console"
	"github.com/ferryhq/ferry/internal/relay/control"
	"github.com/ferryhq/ferry/internal/store"
)

const testConfig = `
apps:
  - id: com.example.app
    repository: acme/app
    default_channel: production
    channels:
      production: {}
      beta: {}
`

// xssVersion and xssRef are attacker-influenced strings the pages must render inert.
const (
	xssVersion = `<img src=x onerror=alert(1)>`
	xssRef     = `"><script>alert(2)</script>`
)

type env struct {
	t      *testing.T
	st     *store.Bolt
	srv    *httptest.Server
	tokens map[access.Role]string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	gin.SetMode(gin.TestMode)
	cfg, err := channel.ParseConfig([]byte(testConfig))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "ferry.db"), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	api, err := control.New(context.Background(), control.Options{Config: cfg, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)
	con, err := console.New(console.Options{API: api, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	e := gin.New()
	api.Mount(e)
	con.Mount(e)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	en := &env{t: t, st: st, srv: srv, tokens: map[access.Role]string{}}
	ctx := context.Background()
	for _, r := range []access.Role{access.Viewer, access.Deployer, access.Admin} {
		text, tok, err := access.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		tok.Name, tok.Grants, tok.CreatedAt = "ana-"+string(r), []access.Grant{{App: "com.example.app", Role: r}}, time.Now()
		if err := st.PutToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		en.tokens[r] = text
	}
	for _, v := range []string{"1.0.0", "1.1.0", xssVersion} {
		b := &channel.Bundle{AppID: "com.example.app", Version: v, URL: "https://example.com/" + v + ".zip", Checksum: strings.Repeat("a", 64),
			SHA256: strings.Repeat("a", 64), Size: 1234, Commit: "0123456789abcdef0123456789abcdef01234567", Ref: xssRef,
			SignatureURL: "https://example.com/x.sigstore.json", Repository: "acme/app"}
		if _, _, err := st.PutBundle(ctx, b, &channel.AuditEntry{Action: "register", Version: v, Cause: "registration"}); err != nil {
			t.Fatal(err)
		}
	}
	return en
}

// client returns a browser signed in with the role's token through the console's form.
func (e *env) client(r access.Role) *http.Client {
	e.t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	body := e.get(c, "/console/signin", http.StatusOK)
	csrf := hidden(e.t, body, "csrf")
	res, err := c.PostForm(e.srv.URL+"/console/signin", url.Values{"csrf": {csrf}, "token": {e.tokens[r]}, "return": {"/console/"}})
	if err != nil {
		e.t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/console/" {
		e.t.Fatalf("sign in as %s: %d %s", r, res.StatusCode, res.Header.Get("Location"))
	}
	return c
}

func (e *env) get(c *http.Client, path string, want int) string {
	e.t.Helper()
	res, err := c.Get(e.srv.URL + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		e.t.Fatalf("GET %s: %d, want %d: %s", path, res.StatusCode, want, b)
	}
	if csp := res.Header.Get("Content-Security-Policy"); strings.HasPrefix(path, "/console/") && (!strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe-inline")) {
		e.t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
	}
	if strings.HasPrefix(path, "/console/") && (res.Header.Get("X-Frame-Options") != "DENY" || res.Header.Get("X-Content-Type-Options") != "nosniff") {
		e.t.Errorf("GET %s: framing/nosniff headers missing: %v", path, res.Header)
	}
	return string(b)
}

// post submits form and returns the status code.
func (e *env) post(c *http.Client, path string, form url.Values) int {
	e.t.Helper()
	res, err := c.PostForm(e.srv.URL+path, form)
	if err != nil {
		e.t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func hidden(t *testing.T, body, name string) string {
	t.Helper()
	m := regexp.MustCompile(`name="` + name + `" value="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no hidden field %s in page", name)
	}
	return m[1]
}

func TestSignInWithTokenAndPages(t *testing.T) {
	e := newEnv(t)
	for _, r := range []access.Role{access.Viewer, access.Deployer, access.Admin} {
		c := e.client(r)
		apps := e.get(c, "/console/", http.StatusOK)
		if !strings.Contains(apps, "com.example.app") || !strings.Contains(apps, "ana-"+string(r)) {
			t.Errorf("%s: apps page does not show the app and the token's name", r)
		}
		base := "/console/apps/com.example.app"
		e.get(c, base, http.StatusOK)
		ch := e.get(c, base+"/channels/production", http.StatusOK)
		if got, want := strings.Contains(ch, "/promote"), r != access.Viewer; got != want {
			t.Errorf("%s: promote form shown = %v, want %v", r, got, want)
		}
		if got, want := strings.Contains(ch, "Save policy"), r == access.Admin; got != want {
			t.Errorf("%s: policy form shown = %v, want %v", r, got, want)
		}
		e.get(c, base+"/bundles/1.0.0", http.StatusOK)
		e.get(c, base+"/audit?action=register", http.StatusOK)
		e.get(c, base+"/devices?device=0b9f0c5e-2b39-4f5e-9d5e-0c1f7c1f2a11", http.StatusOK)
		e.get(c, base+"/stats?range=7d", http.StatusOK)
	}
	// Without a session, pages send the browser to sign in.
	jar, _ := cookiejar.New(nil)
	anon := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := anon.Get(e.srv.URL + "/console/apps/com.example.app")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/console/signin?return=") {
		t.Errorf("anonymous: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
}

func TestPromoteViaConsole(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	path := "/console/apps/com.example.app/channels/production/promote"

	viewer := e.client(access.Viewer)
	page := e.get(viewer, "/console/apps/com.example.app/channels/production", http.StatusOK)
	if res := e.post(viewer, path, url.Values{"csrf": {hidden(t, page, "csrf")}, "version": {"1.0.0"}}); res != http.StatusForbidden {
		t.Errorf("viewer promote: %d, want 403", res)
	}

	dep := e.client(access.Deployer)
	page = e.get(dep, path+"?version=1.0.0", http.StatusOK)
	if res := e.post(dep, path, url.Values{"version": {"1.0.0"}}); res != http.StatusForbidden {
		t.Errorf("promote without CSRF token: %d, want 403", res)
	}
	if res := e.post(dep, path, url.Values{"csrf": {"x" + hidden(t, page, "csrf")}, "version": {"1.0.0"}}); res != http.StatusForbidden {
		t.Errorf("promote with a wrong CSRF token: %d, want 403", res)
	}
	if st, _ := e.st.GetState(ctx, "com.example.app", "production"); st.Version != "" {
		t.Fatalf("refused promotions changed the channel to %q", st.Version)
	}
	if res := e.post(dep, path, url.Values{"csrf": {hidden(t, page, "csrf")}, "version": {"1.0.0"}}); res != http.StatusSeeOther {
		t.Fatalf("promote: %d", res)
	}
	st, err := e.st.GetState(ctx, "com.example.app", "production")
	if err != nil || st.Version != "1.0.0" {
		t.Fatalf("after promote: %+v, %v", st, err)
	}
	es, err := e.st.ListAudit(ctx, "com.example.app", 1)
	if err != nil || len(es) != 1 {
		t.Fatal(es, err)
	}
	if a := es[0].Actor; es[0].Action != "promote" || a == nil || a.Kind != "token" || a.Name != "ana-deployer" {
		t.Errorf("audit entry %+v names %+v, want the deployer's token", es[0], es[0].Actor)
	}
	hist := e.get(dep, "/console/apps/com.example.app/channels/production?done=promote", http.StatusOK)
	if !strings.Contains(hist, "ana-deployer") || !strings.Contains(hist, "Promoted.") {
		t.Error("channel page does not show the promotion by the deployer")
	}
}

func TestXSSPayloadsRenderEscaped(t *testing.T) {
	e := newEnv(t)
	c := e.client(access.Admin)
	for _, p := range []string{"/console/apps/com.example.app", "/console/apps/com.example.app/bundles/" + url.PathEscape(xssVersion),
		"/console/apps/com.example.app/audit", "/console/apps/com.example.app/channels/production"} {
		body := e.get(c, p, http.StatusOK)
		for _, raw := range []string{xssVersion, xssRef, "<script>"} {
			if strings.Contains(body, raw) {
				t.Errorf("%s holds %q unescaped", p, raw)
			}
		}
		if !strings.Contains(body, "&lt;img src=x onerror=alert(1)&gt;") && !strings.Contains(body, "&#34;&gt;&lt;script&gt;") {
			t.Errorf("%s shows neither payload escaped", p)
		}
	}
}

func TestRootRedirects(t *testing.T) {
	e := newEnv(t)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range []string{"/", "/ui", "/console"} {
		res, err := c.Get(e.srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusFound || res.Header.Get("Location") != "/console/" {
			t.Errorf("GET %s: %d %s", p, res.StatusCode, res.Header.Get("Location"))
		}
	}
}

// The bundle page shows the signature facts the publisher registered (keyless: identity,
// issuer, workflow, log entry; key: the key hint and no log entry; none), escaped, and
// says the pipeline verified them and the relay did not.
func TestBundleSignature(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	idx := int64(123456789)
	integrated := time.Date(2026, 11, 30, 9, 15, 0, 0, time.UTC)
	for _, b := range []*channel.Bundle{
		{Version: "3.0.0", Signature: &channel.Signature{Mode: "keyless", Verified: true,
			Identity: "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v3.0.0<script>alert(3)</script>",
			Issuer:   "https://token.actions.githubusercontent.com", Workflow: ".github/workflows/release.yml",
			LogIndex: &idx, IntegratedTime: integrated}},
		{Version: "3.0.1", Signature: &channel.Signature{Mode: "key", KeyHint: "q7Xh1J0aZbB0", Verified: true}},
		{Version: "3.0.2"},
	} {
		b.AppID, b.URL, b.Checksum, b.SHA256, b.Size = "com.example.app", "https://example.com/"+b.Version+".zip", strings.Repeat("b", 64), strings.Repeat("b", 64), 99
		b.SignatureURL = "https://example.com/" + b.Version + ".sigstore.json"
		if _, _, err := e.st.PutBundle(ctx, b, nil); err != nil {
			t.Fatal(err)
		}
	}
	c := e.client(access.Viewer)
	base := "/console/apps/com.example.app/bundles/"
	keyless := e.get(c, base+"3.0.0", http.StatusOK)
	for _, want := range []string{"keyless (Sigstore certificate)", "refs/tags/v3.0.0&lt;script&gt;alert(3)&lt;/script&gt;",
		"https://token.actions.githubusercontent.com", ".github/workflows/release.yml", "entry 123456789", "integrated 2026-11-30",
		"by the publishing pipeline, before upload", "did not re-verify", "cosign verify-blob"} {
		if !strings.Contains(keyless, want) {
			t.Errorf("keyless bundle page lacks %q", want)
		}
	}
	if strings.Contains(keyless, "<script>alert(3)") {
		t.Error("keyless bundle page renders the identity's payload as markup")
	}
	key := e.get(c, base+"3.0.1", http.StatusOK)
	for _, want := range []string{"with a key", "q7Xh1J0aZbB0", "no certificate identity or issuer", "no entry", "did not re-verify"} {
		if !strings.Contains(key, want) {
			t.Errorf("key-signed bundle page lacks %q", want)
		}
	}
	if strings.Contains(key, "Issuer</dt>") {
		t.Error("key-signed bundle page shows an issuer row")
	}
	none := e.get(c, base+"3.0.2", http.StatusOK)
	if !strings.Contains(none, "did not report what it verified") || strings.Contains(none, "by the publishing pipeline, before upload") {
		t.Error("bundle page without signature facts does not say so")
	}
}
