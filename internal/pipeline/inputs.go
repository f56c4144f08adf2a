package pipeline

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ferryhq/ferry/internal/archive"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/publish"
)

// Input is one option of the pipeline. [Inputs] is the public API of both front ends: the
// action reads each as INPUT_<NAME> (action.yml and docs/action.md must list exactly these
// names and defaults; a test checks it), and `ferry publish` as the flag --<name> or the
// variable FERRY_<NAME> (docs/cli.md).
type Input struct {
	Name     string
	Required bool
	Default  string // default filled in when unset; action.yml declares the same default
	Secret   bool   // masked before anything is logged
}

// Inputs lists every input, in the order action.yml declares them.
var Inputs = []Input{
	{Name: "app-id", Required: true},
	{Name: "build-dir", Default: "dist"},
	{Name: "version"},
	{Name: "channel"},
	{Name: "encryption-key", Secret: true},
	{Name: "signing"},
	{Name: "signing-key", Secret: true},
	{Name: "signing-key-password", Secret: true},
	{Name: "provenance"},
	{Name: "destination", Default: publish.DestinationGitHub},
	{Name: "public-base-url"},
	{Name: "github-token", Secret: true},
	{Name: "release-tag"},
	{Name: "relay-url"},
	{Name: "relay-audience"},
	{Name: "relay-secret", Secret: true},
	{Name: "native"},
	{Name: "delta", Default: "false"},
	{Name: "delta-key-epoch", Default: "1"},
	{Name: "register-only", Default: "false"},
}

// Outputs are the pipeline's outputs, in the order they are written.
var Outputs = []string{
	"version", "bundle-url", "checksum", "sha256", "session-key", "key-id",
	"signature-url", "provenance-url", "manifest-url", "channel",
}

// Signing modes of the signing input.
const (
	signingKeyless = "keyless"
	signingKey     = "key"
	signingNone    = "none"
)

// Config is the validated inputs plus what is derived from the build's context.
type Config struct {
	AppID    string
	BuildDir string // absolute
	Version  string
	Channel  string
	EncKey   []byte // PEM; empty: unencrypted
	Signing  string // keyless, key or none
	// SigningChosen: the signing input was set, so a warning about none need not say how
	// to sign.
	SigningChosen bool
	SigningKey    []byte
	SigningPass   []byte
	Provenance    bool
	Destination   string
	PublicBase    string
	GitHubToken   string
	ReleaseTag    string
	RelayURL      string
	Audience      string
	RelaySecret   string
	Native        string
	Delta         bool
	// DeltaEpoch labels the delta key epoch: the bundles of one epoch share a session key
	// and reuse each other's unchanged objects (docs/security.md, "Delta key epochs").
	DeltaEpoch string
	// RegisterOnly accepts a registration that moves no channel (no rule matches the ref),
	// for builds a tag push promotes later; otherwise that fails the run.
	RegisterOnly bool

	// From the environment.
	Repository string // owner/name
	Ref        string
	RefName    string
	RefType    string
	SHA        string
	RunID      string
	RunAttempt string
	ServerURL  string
	APIURL     string
	Private    bool // repository visibility is not public
	TempDir    string
	OIDC       bool // an Actions OIDC token can be requested
	IDToken    bool // the front end holds an OIDC token for registration (Context.IDToken)
}

// ReadInputs reads every input (INPUT_<NAME>, dashes kept, as the runner sets them) and
// applies the defaults, which matter outside GitHub where no runner fills them in.
func ReadInputs(getInput func(string) string) map[string]string {
	vals := make(map[string]string, len(Inputs))
	for _, in := range Inputs {
		v := getInput(in.Name)
		if v == "" {
			v = in.Default
		}
		vals[in.Name] = v
	}
	return vals
}

// Secrets returns the values to mask: each secret input, and each line of multi-line ones
// (the runner masks line by line).
func Secrets(vals map[string]string) []string {
	var out []string
	for _, in := range Inputs {
		v := strings.TrimSpace(vals[in.Name])
		if !in.Secret || v == "" {
			continue
		}
		if !strings.Contains(v, "\n") {
			out = append(out, v)
			continue
		}
		for _, line := range strings.Split(v, "\n") {
			line = strings.TrimSpace(line)
			if len(line) >= 8 && !strings.HasPrefix(line, "-----") {
				out = append(out, line)
			}
		}
	}
	return out
}

// problems collects every input problem, so that one run reports them all at once.
type problems []error

// add records one problem; the message names the input and, where it helps, the fix.
func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Errorf(format, args...)) }

// Validate checks every input at once and returns the config, or every problem joined.
// The steps run in a fixed order, so the joined problems always read in the same order.
func Validate(vals map[string]string, env func(string) string, ctx *Context) (*Config, error) {
	var p problems
	c := newConfig(vals, env, ctx)
	c.checkAppID(&p)
	c.resolveBuildDir(vals["build-dir"], env, &p)
	c.resolveVersion(ctx, &p)
	if c.Channel != "" && !channel.ValidChannelName(c.Channel) {
		p.add("channel %q is not a valid channel name", c.Channel)
	}
	c.readEncryptionKey(vals["encryption-key"], &p)
	c.resolveSigning(vals, &p)
	c.resolveProvenance(vals["provenance"], ctx, &p)
	c.checkBundleOptions(vals["delta"], vals["delta-key-epoch"], &p)
	c.checkDestination(&p)
	c.defaultReleaseTag()
	c.checkRelay(&p)
	switch ro := strings.ToLower(strings.TrimSpace(vals["register-only"])); ro {
	case "", "false":
	case "true":
		c.RegisterOnly = true
	default:
		p.add("register-only %q: want true or false", vals["register-only"])
	}
	if c.SHA != "" && !isHex(c.SHA) {
		p.add("GITHUB_SHA %q is not a hex commit id", c.SHA)
	}
	c.TempDir = runnerTempDir(env)
	if err := errors.Join(p...); err != nil {
		return nil, err
	}
	return c, nil
}

// newConfig copies the inputs that need no checking to parse, and the runner's context.
func newConfig(vals map[string]string, env func(string) string, ctx *Context) *Config {
	c := &Config{
		AppID: vals["app-id"], Version: vals["version"], Channel: vals["channel"],
		Destination: vals["destination"], PublicBase: vals["public-base-url"],
		GitHubToken: vals["github-token"], ReleaseTag: vals["release-tag"],
		RelayURL: strings.TrimRight(vals["relay-url"], "/"), Audience: vals["relay-audience"],
		RelaySecret: vals["relay-secret"], Native: vals["native"],
		IDToken: ctx.IDToken, Repository: ctx.Repository, Ref: ctx.Ref, RefName: ctx.RefName, RefType: ctx.RefType,
		SHA: strings.ToLower(ctx.SHA), RunID: ctx.RunID, RunAttempt: ctx.RunAttempt,
		ServerURL: ctx.ServerURL, APIURL: ctx.APIURL, Private: ctx.Visibility != "" && ctx.Visibility != "public",
		OIDC: env("ACTIONS_ID_TOKEN_REQUEST_URL") != "" && env("ACTIONS_ID_TOKEN_REQUEST_TOKEN") != "",
	}
	if c.GitHubToken == "" {
		c.GitHubToken = env("GITHUB_TOKEN")
	}
	return c
}

func (c *Config) checkAppID(p *problems) {
	switch {
	case c.AppID == "":
		p.add("app-id is required: the app's id as configured on the relay, e.g. com.example.app")
	case len(c.AppID) > 255 || !safeName(c.AppID):
		p.add("app-id %q: use letters, digits, '.', '_' and '-'", c.AppID)
	}
}

// resolveBuildDir makes build-dir absolute (relative to the workspace) and checks it exists.
func (c *Config) resolveBuildDir(input string, env func(string) string, p *problems) {
	dir := input
	if !filepath.IsAbs(dir) {
		base := env("GITHUB_WORKSPACE")
		if base == "" {
			base, _ = os.Getwd()
		}
		dir = filepath.Join(base, dir)
	}
	c.BuildDir = dir
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		p.add("build-dir %q is not a directory: run your web build before this step, or point build-dir at its output", input)
	}
}

// resolveVersion checks the version input, or derives the version from the ref when it is empty.
func (c *Config) resolveVersion(ctx *Context, p *problems) {
	if c.Version == "" {
		v, err := DeriveVersion(ctx)
		if err != nil {
			p.add("version: %v", err)
		}
		c.Version = v
	} else if err := CheckVersion(c.Version); err != nil {
		p.add("version %q: %v", c.Version, err)
	}
}

func (c *Config) readEncryptionKey(input string, p *problems) {
	if k := strings.TrimSpace(input); k != "" {
		if looksLikePath(k) {
			p.add("encryption-key looks like a file path: pass the key's content, not its path (the PEM text starting with -----BEGIN RSA PRIVATE KEY-----, e.g. from a secret, or FERRY_ENCRYPTION_KEY=\"$(cat .capgo_key_v2)\")")
		} else if _, err := archive.ParsePrivateKey([]byte(k)); err != nil {
			p.add("encryption-key: %v (want the PKCS#1 RSA private key PEM from `ferry keys` or `npx @capgo/cli key create`, i.e. .capgo_key_v2)", err)
		}
		c.EncKey = []byte(k)
	}
}

// looksLikePath reports whether a key input is a file path rather than PEM text: one short
// line, no PEM header, and a path's shape (a separator, a leading "." or "~", or a key
// file's name). It never reads the file.
func looksLikePath(s string) bool {
	if len(s) > 255 || strings.Contains(s, "-----") || strings.ContainsAny(s, "\n") {
		return false
	}
	base := filepath.Base(s)
	return strings.ContainsAny(s, "/\\") || strings.HasPrefix(s, ".") || strings.HasPrefix(s, "~") ||
		strings.HasPrefix(base, ".capgo_key") || strings.HasSuffix(base, ".pem") || strings.HasSuffix(base, ".key")
}

// resolveSigning picks the signing mode: the signing input when set, otherwise key when a
// signing key is given, keyless when an OIDC token is available, and none otherwise.
func (c *Config) resolveSigning(vals map[string]string, p *problems) {
	c.SigningKey = []byte(strings.TrimSpace(vals["signing-key"]))
	c.SigningPass = []byte(vals["signing-key-password"])
	c.SigningChosen = vals["signing"] != ""
	if looksLikePath(string(c.SigningKey)) {
		p.add("signing-key looks like a file path: pass the key's content, not its path (the PEM text of e.g. cosign.key, from a secret)")
	}
	switch s := strings.ToLower(vals["signing"]); s {
	case "":
		switch {
		case len(c.SigningKey) > 0:
			c.Signing = signingKey
		case c.OIDC:
			c.Signing = signingKeyless
		default:
			c.Signing = signingNone
		}
	case signingKeyless:
		c.Signing = s
		if !c.OIDC {
			p.add("signing is keyless but no OIDC token is available: add `permissions: id-token: write` to the job, or use signing: key with signing-key, or signing: none")
		}
	case signingKey:
		c.Signing = s
		if len(c.SigningKey) == 0 {
			p.add("signing is key but signing-key is empty: pass the private key PEM (e.g. a cosign.key) from a secret")
		}
	case signingNone:
		c.Signing = s
	default:
		p.add("signing %q: want keyless, key or none", vals["signing"])
	}
	if c.Signing != signingKey && len(c.SigningKey) > 0 && vals["signing"] != "" {
		p.add("signing-key is set but signing is %q: set signing: key or drop the key", c.Signing)
	}
}

// resolveProvenance decides whether provenance is signed; it needs the signing mode.
func (c *Config) resolveProvenance(input string, ctx *Context, p *problems) {
	// Key-mode provenance describes the build from the GITHUB_* variables; outside GitHub
	// they may be missing, and then provenance is off unless asked for.
	var missing []string
	for name, v := range map[string]string{"GITHUB_REPOSITORY": ctx.Repository, "GITHUB_SHA": ctx.SHA, "GITHUB_WORKFLOW_REF": ctx.WorkflowRef} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	c.Provenance = c.Signing == signingKeyless || (c.Signing == signingKey && len(missing) == 0)
	if input == "" {
		return
	}
	v, err := parseBool(input)
	switch {
	case err != nil:
		p.add("provenance %q: want true or false", input)
	case v && c.Signing == signingNone:
		p.add("provenance is true but signing is none: provenance is signed, so enable signing")
	case v && c.Signing == signingKey && len(missing) > 0:
		p.add("provenance with a signing key describes the build from %s, which are not set", strings.Join(missing, ", "))
	default:
		c.Provenance = v
	}
}

// deltaEpoch is DeltaEpoch, or the input's default for a Config built without Validate.
func (c *Config) deltaEpoch() string {
	if c.DeltaEpoch == "" {
		return "1"
	}
	return c.DeltaEpoch
}

// checkBundleOptions parses delta and its key epoch and checks the native version range.
func (c *Config) checkBundleOptions(deltaInput, epoch string, p *problems) {
	delta, err := parseBool(deltaInput)
	if err != nil {
		p.add("delta %q: want true or false", deltaInput)
	}
	c.Delta = delta
	if epoch == "" {
		epoch = "1"
	}
	if err := archive.CheckEpochLabel(epoch); err != nil {
		p.add("%v (e.g. 2, or 2026-q1): change it to start new delta objects and a new session key", err)
	}
	c.DeltaEpoch = epoch

	if c.Native != "" {
		if err := channel.ParseRange(c.Native); err != nil {
			p.add("native %q: %v (e.g. \">=2.0.0 <3.0.0\")", c.Native, err)
		}
	}
}

// checkDestination checks public-base-url and the destination: GitHub Releases, or a
// bucket URL; it needs delta.
func (c *Config) checkDestination(p *problems) {
	if c.PublicBase != "" {
		u, err := url.Parse(c.PublicBase)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			p.add("public-base-url %q: want an absolute https URL, e.g. https://cdn.example.com/bundles", c.PublicBase)
		}
	}
	if c.Destination == publish.DestinationGitHub {
		if c.Repository == "" {
			p.add("destination github-release needs GITHUB_REPOSITORY (owner/name); outside GitHub Actions use a bucket destination")
		}
		if c.GitHubToken == "" {
			p.add("destination github-release needs github-token (the default is the workflow's token; grant `permissions: contents: write`)")
		}
		if c.Delta {
			p.add("delta needs a bucket destination (s3://, gs://, azblob://, file://): GitHub Releases cannot hold a bundle's per-file objects")
		}
		if c.PublicBase != "" {
			p.add("public-base-url applies to bucket destinations only; GitHub Release URLs are fixed")
		}
		return
	}
	u, err := url.Parse(c.Destination)
	switch {
	case err != nil:
		p.add("destination %q is not a URL", c.Destination)
	case u.Scheme != "s3" && u.Scheme != "gs" && u.Scheme != "azblob" && u.Scheme != "file":
		p.add("destination %q: want github-release or a bucket URL (s3://, gs://, azblob://, file://)", c.Destination)
	case u.Scheme == "file" && c.RelayURL != "" && c.PublicBase == "":
		p.add("destination %q is a directory: set public-base-url to the URL devices download it from, or the relay cannot register file:// URLs", c.Destination)
	}
}

// defaultReleaseTag fills in the release tag when the input left it empty: the pushed tag
// when it names a version; otherwise (branches, and moving tags such as
// channel/production) a release of the bundle's own.
func (c *Config) defaultReleaseTag() {
	if c.ReleaseTag != "" {
		return
	}
	c.ReleaseTag = "ferry-" + safeKeyPart(c.Version)
	if c.RefType == "tag" && tagVersion.MatchString(c.RefName) {
		c.ReleaseTag = c.RefName
	}
}

// checkRelay checks relay-url, defaults the OIDC audience to its origin, and checks that
// registration has a way to authenticate.
func (c *Config) checkRelay(p *problems) {
	if c.RelayURL == "" {
		return
	}
	u, err := url.Parse(c.RelayURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		p.add("relay-url %q: want the relay's base URL, e.g. https://relay.example.com", c.RelayURL)
	} else if c.Audience == "" {
		c.Audience = u.Scheme + "://" + u.Host
	}
	if c.RelaySecret == "" && !c.OIDC && !c.IDToken {
		p.add("relay-url is set but there is no way to authenticate: grant `permissions: id-token: write` (OIDC, preferred) or set relay-secret (HMAC, for CI without OIDC)")
	}
	if c.RelaySecret != "" && c.SHA == "" {
		p.add("relay-secret (HMAC) registration needs the commit: set GITHUB_SHA to the full commit id")
	}
}

// runnerTempDir is RUNNER_TEMP when it exists, else the OS temp dir. A Docker container
// action gets the runner host's RUNNER_TEMP path, which the runner does not mount into the
// container (actions/runner#1984).
func runnerTempDir(env func(string) string) string {
	dir := env("RUNNER_TEMP")
	if fi, err := os.Stat(dir); dir == "" || err != nil || !fi.IsDir() {
		return os.TempDir()
	}
	return dir
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "false", "0", "no", "off":
		return false, nil
	case "true", "1", "yes", "on":
		return true, nil
	}
	return false, errors.New("not a boolean")
}

func safeName(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return s != "" && s[0] != '.' && s[0] != '-'
}

func isHex(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}
