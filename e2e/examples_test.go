package e2e

import (
	"bytes"
	"crypto/rsa"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/ferryhq/ferry/internal/archive"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/device"
	"github.com/ferryhq/ferry/internal/relay/relaytest"
)

// examplesApp is the app the example pipelines publish: a newcomer's, not the demo's.
const examplesApp = "io.mycorp.tasks"

const examplesRelayConfig = `apps:
  - id: io.mycorp.tasks
    repository: mycorp/tasks
    default_channel: production
    channels:
      production: {}
      beta: {}
    rules:
      - { ref: refs/heads/main, channel: beta }
      - { ref: "refs/tags/v*", channel: production }
`

// pipelineWorld is what an example pipeline runs against: the built relay on loopback with
// the embedded store, a directory standing in for the bucket with a file server in front of
// it, and stand-ins for the toolchain the pipeline installs (npm, go).
type pipelineWorld struct {
	relayURL  string
	bucketDir string
	filesURL  string
	key       *rsa.PrivateKey
	stubs     string // directory of the npm and go stand-ins
	gopath    string // what the go stand-in's `go env GOPATH` prints; bin/ferry is the built ferry
	work      string // the checked-out repository the jobs run in
}

func newPipelineWorld(t *testing.T) *pipelineWorld {
	t.Helper()
	relayBin, _ := binaries(t)
	ferryBin := ferryBinary(t)
	w := &pipelineWorld{bucketDir: t.TempDir(), key: newKey(t), stubs: t.TempDir(), gopath: t.TempDir(), work: t.TempDir()}
	cfg := filepath.Join(t.TempDir(), "ferry.yaml")
	if err := os.WriteFile(cfg, []byte(examplesRelayConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	r := relaytest.Start(t, relayBin, relaytest.Options{
		Args: []string{"--config", cfg, "--data-dir", t.TempDir(), "--rate-limit", "0", "--snapshot-ttl", "100ms"},
		Env:  append(os.Environ(), "FERRY_ADMIN_TOKEN="+adminToken, "FERRY_HMAC_SECRET="+hmacSecret),
	})
	w.relayURL = r.URL
	files := httptest.NewServer(http.FileServer(http.Dir(w.bucketDir)))
	t.Cleanup(files.Close)
	w.filesURL = files.URL

	// `go install …/cmd/ferry@latest` installs the ferry under test into GOPATH/bin, where
	// the pipelines then find it; `npm run build` writes the web build to dist.
	if err := os.MkdirAll(filepath.Join(w.gopath, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	web := webBuild(t, "", nil)
	stub := func(name, body string) {
		if err := os.WriteFile(filepath.Join(w.stubs, name), []byte("#!/bin/sh\nset -eu\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	stub("go", fmt.Sprintf(`case "$*" in
  "install github.com/ferryhq/ferry/cmd/ferry@latest") ln -sf %q %q ;;
  "env GOPATH") echo %q ;;
  *) echo "go stand-in: unexpected: $*" >&2; exit 2 ;;
esac
`, ferryBin, filepath.Join(w.gopath, "bin", "ferry"), w.gopath))
	stub("npm", fmt.Sprintf(`case "$*" in
  ci) ;;
  "run build") rm -rf dist; cp -R %q dist ;;
  *) echo "npm stand-in: unexpected: $*" >&2; exit 2 ;;
esac
`, web))
	return w
}

// secrets are the values a project stores in its CI settings, as each example's header
// lists them: here the loopback relay and the bucket directory.
func (w *pipelineWorld) secrets() map[string]string {
	return map[string]string{
		"FERRY_RELAY_URL":       w.relayURL,
		"FERRY_HMAC_SECRET":     hmacSecret,
		"FERRY_ENCRYPTION_KEY":  string(archive.MarshalPrivateKey(w.key)),
		"FERRY_DESTINATION":     "file://" + filepath.ToSlash(w.bucketDir),
		"FERRY_PUBLIC_BASE_URL": w.filesURL,
	}
}

// run runs one script in the work directory with exactly env (plus the stand-ins on PATH)
// and returns its stdout.
func (w *pipelineWorld) run(t *testing.T, script string, env map[string]string, path []string) string {
	t.Helper()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = w.work
	cmd.Env = []string{"HOME=" + w.work, "PATH=" + strings.Join(append(slices.Clone(path), w.stubs, "/usr/bin", "/bin"), string(os.PathListSeparator))}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("script %q: %v\nstdout:\n%s\nstderr:\n%s", script, err, stdout.String(), stderr.String())
	}
	t.Logf("script %q:\n%s%s", script, stdout.String(), stderr.String())
	return stdout.String()
}

// deviceUpdates checks that a device of the app on the production channel is offered
// version and installs it: decrypted, verified and unzipped.
func (w *pipelineWorld) deviceUpdates(t *testing.T, version string) {
	t.Helper()
	c := &device.Client{
		UpdateURL: w.relayURL + "/updates", StatsURL: w.relayURL + "/stats", ChannelURL: w.relayURL + "/channel_self",
		Info: channel.DeviceInfo{Platform: "android", DeviceID: "00000000-0000-4000-8000-0000000000aa", AppID: examplesApp,
			VersionBuild: "1.0.0", VersionCode: "1", VersionOS: "14", IsProd: true, InstallSource: "google_play"},
		PublicKey: &w.key.PublicKey, Dir: t.TempDir(),
	}
	mustUpdate(t, c, version)
	if _, err := os.Stat(filepath.Join(w.work, "bundle.json")); err != nil {
		t.Errorf("the pipeline kept no bundle.json for `ferry register --from`: %v", err)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", filepath.FromSlash(path)))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestGitLabExample runs examples/gitlab-ci.yml as a tag pipeline would: the build job's
// script, then the publish job's before_script and script, with the file's variables, the
// project's CI/CD variables and GitLab's predefined ones; then a device updates.
func TestGitLabExample(t *testing.T) {
	t.Parallel()
	type job struct {
		Stage        string   `yaml:"stage"`
		BeforeScript []string `yaml:"before_script"`
		Script       []string `yaml:"script"`
	}
	var doc map[string]yaml.Node
	readYAML(t, "examples/gitlab-ci.yml", &doc)
	var stages []string
	var vars map[string]string
	jobs := map[string]job{}
	for name, node := range doc {
		var err error
		switch name {
		case "stages":
			err = node.Decode(&stages)
		case "variables":
			err = node.Decode(&vars)
		default:
			var j job
			err = node.Decode(&j)
			jobs[name] = j
		}
		if err != nil {
			t.Fatalf("examples/gitlab-ci.yml %s: %v", name, err)
		}
	}
	w := newPipelineWorld(t)
	env := map[string]string{"GITLAB_CI": "true", "CI": "true", "CI_COMMIT_TAG": "v1.4.0", "CI_COMMIT_REF_NAME": "v1.4.0",
		"CI_COMMIT_SHA": relaytest.Commit("gitlab"), "CI_PIPELINE_ID": "4242", "CI_PROJECT_PATH": "mycorp/tasks", "CI_DEFAULT_BRANCH": "main"}
	for k, v := range vars {
		env[k] = v
	}
	for k, v := range w.secrets() {
		env[k] = v
	}
	ran := 0
	for _, stage := range stages {
		var names []string
		for name, j := range jobs {
			if j.Stage == stage {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		for _, name := range names {
			j := jobs[name]
			// Each job starts a fresh shell, as GitLab's runner does; before_script and
			// script share it.
			w.run(t, strings.Join(append(slices.Clone(j.BeforeScript), j.Script...), "\n"), env, nil)
			ran++
		}
	}
	if ran < 2 {
		t.Fatalf("ran %d jobs of examples/gitlab-ci.yml, want the build and publish jobs", ran)
	}
	w.deviceUpdates(t, "1.4.0")
}

// azureMacro is Azure Pipelines' $(name) macro syntax; macros naming no variable stay as
// they are (so $(go env GOPATH) reaches the shell).
var azureMacro = regexp.MustCompile(`\$\(([A-Za-z0-9_.]+)\)`)

// TestAzureExample runs examples/azure-pipelines.yml as a tag build would: every script
// step in order, with the pipeline's variables, the variable group's (secret ones only
// through a step's env: block, as on Azure), Azure's predefined variables and
// ##vso[task.prependpath] honoured; then a device updates.
func TestAzureExample(t *testing.T) {
	t.Parallel()
	var doc struct {
		Variables []struct {
			Group string `yaml:"group"`
			Name  string `yaml:"name"`
			Value string `yaml:"value"`
		} `yaml:"variables"`
		Steps []struct {
			Script string            `yaml:"script"`
			Env    map[string]string `yaml:"env"`
		} `yaml:"steps"`
	}
	readYAML(t, "examples/azure-pipelines.yml", &doc)
	w := newPipelineWorld(t)
	secret := map[string]bool{"FERRY_HMAC_SECRET": true, "FERRY_ENCRYPTION_KEY": true, "AZURE_STORAGE_KEY": true}
	vars := map[string]string{"TF_BUILD": "True", "BUILD_SOURCEBRANCH": "refs/tags/v1.5.0", "BUILD_SOURCEVERSION": relaytest.Commit("azure"),
		"BUILD_BUILDID": "777", "BUILD_REPOSITORY_NAME": "mycorp/tasks"}
	group := false
	for _, v := range doc.Variables {
		if v.Group == "ferry" {
			group = true
		} else if v.Name != "" {
			vars[v.Name] = v.Value
		}
	}
	if !group {
		t.Fatal("examples/azure-pipelines.yml does not use the variable group its header describes")
	}
	all := map[string]string{"AZURE_STORAGE_KEY": ""}
	for k, v := range vars {
		all[k] = v
	}
	for k, v := range w.secrets() {
		all[k] = v
		if !secret[k] {
			vars[k] = v // non-secret variables reach every step's environment
		}
	}
	expand := func(s string) string {
		return azureMacro.ReplaceAllStringFunc(s, func(m string) string {
			if v, ok := all[azureMacro.FindStringSubmatch(m)[1]]; ok {
				return v
			}
			return m
		})
	}
	var path []string
	ran := 0
	for _, st := range doc.Steps {
		if st.Script == "" {
			continue // tasks (NodeTool, GoTool) install what the stand-ins play
		}
		env := map[string]string{}
		for k, v := range vars {
			env[k] = v
		}
		for k, v := range st.Env {
			env[k] = expand(v)
		}
		out := w.run(t, expand(st.Script), env, path)
		for line := range strings.Lines(out) {
			if p, ok := strings.CutPrefix(strings.TrimSpace(line), "##vso[task.prependpath]"); ok {
				path = append([]string{p}, path...)
			}
		}
		ran++
	}
	if ran < 3 {
		t.Fatalf("ran %d script steps of examples/azure-pipelines.yml, want build, install and publish", ran)
	}
	w.deviceUpdates(t, "1.5.0")
}
