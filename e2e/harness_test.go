package e2e

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/archive"
	"github.com/ferryhq/ferry/internal/archive/archivetest"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/device"
	"github.com/ferryhq/ferry/internal/relay/relaytest"
	"github.com/ferryhq/ferry/internal/testpeers"
)

// Secrets the relay is started with in every scenario.
const (
	adminToken    = "e2e-admin-token"
	webhookSecret = "e2e-webhook-secret"
	hmacSecret    = "e2e-hmac-secret"
	// repository is the GitHub repository allowed to publish the test apps.
	repository = "acme/mobile-app"
	// Apps of the relay configuration: one that ships encrypted bundles, one that does not.
	appEnc   = "com.example.enc"
	appPlain = "com.example.plain"
)

// relayConfig is the relay's app configuration for every scenario.
const relayConfig = `apps:
  - id: com.example.enc
    repository: acme/mobile-app
    default_channel: production
    channels:
      production: { public: true }
      beta: { allow_device_self_set: true }
    rules:
      - { ref: refs/heads/main, channel: beta }
      - { ref: "refs/tags/v*", channel: production }
      - { ref: "refs/tags/channel/*", channel: "$1" }
  - id: com.example.plain
    repository: acme/plain-app
    default_channel: production
    channels:
      production: {}
    rules:
      - { ref: "refs/tags/v*", channel: production }
`

// binaries returns the built relay and action; cmd/ferry is built with them, in the same
// directory (ferryBinary).
func binaries(t *testing.T) (relayBin, actionBin string) {
	t.Helper()
	bins := relaytest.Build(t, "cmd/relay", "cmd/action", "cmd/ferry")
	return bins[0], bins[1]
}

func TestMain(m *testing.M) { os.Exit(relaytest.Run(m)) }

// env is one scenario's world: a private redis-server, the relay binary on it, a fake
// GitHub API for the action, and a static server standing in for the bucket's CDN.
type env struct {
	t           *testing.T
	relayURL    string
	relay       *relaytest.Relay
	relayBin    string
	relayConfig string
	redis       *testpeers.Process
	// bucketDir is the file:// destination; filesURL serves it over HTTP (with Range).
	bucketDir string
	filesURL  string
	github    *fakeGitHub
	actionBin string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	relayBin, actionBin := binaries(t)
	e := &env{t: t, actionBin: actionBin, relayBin: relayBin, redis: testpeers.Redis(t), bucketDir: t.TempDir()}
	files := httptest.NewServer(http.FileServer(http.Dir(e.bucketDir)))
	t.Cleanup(files.Close)
	e.filesURL = files.URL
	e.github = newFakeGitHub(t)
	e.relayConfig = filepath.Join(t.TempDir(), "ferry.yaml")
	if err := os.WriteFile(e.relayConfig, []byte(relayConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	e.relay = e.startRelay(t, "--snapshot-ttl", "100ms")
	e.relayURL = e.relay.URL
	return e
}

// startRelay starts another relay instance on the scenario's Redis, with extra flags,
// and waits until it is ready. It is stopped when the test ends.
func (e *env) startRelay(t *testing.T, extra ...string) *relaytest.Relay {
	t.Helper()
	return relaytest.Start(t, e.relayBin, relaytest.Options{
		Args: append([]string{"--config", e.relayConfig, "--redis-url", "redis://" + e.redis.Addr,
			"--rate-limit", "0", "--log-format", "text", "--log-level", "debug",
			"--oidc-issuer", e.github.srv.URL, "--oidc-audience", oidcAudience}, extra...),
		Env: append(os.Environ(), "FERRY_ADMIN_TOKEN="+adminToken, "FERRY_WEBHOOK_SECRET="+webhookSecret, "FERRY_HMAC_SECRET="+hmacSecret),
	})
}

// fakeGitHub stands in for GitHub (the only fake in this suite, as GitHub cannot run
// offline): the Actions OIDC token endpoint the action asks for a token
// (ACTIONS_ID_TOKEN_REQUEST_URL), the issuer's discovery document and JWKS the relay checks
// tokens against, and 404 for every REST call.
type fakeGitHub struct {
	srv *httptest.Server
	key *rsa.PrivateKey

	mu     sync.Mutex
	hits   []string
	claims map[string]map[string]any // by request token
}

// oidcAudience is the audience the relay requires on registration tokens.
const oidcAudience = "https://relay.e2e.example"

func newFakeGitHub(t *testing.T) *fakeGitHub {
	t.Helper()
	g := &fakeGitHub{claims: map[string]map[string]any{}}
	var err error
	if g.key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{
			"issuer": g.srv.URL, "jwks_uri": g.srv.URL + "/.well-known/jwks",
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public", "pairwise"},
		})
	})
	mux.HandleFunc("GET /.well-known/jwks", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "kid": "e2e", "use": "sig", "alg": "RS256",
			"n": base64.RawURLEncoding.EncodeToString(g.key.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(g.key.E)).Bytes()),
		}}})
	})
	mux.HandleFunc("GET /_apis/token", func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		claims, ok := g.claims[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		g.mu.Unlock()
		if !ok {
			http.Error(w, `{"message":"bad request token"}`, http.StatusUnauthorized)
			return
		}
		c := map[string]any{}
		for k, v := range claims {
			c[k] = v
		}
		now := time.Now()
		c["iss"], c["aud"], c["iat"], c["nbf"], c["exp"] = g.srv.URL, r.URL.Query().Get("audience"), now.Unix(), now.Unix(), now.Add(5*time.Minute).Unix()
		writeJSON(w, map[string]string{"value": g.sign(t, c)})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.hits = append(g.hits, r.Method+" "+r.URL.Path)
		g.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"message":"Not Found"}`)
	})
	g.srv = httptest.NewServer(mux)
	t.Cleanup(g.srv.Close)
	return g
}

// requestToken registers the claims a workflow run's OIDC tokens carry and returns the
// ACTIONS_ID_TOKEN_REQUEST_TOKEN that obtains them.
func (g *fakeGitHub) requestToken(claims map[string]any) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	tok := fmt.Sprintf("request-token-%d", len(g.claims)+1)
	g.claims[tok] = claims
	return tok
}

// sign returns an RS256 JWT of claims.
func (g *fakeGitHub) sign(t *testing.T, claims map[string]any) string {
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Error(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "e2e"}) + "." + enc(claims)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, g.key, crypto.SHA256, sum[:])
	if err != nil {
		t.Error(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// build is one CI run of the action.
type build struct {
	App     string
	Version string
	Ref     string // e.g. refs/heads/main or refs/tags/v1.0.0
	Commit  string // 40 hex; default relaytest.Commit(Version)
	Dir     string // web build directory
	Key     *rsa.PrivateKey
	Native  string // semver range of native versions; empty: any
	Delta   bool   // also publish per-file objects and a manifest
	// OIDC registers with a GitHub Actions OIDC token (from the fake GitHub) instead of
	// the HMAC secret; TokenRepository overrides the token's repository claim.
	OIDC            bool
	TokenRepository string
	// Destination overrides the file:// bucket (e.g. an s3:// URL); PublicBaseURL and
	// ExtraEnv go with it.
	Destination   string
	PublicBaseURL string
	ExtraEnv      []string
	// wantFail expects the action to fail; publish then returns {"error": its output}.
	wantFail bool
}

// publish runs the built action binary the way the GitHub runner runs the container:
// INPUT_* variables (dashes kept) and the GITHUB_* runner environment. It returns the
// step outputs.
func (e *env) publish(t *testing.T, b build) map[string]string {
	t.Helper()
	if b.Commit == "" {
		b.Commit = relaytest.Commit(b.Version)
	}
	work := t.TempDir()
	outputs := filepath.Join(work, "github_output")
	event := filepath.Join(work, "event.json")
	owner, _, _ := strings.Cut(repository, "/")
	if b.App == appPlain {
		owner = "acme"
	}
	repo := repository
	if b.App == appPlain {
		repo = "acme/plain-app"
	}
	ev := fmt.Sprintf(`{"ref":%q,"after":%q,"repository":{"full_name":%q,"name":%q,"owner":{"login":%q,"name":%q},"visibility":"public"}}`,
		b.Ref, b.Commit, repo, strings.TrimPrefix(repo, owner+"/"), owner, owner)
	for _, f := range []string{outputs, filepath.Join(work, "summary"), filepath.Join(work, "env"), filepath.Join(work, "state")} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(event, []byte(ev), 0o644); err != nil {
		t.Fatal(err)
	}
	dest, base := b.Destination, b.PublicBaseURL
	if dest == "" {
		dest, base = "file://"+filepath.ToSlash(e.bucketDir), e.filesURL
	}
	refType, refName := "branch", strings.TrimPrefix(b.Ref, "refs/heads/")
	if strings.HasPrefix(b.Ref, "refs/tags/") {
		refType, refName = "tag", strings.TrimPrefix(b.Ref, "refs/tags/")
	}
	inputs := map[string]string{
		"app-id":          b.App,
		"build-dir":       b.Dir,
		"version":         b.Version,
		"destination":     dest,
		"public-base-url": base,
		"relay-url":       e.relayURL,
		"signing":         "none",
		"native":          b.Native,
		"delta":           fmt.Sprint(b.Delta),
	}
	if b.Key != nil {
		inputs["encryption-key"] = string(archive.MarshalPrivateKey(b.Key))
	}
	var oidcEnv []string
	if b.OIDC {
		inputs["relay-audience"] = oidcAudience
		tokRepo := repo
		if b.TokenRepository != "" {
			tokRepo = b.TokenRepository
		}
		tok := e.github.requestToken(map[string]any{
			"sub": "repo:" + tokRepo + ":ref:" + b.Ref, "repository": tokRepo, "repository_owner": owner,
			"ref": b.Ref, "sha": b.Commit, "event_name": "push", "runner_environment": "github-hosted",
			"job_workflow_ref": tokRepo + "/.github/workflows/release.yml@" + b.Ref,
		})
		oidcEnv = []string{"ACTIONS_ID_TOKEN_REQUEST_URL=" + e.github.srv.URL + "/_apis/token?api-version=2.0", "ACTIONS_ID_TOKEN_REQUEST_TOKEN=" + tok}
	} else {
		inputs["relay-secret"] = hmacSecret
	}
	envv := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + work, "TMPDIR=" + work,
		"GITHUB_ACTIONS=true", "CI=true",
		"GITHUB_REPOSITORY=" + repo, "GITHUB_REPOSITORY_OWNER=" + owner,
		"GITHUB_REF=" + b.Ref, "GITHUB_REF_NAME=" + refName, "GITHUB_REF_TYPE=" + refType,
		"GITHUB_SHA=" + b.Commit, "GITHUB_RUN_ID=4242", "GITHUB_RUN_ATTEMPT=1", "GITHUB_RUN_NUMBER=7",
		"GITHUB_WORKFLOW=release", "GITHUB_WORKFLOW_REF=" + repo + "/.github/workflows/release.yml@" + b.Ref,
		"GITHUB_EVENT_NAME=push", "GITHUB_EVENT_PATH=" + event, "GITHUB_ACTOR=octocat",
		"GITHUB_SERVER_URL=" + e.github.srv.URL, "GITHUB_API_URL=" + e.github.srv.URL,
		"GITHUB_WORKSPACE=" + work, "RUNNER_TEMP=" + work, "RUNNER_ENVIRONMENT=github-hosted",
		"GITHUB_OUTPUT=" + outputs, "GITHUB_STEP_SUMMARY=" + filepath.Join(work, "summary"),
		"GITHUB_ENV=" + filepath.Join(work, "env"), "GITHUB_STATE=" + filepath.Join(work, "state"),
	}
	for k, v := range inputs {
		envv = append(envv, "INPUT_"+strings.ToUpper(k)+"="+v)
	}
	envv = append(append(envv, oidcEnv...), b.ExtraEnv...)
	cmd := exec.Command(e.actionBin)
	cmd.Dir = work
	cmd.Env = envv
	out, err := cmd.CombinedOutput()
	if err != nil {
		if b.wantFail {
			return map[string]string{"error": string(out)}
		}
		t.Fatalf("action %s@%s: %v\n%s", b.App, b.Version, err, out)
	}
	if b.wantFail {
		t.Fatalf("action %s@%s succeeded, want a failure:\n%s", b.App, b.Version, out)
	}
	raw, err := os.ReadFile(outputs)
	if err != nil {
		t.Fatal(err)
	}
	return parseOutputs(string(raw))
}

// parseOutputs reads the GITHUB_OUTPUT file format (name<<DELIM\nvalue\nDELIM, or name=value).
func parseOutputs(s string) map[string]string {
	out := map[string]string{}
	lines := strings.Split(s, "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if name, delim, ok := strings.Cut(l, "<<"); ok {
			var val []string
			for i++; i < len(lines) && lines[i] != delim; i++ {
				val = append(val, lines[i])
			}
			out[name] = strings.Join(val, "\n")
			continue
		}
		if name, val, ok := strings.Cut(l, "="); ok {
			out[name] = val
		}
	}
	return out
}

// deviceOpts describes one simulated install.
type deviceOpts struct {
	ID      string // default a fixed UUID
	Channel string
	Native  string // version_build; default 1.0.0
	Key     *rsa.PublicKey
	// NoDir leaves Client.Dir empty: for devices that only check.
	NoDir bool
}

// device returns a reference client pointed at the relay.
func (e *env) device(t *testing.T, app string, o deviceOpts) *device.Client {
	t.Helper()
	if o.ID == "" {
		o.ID = "00000000-0000-4000-8000-000000000001"
	}
	if o.Native == "" {
		o.Native = "1.0.0"
	}
	dir := ""
	if !o.NoDir {
		dir = t.TempDir()
	}
	return &device.Client{
		UpdateURL:  e.relayURL + "/updates",
		StatsURL:   e.relayURL + "/stats",
		ChannelURL: e.relayURL + "/channel_self",
		Info: channel.DeviceInfo{
			Platform: "android", DeviceID: o.ID, AppID: app, VersionBuild: o.Native, VersionCode: "1",
			VersionOS: "14", IsProd: true, InstallSource: "google_play", DefaultChannel: o.Channel,
		},
		PublicKey: o.Key,
		Dir:       dir,
	}
}

// admin calls the admin API and decodes the JSON answer into out (when not nil).
func (e *env) admin(t *testing.T, method, path string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, e.relayURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: HTTP %d, decode %q: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	if resp.StatusCode >= 300 {
		t.Logf("%s %s: HTTP %d %s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode
}

// pushTag sends GitHub's push webhook for a tag that now points at commit (before is the
// commit it pointed at, "" for a new tag), signed with X-Hub-Signature-256 as GitHub does.
func (e *env) pushTag(t *testing.T, repo, tag, before, commit string) map[string]any {
	t.Helper()
	zero := strings.Repeat("0", 40)
	if before == "" {
		before = zero
	}
	owner, name, _ := strings.Cut(repo, "/")
	payload := fmt.Sprintf(`{"ref":"refs/tags/%s","before":%q,"after":%q,"created":%v,"deleted":false,"forced":%v,`+
		`"head_commit":{"id":%q},"repository":{"name":%q,"full_name":%q,"owner":{"login":%q}},"pusher":{"name":"octocat"}}`,
		tag, before, commit, before == zero, before != zero, commit, name, repo, owner)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.relayURL+"/webhooks/github", strings.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range relaytest.WebhookHeaders(webhookSecret, "push", relaytest.Commit(tag + commit + before)[:32], []byte(payload)) {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("webhook: %v", err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook push %s → %s: HTTP %d %s", tag, commit, resp.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("webhook answer %q: %v", raw, err)
	}
	return out
}

// webBuild copies examples/web into a temp dir, applies changes (path → content) and
// stamps the version into app.js, returning the directory.
func webBuild(t *testing.T, version string, changes map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join("..", "examples", "web")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		dst := filepath.Join(dir, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy examples/web: %v", err)
	}
	if version != "" {
		f, err := os.OpenFile(filepath.Join(dir, "app.js"), os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "\n// bundle %s\n", version)
		f.Close()
	}
	return archivetest.WriteTree(t, dir, changes)
}

func newKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := archive.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// mustUpdate runs one update cycle and requires it to install want.
func mustUpdate(t *testing.T, c *device.Client, want string) *device.Result {
	t.Helper()
	res, err := c.Update(t.Context())
	if err != nil {
		t.Fatalf("device %s: Update: %v", c.Info.DeviceID, err)
	}
	if res.Outcome != "update" || res.Bundle == nil || res.Bundle.Version != want {
		t.Fatalf("device %s: Update = %s %+v, want an update to %s", c.Info.DeviceID, res.Outcome, res.Response, want)
	}
	return res
}

// mustCheck runs one update check and returns the answer.
func mustCheck(t *testing.T, c *device.Client) *channel.UpdateResponse {
	t.Helper()
	resp, err := c.Check(t.Context())
	if err != nil {
		t.Fatalf("device %s: Check: %v", c.Info.DeviceID, err)
	}
	return resp
}
