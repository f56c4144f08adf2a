package relayclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Paths of the relay's single sign-on endpoints (docs/sso.md).
const (
	LoginPath    = "/auth/login"
	LogoutPath   = "/auth/logout"
	WhoAmIPath   = "/auth/whoami"
	CLITokenPath = "/auth/cli/token"
)

// WhoAmI is the answer of GET /auth/whoami: the signed-in person of the request's session.
type WhoAmI struct {
	Subject string `json:"subject"`
	Issuer  string `json:"issuer"`
	Email   string `json:"email,omitempty"`
	Name    string `json:"name,omitempty"`
	// Grants are "app:role" ("*" for every app).
	Grants []string `json:"grants"`
	// CSRF is the token a browser session's state-changing requests carry in the
	// X-Ferry-CSRF header.
	CSRF      string    `json:"csrf"`
	ExpiresAt time.Time `json:"expires_at"`
}

// CLITokenRequest is the body of POST /auth/cli/token: the one-time code the relay sent
// to `ferry login`'s loopback listener, and the PKCE verifier whose challenge started the
// sign-in.
type CLITokenRequest struct {
	Code     string `json:"code"`
	Verifier string `json:"verifier"`
}

// CLIToken is the answer of POST /auth/cli/token: a session id to send as a bearer token.
type CLIToken struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	Email     string    `json:"email,omitempty"`
	Name      string    `json:"name,omitempty"`
}

// ExchangeCLICode trades `ferry login`'s one-time code and PKCE verifier for a session.
func (c *Client) ExchangeCLICode(ctx context.Context, code, verifier string) (*CLIToken, error) {
	body, err := json.Marshal(CLITokenRequest{Code: code, Verifier: verifier})
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	req, err := c.newRequest(ctx, http.MethodPost, CLITokenPath, body)
	if err != nil {
		return nil, err
	}
	var out CLIToken
	return &out, c.do(req, &out)
}

// WhoAmI asks who the client's bearer token (Options.AdminToken: a session from `ferry
// login`) belongs to.
func (c *Client) WhoAmI(ctx context.Context) (*WhoAmI, error) {
	var out WhoAmI
	return &out, c.admin(ctx, http.MethodGet, WhoAmIPath, nil, &out)
}

// Logout ends the session of the client's bearer token.
func (c *Client) Logout(ctx context.Context) error {
	return c.admin(ctx, http.MethodPost, LogoutPath, nil, nil)
}
