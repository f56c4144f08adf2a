package control

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gin-gonic/gin"
	"golang.org/x/oauth2"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relayclient"
)

// ssoLogin starts a sign-in: it stores a Login (state, nonce, PKCE verifier, return path,
// the browser binding) and redirects to the provider.
func (a *API) ssoLogin(c *gin.Context) error {
	ret, err := localReturn(c.Query("return"))
	if err != nil {
		return err
	}
	cliPort, challenge, err := cliParams(c.Query("cli_port"), c.Query("cli_challenge"))
	if err != nil {
		return err
	}
	now := a.now()
	p, err := a.sso.discover(now)
	if err != nil {
		return err
	}
	state, err := access.RandomID(randomBytes)
	if err != nil {
		return err
	}
	nonce, err := access.RandomID(randomBytes)
	if err != nil {
		return err
	}
	// A browser signing in in two tabs keeps one binding, so neither sign-in breaks the other.
	browser, err := c.Cookie(loginCookie)
	if err != nil || !validRandom(browser) {
		if browser, err = access.RandomID(randomBytes); err != nil {
			return err
		}
	}
	verifier := oauth2.GenerateVerifier()
	l := &access.Login{State: state, Nonce: nonce, Verifier: verifier, Return: ret, Browser: access.HashToken(browser),
		CLIPort: cliPort, CLIChallenge: challenge, ExpiresAt: now.Add(LoginTTL)}
	ctx := c.Request.Context()
	if err := a.store.PutLogin(ctx, l); err != nil {
		return storeError("put login", err)
	}
	http.SetCookie(c.Writer, a.Cookie(c, loginCookie, browser, "/auth/", int(LoginTTL/1e9)))
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusFound, a.sso.oauth2(p).AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)))
	return nil
}

// cliParams checks the parameters `ferry login` adds to /auth/login: both or neither.
func cliParams(port, challenge string) (int, string, error) {
	if port == "" && challenge == "" {
		return 0, "", nil
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return 0, "", errorf(http.StatusBadRequest, "bad_cli_port", "cli_port must be a port number (1-65535)")
	}
	if !validChallenge(challenge) {
		return 0, "", errorf(http.StatusBadRequest, "bad_cli_challenge", "cli_challenge must be the unpadded base64url SHA-256 of a PKCE verifier (43 characters)")
	}
	return n, challenge, nil
}

// validChallenge reports whether s is an S256 PKCE challenge: 43 base64url characters.
func validChallenge(s string) bool {
	if len(s) != 43 {
		return false
	}
	for _, c := range s {
		if !isUnreserved(c) || c == '.' || c == '~' {
			return false
		}
	}
	return true
}

// validVerifier reports whether s is a PKCE code verifier (RFC 7636 §4.1).
func validVerifier(s string) bool {
	if len(s) < 43 || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !isUnreserved(c) {
			return false
		}
	}
	return true
}

func isUnreserved(c rune) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~'
}

// person is who the provider says signed in.
type person struct {
	Subject, Issuer, Email, Name string
	EmailVerified                bool
	Groups                       []string
}

// ssoCallback finishes a sign-in: the state is taken (so it works once), the browser must
// be the one that started it, the code is exchanged with the PKCE verifier, the ID token
// verified (issuer, audience, expiry, signature, nonce), and the person mapped to grants.
// A browser gets a session cookie; `ferry login` gets a one-time code on its loopback port.
func (a *API) ssoCallback(c *gin.Context) error {
	q := c.Request.URL.Query()
	state := q.Get("state")
	if !validRandom(state) {
		return errorf(http.StatusBadRequest, "invalid_state", "the sign-in has no valid state; start again at /auth/login")
	}
	ctx := c.Request.Context()
	l, err := a.store.TakeLogin(ctx, state)
	if errors.Is(err, channel.ErrNotFound) {
		return errorf(http.StatusBadRequest, "invalid_state", "this sign-in was already completed or has expired; start again at /auth/login")
	}
	if err != nil {
		return storeError("take login", err)
	}
	now := a.now()
	if !now.Before(l.ExpiresAt) || l.Sealed != "" {
		return errorf(http.StatusBadRequest, "invalid_state", "this sign-in has expired; start again at /auth/login")
	}
	browser, err := c.Cookie(loginCookie)
	if err != nil || !access.HashEqual(access.HashToken(browser), l.Browser) {
		return errorf(http.StatusBadRequest, "wrong_browser", "this sign-in was started in another browser (or its cookie is gone); start again at /auth/login")
	}
	http.SetCookie(c.Writer, a.Cookie(c, loginCookie, "", "/auth/", -1))
	if e := q.Get("error"); e != "" {
		return errorf(http.StatusUnauthorized, "sso_refused", "the identity provider did not sign you in (%.100s)", e)
	}
	code := q.Get("code")
	if code == "" || len(code) > 4096 {
		return errorf(http.StatusBadRequest, "invalid_code", "the identity provider sent no authorization code")
	}
	p, err := a.sso.discover(now)
	if err != nil {
		return err
	}
	pr, err := a.signIn(ctx, p, code, l)
	if err != nil {
		return err
	}
	sess, err := a.grantSession(pr)
	if err != nil {
		return err
	}
	if l.CLIPort != 0 {
		return a.handToCLI(c, l, sess)
	}
	id, err := a.createSession(ctx, sess, now)
	if err != nil {
		return err
	}
	// The session this browser held before, if any, ends: one browser, one session.
	a.endBrowserSession(c)
	http.SetCookie(c.Writer, a.Cookie(c, access.SessionCookie, id, "/", int(sess.ExpiresAt.Sub(now).Seconds())))
	a.logger(ctx).InfoContext(ctx, "signed in", "subject", sess.Subject, "email", sess.Email, "grants", grantStrings(sess.Grants))
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusFound, l.Return)
	return nil
}

func trimSessionPrefix(id string) string {
	if len(id) > len(access.SessionPrefix) && id[:len(access.SessionPrefix)] == access.SessionPrefix {
		return id[len(access.SessionPrefix):]
	}
	return ""
}

// signIn exchanges the code and verifies the ID token; it reads the userinfo
// endpoint for what the ID token leaves out (email, groups), for the same subject only.
func (a *API) signIn(ctx context.Context, p *oidc.Provider, code string, l *access.Login) (*person, error) {
	cctx := oidc.ClientContext(ctx, a.sso.client)
	tok, err := a.sso.oauth2(p).Exchange(cctx, code, oauth2.VerifierOption(l.Verifier))
	if err != nil {
		return nil, &httpError{Status: http.StatusUnauthorized, Code: "sso_exchange_failed",
			Msg: "the identity provider did not accept the sign-in; start again at /auth/login", Err: err}
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, errorf(http.StatusUnauthorized, "invalid_id_token", "the identity provider sent no ID token")
	}
	idt, err := a.verifyIDToken(cctx, p, raw, l.Nonce)
	if err != nil {
		return nil, err
	}
	var cl map[string]any
	if err := idt.Claims(&cl); err != nil {
		return nil, &httpError{Status: http.StatusUnauthorized, Code: "invalid_id_token", Msg: "the ID token's claims cannot be read", Err: err}
	}
	groupsClaim := a.sso.cfg.GroupsClaim
	if groupsClaim == "" {
		groupsClaim = "groups"
	}
	_, hasGroups := cl[groupsClaim]
	wantGroups := slices.ContainsFunc(a.sso.cfg.Roles, func(m access.RoleMapping) bool { return m.Group != "" })
	if (stringClaim(cl, "email") == "" || (wantGroups && !hasGroups)) && p.UserInfoEndpoint() != "" {
		ui, err := p.UserInfo(cctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			return nil, &httpError{Status: http.StatusBadGateway, Code: "sso_userinfo_failed",
				Msg: "cannot read your profile from the identity provider; retry", Err: err}
		}
		if ui.Subject != idt.Subject {
			return nil, errorf(http.StatusUnauthorized, "invalid_id_token", "the identity provider's profile is of another subject than the ID token")
		}
		var uc map[string]any
		if err := ui.Claims(&uc); err != nil {
			return nil, &httpError{Status: http.StatusBadGateway, Code: "sso_userinfo_failed", Msg: "cannot read your profile from the identity provider", Err: err}
		}
		for k, v := range uc {
			if _, ok := cl[k]; !ok {
				cl[k] = v
			}
		}
	}
	pr := &person{Subject: idt.Subject, Issuer: idt.Issuer, Email: stringClaim(cl, "email"), Name: stringClaim(cl, "name"),
		Groups: stringsClaim(cl, groupsClaim)}
	switch v := cl["email_verified"].(type) {
	case bool:
		pr.EmailVerified = v
	case string: // some providers send "true"
		pr.EmailVerified = v == "true"
	}
	if pr.Name == "" {
		pr.Name = stringClaim(cl, "preferred_username")
	}
	return pr, nil
}

// verifyIDToken checks the ID token's signature, issuer, audience (the client id), expiry
// and nonce.
func (a *API) verifyIDToken(ctx context.Context, p *oidc.Provider, raw, nonce string) (*oidc.IDToken, error) {
	idt, err := p.Verifier(&oidc.Config{ClientID: a.sso.cfg.ClientID, Now: a.now}).Verify(ctx, raw)
	if err != nil {
		return nil, &httpError{Status: http.StatusUnauthorized, Code: "invalid_id_token", Msg: "the ID token is not valid for this relay", Err: err}
	}
	if !access.HashEqual(idt.Nonce, nonce) {
		return nil, errorf(http.StatusUnauthorized, "invalid_id_token", "the ID token's nonce is not this sign-in's")
	}
	return idt, nil
}

// grantSession maps the person to grants: a session without its CSRF token and id yet, or
// a 403 when the person may not sign in.
func (a *API) grantSession(pr *person) (*access.Session, error) {
	cfg := a.sso.cfg
	verified := ""
	if pr.EmailVerified {
		verified = pr.Email
	}
	if len(cfg.AllowedDomains) > 0 && (verified == "" || !cfg.DomainAllowed(verified)) {
		who := pr.Email
		if verified == "" {
			who = "an account without a verified email"
		}
		return nil, errorf(http.StatusForbidden, "domain_not_allowed", "you signed in as %s, which is not in a domain allowed on this relay", who)
	}
	grants := cfg.Grants(verified, pr.Groups)
	if len(grants) == 0 {
		who := pr.Email
		if who == "" {
			who = pr.Subject
		}
		return nil, errorf(http.StatusForbidden, "no_role", "you signed in as %s, but no role on this relay is mapped to you; ask its administrator", who)
	}
	return &access.Session{Subject: pr.Subject, Issuer: pr.Issuer, Email: pr.Email, Name: pr.Name, Grants: grants}, nil
}

// createSession stores sess under a fresh id from now on and returns the id.
func (a *API) createSession(ctx context.Context, sess *access.Session, now time.Time) (string, error) {
	secret, err := access.RandomID(randomBytes)
	if err != nil {
		return "", err
	}
	csrf, err := access.RandomID(randomBytes)
	if err != nil {
		return "", err
	}
	id := access.SessionPrefix + secret
	_, lifetime := a.sessionLifetimes()
	sess.IDHash, sess.CSRF = access.HashToken(id), csrf
	sess.CreatedAt, sess.LastSeen, sess.ExpiresAt = now, now, now.Add(lifetime)
	if err := a.store.PutSession(ctx, sess); err != nil {
		return "", storeError("put session", err)
	}
	return id, nil
}

// ssoLogout ends the request's session. A cookie session must show its CSRF token (header
// X-Ferry-CSRF or form field "csrf"); an unknown or expired one just loses its cookie.
func (a *API) ssoLogout(c *gin.Context) error {
	s, fromCookie, err := a.resolveSession(c)
	var he *httpError
	if err != nil && !(errors.As(err, &he) && he.Status == http.StatusUnauthorized) {
		return err
	}
	if s != nil {
		if fromCookie {
			token := c.GetHeader(CSRFHeader)
			if token == "" {
				token = c.PostForm("csrf")
			}
			if !access.HashEqual(token, s.CSRF) {
				return errorf(http.StatusForbidden, "csrf", "signing out needs the session's CSRF token in %s (GET /auth/whoami tells it)", CSRFHeader)
			}
		}
		ctx := c.Request.Context()
		if err := a.endSession(ctx, s.IDHash); err != nil {
			return storeError("delete session", err)
		}
		a.logger(ctx).InfoContext(ctx, "signed out", "subject", s.Subject, "email", s.Email)
	}
	if fromCookie {
		http.SetCookie(c.Writer, a.Cookie(c, access.SessionCookie, "", "/", -1))
	}
	c.Status(http.StatusNoContent)
	return nil
}

// ssoWhoami answers who the request's session belongs to, with its CSRF token.
func (a *API) ssoWhoami(c *gin.Context) error {
	_, s, err := a.sessionPrincipal(c)
	if err != nil {
		return err
	}
	if s == nil {
		return errorf(http.StatusUnauthorized, "not_signed_in", "no session: sign in at /auth/login")
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, relayclient.WhoAmI{Subject: s.Subject, Issuer: s.Issuer, Email: s.Email, Name: s.Name,
		Grants: grantStrings(s.Grants), CSRF: s.CSRF, ExpiresAt: s.ExpiresAt})
	return nil
}

func grantStrings(gs []access.Grant) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = g.String()
	}
	return out
}

func stringClaim(cl map[string]any, name string) string {
	s, _ := cl[name].(string)
	return s
}

// stringsClaim reads a claim that is a list of strings, or one string.
func stringsClaim(cl map[string]any, name string) []string {
	switch v := cl[name].(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
