package channel

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// readmeConfig is the relay config of README.md and issue 5.
const readmeConfig = `
apps:
  - id: com.example.app
    repository: acme/mobile-app        # the only repository that may publish or promote this app
    default_channel: production
    channels:
      production: {}
      beta: { allow_device_self_set: true }
    rules:                             # first match wins
      - { ref: refs/heads/main, channel: beta }
      - { ref: "refs/tags/v*", channel: production }
`

func TestParseConfig(t *testing.T) {
	t.Parallel()
	c, err := ParseConfig([]byte(readmeConfig))
	if err != nil {
		t.Fatalf("ParseConfig(README) = %v", err)
	}
	want := &Config{Apps: []App{{
		ID:             "com.example.app",
		Repository:     "acme/mobile-app",
		DefaultChannel: "production",
		Channels:       map[string]Policy{"production": {}, "beta": {AllowDeviceSelfSet: true}},
		Rules: []Rule{
			{Ref: "refs/heads/main", Channel: "beta"},
			{Ref: "refs/tags/v*", Channel: "production"},
		},
	}}}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("ParseConfig(README) mismatch (-want +got):\n%s", diff)
	}
	if a := c.App("com.example.app"); a == nil || a.ID != "com.example.app" {
		t.Errorf("App(com.example.app) = %v", a)
	}
	if a := c.App("com.other"); a != nil {
		t.Errorf("App(com.other) = %v, want nil", a)
	}
}

func TestParseConfigPolicy(t *testing.T) {
	t.Parallel()
	c, err := ParseConfig([]byte(`
apps:
  - id: com.example.app
    repository: acme/mobile-app
    default_channel: production
    channels:
      production:
        public: true
        allow_emulator: false
        allow_dev: false
        disable_auto_update: major
        platforms: [ios, android]
      beta:
        allow_emulator: true
        allow_dev: true
      nightly:
      "*": { allow_device_self_set: true }
    rules:
      - { ref: "refs/tags/channel/*", channel: "$1" }
`))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	a := c.App("com.example.app")
	want := map[string]Policy{
		"production": {Public: true, DenyEmulator: true, DenyDev: true, DisableAutoUpdate: "major", Platforms: []string{"ios", "android"}},
		"beta":       {},
		"nightly":    {},
		"*":          {AllowDeviceSelfSet: true},
	}
	if diff := cmp.Diff(want, a.Channels); diff != "" {
		t.Errorf("Channels mismatch (-want +got):\n%s", diff)
	}
	tests := []struct {
		channel string
		want    Policy
		wantOK  bool
	}{
		{"production", want["production"], true},
		{"nightly", Policy{}, true},
		{"feature-x", Policy{AllowDeviceSelfSet: true}, true},
	}
	for _, tc := range tests {
		got, ok := a.Policy(tc.channel)
		if ok != tc.wantOK {
			t.Errorf("Policy(%q) ok = %v, want %v", tc.channel, ok, tc.wantOK)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Policy(%q) mismatch (-want +got):\n%s", tc.channel, diff)
		}
	}
	c2, err := ParseConfig([]byte(readmeConfig))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c2.Apps[0].Policy("staging"); ok {
		t.Errorf("Policy(staging) ok without a \"*\" entry")
	}
}

func TestParseConfigErrors(t *testing.T) {
	t.Parallel()
	base := func(edit func(string) string) string { return edit(readmeConfig) }
	tests := []struct {
		name string
		yaml string
		want []string // substrings that must all appear in the error
	}{
		{"empty", "", []string{"empty document"}},
		{"not a mapping", "- a\n- b\n", []string{"parse config"}},
		{"unknown top-level key", base(func(s string) string { return s + "extra: 1\n" }), []string{"field extra not found"}},
		{"unknown app key", base(func(s string) string {
			return strings.Replace(s, "    default_channel:", "    secret: x\n    default_channel:", 1)
		}), []string{"field secret not found"}},
		{"unknown policy key", base(func(s string) string {
			return strings.Replace(s, "beta: { allow_device_self_set: true }", "beta: { allow_self_set: true }", 1)
		}), []string{`unknown policy key "allow_self_set"`}},
		{"wrong type", base(func(s string) string {
			return strings.Replace(s, "allow_device_self_set: true", "allow_device_self_set: sometimes", 1)
		}), []string{"parse config"}},
		{"duplicate key", base(func(s string) string {
			return strings.Replace(s, "      production: {}\n", "      production: {}\n      production: {}\n", 1)
		}), []string{"already defined"}},
		{"two documents", readmeConfig + "---\napps: []\n", []string{"more than one YAML document"}},
		{"no apps", "apps: []\n", []string{"no apps"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := ParseConfig([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("ParseConfig() = %+v, want error", c)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ParseConfig() error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestValidateListsEveryProblem checks that one run reports every problem, each naming its
// app and rule.
func TestValidateListsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := ParseConfig([]byte(`
apps:
  - id: com.example.app
    repository: acme
    default_channel: prod
    channels:
      production: { disable_auto_update: sometimes, platforms: [ios, windows, ios] }
      "bad name": {}
    rules:
      - { ref: "refs/tags/v*", channel: staging }
      - { ref: "", channel: production }
      - { ref: "refs/tags/***", channel: production }
      - { ref: "refs/tags/*", channel: "$2" }
      - { ref: "refs/heads/main", channel: "$x" }
      - { ref: "refs/heads/*", channel: "" }
  - id: com.example.app
    repository: acme/app
    default_channel: main
    channels: { main: {} }
  - repository: acme/app
    default_channel: "*"
    channels: { "*": {} }
  - id: "com example"
    repository: acme/app
    channels: {}
`))
	if err == nil {
		t.Fatal("ParseConfig() = nil error")
	}
	msg := err.Error()
	for _, w := range []string{
		`app 0 ("com.example.app"): repository "acme" must be "owner/name"`,
		`app 0 ("com.example.app"): default_channel "prod" is not listed under channels`,
		`channel "production": disable_auto_update "sometimes" must be none, patch, minor or major`,
		`channel "production": platform "windows" must be ios, android or electron`,
		`channel "production": platform "ios" listed twice`,
		`channel "bad name": name must be`,
		`rule 0 ("refs/tags/v*"): channel "staging" is not listed under channels`,
		`rule 1 (""): ref pattern is empty`,
		`rule 2 ("refs/tags/***"): ref pattern has "***"`,
		`rule 3 ("refs/tags/*"): channel "$2": $2 names a capture the pattern does not have (it has 1)`,
		`rule 4 ("refs/heads/main"): channel "$x": "$" must be followed by a capture number 1-9`,
		`rule 5 ("refs/heads/*"): channel is required`,
		`app 1 ("com.example.app"): duplicate id, already used by app 0`,
		`app 2: id is required`,
		`app 2 (""): default_channel "*" is not a valid channel name`,
		`app 3 ("com example"): id must be`,
		`app 3 ("com example"): no channels`,
		`app 3 ("com example"): default_channel is required`,
	} {
		if !strings.Contains(msg, w) {
			t.Errorf("error does not mention %q", w)
		}
	}
	if n := len(strings.Split(msg, "\n")); n != 18 {
		t.Errorf("error has %d lines, want 18:\n%s", n, msg)
	}
}

func TestMatchRef(t *testing.T) {
	t.Parallel()
	a := &App{Rules: []Rule{
		{Ref: "refs/heads/main", Channel: "beta"},
		{Ref: "refs/tags/channel/*", Channel: "$1"},
		{Ref: "refs/tags/v*-rc*", Channel: "rc"},
		{Ref: "refs/tags/v*", Channel: "production"},
		{Ref: "refs/heads/release/**", Channel: "staging"},
		{Ref: "refs/heads/team/*/feature-*", Channel: "$1-$2"},
		{Ref: "refs/heads/env/**", Channel: "$1"},
		{Ref: "refs/heads/fallback/*", Channel: "fallback"},
		{Ref: "refs/pull/[0-9]+/merge", Channel: "pr"},
	}}
	tests := []struct {
		ref    string
		want   string
		wantOK bool
	}{
		{"refs/heads/main", "beta", true},
		{"refs/heads/main2", "", false},
		{"refs/heads/mai", "", false},
		{"refs/tags/channel/beta", "beta", true},
		{"refs/tags/channel/Beta.2", "Beta.2", true},
		{"refs/tags/channel/a/b", "", false}, // "*" does not cross "/", and v* does not match
		{"refs/tags/channel/", "", false},    // empty capture is no channel name
		{"refs/tags/v1.2.0-rc.1", "rc", true},
		{"refs/tags/v1.2.0", "production", true},
		{"refs/tags/v", "production", true},
		{"refs/tags/x1.2.0", "", false},
		{"refs/tags/v1/2", "", false},
		{"refs/heads/release/1.2", "staging", true},
		{"refs/heads/release/1.2/hotfix/x", "staging", true},
		{"refs/heads/release", "", false},
		{"refs/heads/team/core/feature-login", "core-login", true},
		{"refs/heads/team/core/sub/feature-login", "", false},
		{"refs/heads/env/prod", "prod", true},
		{"refs/heads/env/a/b", "", false}, // capture "a/b" is no channel name: next rules do not match
		{"refs/heads/fallback/x", "fallback", true},
		{"refs/pull/[0-9]+/merge", "pr", true}, // regexp characters are literal
		{"refs/pull/12/merge", "", false},
		{"", "", false},
		{strings.Repeat("a", maxRefLen+1), "", false},
	}
	for _, tc := range tests {
		t.Run(tc.ref, func(t *testing.T) {
			t.Parallel()
			got, ok := a.MatchRef(tc.ref)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("MatchRef(%q) = %q, %v, want %q, %v", tc.ref, got, ok, tc.want, tc.wantOK)
			}
		})
	}
	// First match wins even when a later rule is more specific.
	b := &App{Rules: []Rule{{Ref: "refs/tags/**", Channel: "all"}, {Ref: "refs/tags/v*", Channel: "production"}}}
	if got, _ := b.MatchRef("refs/tags/v1.0.0"); got != "all" {
		t.Errorf("MatchRef first match = %q, want all", got)
	}
	// An invalid rule is skipped, not fatal.
	c := &App{Rules: []Rule{{Ref: "refs/***", Channel: "x"}, {Ref: "refs/tags/*", Channel: "$3"}, {Ref: "refs/**", Channel: "ok"}}}
	if got, ok := c.MatchRef("refs/tags/v1"); got != "ok" || !ok {
		t.Errorf("MatchRef skipping invalid rules = %q, %v, want ok, true", got, ok)
	}
}

func TestValidChannelName(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"production": true, "beta-2": true, "v1.2_x": true, "9": true,
		"": false, "-x": false, ".hidden": false, "a/b": false, "a b": false, "*": false,
		strings.Repeat("a", 64): true, strings.Repeat("a", 65): false,
	} {
		if got := ValidChannelName(name); got != want {
			t.Errorf("ValidChannelName(%q) = %v, want %v", name, got, want)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(readmeConfig))
	f.Add([]byte(fixtureConfig))
	f.Add([]byte("apps:\n  - id: a.b\n    repository: o/r\n    default_channel: c\n    channels: {c: {allow_emulator: false}}\n    rules: [{ref: 'refs/**', channel: $1}]\n"))
	f.Add([]byte("apps: [{id: x, channels: {'*': ~}}]"))
	f.Add([]byte("{{{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			if c != nil {
				t.Fatalf("ParseConfig returned a config with error %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config fails Validate: %v", err)
		}
		for i := range c.Apps {
			a := &c.Apps[i]
			if c.App(a.ID) == nil {
				t.Fatalf("App(%q) = nil for a configured app", a.ID)
			}
			if _, ok := a.Policy(a.DefaultChannel); !ok {
				t.Fatalf("default channel %q has no policy", a.DefaultChannel)
			}
			for _, r := range a.Rules {
				// A rule's literal pattern matches itself when it has no wildcard.
				if !strings.Contains(r.Ref, "*") {
					ch, ok := a.MatchRef(r.Ref)
					if ok && !ValidChannelName(ch) {
						t.Fatalf("MatchRef(%q) = invalid channel %q", r.Ref, ch)
					}
				}
			}
		}
	})
}

func FuzzMatchRef(f *testing.F) {
	f.Add("refs/tags/channel/*", "$1", "refs/tags/channel/beta")
	f.Add("refs/heads/**", "x-$1", "refs/heads/a/b")
	f.Add("refs/tags/v*", "production", "refs/tags/v1.0.0")
	f.Add("refs/*/*/*", "$3$2$1", "refs/a/b/c")
	f.Add("**", "$1", "")
	f.Fuzz(func(t *testing.T, pattern, tmpl, ref string) {
		a := &App{Rules: []Rule{{Ref: pattern, Channel: tmpl}}}
		ch, ok := a.MatchRef(ref)
		if !ok {
			if ch != "" {
				t.Fatalf("MatchRef(%q) = %q without ok", ref, ch)
			}
			return
		}
		if !ValidChannelName(ch) {
			t.Fatalf("MatchRef(%q) with %q -> %q: invalid channel name", ref, pattern, ch)
		}
		g, err := compileGlob(pattern)
		if err != nil {
			t.Fatalf("matched with an invalid pattern %q: %v", pattern, err)
		}
		if !g.re.MatchString(ref) {
			t.Fatalf("MatchRef matched %q but the pattern does not", ref)
		}
		// A pattern without wildcards matches only itself.
		if !strings.Contains(pattern, "*") && ref != pattern {
			t.Fatalf("literal pattern %q matched %q", pattern, ref)
		}
		// "*" never crosses "/": the ref has as many segments as the pattern.
		if !strings.Contains(pattern, "**") && strings.Count(ref, "/") != strings.Count(pattern, "/") {
			t.Fatalf("pattern %q matched %q across segments", pattern, ref)
		}
	})
}

func TestConfigErrorsAreJoined(t *testing.T) {
	t.Parallel()
	err := (&Config{Apps: []App{{}, {}}}).Validate()
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) < 4 {
		t.Errorf("Validate() = %v, want errors.Join of every problem", err)
	}
}

// The authority keys of an app: repository_id, webhook_secret_env, hmac_secret_env and a
// channel's allow_refs are decoded and validated.
func TestParseConfigAuthorityKeys(t *testing.T) {
	t.Parallel()
	c, err := ParseConfig([]byte(`
apps:
  - id: com.example.app
    repository: acme/mobile-app
    repository_id: 700000001
    webhook_secret_env: FERRY_WEBHOOK_SECRET_APP
    hmac_secret_env: FERRY_HMAC_SECRET_APP
    default_channel: production
    channels:
      production: { allow_refs: ["refs/heads/release/*", "refs/heads/hotfix/**"] }
    rules:
      - { ref: "refs/tags/v*", channel: production }
`))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Apps[0]
	if a.RepositoryID != 700000001 || a.WebhookSecretEnv != "FERRY_WEBHOOK_SECRET_APP" || a.HMACSecretEnv != "FERRY_HMAC_SECRET_APP" {
		t.Errorf("app = %+v", a)
	}
	if diff := cmp.Diff([]string{"refs/heads/release/*", "refs/heads/hotfix/**"}, a.Channels["production"].AllowRefs); diff != "" {
		t.Errorf("allow_refs (-want +got):\n%s", diff)
	}

	_, err = ParseConfig([]byte(`
apps:
  - id: com.example.app
    repository: acme/mobile-app
    repository_id: -4
    webhook_secret_env: "1 BAD-NAME"
    hmac_secret_env: "x-y"
    default_channel: production
    channels:
      production: { allow_refs: ["heads/main", "refs/tags/***"] }
`))
	for _, want := range []string{"repository_id -4", `webhook_secret_env "1 BAD-NAME"`, `hmac_secret_env "x-y"`, `allow_refs[0] "heads/main" must be a full ref pattern`, `allow_refs[1] "refs/tags/***"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseConfig error %v does not mention %q", err, want)
		}
	}
}

func TestRefMayTarget(t *testing.T) {
	t.Parallel()
	app := &App{
		ID: "a", Repository: "o/r", DefaultChannel: "production",
		Channels: map[string]Policy{
			"production": {AllowRefs: []string{"refs/heads/release/*"}},
			"beta":       {},
			"*":          {},
		},
		Rules: []Rule{
			{Ref: "refs/heads/main", Channel: "beta"},
			{Ref: "refs/tags/v*", Channel: "production"},
			{Ref: "refs/tags/**", Channel: "beta"},
			{Ref: "refs/tags/channel/*", Channel: "$1"}, // shadowed by the rule above
		},
	}
	for _, tc := range []struct {
		ref, ch string
		want    bool
	}{
		{"refs/heads/main", "beta", true},
		{"refs/heads/main", "production", false},
		{"refs/heads/feature-x", "production", false},
		{"refs/heads/feature-x", "beta", false},
		{"refs/tags/v1.0.0", "production", true},
		{"refs/tags/v1.0.0", "beta", false}, // first match wins
		{"refs/tags/channel/qa", "qa", false},
		{"refs/heads/release/2.0", "production", true},
		{"refs/heads/release/2.0/x", "production", false},
		{"", "beta", false},
		{"refs/heads/main", "", false},
	} {
		if got := app.RefMayTarget(tc.ref, tc.ch); got != tc.want {
			t.Errorf("RefMayTarget(%q, %q) = %v, want %v", tc.ref, tc.ch, got, tc.want)
		}
	}
}

// TestValidateShortRefs: a rule written with a short ref ("main", "v*") can never match the
// full refs CI and webhooks send, so the config is refused with the full ref it meant.
func TestValidateShortRefs(t *testing.T) {
	t.Parallel()
	_, err := ParseConfig([]byte(`
apps:
  - id: io.mycorp.tasks
    repository: mycorp/tasks
    default_channel: production
    channels: { production: {}, beta: {} }
    rules:
      - { ref: main, channel: beta }
      - { ref: "v*", channel: production }
      - { ref: "tags/channel/*", channel: "$1" }
      - { ref: "**", channel: beta }
      - { ref: "refs/heads/*", channel: beta }
`))
	if err == nil {
		t.Fatal("ParseConfig accepted short refs")
	}
	msg := err.Error()
	for _, w := range []string{
		`rule 0 ("main"): ref never matches`,
		`did you mean refs/heads/main?`,
		`rule 1 ("v*"): ref never matches`,
		`did you mean refs/tags/v*?`,
		`did you mean refs/tags/channel/*?`,
	} {
		if !strings.Contains(msg, w) {
			t.Errorf("error does not mention %q:\n%s", w, msg)
		}
	}
	if n := len(strings.Split(msg, "\n")); n != 3 {
		t.Errorf("error has %d lines, want 3 (rules 3 and 4 can match):\n%s", n, msg)
	}
}

// TestParseConfigSyntaxErrorLine: a syntax error names the line to fix, not the line where
// the enclosing block started (yaml.v3 says "line 1" for a mis-indented key on line 4).
func TestParseConfigSyntaxErrorLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml, want string
	}{
		{"mis-indented key", "apps:\n  - id: io.mycorp.tasks\n    repository: mycorp/tasks\n   default_channel: production\n    channels:\n      production: {}\n",
			"line 4: did not find expected '-' indicator"},
		{"tab indentation", "apps:\n  - id: io.mycorp.tasks\n    repository: mycorp/tasks\n\tdefault_channel: production\n",
			"line 4:"},
		{"unknown key keeps its line", "apps:\n  - id: io.mycorp.tasks\n    repository: mycorp/tasks\n    default_chanel: production\n",
			"line 4: field default_chanel not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseConfig([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseConfig() error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestReleaseAccess(t *testing.T) {
	t.Parallel()
	base := "apps:\n  - id: com.example.app\n    repository: acme/app\n    default_channel: p\n    channels: { p: {} }\n"
	tests := []struct {
		name    string
		access  string
		want    *ReleaseAccess
		wantErr []string
	}{
		{name: "app", access: "{app_id: 12, installation_id: 34, private_key_env: GH_APP_KEY}",
			want: &ReleaseAccess{AppID: 12, InstallationID: 34, PrivateKeyEnv: "GH_APP_KEY"}},
		{name: "token on GHES", access: "{token_env: GH_TOKEN, api_url: 'https://ghe.example.com/api/v3'}",
			want: &ReleaseAccess{TokenEnv: "GH_TOKEN", APIURL: "https://ghe.example.com/api/v3"}},
		{name: "both", access: "{app_id: 1, installation_id: 2, private_key_env: K, token_env: T}",
			wantErr: []string{"release_access: set either a GitHub App (app_id, installation_id, private_key_env) or token_env, not both"}},
		{name: "none", access: "{}", wantErr: []string{"release_access: no credential: set app_id, installation_id and private_key_env"}},
		{name: "app incomplete", access: "{app_id: -1, private_key_env: '1bad'}", wantErr: []string{
			"release_access: app_id must be the GitHub App's (positive) id",
			"release_access: installation_id must be the (positive) id of the App's installation",
			`release_access: private_key_env "1bad" must be the name of the environment variable`,
		}},
		{name: "bad token env and url", access: "{token_env: 'a-b', api_url: 'ftp://x'}", wantErr: []string{
			`release_access: token_env "a-b" must be an environment variable name`,
			`release_access: api_url "ftp://x" must be an http(s) URL`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := ParseConfig([]byte(base + "    release_access: " + tc.access + "\n"))
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("ParseConfig(%s) = nil error", tc.access)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), `app 0 ("com.example.app"): `+w) {
						t.Errorf("ParseConfig(%s) = %v, want it to contain %q", tc.access, err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseConfig(%s) = %v", tc.access, err)
			}
			if diff := cmp.Diff(tc.want, c.Apps[0].ReleaseAccess); diff != "" {
				t.Errorf("ReleaseAccess mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
