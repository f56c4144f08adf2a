package main

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/archive/archivetest"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relay/relaytest"
	"github.com/ferryhq/ferry/internal/sign"
)

const (
	testRepo   = "acme/mobile-app"
	testApp    = "com.acme.app"
	hmacSecret = "test-hmac-secret-0123456789"
	adminToken = "test-admin-token-0123456789"
	audience   = "https://relay.test"
	commitA    = "3f786850e387550fdab836ed7e6dc881de23001b"
	commitB    = "89e6c98d92887913cadf06b2adb97f26cde4849b"
)

// buildBinaries returns the built action and relay; cmd/ferry is built with them for the
// verify commands the summary prints.
func buildBinaries(t testing.TB) (action, relay string) {
	t.Helper()
	bins := relaytest.Build(t, "cmd/action", "cmd/relay", "cmd/ferry")
	return bins[0], bins[1]
}

func TestMain(m *testing.M) { os.Exit(relaytest.Run(m)) }

// ---------- a fake GitHub Actions OIDC issuer ----------

// issuer plays token.actions.githubusercontent.com (discovery and JWKS, RS256 tokens) and
// the runner's ACTIONS_ID_TOKEN_REQUEST_URL endpoint, which issues tokens for any audience.
type issuer struct {
	URL          string
	RequestURL   string
	RequestToken string
	key          *rsa.PrivateKey

	mu        sync.Mutex
	claims    sign.Claims
	audiences []string
}

func newIssuer(t *testing.T, c sign.Claims) *issuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	iss := &issuer{key: key, claims: c, RequestToken: "runner-request-token"}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"issuer": iss.URL, "jwks_uri": iss.URL + "/jwks", "id_token_signing_alg_values_supported": []string{"RS256"},
			"response_types_supported": []string{"id_token"}, "subject_types_supported": []string{"public"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		e := big.NewInt(int64(key.E)).Bytes()
		writeJSON(w, map[string]any{"keys": []map[string]string{{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
			"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()), "e": base64.RawURLEncoding.EncodeToString(e)}}})
	})
	mux.HandleFunc("GET /token", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+iss.RequestToken || r.URL.Query().Get("api-version") != "2.0" {
			http.Error(w, `{"message":"bad request token"}`, http.StatusUnauthorized)
			return
		}
		aud := r.URL.Query().Get("audience")
		iss.mu.Lock()
		iss.audiences = append(iss.audiences, aud)
		c := iss.claims
		iss.mu.Unlock()
		writeJSON(w, map[string]string{"value": iss.token(t, c, aud)})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	iss.URL = srv.URL
	iss.RequestURL = srv.URL + "/token?api-version=2.0"
	return iss
}

func (iss *issuer) token(t *testing.T, c sign.Claims, aud string) string {
	now := time.Now()
	claims := map[string]any{
		"iss": iss.URL, "sub": c.Subject, "aud": aud, "repository": c.Repository,
		"repository_id": c.RepositoryID, "repository_owner": c.RepositoryOwner, "repository_owner_id": c.RepositoryOwnerID,
		"repository_visibility": c.Visibility, "workflow": c.Workflow, "workflow_ref": c.WorkflowRef,
		"job_workflow_ref": c.JobWorkflowRef, "ref": c.Ref, "sha": c.SHA, "run_id": c.RunID, "run_attempt": c.RunAttempt,
		"event_name": c.EventName, "runner_environment": c.RunnerEnvironment,
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	}
	enc := base64.RawURLEncoding.EncodeToString
	hdr, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "k1"})
	body, _ := json.Marshal(claims)
	signing := enc(hdr) + "." + enc(body)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, iss.key, crypto.SHA256, sum[:])
	if err != nil {
		t.Error(err)
	}
	return signing + "." + enc(sig)
}

// Audiences returns the audiences tokens were requested for.
func (iss *issuer) Audiences() []string {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	return append([]string(nil), iss.audiences...)
}

func claimsFor(ref, sha string) sign.Claims {
	return sign.Claims{
		Subject: "repo:" + testRepo + ":ref:" + ref, Repository: testRepo, RepositoryID: "111", RepositoryOwner: "acme",
		RepositoryOwnerID: "222", Visibility: "public", Workflow: "release",
		WorkflowRef:    testRepo + "/.github/workflows/release.yml@" + ref,
		JobWorkflowRef: testRepo + "/.github/workflows/release.yml@" + ref,
		Ref:            ref, SHA: sha, RunID: "4242", RunAttempt: "1", EventName: "push", RunnerEnvironment: "github-hosted",
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// ---------- the real relay ----------

// relayProc is the real relay binary, with the admin API reads these tests make.
type relayProc struct {
	*relaytest.Relay
}

const relayConfigYAML = `apps:
  - id: com.acme.app
    repository: acme/mobile-app
    default_channel: production
    channels:
      production: { public: true }
      beta: {}
    rules:
      - { ref: refs/heads/main, channel: beta }
      - { ref: "refs/tags/v*", channel: production }
`

// startRelay runs the real cmd/relay binary with the embedded store, HMAC registration and,
// when oidcIssuer is set, OIDC registration with the test audience.
func startRelay(t *testing.T, relayBin, oidcIssuer string) *relayProc {
	t.Helper()
	args := []string{"--config", relaytest.WriteConfig(t, relayConfigYAML), "--data-dir", t.TempDir(), "--log-format", "text"}
	if oidcIssuer != "" {
		args = append(args, "--oidc-issuer", oidcIssuer, "--oidc-audience", audience)
	}
	return &relayProc{relaytest.Start(t, relayBin, relaytest.Options{
		Args: args,
		Env:  append(os.Environ(), "FERRY_ADMIN_TOKEN="+adminToken, "FERRY_HMAC_SECRET="+hmacSecret, "FERRY_RATE_LIMIT=0"),
	})}
}

// bundle reads a registered bundle through the relay's admin API; nil when there is none.
func (p *relayProc) bundle(t *testing.T, version string) *channel.Bundle {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, p.URL+"/api/v1/apps/"+testApp+"/bundles/"+version, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET bundle %s: %s %s", version, resp.Status, body)
	}
	var b channel.Bundle
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatalf("decode bundle: %v\n%s", err, body)
	}
	return &b
}

// ---------- running the action as the runner does ----------

// runner is one job's environment: the GITHUB_* context, files, and INPUT_* variables.
type runner struct {
	dir     string
	inputs  map[string]string
	env     map[string]string
	outFile string
	sumFile string
}

// newRunner prepares the environment the runner gives a container action for a push of ref
// at sha in testRepo. GITHUB_API_URL/SERVER_URL point at ghURL when set.
func newRunner(t testing.TB, ref, sha, ghURL string) *runner {
	t.Helper()
	dir := t.TempDir()
	r := &runner{dir: dir, inputs: map[string]string{}, outFile: filepath.Join(dir, "github_output"), sumFile: filepath.Join(dir, "step_summary")}
	refType, refName := "branch", strings.TrimPrefix(ref, "refs/heads/")
	if strings.HasPrefix(ref, "refs/tags/") {
		refType, refName = "tag", strings.TrimPrefix(ref, "refs/tags/")
	}
	event := filepath.Join(dir, "event.json")
	ev := fmt.Sprintf(`{"ref":%q,"after":%q,"repository":{"full_name":%q,"name":"mobile-app","owner":{"login":"acme","name":"acme"},"visibility":"public","private":false}}`, ref, sha, testRepo)
	for f, content := range map[string]string{r.outFile: "", r.sumFile: "", event: ev, filepath.Join(dir, "env"): "", filepath.Join(dir, "state"): ""} {
		if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if ghURL == "" {
		ghURL = "http://127.0.0.1:9" // nothing listens: any GitHub call fails loudly
	}
	tmp := filepath.Join(dir, "runner_temp")
	_ = os.Mkdir(tmp, 0o755)
	r.env = map[string]string{
		"PATH": os.Getenv("PATH"), "HOME": dir, "GITHUB_ACTIONS": "true", "CI": "true",
		"GITHUB_REPOSITORY": testRepo, "GITHUB_REPOSITORY_OWNER": "acme", "GITHUB_REPOSITORY_ID": "111", "GITHUB_REPOSITORY_OWNER_ID": "222",
		"GITHUB_REF": ref, "GITHUB_REF_NAME": refName, "GITHUB_REF_TYPE": refType, "GITHUB_SHA": sha,
		"GITHUB_RUN_ID": "4242", "GITHUB_RUN_ATTEMPT": "1", "GITHUB_RUN_NUMBER": "7", "GITHUB_EVENT_NAME": "push",
		"GITHUB_WORKFLOW": "release", "GITHUB_WORKFLOW_REF": testRepo + "/.github/workflows/release.yml@" + ref,
		"GITHUB_EVENT_PATH": event, "GITHUB_WORKSPACE": dir, "RUNNER_TEMP": tmp, "RUNNER_ENVIRONMENT": "github-hosted",
		"GITHUB_SERVER_URL": ghURL, "GITHUB_API_URL": ghURL,
		"GITHUB_OUTPUT": r.outFile, "GITHUB_STEP_SUMMARY": r.sumFile,
		"GITHUB_ENV": filepath.Join(dir, "env"), "GITHUB_STATE": filepath.Join(dir, "state"),
		"FERRY_REGISTER_BACKOFF": "50ms",
	}
	return r
}

// oidc gives the job `permissions: id-token: write`.
func (r *runner) oidc(iss *issuer) {
	r.env["ACTIONS_ID_TOKEN_REQUEST_URL"] = iss.RequestURL
	r.env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] = iss.RequestToken
}

// result of one run.
type runResult struct {
	code           int
	stdout, stderr string
	outputs        map[string]string
	summary        string
}

// exec runs the action binary with the runner's environment, INPUT_* names upper-cased
// with dashes kept, exactly as `docker run -e INPUT_APP-ID=…` passes them.
func (r *runner) exec(t testing.TB, bin string) *runResult {
	t.Helper()
	// Fresh output files per run, as each step gets its own.
	_ = os.WriteFile(r.outFile, nil, 0o644)
	_ = os.WriteFile(r.sumFile, nil, 0o644)
	var env []string
	for k, v := range r.env {
		env = append(env, k+"="+v)
	}
	for k, v := range r.inputs {
		env = append(env, "INPUT_"+strings.ToUpper(k)+"="+v)
	}
	sort.Strings(env)
	cmd := exec.Command(bin)
	cmd.Dir = r.dir
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := &runResult{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run action: %v", err)
	}
	out, _ := os.ReadFile(r.outFile)
	res.outputs = parseOutputs(string(out))
	sum, _ := os.ReadFile(r.sumFile)
	res.summary = string(sum)
	t.Logf("action exit %d\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	return res
}

// parseOutputs reads the GITHUB_OUTPUT file format (name<<DELIM\nvalue\nDELIM).
func parseOutputs(s string) map[string]string {
	out := map[string]string{}
	lines := strings.Split(s, "\n")
	for i := 0; i < len(lines); i++ {
		if name, delim, ok := strings.Cut(lines[i], "<<"); ok {
			var val []string
			for i++; i < len(lines) && lines[i] != delim; i++ {
				val = append(val, lines[i])
			}
			out[name] = strings.Join(val, "\n")
		}
	}
	return out
}

// webBuild writes a small web build and returns its directory.
func webBuild(t testing.TB, dir, flavour string) string {
	t.Helper()
	files := map[string]string{
		"index.html":       "<!doctype html><title>" + flavour + "</title><script src=app.js></script>",
		"app.js":           "console.log(" + fmt.Sprintf("%q", flavour) + ");\n" + strings.Repeat("// padding to make brotli worth it\n", 400),
		"assets/style.css": "body { color: #333 }\n",
		"assets/logo.svg":  "<svg xmlns='http://www.w3.org/2000/svg'/>",
	}
	return archivetest.WriteTree(t, dir, files)
}
