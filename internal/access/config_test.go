package access

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func validSSO() *SSOConfig {
	return &SSOConfig{
		Issuer:    "https://accounts.example.com",
		ClientID:  "ferry",
		PublicURL: "https://relay.example.com",
		Roles: []RoleMapping{
			{Email: "ana@example.com", Grants: []string{"*:admin"}},
			{Group: "mobile", Grants: []string{"com.example.app:deployer", "viewer"}},
			{Email: "*@example.com", Grants: []string{"com.example.app:viewer"}},
		},
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	apps := []string{"com.example.app", "com.example.other"}
	var nilConfig *Config
	for name, c := range map[string]*Config{
		"nil":       nilConfig,
		"no sso":    {},
		"valid sso": {SSO: validSSO()},
		"http issuer and lifetimes": {SSO: func() *SSOConfig {
			s := validSSO()
			s.Issuer, s.SessionIdle, s.SessionMax = "http://127.0.0.1:5556/dex", time.Hour, 24*time.Hour
			return s
		}()},
	} {
		if err := c.Validate(apps); err != nil {
			t.Errorf("%s: Validate = %v, want nil", name, err)
		}
	}
	for _, tc := range []struct {
		name string
		mod  func(s *SSOConfig)
		want []string
	}{
		{"no issuer", func(s *SSOConfig) { s.Issuer = "" }, []string{`access.sso.issuer: "" is not an http(s) URL`}},
		{"issuer scheme", func(s *SSOConfig) { s.Issuer = "ftp://idp.example" }, []string{"access.sso.issuer"}},
		{"issuer without host", func(s *SSOConfig) { s.Issuer = "https://" }, []string{"access.sso.issuer"}},
		{"issuer not a URL", func(s *SSOConfig) { s.Issuer = "https://idp example/%zz" }, []string{"access.sso.issuer"}},
		{"public url", func(s *SSOConfig) { s.PublicURL = "relay.example.com" }, []string{"access.sso.public_url"}},
		{"client id", func(s *SSOConfig) { s.ClientID = "" }, []string{"access.sso.client_id is required"}},
		{"negative idle", func(s *SSOConfig) { s.SessionIdle = -time.Second }, []string{"session_idle and session_max"}},
		{"negative max", func(s *SSOConfig) { s.SessionMax = -time.Second }, []string{"session_idle and session_max"}},
		{"no roles", func(s *SSOConfig) { s.Roles = nil }, []string{"access.sso.roles is empty"}},
		{"email and group", func(s *SSOConfig) { s.Roles[0].Group = "ops" }, []string{"roles[0]: set exactly one of email and group"}},
		{"neither", func(s *SSOConfig) { s.Roles[1].Group = "" }, []string{"roles[1]: set exactly one of email and group"}},
		{"no grants", func(s *SSOConfig) { s.Roles[2].Grants = nil }, []string{"roles[2]: no grants"}},
		{"bad role", func(s *SSOConfig) { s.Roles[0].Grants = []string{"*:owner"} }, []string{`roles[0]: grant "*:owner"`, `unknown role "owner"`}},
		{"unknown app", func(s *SSOConfig) { s.Roles[1].Grants = []string{"com.example.gone:viewer"} },
			[]string{`roles[1]: grant "com.example.gone:viewer" names app "com.example.gone", which is not configured`}},
		{"email without domain", func(s *SSOConfig) { s.Roles[0].Email = "ana" }, []string{`roles[0]: email "ana"`}},
		{"wildcard without domain", func(s *SSOConfig) { s.Roles[2].Email = "*@" }, []string{`roles[2]: email "*@"`}},
		{"allowed domain with @", func(s *SSOConfig) { s.AllowedDomains = []string{"example.com", "@other.com"} },
			[]string{`access.sso.allowed_domains: "@other.com"`}},
		{"every problem at once", func(s *SSOConfig) {
			s.Issuer, s.ClientID, s.Roles[0].Grants = "", "", nil
		}, []string{"access.sso.issuer", "client_id", "roles[0]: no grants"}},
	} {
		s := validSSO()
		tc.mod(s)
		err := (&Config{SSO: s}).Validate(apps)
		if err == nil {
			t.Errorf("%s: Validate = nil, want an error", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: Validate = %q, want it to contain %q", tc.name, err, w)
			}
		}
	}
}

func TestBootstrapEnabled(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	var nilConfig *Config
	for name, tc := range map[string]struct {
		c    *Config
		want bool
	}{
		"nil config": {nilConfig, true}, "unset": {&Config{}, true},
		"true": {&Config{BootstrapToken: &yes}, true}, "false": {&Config{BootstrapToken: &no}, false},
	} {
		if got := tc.c.BootstrapEnabled(); got != tc.want {
			t.Errorf("%s: BootstrapEnabled = %v, want %v", name, got, tc.want)
		}
	}
}

func TestSSOGrants(t *testing.T) {
	t.Parallel()
	s := validSSO()
	s.Roles = append(s.Roles,
		RoleMapping{Group: "ops", Grants: []string{"com.example.app:viewer", "*:admin"}},
		RoleMapping{Email: "bob@example.org", Grants: []string{"not-a-grant:owner", "com.example.other:publisher"}},
	)
	all := Grant{App: AllApps, Role: Admin}
	appViewer := Grant{App: "com.example.app", Role: Viewer}
	for _, tc := range []struct {
		name   string
		email  string
		groups []string
		want   []Grant
	}{
		{"exact email and its domain", "ana@example.com", nil, []Grant{all, appViewer}},
		{"email case-insensitive", "ANA@Example.COM", nil, []Grant{all, appViewer}},
		{"domain only", "zoe@example.com", nil, []Grant{appViewer}},
		{"domain case-insensitive", "zoe@EXAMPLE.com", nil, []Grant{appViewer}},
		{"subdomain is another domain", "zoe@eu.example.com", nil, nil},
		{"suffix is another domain", "zoe@notexample.com", nil, nil},
		{"domain in the local part", "example.com@evil.test", nil, nil},
		{"group", "", []string{"mobile"}, []Grant{{App: "com.example.app", Role: Deployer}, {App: AllApps, Role: Viewer}}},
		{"group is case-sensitive", "", []string{"Mobile"}, nil},
		{"unverified email, group", "", []string{"ops", "mobile"},
			[]Grant{{App: "com.example.app", Role: Deployer}, {App: AllApps, Role: Viewer}, appViewer, all}},
		{"union, no repeats", "ana@example.com", []string{"ops"}, []Grant{all, appViewer}},
		{"invalid grants skipped", "bob@example.org", nil, []Grant{{App: "com.example.other", Role: Publisher}}},
		{"nobody", "eve@evil.test", []string{"outsiders"}, nil},
		{"no email, no groups", "", nil, nil},
	} {
		if got := s.Grants(tc.email, tc.groups); !slices.Equal(got, tc.want) {
			t.Errorf("%s: Grants(%q, %q) = %v, want %v", tc.name, tc.email, tc.groups, got, tc.want)
		}
	}
}

func TestDomainAllowed(t *testing.T) {
	t.Parallel()
	open := &SSOConfig{}
	for _, e := range []string{"ana@example.com", "x@y", ""} {
		if !open.DomainAllowed(e) {
			t.Errorf("without allowed_domains DomainAllowed(%q) = false", e)
		}
	}
	s := &SSOConfig{AllowedDomains: []string{"example.com", "Example.ORG"}}
	for e, want := range map[string]bool{
		"ana@example.com":       true,
		"ana@EXAMPLE.com":       true,
		"ana@example.org":       true,
		"ana@eu.example.com":    false,
		"ana@example.com.evil":  false,
		"example.com":           false,
		"":                      false,
		"ana@":                  false,
		"example.com@evil.test": false,
	} {
		if got := s.DomainAllowed(e); got != want {
			t.Errorf("DomainAllowed(%q) = %v, want %v", e, got, want)
		}
	}
}
