package relayclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ferryhq/ferry/internal/access"
)

// TokensPath is where API tokens are created (POST) and listed (GET); TokensPath + "/{id}"
// revokes one (DELETE).
const TokensPath = "/api/v1/tokens"

// Limits of a token request, checked by the relay (and by [TokenRequest.Check]).
const (
	// MaxTokenName is the longest token name, in characters.
	MaxTokenName = 64
	// MaxTokenGrants is the most grants one token carries.
	MaxTokenGrants = 10
	// MaxTokenLifetime is the longest expires_in.
	MaxTokenLifetime = 5 * 365 * 24 * time.Hour
)

// TokenRequest is the body of POST /api/v1/tokens.
type TokenRequest struct {
	// Name is what the token is for ("ci-nightly"): 1 to [MaxTokenName] printable characters.
	Name string `json:"name"`
	// Grants are the roles the token has, per app ("*": every app).
	Grants []access.Grant `json:"grants"`
	// ExpiresIn is the token's lifetime, as [ParseLifetime] reads it ("90d", "720h"); empty
	// means it never expires.
	ExpiresIn string `json:"expires_in,omitempty"`
}

// Check reports every problem of r that does not depend on the relay's configuration.
func (r *TokenRequest) Check() error {
	var errs []error
	if n := len([]rune(r.Name)); n == 0 || n > MaxTokenName || !printableName(r.Name) {
		errs = append(errs, fmt.Errorf("name must be 1 to %d printable characters", MaxTokenName))
	}
	switch n := len(r.Grants); {
	case n == 0:
		errs = append(errs, errors.New("grants: at least one grant {app, role} is required"))
	case n > MaxTokenGrants:
		errs = append(errs, fmt.Errorf("grants: at most %d", MaxTokenGrants))
	}
	for i, g := range r.Grants {
		if err := g.Check(); err != nil {
			errs = append(errs, fmt.Errorf("grants[%d]: %w", i, err))
		}
		for _, h := range r.Grants[:i] {
			if h == g {
				errs = append(errs, fmt.Errorf("grants[%d]: %s is listed twice", i, g))
				break
			}
		}
	}
	if r.ExpiresIn != "" {
		if _, err := ParseLifetime(r.ExpiresIn); err != nil {
			errs = append(errs, fmt.Errorf("expires_in: %w", err))
		}
	}
	return errors.Join(errs...)
}

func printableName(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffd || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return strings.TrimSpace(s) != ""
}

// ParseLifetime reads a token lifetime: a Go duration ("720h", "90m") or a whole number of
// days ("90d"). It must be positive and at most [MaxTokenLifetime].
func ParseLifetime(s string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 16)
		if err != nil || days == "" || days[0] == '+' {
			return 0, fmt.Errorf("%q is not a number of days such as 90d", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q is not a duration such as 90d or 720h", s)
		}
	}
	if d <= 0 || d > MaxTokenLifetime {
		return 0, fmt.Errorf("%q must be positive and at most %d days", s, MaxTokenLifetime/(24*time.Hour))
	}
	return d, nil
}

// TokenInfo is an API token as the admin API shows it: its record without the hash. The
// token's text is shown only once, when it is created.
type TokenInfo struct {
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	Grants    []access.Grant `json:"grants"`
	CreatedBy string         `json:"created_by"`
	CreatedAt time.Time      `json:"created_at"`
	ExpiresAt time.Time      `json:"expires_at,omitzero"`
	LastUsed  time.Time      `json:"last_used,omitzero"`
	RevokedAt time.Time      `json:"revoked_at,omitzero"`
}

// NewTokenInfo returns t's public fields.
func NewTokenInfo(t *access.Token) TokenInfo {
	return TokenInfo{ID: t.ID, Name: t.Name, Grants: t.Grants, CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt,
		ExpiresAt: t.ExpiresAt, LastUsed: t.LastUsed, RevokedAt: t.RevokedAt}
}

// CreatedToken is the answer to POST /api/v1/tokens (201).
type CreatedToken struct {
	// Token is the token's text ("ferry_…"): shown this once, never stored by the relay.
	Token  string    `json:"token"`
	Record TokenInfo `json:"record"`
}

// TokenList is the answer to GET /api/v1/tokens: the tokens the caller may manage, newest
// first, revoked and expired ones included.
type TokenList struct {
	Tokens []TokenInfo `json:"tokens"`
}

// CreateToken creates an API token.
func (c *Client) CreateToken(ctx context.Context, req *TokenRequest) (*CreatedToken, error) {
	var out CreatedToken
	if err := c.admin(ctx, http.MethodPost, TokensPath, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListTokens lists the API tokens the caller may manage.
func (c *Client) ListTokens(ctx context.Context) (*TokenList, error) {
	var out TokenList
	if err := c.admin(ctx, http.MethodGet, TokensPath, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeToken revokes the API token id and returns its record.
func (c *Client) RevokeToken(ctx context.Context, id string) (*TokenInfo, error) {
	var out TokenInfo
	if err := c.admin(ctx, http.MethodDelete, TokensPath+"/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AuditQuery selects audit entries. Every field is optional.
type AuditQuery struct {
	// Actor matches an entry's actor kind, name, id or email, case-insensitively.
	Actor string
	// Action matches the entry's action exactly ("promote", "policy", "token_create", …).
	Action string
	// Since and Until bound the entries' time, inclusive.
	Since, Until time.Time
	// Limit is the most entries returned (after filtering); 0 means the relay's default.
	Limit int
}

func (q *AuditQuery) encode() string {
	v := url.Values{}
	if q.Actor != "" {
		v.Set("actor", q.Actor)
	}
	if q.Action != "" {
		v.Set("action", q.Action)
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// QueryAudit returns app's audit entries that match q, newest first.
func (c *Client) QueryAudit(ctx context.Context, app string, q AuditQuery) (*AuditList, error) {
	var out AuditList
	if err := c.admin(ctx, http.MethodGet, appPath(app, "audit")+q.encode(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
