package control

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
)

// Browser sessions beyond single sign-on: the console (package console) lets a person sign
// in by presenting an API token (or the bootstrap token) once, and holds the same
// [access.Session] record and cookie as a single sign-on session from then on. The session
// names the credential it was exchanged for (Session.Kind), so the audit log names the
// token exactly as when the token is presented directly, and that credential is checked
// again on every request: revoking the token, or disabling or changing the bootstrap
// token, ends the session at once.

// sessionLifetimes returns how long a session may stay idle and how long it lives at most:
// access.sso's when single sign-on is configured, else the defaults.
func (a *API) sessionLifetimes() (idle, lifetime time.Duration) {
	if a.sso != nil {
		return a.sso.idle, a.sso.max
	}
	return access.DefaultSessionIdle, access.DefaultSessionMax
}

// Cookie returns a cookie of the relay's with the attributes every one of them has:
// HttpOnly, SameSite=Lax, and Secure when access.sso.public_url is https or the request
// came over TLS (over plain http a Secure cookie would never come back).
func (a *API) Cookie(c *gin.Context, name, value, path string, maxAge int) *http.Cookie {
	secure := (a.sso != nil && a.sso.secure) || c.Request.TLS != nil
	return &http.Cookie{Name: name, Value: value, Path: path, MaxAge: maxAge, HttpOnly: true,
		Secure: secure, SameSite: http.SameSiteLaxMode}
}

// credentialLives reports whether the credential a session was exchanged for still holds:
// always for single sign-on sessions; for token sessions, while the token is neither
// revoked nor expired (its grants are then the token's, refreshed into s); for bootstrap
// sessions, while the bootstrap token is enabled and unchanged.
func (a *API) credentialLives(ctx context.Context, s *access.Session, now time.Time) bool {
	switch s.Kind {
	case access.TokenKind:
		t, _, err := a.tokens.get(ctx, s.Subject, now)
		if err != nil || !t.RevokedAt.IsZero() || !t.Active(now) {
			return false
		}
		s.Grants, s.Name = t.Grants, t.Name
		return true
	case access.Bootstrap:
		return a.bootstrapEnabled() && access.HashEqual(access.HashToken(a.adminToken), s.Subject)
	case access.Person:
	}
	return true
}

// bootstrapEnabled reports whether FERRY_ADMIN_TOKEN is set and accepted.
func (a *API) bootstrapEnabled() bool {
	return a.adminToken != "" && a.cfg.Access.BootstrapEnabled()
}

// SSOEnabled reports whether single sign-on (/auth/login) is configured.
func (a *API) SSOEnabled() bool { return a.sso != nil }

// Session returns the request's browser session (the session cookie, or a "ferrys_" bearer
// token), or nil and no error when the request carries none. An unknown, expired or ended
// session is a 401 error; an unavailable store a 503.
func (a *API) Session(c *gin.Context) (*access.Session, error) {
	s, _, err := a.resolveSession(c)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// SignInWithToken exchanges an API token or the bootstrap token for a browser session:
// it checks the credential as the admin API does (including the throttling of failed
// attempts per client address), stores a session naming it, and sets the session cookie.
// A browser already holding a session loses it.
func (a *API) SignInWithToken(c *gin.Context, credential string) (*access.Session, error) {
	credential = strings.TrimSpace(credential)
	p, err := a.throttled(c, func() (*access.Principal, error) {
		if credential == "" {
			return nil, unauthorized("malformed", "enter an API token")
		}
		return a.bearerPrincipal(c.Request.Context(), credential)
	})
	if err != nil {
		return nil, err
	}
	sess := &access.Session{Kind: p.Kind, Subject: p.ID, Name: p.Name, Grants: p.Grants}
	if p.Kind == access.Bootstrap {
		sess.Subject = access.HashToken(a.adminToken)
	}
	ctx := c.Request.Context()
	now := a.now()
	id, err := a.createSession(ctx, sess, now)
	if err != nil {
		return nil, err
	}
	a.endBrowserSession(c)
	http.SetCookie(c.Writer, a.Cookie(c, access.SessionCookie, id, "/", int(sess.ExpiresAt.Sub(now).Seconds())))
	a.logger(ctx).InfoContext(ctx, "signed in with a token", "kind", p.Kind, "token", p.ID, "grants", grantStrings(sess.Grants))
	return sess, nil
}

// SignOut ends the session s of the request (the caller has checked its CSRF token) and
// clears the session cookie.
func (a *API) SignOut(c *gin.Context, s *access.Session) error {
	ctx := c.Request.Context()
	if err := a.endSession(ctx, s.IDHash); err != nil {
		return storeError("delete session", err)
	}
	http.SetCookie(c.Writer, a.Cookie(c, access.SessionCookie, "", "/", -1))
	a.logger(ctx).InfoContext(ctx, "signed out", "kind", s.Kind, "subject", s.Subject)
	return nil
}

// endBrowserSession deletes the session the browser held before signing in again, if any:
// one browser, one session.
func (a *API) endBrowserSession(c *gin.Context) {
	old, err := c.Cookie(access.SessionCookie)
	if err != nil || !validRandom(trimSessionPrefix(old)) {
		return
	}
	ctx := c.Request.Context()
	if err := a.endSession(ctx, access.HashToken(old)); err != nil && !errors.Is(err, channel.ErrNotFound) {
		a.logger(ctx).WarnContext(ctx, "cannot end the browser's previous session", "error", err)
	}
}
