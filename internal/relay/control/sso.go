package control

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gin-gonic/gin"
	"golang.org/x/oauth2"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
)

// Single sign-on for people (docs/sso.md): the authorization-code flow with PKCE against
// the OpenID Provider of access.sso, server-side sessions in the store, and the browser
// holding only an opaque session id in an HttpOnly cookie.
//
//	GET  /auth/login?return=/path        start signing in (a browser)
//	GET  /auth/login?cli_port=P&cli_challenge=C   start signing in for `ferry login`
//	GET  /auth/callback                  the provider sends the browser back here
//	POST /auth/logout                    end the session (cookie sessions need the CSRF token)
//	GET  /auth/whoami                    the session's person, grants and CSRF token
//	POST /auth/cli/token                 `ferry login` trades its one-time code for a session

// Lifetimes and bounds of single sign-on.
const (
	// LoginTTL is how long a sign-in may take between /auth/login and /auth/callback.
	LoginTTL = 10 * time.Minute
	// CLICodeTTL is how long the one-time code handed to `ferry login` stays valid.
	CLICodeTTL = 2 * time.Minute
	// SessionTouchInterval is how often a session's LastSeen is written back at most.
	SessionTouchInterval = time.Minute
	// CSRFHeader carries a cookie session's CSRF token on state-changing requests (a form
	// may send it as the field "csrf" instead).
	CSRFHeader = "X-Ferry-CSRF"
	// loginCookie binds a sign-in to the browser that started it (login CSRF).
	loginCookie = "ferry_login"
	// randomBytes is the entropy of session ids, states, nonces, codes and CSRF tokens
	// (160 bits); access.RandomID encodes them in 32 characters.
	randomBytes = 20
	randomChars = 32
	// maxReturnLen bounds the return path of /auth/login.
	maxReturnLen = 2048
)

// sso is the single sign-on configuration of an [API], with the provider discovered on
// first use (so a provider outage does not stop the relay from starting).
type sso struct {
	cfg      *access.SSOConfig
	secret   string
	client   *http.Client
	redirect string // PublicURL + "/auth/callback"
	// secure marks cookies Secure: true when public_url is https. Over plain http (tests,
	// a relay behind nothing on localhost) a Secure cookie would never come back.
	secure bool
	scopes []string
	idle   time.Duration
	max    time.Duration

	mu        sync.Mutex
	provider  *oidc.Provider
	failedAt  time.Time
	failedErr error
}

// newSSO checks the configuration's secrets; nil, nil when single sign-on is not configured.
func newSSO(cfg *channel.Config, getenv func(string) string, hc *http.Client) (*sso, error) {
	if cfg == nil || cfg.Access == nil || cfg.Access.SSO == nil {
		return nil, nil
	}
	c := cfg.Access.SSO
	s := &sso{cfg: c, client: hc, idle: c.SessionIdle, max: c.SessionMax}
	if c.ClientSecretEnv != "" {
		if getenv != nil {
			s.secret = getenv(c.ClientSecretEnv)
		}
		if s.secret == "" {
			return nil, fmt.Errorf("control: access.sso.client_secret_env names %s, which is not set in the environment (or is empty)", c.ClientSecretEnv)
		}
	}
	u, err := url.Parse(c.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("control: access.sso.public_url %q is not an http(s) URL", c.PublicURL)
	}
	s.secure = u.Scheme == "https"
	s.redirect = strings.TrimSuffix(c.PublicURL, "/") + "/auth/callback"
	s.scopes = []string{oidc.ScopeOpenID}
	scopes := c.Scopes
	if len(scopes) == 0 {
		scopes = []string{"email", "profile"}
	}
	for _, sc := range scopes {
		if sc != oidc.ScopeOpenID {
			s.scopes = append(s.scopes, sc)
		}
	}
	if s.idle == 0 {
		s.idle = access.DefaultSessionIdle
	}
	if s.max == 0 {
		s.max = access.DefaultSessionMax
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: 10 * time.Second}
	}
	return s, nil
}

// discover returns the provider, fetching its discovery document on first use; a failure
// is remembered for [DiscoveryRetryInterval].
func (s *sso) discover(now time.Time) (*oidc.Provider, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.provider != nil {
		return s.provider, nil
	}
	if s.failedErr == nil || now.Sub(s.failedAt) >= DiscoveryRetryInterval {
		// Not the request's context: the provider keeps it to fetch its keys later.
		p, err := oidc.NewProvider(oidc.ClientContext(context.Background(), s.client), s.cfg.Issuer)
		if err == nil {
			s.provider = p
			return p, nil
		}
		s.failedAt, s.failedErr = now, fmt.Errorf("discover single sign-on issuer %q: %w", s.cfg.Issuer, err)
	}
	return nil, &httpError{Status: http.StatusServiceUnavailable, Code: "sso_unavailable",
		Msg: "cannot reach the identity provider; retry later", Err: s.failedErr}
}

func (s *sso) oauth2(p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{ClientID: s.cfg.ClientID, ClientSecret: s.secret, Endpoint: p.Endpoint(),
		RedirectURL: s.redirect, Scopes: s.scopes}
}

// mountSSO registers the single sign-on routes when access.sso is configured.
func (a *API) mountSSO(r gin.IRouter) {
	if a.sso == nil {
		return
	}
	r.GET("/auth/login", a.handle(a.ssoLogin))
	r.GET("/auth/callback", a.handle(a.ssoCallback))
	r.POST("/auth/logout", a.handle(a.ssoLogout))
	r.GET("/auth/whoami", a.handle(a.ssoWhoami))
	r.POST("/auth/cli/token", a.handle(a.ssoCLIToken))
}

// sessionPrincipal resolves the request's single sign-on session: the bearer token
// "ferrys_..." (from `ferry login`) or else the session cookie. It returns (nil, nil, nil)
// when the request carries neither; a session id that is malformed, unknown, past its
// absolute expiry or idle too long is a 401. Sessions are cached for [SessionCacheTTL]
// (the store's AccessChanged notification drops them at once), and LastSeen is written back
// in the background at most once per [SessionTouchInterval] per instance.
func (a *API) sessionPrincipal(c *gin.Context) (*access.Principal, *access.Session, error) {
	s, _, err := a.resolveSession(c)
	if s == nil || err != nil {
		return nil, nil, err
	}
	return s.Principal(), s, nil
}

// resolveSession is [API.sessionPrincipal], also saying whether the session came from the
// cookie (which a browser sends on its own, so state changes need the CSRF token too).
func (a *API) resolveSession(c *gin.Context) (s *access.Session, fromCookie bool, err error) {
	var id string
	if tok, ok := bearer(c.GetHeader("Authorization")); ok && strings.HasPrefix(tok, access.SessionPrefix) {
		id = tok
	} else if v, err := c.Cookie(access.SessionCookie); err == nil && v != "" {
		id, fromCookie = v, true
	} else {
		return nil, false, nil
	}
	if !validRandom(strings.TrimPrefix(id, access.SessionPrefix)) || !strings.HasPrefix(id, access.SessionPrefix) {
		return nil, fromCookie, errorf(http.StatusUnauthorized, "invalid_session", "the session is not valid; sign in again")
	}
	ctx := c.Request.Context()
	hash := access.HashToken(id)
	now := a.now()
	s, hit, err := a.sessions.get(ctx, hash, now)
	if err == nil && hit && a.idleAt(s, now) {
		// The cached copy's LastSeen may predate uses through other instances: only the
		// store's copy can end the session for idleness.
		a.sessions.forget(hash)
		s, _, err = a.sessions.get(ctx, hash, now)
	}
	if errors.Is(err, channel.ErrNotFound) {
		return nil, fromCookie, errorf(http.StatusUnauthorized, "session_ended", "the session has ended (signed out or expired); sign in again")
	}
	if err != nil {
		return nil, fromCookie, storeError("get session", err)
	}
	// The cache hands out one record to every request: work on a copy, since
	// credentialLives refreshes a token session's grants into it.
	cp := *s
	s = &cp
	if !now.Before(s.ExpiresAt) || a.idleAt(s, now) || !a.credentialLives(ctx, s, now) {
		if err := a.endSession(ctx, hash); err != nil {
			a.logger(ctx).WarnContext(ctx, "cannot delete an expired session", "error", err)
		}
		return nil, fromCookie, errorf(http.StatusUnauthorized, "session_ended", "the session has expired; sign in again")
	}
	if now.Sub(s.LastSeen) >= SessionTouchInterval {
		a.touchLater(ctx, a.sessions.touchDue(hash, now, SessionTouchInterval), "a session", func(ctx context.Context) error {
			return a.store.TouchSession(ctx, hash, now.UTC())
		})
	}
	return s, fromCookie, nil
}

// endSession deletes the session stored under idHash, which notifies every instance, and
// forgets it here at once (after the delete: a lookup racing with it is not cached).
func (a *API) endSession(ctx context.Context, idHash string) error {
	err := a.store.DeleteSession(ctx, idHash)
	a.sessions.forget(idHash)
	return err
}

// idleAt reports whether s was idle longer than the idle timeout at now.
func (a *API) idleAt(s *access.Session, now time.Time) bool {
	idle, _ := a.sessionLifetimes()
	return now.Sub(s.LastSeen) > idle
}

// validRandom reports whether s has the shape of an access.RandomID(randomBytes).
func validRandom(s string) bool {
	if len(s) != randomChars {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// localReturn checks the path to return to after signing in: a path on this relay, never
// another site ("//host", "/\host" and absolute URLs are refused). Empty means "/".
func localReturn(s string) (string, error) {
	if s == "" {
		return "/", nil
	}
	bad := len(s) > maxReturnLen || !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") ||
		strings.ContainsRune(s, '\\') || strings.ContainsFunc(s, unicode.IsControl)
	if !bad {
		u, err := url.Parse(s)
		bad = err != nil || u.Scheme != "" || u.Host != "" || u.User != nil
	}
	if bad {
		return "", errorf(http.StatusBadRequest, "bad_return", "return must be a path on this relay, such as /console")
	}
	return s, nil
}
