package access

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Config is the access section of the relay's YAML file:
//
//	access:
//	  bootstrap_token: true        # FERRY_ADMIN_TOKEN works (default); false disables it
//	  sso:
//	    issuer: https://accounts.example.com
//	    client_id: ferry
//	    client_secret_env: FERRY_SSO_CLIENT_SECRET
//	    public_url: https://relay.example.com
//	    allowed_domains: [example.com]
//	    groups_claim: groups
//	    roles:
//	      - email: ana@example.com
//	        grants: ["*:admin"]
//	      - group: mobile
//	        grants: ["com.example.app:deployer"]
type Config struct {
	// BootstrapToken says whether FERRY_ADMIN_TOKEN is accepted; nil means true.
	BootstrapToken *bool      `yaml:"bootstrap_token" json:"bootstrap_token,omitempty"`
	SSO            *SSOConfig `yaml:"sso" json:"sso,omitempty"`
}

// BootstrapEnabled reports whether the bootstrap token is accepted.
func (c *Config) BootstrapEnabled() bool {
	return c == nil || c.BootstrapToken == nil || *c.BootstrapToken
}

// SSOConfig configures sign-in through an OpenID Connect provider (authorization-code
// flow with PKCE).
type SSOConfig struct {
	// Issuer is the provider's issuer URL (its discovery document is Issuer +
	// "/.well-known/openid-configuration").
	Issuer   string `yaml:"issuer" json:"issuer"`
	ClientID string `yaml:"client_id" json:"client_id"`
	// ClientSecretEnv names the environment variable holding the client secret; empty
	// for a public client (PKCE only).
	ClientSecretEnv string `yaml:"client_secret_env" json:"client_secret_env,omitempty"`
	// PublicURL is the relay's address as browsers reach it; the callback is PublicURL +
	// "/auth/callback".
	PublicURL string `yaml:"public_url" json:"public_url"`
	// Scopes requested besides "openid"; default email and profile.
	Scopes []string `yaml:"scopes" json:"scopes,omitempty"`
	// AllowedDomains, when set, admits only verified emails in these domains.
	AllowedDomains []string `yaml:"allowed_domains" json:"allowed_domains,omitempty"`
	// GroupsClaim names the ID token claim listing the person's groups; default "groups".
	GroupsClaim string `yaml:"groups_claim" json:"groups_claim,omitempty"`
	// SessionIdle and SessionMax bound a session: signed out after SessionIdle without a
	// request (default 12h) and SessionMax after signing in (default 7 days).
	SessionIdle time.Duration `yaml:"session_idle" json:"session_idle,omitempty"`
	SessionMax  time.Duration `yaml:"session_max" json:"session_max,omitempty"`
	// Roles map people to grants; a person gets the union of every matching mapping, and a
	// person no mapping matches cannot sign in.
	Roles []RoleMapping `yaml:"roles" json:"roles"`
}

// Default session lifetimes.
const (
	DefaultSessionIdle = 12 * time.Hour
	DefaultSessionMax  = 7 * 24 * time.Hour
)

// RoleMapping grants Grants to the person with Email, or to members of Group. Exactly one
// of Email and Group is set; Email "*@example.com" matches every verified address in the
// domain.
type RoleMapping struct {
	Email  string   `yaml:"email" json:"email,omitempty"`
	Group  string   `yaml:"group" json:"group,omitempty"`
	Grants []string `yaml:"grants" json:"grants"`
}

// Validate reports every problem in c; apps lists the configured app ids, which grants
// must name (or "*").
func (c *Config) Validate(apps []string) error {
	if c == nil || c.SSO == nil {
		return nil
	}
	s := c.SSO
	var errs []error
	for _, u := range []struct{ name, v string }{{"issuer", s.Issuer}, {"public_url", s.PublicURL}} {
		p, err := url.Parse(u.v)
		if u.v == "" || err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
			errs = append(errs, fmt.Errorf("access.sso.%s: %q is not an http(s) URL", u.name, u.v))
		}
	}
	if s.ClientID == "" {
		errs = append(errs, errors.New("access.sso.client_id is required"))
	}
	if s.SessionIdle < 0 || s.SessionMax < 0 {
		errs = append(errs, errors.New("access.sso: session_idle and session_max must be positive"))
	}
	for _, d := range s.AllowedDomains {
		if d == "" || strings.Contains(d, "@") {
			errs = append(errs, fmt.Errorf("access.sso.allowed_domains: %q is not a domain (write example.com, without @)", d))
		}
	}
	if len(s.Roles) == 0 {
		errs = append(errs, errors.New("access.sso.roles is empty: nobody could sign in"))
	}
	for i, m := range s.Roles {
		if (m.Email == "") == (m.Group == "") {
			errs = append(errs, fmt.Errorf("access.sso.roles[%d]: set exactly one of email and group", i))
		}
		if local, domain, ok := strings.Cut(m.Email, "@"); m.Email != "" && (!ok || local == "" || domain == "" || strings.Contains(domain, "@")) {
			// It would match nobody (or, "*@", every address without a domain).
			errs = append(errs, fmt.Errorf("access.sso.roles[%d]: email %q is neither an address nor *@domain", i, m.Email))
		}
		if len(m.Grants) == 0 {
			errs = append(errs, fmt.Errorf("access.sso.roles[%d]: no grants", i))
		}
		for _, gs := range m.Grants {
			g, err := ParseGrant(gs)
			if err != nil {
				errs = append(errs, fmt.Errorf("access.sso.roles[%d]: grant %q: %w", i, gs, err))
				continue
			}
			if g.App != AllApps && !slices.Contains(apps, g.App) {
				errs = append(errs, fmt.Errorf("access.sso.roles[%d]: grant %q names app %q, which is not configured", i, gs, g.App))
			}
		}
	}
	return errors.Join(errs...)
}

// Grants returns the grants the mappings give a person with a verified email (empty if
// not verified) and groups. Nil means the person may not sign in.
func (s *SSOConfig) Grants(email string, groups []string) []Grant {
	var out []Grant
	for _, m := range s.Roles {
		if !m.matches(email, groups) {
			continue
		}
		for _, gs := range m.Grants {
			if g, err := ParseGrant(gs); err == nil && !slices.Contains(out, g) {
				out = append(out, g)
			}
		}
	}
	return out
}

func (m RoleMapping) matches(email string, groups []string) bool {
	if m.Group != "" {
		return slices.Contains(groups, m.Group)
	}
	if email == "" {
		return false
	}
	if domain, ok := strings.CutPrefix(m.Email, "*@"); ok {
		_, d, _ := strings.Cut(email, "@")
		return strings.EqualFold(d, domain)
	}
	return strings.EqualFold(m.Email, email)
}

// DomainAllowed reports whether email's domain is in AllowedDomains (or none are set).
func (s *SSOConfig) DomainAllowed(email string) bool {
	if len(s.AllowedDomains) == 0 {
		return true
	}
	_, d, ok := strings.Cut(email, "@")
	return ok && slices.ContainsFunc(s.AllowedDomains, func(a string) bool { return strings.EqualFold(a, d) })
}
