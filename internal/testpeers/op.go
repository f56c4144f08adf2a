package testpeers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// OPUser is a person the test OpenID Provider knows; the fields are those of the users file
// of zitadel/oidc's example server (storage.User). Username and Password are what its login
// form takes; ID becomes the ID token's subject.
type OPUser struct {
	ID            string
	Username      string
	Password      string
	FirstName     string
	LastName      string
	Email         string
	EmailVerified bool
}

// OPOptions configures [OpenIDProvider].
type OPOptions struct {
	// Port is the port to listen on; 0 picks a free one. (A test that must name the
	// provider's issuer before it knows its relay's callback picks the port with [FreePort].)
	Port int
	// RedirectURIs are the redirect URIs every client accepts (a relay's PublicURL +
	// "/auth/callback").
	RedirectURIs []string
	// Users are the people who can sign in.
	Users []OPUser
}

// OP is an OpenID Provider started by [OpenIDProvider]: zitadel/oidc v3.52.0's example server.
// It registers the confidential client [OPWebClientID] (secret [OPWebClientSecret],
// client_secret_basic), a second confidential client [OPOtherClientID] with the same
// secret, and the public client [OPNativeClientID] (PKCE, no secret). Its login page is a
// form at /login/username posting id, username and password.
type OP struct {
	*Process
	// Issuer is http://localhost:port/, exactly as the provider's discovery document says.
	Issuer string
}

// Clients the example server registers.
const (
	OPWebClientID     = "web"
	OPWebClientSecret = "secret"
	OPOtherClientID   = "api"
	OPNativeClientID  = "native"
)

// OpenIDProvider starts the test OpenID Provider (FERRY_TEST_OP) with o's users and redirect
// URIs, and waits until its discovery document answers. The example server listens on every
// interface of the port and names itself http://localhost:port/; it is stopped by t.Cleanup.
func OpenIDProvider(t testing.TB, o OPOptions) *OP {
	t.Helper()
	bin := Path(t, TestOP)
	port := o.Port
	if port == 0 {
		port = FreePort(t)
	}
	dir := t.TempDir()
	users := map[string]OPUser{}
	for _, u := range o.Users {
		users[u.ID] = u
	}
	data, err := json.Marshal(users)
	if err != nil {
		t.Fatal(err)
	}
	usersFile := filepath.Join(dir, "users.json")
	if err := os.WriteFile(usersFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{
		fmt.Sprintf("PORT=%d", port),
		"USERS_FILE=" + usersFile,
		"REDIRECT_URI=" + strings.Join(o.RedirectURIs, ","),
	}
	p := startProcessEnv(t, fmt.Sprintf("127.0.0.1:%d", port), dir, []string{bin}, env)
	op := &OP{Process: p, Issuer: fmt.Sprintf("http://localhost:%d/", port)}
	if err := waitDiscovery(op.Issuer, 15*time.Second); err != nil {
		t.Fatalf("test OpenID Provider: %v\n%s", err, p.Output())
	}
	return op
}

// waitDiscovery waits until issuer's discovery document answers 200.
func waitDiscovery(issuer string, timeout time.Duration) error {
	url := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
