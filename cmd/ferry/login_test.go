package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relay/control"
	"github.com/ferryhq/ferry/internal/relay/relaytest"
	"github.com/ferryhq/ferry/internal/relayclient"
	"github.com/ferryhq/ferry/internal/store"
	"github.com/ferryhq/ferry/internal/testpeers"
)

var loginFormID = regexp.MustCompile(`name="id" value="([^"]+)"`)

// TestLoginAndLogout runs `ferry login` against the real control plane and a real OpenID
// Provider, with a scripted browser that follows the printed URL and fills the provider's
// login form; the saved session then works as a bearer token, and `ferry logout` ends it.
// Not parallel: it points the user config directory at a temporary one.
func TestLoginAndLogout(t *testing.T) {
	srv := httptest.NewUnstartedServer(nil)
	t.Cleanup(srv.Close)
	relayURL := "http://" + srv.Listener.Addr().String()
	op := testpeers.OpenIDProvider(t, testpeers.OPOptions{RedirectURIs: []string{relayURL + "/auth/callback"},
		Users: []testpeers.OPUser{{ID: "u-ana", Username: "ana", Password: "ana-pass", FirstName: "Ana", LastName: "Admin",
			Email: "ana@example.com", EmailVerified: true}}})
	cfg, err := channel.ParseConfig([]byte(fmt.Sprintf(`
apps:
  - id: com.example.app
    repository: acme/mobile-app
    default_channel: production
    channels: {production: {}}
access:
  sso:
    issuer: %q
    client_id: web
    client_secret_env: SSO_SECRET
    public_url: %q
    roles:
      - {email: ana@example.com, grants: ["*:admin"]}
`, op.Issuer, relayURL)))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "ferry.db"), store.BoltOptions{SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logs := &relaytest.Buffer{}
	api, err := control.New(t.Context(), control.Options{Config: cfg, Store: st, Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Getenv: func(string) string { return testpeers.OPWebClientSecret }})
	if err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.TestMode)
	engine := gin.New()
	api.Mount(engine)
	srv.Config.Handler = engine
	srv.Start()

	cfgDir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfgDir)
	t.Setenv("HOME", cfgDir) // where os.UserConfigDir looks on macOS
	var printed string
	orig := openBrowser
	t.Cleanup(func() { openBrowser = orig })
	openBrowser = func(u string) error {
		printed = u
		jar, _ := cookiejar.New(nil)
		b := &http.Client{Jar: jar}
		resp, err := b.Get(u)
		if err != nil {
			return err
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := loginFormID.FindSubmatch(page)
		if m == nil {
			return fmt.Errorf("no login form at %s: %s", resp.Request.URL, page)
		}
		action := resp.Request.URL.ResolveReference(&url.URL{Path: "/login/username"})
		resp, err = b.PostForm(action.String(), url.Values{"id": {string(m[1])}, "username": {"ana"}, "password": {"ana-pass"}})
		if err != nil {
			return err
		}
		page, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.Request.URL.Hostname() != "127.0.0.1" || resp.Request.URL.Path != "/callback" || !bytes.Contains(page, []byte("Signed in")) {
			return fmt.Errorf("the browser ended at %s: %s", resp.Request.URL, page)
		}
		return nil
	}
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"login", "--relay", relayURL + "/"}, &stdout, &stderr); code != 0 {
		t.Fatalf("ferry login: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), printed) || !strings.Contains(printed, "cli_challenge=") || !strings.Contains(stdout.String(), "as ana@example.com") {
		t.Fatalf("ferry login printed:\n%s", stdout.String())
	}
	path := filepath.Join(cfgDir, "ferry", "credentials.json")
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v, %v", fi, err)
	}
	raw, _ := os.ReadFile(path)
	var creds map[string]credential
	if err := json.Unmarshal(raw, &creds); err != nil || creds[relayURL].Token == "" {
		t.Fatalf("credentials %s: %v", raw, err)
	}
	token, ok := savedCredential(relayURL)
	if !ok || token != creds[relayURL].Token {
		t.Fatalf("savedCredential = %q, %v", token, ok)
	}
	c, _ := relayclient.New(relayURL, relayclient.Options{AdminToken: token})
	if w, err := c.WhoAmI(t.Context()); err != nil || w.Email != "ana@example.com" || len(w.Grants) != 1 || w.Grants[0] != "*:admin" {
		t.Fatalf("whoami with the saved session: %+v, %v", w, err)
	}
	if strings.Contains(logs.String(), token) || strings.Contains(logs.String(), "code=") || logs.String() == "" {
		t.Errorf("the relay's logs hold a secret (or are empty):\n%s", logs.String())
	}

	stdout.Reset()
	if code := run(t.Context(), []string{"logout", "--relay", relayURL}, &stdout, &stderr); code != 0 {
		t.Fatalf("ferry logout: exit %d\n%s", code, stderr.String())
	}
	if _, err := c.WhoAmI(t.Context()); err == nil {
		t.Fatal("the session works after ferry logout")
	}
	if _, ok := savedCredential(relayURL); ok {
		t.Fatal("ferry logout kept the credential")
	}
	if code := run(t.Context(), []string{"login", "--relay", "ftp://x"}, &stdout, &stderr); code != 2 {
		t.Errorf("login with a bad URL: exit %d", code)
	}
}
