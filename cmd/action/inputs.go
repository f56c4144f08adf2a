package main

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

// input is one input of the action. The table below is the action's public API: action.yml
// and docs/action.md must list exactly these names and defaults (a test checks it).
type input struct {
	name     string
	required bool
	def      string // default filled in when unset; action.yml declares the same default
	secret   bool   // masked before anything is logged
}

var inputs = []input{
	{name: "app-id", required: true},
	{name: "build-dir", def: "dist"},
	{name: "version"},
	{name: "channel"},
	{name: "encryption-key", secret: true},
	{name: "signing"},
	{name: "signing-key", secret: true},
	{name: "signing-key-password", secret: true},
	{name: "provenance"},
	{name: "destination", def: publish.DestinationGitHub},
	{name: "public-base-url"},
	{name: "github-token", secret: true},
	{name: "release-tag"},
	{name: "relay-url"},
	{name: "relay-audience"},
	{name: "relay-secret", secret: true},
	{name: "native"},
	{name: "delta", def: "false"},
}

// outputs are the action's outputs, in the order they are written.
var outputs = []string{
	"version", "bundle-url", "checksum", "sha256", "session-key", "key-id",
	"signature-url", "provenance-url", "manifest-url", "channel",
}

// Signing modes of the signing input.
const (
	signingKeyless = "keyless"
	signingKey     = "key"
	signingNone    = "none"
)

// config is the validated inputs plus what is derived from the runner's environment.
type config struct {
	AppID       string
	BuildDir    string // absolute
	Version     string
	Channel     string
	EncKey      []byte // PEM; empty: unencrypted
	Signing     string // keyless, key or none
	SigningKey  []byte
	SigningPass []byte
	Provenance  bool
	Destination string
	PublicBase  string
	GitHubToken string
	ReleaseTag  string
	RelayURL    string
	Audience    string
	RelaySecret string
	Native      string
	Delta       bool

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
}

// readInputs reads every input (INPUT_<NAME>, dashes kept, as the runner sets them) and
// applies the defaults, which matter outside GitHub where no runner fills them in.
func readInputs(getInput func(string) string) map[string]string {
	vals := make(map[string]string, len(inputs))
	for _, in := range inputs {
		v := getInput(in.name)
		if v == "" {
			v = in.def
		}
		vals[in.name] = v
	}
	return vals
}

// secrets returns the values to mask: each secret input, and each line of multi-line ones
// (the runner masks line by line).
func secrets(vals map[string]string) []string {
	var out []string
	for _, in := range inputs {
		v := strings.TrimSpace(vals[in.name])
		if !in.secret || v == "" {
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

// validate checks every input at once and returns the config, or every problem joined.
func validate(vals map[string]string, env func(string) string, ctx *runnerContext) (*config, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	c := &config{
		AppID: vals["app-id"], Version: vals["version"], Channel: vals["channel"],
		Destination: vals["destination"], PublicBase: vals["public-base-url"],
		GitHubToken: vals["github-token"], ReleaseTag: vals["release-tag"],
		RelayURL: strings.TrimRight(vals["relay-url"], "/"), Audience: vals["relay-audience"],
		RelaySecret: vals["relay-secret"], Native: vals["native"],
		Repository: ctx.Repository, Ref: ctx.Ref, RefName: ctx.RefName, RefType: ctx.RefType,
		SHA: strings.ToLower(ctx.SHA), RunID: ctx.RunID, RunAttempt: ctx.RunAttempt,
		ServerURL: ctx.ServerURL, APIURL: ctx.APIURL, Private: ctx.Visibility != "" && ctx.Visibility != "public",
		OIDC: env("ACTIONS_ID_TOKEN_REQUEST_URL") != "" && env("ACTIONS_ID_TOKEN_REQUEST_TOKEN") != "",
	}
	if c.GitHubToken == "" {
		c.GitHubToken = env("GITHUB_TOKEN")
	}

	switch {
	case c.AppID == "":
		bad("app-id is required: the app's id as configured on the relay, e.g. com.example.app")
	case len(c.AppID) > 255 || !safeName(c.AppID):
		bad("app-id %q: use letters, digits, '.', '_' and '-'", c.AppID)
	}

	dir := vals["build-dir"]
	if !filepath.IsAbs(dir) {
		base := env("GITHUB_WORKSPACE")
		if base == "" {
			base, _ = os.Getwd()
		}
		dir = filepath.Join(base, dir)
	}
	c.BuildDir = dir
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		bad("build-dir %q is not a directory: run your web build before this step, or point build-dir at its output", vals["build-dir"])
	}

	if c.Version == "" {
		v, err := deriveVersion(ctx)
		if err != nil {
			bad("version: %v", err)
		}
		c.Version = v
	} else if err := checkVersion(c.Version); err != nil {
		bad("version %q: %v", c.Version, err)
	}

	if c.Channel != "" && !channel.ValidChannelName(c.Channel) {
		bad("channel %q is not a valid channel name", c.Channel)
	}

	if k := strings.TrimSpace(vals["encryption-key"]); k != "" {
		if _, err := archive.ParsePrivateKey([]byte(k)); err != nil {
			bad("encryption-key: %v (want the PKCS#1 RSA private key PEM from `ferry keys` or `npx @capgo/cli key create`, i.e. .capgo_key_v2)", err)
		}
		c.EncKey = []byte(k)
	}

	c.SigningKey = []byte(strings.TrimSpace(vals["signing-key"]))
	c.SigningPass = []byte(vals["signing-key-password"])
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
			bad("signing is keyless but no OIDC token is available: add `permissions: id-token: write` to the job, or use signing: key with signing-key, or signing: none")
		}
	case signingKey:
		c.Signing = s
		if len(c.SigningKey) == 0 {
			bad("signing is key but signing-key is empty: pass the private key PEM (e.g. a cosign.key) from a secret")
		}
	case signingNone:
		c.Signing = s
	default:
		bad("signing %q: want keyless, key or none", vals["signing"])
	}
	if c.Signing != signingKey && len(c.SigningKey) > 0 && vals["signing"] != "" {
		bad("signing-key is set but signing is %q: set signing: key or drop the key", c.Signing)
	}

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
	if p := vals["provenance"]; p != "" {
		v, err := parseBool(p)
		switch {
		case err != nil:
			bad("provenance %q: want true or false", p)
		case v && c.Signing == signingNone:
			bad("provenance is true but signing is none: provenance is signed, so enable signing")
		case v && c.Signing == signingKey && len(missing) > 0:
			bad("provenance with a signing key describes the build from %s, which are not set", strings.Join(missing, ", "))
		default:
			c.Provenance = v
		}
	}

	delta, err := parseBool(vals["delta"])
	if err != nil {
		bad("delta %q: want true or false", vals["delta"])
	}
	c.Delta = delta

	if c.Native != "" {
		if err := channel.ParseRange(c.Native); err != nil {
			bad("native %q: %v (e.g. \">=2.0.0 <3.0.0\")", c.Native, err)
		}
	}

	if c.PublicBase != "" {
		u, err := url.Parse(c.PublicBase)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("public-base-url %q: want an absolute https URL, e.g. https://cdn.example.com/bundles", c.PublicBase)
		}
	}
	if c.Destination == publish.DestinationGitHub {
		if c.Repository == "" {
			bad("destination github-release needs GITHUB_REPOSITORY (owner/name); outside GitHub Actions use a bucket destination")
		}
		if c.GitHubToken == "" {
			bad("destination github-release needs github-token (the default is the workflow's token; grant `permissions: contents: write`)")
		}
		if c.Delta {
			bad("delta needs a bucket destination (s3://, gs://, azblob://, file://): GitHub Releases cannot hold a bundle's per-file objects")
		}
		if c.PublicBase != "" {
			bad("public-base-url applies to bucket destinations only; GitHub Release URLs are fixed")
		}
	} else {
		u, err := url.Parse(c.Destination)
		switch {
		case err != nil:
			bad("destination %q is not a URL", c.Destination)
		case u.Scheme != "s3" && u.Scheme != "gs" && u.Scheme != "azblob" && u.Scheme != "file":
			bad("destination %q: want github-release or a bucket URL (s3://, gs://, azblob://, file://)", c.Destination)
		case u.Scheme == "file" && c.RelayURL != "" && c.PublicBase == "":
			bad("destination %q is a directory: set public-base-url to the URL devices download it from, or the relay cannot register file:// URLs", c.Destination)
		}
	}
	if c.ReleaseTag == "" {
		// The pushed tag when it names a version; otherwise (branches, and moving tags such
		// as channel/production) a release of the bundle's own.
		c.ReleaseTag = "ferry-" + safeKeyPart(c.Version)
		if c.RefType == "tag" && tagVersion.MatchString(c.RefName) {
			c.ReleaseTag = c.RefName
		}
	}

	if c.RelayURL != "" {
		u, err := url.Parse(c.RelayURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("relay-url %q: want the relay's base URL, e.g. https://relay.example.com", c.RelayURL)
		} else if c.Audience == "" {
			c.Audience = u.Scheme + "://" + u.Host
		}
		if c.RelaySecret == "" && !c.OIDC {
			bad("relay-url is set but there is no way to authenticate: grant `permissions: id-token: write` (OIDC, preferred) or set relay-secret (HMAC, for CI without OIDC)")
		}
		if c.RelaySecret != "" && c.SHA == "" {
			bad("relay-secret (HMAC) registration needs the commit: set GITHUB_SHA to the full commit id")
		}
	}

	if c.SHA != "" && !isHex(c.SHA) {
		bad("GITHUB_SHA %q is not a hex commit id", c.SHA)
	}
	// A Docker container action gets the runner host's RUNNER_TEMP path, which the runner
	// does not mount into the container (actions/runner#1984): use it only when it exists.
	c.TempDir = env("RUNNER_TEMP")
	if fi, err := os.Stat(c.TempDir); c.TempDir == "" || err != nil || !fi.IsDir() {
		c.TempDir = os.TempDir()
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
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
