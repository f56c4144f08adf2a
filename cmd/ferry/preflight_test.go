package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/archive"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relay/control"
	"github.com/ferryhq/ferry/internal/relayclient"
	"github.com/ferryhq/ferry/internal/store"
)

const preflightSecret = "hmac-secret-0123456789"

// preflightRelay serves the real control plane for io.mycorp.tasks on a bbolt store, with
// version 2.0.0 already registered with other content.
func preflightRelay(t *testing.T) (url string, st *store.Bolt) {
	t.Helper()
	cfg, err := channel.ParseConfig([]byte(`
apps:
  - id: io.mycorp.tasks
    repository: mycorp/tasks
    default_channel: production
    channels: {production: {}, beta: {}}
    rules:
      - {ref: "refs/tags/v*", channel: production}
`))
	if err != nil {
		t.Fatal(err)
	}
	st, err = store.OpenBolt(filepath.Join(t.TempDir(), "ferry.db"), store.BoltOptions{SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	api, err := control.New(t.Context(), control.Options{Config: cfg, Store: st, HMACSecret: preflightSecret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)
	gin.SetMode(gin.TestMode)
	engine := gin.New()
	api.Mount(engine)
	srv := httptest.NewServer(engine)
	t.Cleanup(srv.Close)

	c, err := relayclient.New(srv.URL, relayclient.Options{HMACSecret: []byte(preflightSecret)})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("another build"))
	h := hex.EncodeToString(sum[:])
	if _, err := c.RegisterBundle(t.Context(), &channel.Bundle{AppID: "io.mycorp.tasks", Version: "2.0.0", URL: "https://cdn.example.com/old.zip",
		Checksum: h, SHA256: h, Size: 10, Commit: strings.Repeat("a", 40), Ref: "refs/tags/v2.0.0"}); err != nil {
		t.Fatal(err)
	}
	return srv.URL, st
}

// TestPublishPreflight: `ferry publish` asks the relay before uploading, so a wrong app id,
// a bad HMAC secret, an unknown channel, a ref no rule maps and a version registered with
// other content each fail with the relay's reason and leave the destination empty; a good
// run uploads and registers, and register-only lets a ref without a rule through.
func TestPublishPreflight(t *testing.T) {
	t.Parallel()
	key, err := archive.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	build := t.TempDir()
	if err := os.WriteFile(filepath.Join(build, "index.html"), []byte("<!doctype html><p>tasks</p>"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		flags   []string
		wantErr string // empty: the run succeeds
		version string // registered by a successful run
	}{
		{name: "wrong app id", env: map[string]string{"FERRY_APP_ID": "io.mycorp.taks"}, wantErr: "app_not_found"},
		{name: "bad HMAC secret", env: map[string]string{"FERRY_HMAC_SECRET": "not-the-relay-secret"}, wantErr: "FERRY_HMAC_SECRET"},
		{name: "unknown channel", flags: []string{"--channel", "nightly"}, wantErr: "channel_not_found"},
		{name: "no rule for the ref", env: map[string]string{"CI_COMMIT_TAG": "", "CI_COMMIT_BRANCH": "feature", "CI_COMMIT_REF_NAME": "feature"}, wantErr: "refs/tags/v* → production"},
		{name: "version registered with other content", env: map[string]string{"CI_COMMIT_TAG": "v2.0.0", "CI_COMMIT_REF_NAME": "v2.0.0"}, wantErr: "version_conflict"},
		{name: "good", version: "2.1.0"},
		{name: "no rule but register-only", env: map[string]string{"CI_COMMIT_TAG": "", "CI_COMMIT_BRANCH": "feature", "CI_COMMIT_REF_NAME": "feature", "FERRY_VERSION": "2.2.0"},
			flags: []string{"--register-only", "true"}, version: "2.2.0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			relayURL, st := preflightRelay(t)
			dest := t.TempDir()
			env := map[string]string{
				"GITLAB_CI": "true", "CI_COMMIT_TAG": "v2.1.0", "CI_COMMIT_REF_NAME": "v2.1.0", "CI_COMMIT_SHA": testCommit, "CI_PIPELINE_ID": "99", "CI_PROJECT_PATH": "mycorp/tasks",
				"FERRY_APP_ID": "io.mycorp.tasks", "FERRY_BUILD_DIR": build,
				"FERRY_ENCRYPTION_KEY": string(archive.MarshalPrivateKey(key)),
				"FERRY_DESTINATION":    "file://" + filepath.ToSlash(dest), "FERRY_PUBLIC_BASE_URL": "https://cdn.example.com/b",
				"FERRY_RELAY_URL": relayURL, "FERRY_HMAC_SECRET": preflightSecret, "FERRY_REGISTER_TIMEOUT": "5s",
				"RUNNER_TEMP": t.TempDir(),
			}
			for k, v := range tc.env {
				env[k] = v
			}
			var stdout, stderr bytes.Buffer
			err := publishCmd(t.Context(), tc.flags, func(k string) string { return env[k] }, &stdout, &stderr)
			files := filesIn(t, dest)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "Nothing was uploaded") {
					t.Fatalf("publish = %v, want a preflight refusal naming %q\n%s", err, tc.wantErr, stderr.String())
				}
				if len(files) != 0 {
					t.Errorf("the destination holds %v after a refused preflight, want nothing", files)
				}
				return
			}
			if err != nil {
				t.Fatalf("publish: %v\n%s", err, stderr.String())
			}
			if len(files) == 0 {
				t.Error("the destination is empty after a successful publish")
			}
			if _, err := st.GetBundle(t.Context(), "io.mycorp.tasks", tc.version); err != nil {
				t.Errorf("version %s not registered: %v", tc.version, err)
			}
		})
	}
}

// filesIn lists the regular files below dir.
func filesIn(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return out
}

// TestPublishPreflightOldRelay: a relay without the preflight endpoint (404) earns a warning
// and the bundle is published and registered as before.
func TestPublishPreflightOldRelay(t *testing.T) {
	t.Parallel()
	relay := newFakeRelay(t) // serves only POST /api/v1/bundles
	env, dest := gitlabTagPublish(t, relay.URL)
	var stdout, stderr bytes.Buffer
	if err := publishCmd(t.Context(), nil, func(k string) string { return env[k] }, &stdout, &stderr); err != nil {
		t.Fatalf("publish: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "warning: the relay has no preflight endpoint") {
		t.Errorf("stderr lacks the old-relay warning:\n%s", stderr.String())
	}
	relay.mu.Lock()
	n := len(relay.bundles)
	relay.mu.Unlock()
	if n != 1 || len(filesIn(t, dest)) == 0 {
		t.Errorf("registrations = %d, files = %v; want one registration and the files published", n, filesIn(t, dest))
	}
}

// gitlabTagPublish is the environment of `ferry publish` in a GitLab pipeline of tag v2.1.0
// for io.mycorp.tasks: a one-file build, a fresh encryption key, a file:// destination
// (returned) and the relay at relayURL signed with preflightSecret.
func gitlabTagPublish(t *testing.T, relayURL string) (env map[string]string, dest string) {
	t.Helper()
	key, err := archive.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	build := t.TempDir()
	if err := os.WriteFile(filepath.Join(build, "index.html"), []byte("<p>tasks</p>"), 0o644); err != nil {
		t.Fatal(err)
	}
	dest = t.TempDir()
	return map[string]string{
		"GITLAB_CI": "true", "CI_COMMIT_TAG": "v2.1.0", "CI_COMMIT_SHA": testCommit, "CI_PIPELINE_ID": "99", "CI_PROJECT_PATH": "mycorp/tasks",
		"FERRY_APP_ID": "io.mycorp.tasks", "FERRY_BUILD_DIR": build, "FERRY_ENCRYPTION_KEY": string(archive.MarshalPrivateKey(key)),
		"FERRY_DESTINATION": "file://" + filepath.ToSlash(dest), "FERRY_PUBLIC_BASE_URL": "https://cdn.example.com/b",
		"FERRY_RELAY_URL": relayURL, "FERRY_HMAC_SECRET": preflightSecret, "RUNNER_TEMP": t.TempDir(),
	}, dest
}
