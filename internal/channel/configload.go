package channel

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxConfigSize bounds a config file.
const maxConfigSize = 4 << 20

// ParseConfig decodes a YAML config strictly (unknown keys, duplicate keys, wrong types and
// more than one document are errors) and validates it with [Config.Validate]. Policies are
// written with allow_emulator and allow_dev (default true), which set
// [Policy.DenyEmulator] and [Policy.DenyDev]. The returned error lists every problem.
func ParseConfig(data []byte) (*Config, error) {
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("parse config: larger than %d bytes", maxConfigSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("parse config: empty document")
		}
		return nil, fmt.Errorf("parse config: %w", syntaxLine(data, err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("parse config: more than one YAML document")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// maxLineSearch bounds how many lines syntaxLine re-parses to find a syntax error.
const maxLineSearch = 2000

// syntaxLine corrects the line of a YAML syntax error. yaml.v3 reports the line where the
// enclosing block started rather than where the parser gave up: a mis-indented key on line
// 4 of a list that starts on line 2 comes back as "yaml: line 1: did not find expected '-'
// indicator". The first line on which a prefix of the document fails with the same
// message is the line to fix, so syntaxLine re-parses growing prefixes, from the reported
// line on, and names that one. Other errors (type errors, unknown fields) already carry
// their lines and are returned unchanged.
func syntaxLine(data []byte, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return err
	}
	reported, msg, ok := splitYAMLError(err)
	if !ok {
		return err
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	for n := max(reported, 1); n <= len(lines) && n < reported+maxLineSearch; n++ {
		var node yaml.Node
		perr := yaml.Unmarshal(bytes.Join(lines[:n], nil), &node)
		if perr == nil {
			continue
		}
		if _, m, ok := splitYAMLError(perr); ok && m == msg {
			if n == reported {
				return err
			}
			return fmt.Errorf("line %d: %s", n, msg)
		}
	}
	return err
}

// splitYAMLError splits yaml.v3's "yaml: line N: message".
func splitYAMLError(err error) (line int, msg string, ok bool) {
	rest, found := strings.CutPrefix(err.Error(), "yaml: line ")
	if !found {
		return 0, "", false
	}
	num, msg, found := strings.Cut(rest, ": ")
	if !found {
		return 0, "", false
	}
	if _, err := fmt.Sscanf(num, "%d", &line); err != nil {
		return 0, "", false
	}
	return line, msg, true
}

// policyKeys are the YAML keys of a channel policy.
var policyKeys = []string{"public", "allow_device_self_set", "allow_emulator", "allow_dev", "disable_auto_update", "platforms", "allow_refs"}

// UnmarshalYAML decodes a channel policy strictly: only the keys public,
// allow_device_self_set, allow_emulator, allow_dev, disable_auto_update, platforms and
// allow_refs are allowed; allow_emulator and allow_dev default to true. An empty value ("beta:" or
// "beta: {}") is the zero Policy.
func (p *Policy) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		*p = Policy{}
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a channel policy must be a mapping", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(policyKeys, k.Value) {
			return fmt.Errorf("line %d: unknown policy key %q (known: %s)", k.Line, k.Value, strings.Join(policyKeys, ", "))
		}
	}
	var raw struct {
		Public             bool     `yaml:"public"`
		AllowDeviceSelfSet bool     `yaml:"allow_device_self_set"`
		AllowEmulator      *bool    `yaml:"allow_emulator"`
		AllowDev           *bool    `yaml:"allow_dev"`
		DisableAutoUpdate  string   `yaml:"disable_auto_update"`
		Platforms          []string `yaml:"platforms"`
		AllowRefs          []string `yaml:"allow_refs"`
	}
	if err := n.Decode(&raw); err != nil {
		return err
	}
	*p = Policy{
		Public:             raw.Public,
		AllowDeviceSelfSet: raw.AllowDeviceSelfSet,
		DenyEmulator:       raw.AllowEmulator != nil && !*raw.AllowEmulator,
		DenyDev:            raw.AllowDev != nil && !*raw.AllowDev,
		DisableAutoUpdate:  raw.DisableAutoUpdate,
		Platforms:          raw.Platforms,
		AllowRefs:          raw.AllowRefs,
	}
	return nil
}

// Platforms a policy may list, and the values of DisableAutoUpdate.
var (
	knownPlatforms     = []string{"ios", "android", "electron"}
	disableAutoUpdates = []string{"", "none", "patch", "minor", "major"}
)

// Validate checks the whole config and reports every problem at once (errors joined with
// [errors.Join]), each naming the app and, for rules, the rule's index: app ids present and
// unique; repository "owner/name" and a positive repository_id if any; webhook_secret_env and
// hmac_secret_env variable names if any (whether it is set is the relay's concern); a default channel that
// is configured; valid channel names and policies (disable_auto_update
// none|patch|minor|major, platforms ios|android|electron, allow_refs full ref patterns); rules with a valid glob and a channel that is configured, or that
// uses captures ("$1") the glob provides; notification receivers with an https URL (http
// only to loopback), format generic|slack, a secret_env variable name and known event
// kinds; rollout plans as [Plan.Validate] checks them, and rules naming only plans that
// rollout_plans defines. Validate changes nothing: zero values are the
// documented defaults.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(c.Apps) == 0 {
		add("config: no apps")
	}
	ids := make([]string, 0, len(c.Apps))
	for _, a := range c.Apps {
		ids = append(ids, a.ID)
	}
	errs = append(errs, c.Access.Validate(ids))
	seen := map[string]int{}
	for i := range c.Apps {
		a := &c.Apps[i]
		where := fmt.Sprintf("app %d (%q)", i, a.ID)
		switch {
		case a.ID == "":
			add("app %d: id is required", i)
		case !validAppID(a.ID):
			add("%s: id must be 1-128 letters, digits, '.', '_' or '-'", where)
		}
		if j, dup := seen[a.ID]; dup && a.ID != "" {
			add("%s: duplicate id, already used by app %d", where, j)
		} else {
			seen[a.ID] = i
		}
		if !validRepository(a.Repository) {
			add("%s: repository %q must be \"owner/name\"", where, a.Repository)
		}
		if a.RepositoryID < 0 {
			add("%s: repository_id %d must be GitHub's (positive) repository id", where, a.RepositoryID)
		}
		if a.WebhookSecretEnv != "" && !validEnvName(a.WebhookSecretEnv) {
			add("%s: webhook_secret_env %q must be an environment variable name (letters, digits and '_', not starting with a digit)", where, a.WebhookSecretEnv)
		}
		if a.HMACSecretEnv != "" && !validEnvName(a.HMACSecretEnv) {
			add("%s: hmac_secret_env %q must be an environment variable name (letters, digits and '_', not starting with a digit)", where, a.HMACSecretEnv)
		}
		if ra := a.ReleaseAccess; ra != nil {
			errs = append(errs, ra.validate(where+": release_access")...)
		}
		if len(a.Channels) == 0 {
			add("%s: no channels", where)
		}
		switch {
		case a.DefaultChannel == "":
			add("%s: default_channel is required", where)
		case a.DefaultChannel == "*" || !validChannelName(a.DefaultChannel):
			add("%s: default_channel %q is not a valid channel name", where, a.DefaultChannel)
		default:
			if _, ok := a.Channels[a.DefaultChannel]; !ok {
				add("%s: default_channel %q is not listed under channels", where, a.DefaultChannel)
			}
		}
		for _, name := range sortedKeys(a.Channels) {
			p := a.Channels[name]
			if name != "*" && !validChannelName(name) {
				add("%s: channel %q: name must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", where, name)
			}
			if !slices.Contains(disableAutoUpdates, p.DisableAutoUpdate) {
				add("%s: channel %q: disable_auto_update %q must be none, patch, minor or major", where, name, p.DisableAutoUpdate)
			}
			for k, pat := range p.AllowRefs {
				if _, err := compileGlob(pat); err != nil {
					add("%s: channel %q: allow_refs[%d] %q: %w", where, name, k, pat, err)
				} else if !strings.HasPrefix(pat, "refs/") {
					add("%s: channel %q: allow_refs[%d] %q must be a full ref pattern such as refs/heads/release/*", where, name, k, pat)
				}
			}
			for k, pl := range p.Platforms {
				if !slices.Contains(knownPlatforms, pl) {
					add("%s: channel %q: platform %q must be ios, android or electron", where, name, pl)
				} else if slices.Index(p.Platforms, pl) != k {
					add("%s: channel %q: platform %q listed twice", where, name, pl)
				}
			}
		}
		for k := range a.Notifications {
			errs = append(errs, a.Notifications[k].validate(fmt.Sprintf("%s notifications[%d]", where, k))...)
		}
		for k, r := range a.Rules {
			rw := fmt.Sprintf("%s rule %d (%q)", where, k, r.Ref)
			g, err := compileGlob(r.Ref)
			if err != nil {
				add("%s: %w", rw, err)
				continue
			}
			if !canMatchFullRef(r.Ref) {
				add("%s: ref never matches: rules match full refs such as refs/heads/main or refs/tags/v1.0.0; did you mean %s?", rw, fullRefHint(r.Ref))
			}
			if err := checkTemplate(r.Channel, g.captures); err != nil {
				add("%s: %w", rw, err)
				continue
			}
			if !strings.Contains(r.Channel, "$") {
				if !validChannelName(r.Channel) {
					add("%s: channel %q is not a valid channel name", rw, r.Channel)
				} else if _, ok := a.Policy(r.Channel); !ok {
					add("%s: channel %q is not listed under channels", rw, r.Channel)
				}
			}
		}
	}
	errs = append(errs, c.validatePlans()...)
	return errors.Join(errs...)
}

// canMatchFullRef reports whether pattern can match some full ref ("refs/…"): the literal
// text before its first wildcard must start with "refs/" or be a prefix of it. A short ref
// such as "main" or "v*" never matches what git and GitHub send.
func canMatchFullRef(pattern string) bool {
	lit := pattern
	if i := strings.IndexByte(pattern, '*'); i >= 0 {
		lit = pattern[:i]
	}
	return strings.HasPrefix(lit, "refs/") || strings.HasPrefix("refs/", lit)
}

// fullRefHint guesses the full ref a short one meant: "heads/x" and "tags/x" get "refs/",
// a version-like name ("v*", "v1.2", "1.0") is a tag, anything else a branch.
func fullRefHint(ref string) string {
	switch {
	case strings.HasPrefix(ref, "heads/"), strings.HasPrefix(ref, "tags/"):
		return "refs/" + ref
	case len(ref) > 0 && ref[0] >= '0' && ref[0] <= '9',
		len(ref) > 1 && ref[0] == 'v' && (ref[1] == '*' || ref[1] >= '0' && ref[1] <= '9'):
		return "refs/tags/" + ref
	}
	return "refs/heads/" + ref
}

func sortedKeys(m map[string]Policy) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// App returns the app with id, or nil if the config has none.
func (c *Config) App(id string) *App {
	for i := range c.Apps {
		if c.Apps[i].ID == id {
			return &c.Apps[i]
		}
	}
	return nil
}

// ChannelNames returns the names of the app's configured channels, sorted.
func (a *App) ChannelNames() []string {
	names := make([]string, 0, len(a.Channels))
	for n := range a.Channels {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Policy returns the configured policy of channel: its own entry under channels, else the
// "*" entry. ok is false when neither exists.
func (a *App) Policy(channel string) (Policy, bool) {
	if p, ok := a.Channels[channel]; ok && channel != "*" {
		return p, true
	}
	p, ok := a.Channels["*"]
	return p, ok
}

// validEnvName reports whether s can name an environment variable: letters, digits and
// '_', not starting with a digit, at most 128 bytes.
func validEnvName(s string) bool {
	if s == "" || len(s) > 128 || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func validAppID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isNameByte(s[i]) {
			return false
		}
	}
	return true
}

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// ValidChannelName reports whether name can name a channel: 1-64 letters, digits, '.', '_'
// or '-', starting with a letter or digit. Names a rule's capture produces are checked too.
func ValidChannelName(name string) bool { return validChannelName(name) }

func validChannelName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	c := s[0]
	if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isNameByte(s[i]) {
			return false
		}
	}
	return true
}

// validRepository checks "owner/name" as GitHub spells them.
func validRepository(s string) bool {
	owner, name, ok := strings.Cut(s, "/")
	if !ok || owner == "" || name == "" || len(owner) > 39 || len(name) > 100 || name == "." || name == ".." {
		return false
	}
	for i := 0; i < len(owner); i++ {
		c := owner[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	for i := 0; i < len(name); i++ {
		if !isNameByte(name[i]) {
			return false
		}
	}
	return true
}

// validate checks that exactly one credential is configured, with variable names and an
// http(s) API URL; where prefixes each problem.
func (r *ReleaseAccess) validate(where string) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(where+": "+format, args...)) }
	app := r.AppID != 0 || r.InstallationID != 0 || r.PrivateKeyEnv != ""
	switch {
	case app && r.TokenEnv != "":
		add("set either a GitHub App (app_id, installation_id, private_key_env) or token_env, not both")
	case app:
		if r.AppID <= 0 {
			add("app_id must be the GitHub App's (positive) id, shown on the App's settings page")
		}
		if r.InstallationID <= 0 {
			add("installation_id must be the (positive) id of the App's installation on the repository, the number at the end of its settings URL")
		}
		if !validEnvName(r.PrivateKeyEnv) {
			add("private_key_env %q must be the name of the environment variable holding the App's private key (letters, digits and '_', not starting with a digit)", r.PrivateKeyEnv)
		}
	case r.TokenEnv == "":
		add("no credential: set app_id, installation_id and private_key_env (a GitHub App, preferred) or token_env (a fine-grained token with contents: read)")
	case !validEnvName(r.TokenEnv):
		add("token_env %q must be an environment variable name (letters, digits and '_', not starting with a digit)", r.TokenEnv)
	}
	if r.APIURL != "" {
		if u, err := url.Parse(r.APIURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			add("api_url %q must be an http(s) URL such as https://github.example.com/api/v3", r.APIURL)
		}
	}
	return errs
}
