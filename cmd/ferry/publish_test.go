package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferryhq/ferry/internal/archive"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/pipeline"
)

// fakeRelay records registrations and accepts them, as POST /api/v1/bundles does.
type fakeRelay struct {
	*httptest.Server
	mu      sync.Mutex
	bundles []channel.Bundle
	headers []http.Header
}

func newFakeRelay(t *testing.T) *fakeRelay {
	t.Helper()
	f := &fakeRelay{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/v1/bundles" {
			http.NotFound(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var b channel.Bundle
		if err := json.Unmarshal(body, &b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.bundles = append(f.bundles, b)
		f.headers = append(f.headers, r.Header.Clone())
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"bundle": b, "created": true, "channel": "production", "promoted": true}) // the test reads what it got
	}))
	t.Cleanup(f.Close)
	return f
}

const testCommit = "3f786850e387550fdab836ed7e6dc881de23001b"

// TestPublishFromGitLab: `ferry publish` in a GitLab tag pipeline reads its inputs from
// FERRY_* variables (relay-secret from the relay's FERRY_HMAC_SECRET), flags win over
// them, the ref and commit come from GitLab's variables, and what it registers is what
// --bundle-json records.
func TestPublishFromGitLab(t *testing.T) {
	t.Parallel()
	relay := newFakeRelay(t)
	build := t.TempDir()
	if err := os.WriteFile(filepath.Join(build, "index.html"), []byte("<!doctype html><p>tasks</p>"), 0o644); err != nil {
		t.Fatal(err)
	}
	key, err := archive.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	bucket := t.TempDir()
	out := filepath.Join(t.TempDir(), "bundle.json")
	env := map[string]string{
		"GITLAB_CI": "true", "CI_COMMIT_TAG": "v2.1.0", "CI_COMMIT_SHA": testCommit, "CI_PIPELINE_ID": "99", "CI_PROJECT_PATH": "mycorp/tasks",
		"FERRY_APP_ID": "io.mycorp.tasks", "FERRY_BUILD_DIR": build, "FERRY_CHANNEL": "beta",
		"FERRY_ENCRYPTION_KEY": string(archive.MarshalPrivateKey(key)),
		"FERRY_DESTINATION":    "file://" + filepath.ToSlash(bucket), "FERRY_PUBLIC_BASE_URL": "https://cdn.example.com/b",
		"FERRY_RELAY_URL": relay.URL, "FERRY_HMAC_SECRET": "hmac-secret-0123456789",
		"RUNNER_TEMP": t.TempDir(),
	}
	var stdout, stderr bytes.Buffer
	err = publishCmd(t.Context(), []string{"--channel", "production", "--bundle-json", out, "--json"}, func(k string) string { return env[k] }, &stdout, &stderr)
	if err != nil {
		t.Fatalf("publish: %v\n%s", err, stderr.String())
	}
	var outputs map[string]string
	if err := json.Unmarshal(stdout.Bytes(), &outputs); err != nil {
		t.Fatalf("outputs %q: %v", stdout.String(), err)
	}
	if len(outputs) != len(pipeline.Outputs) || outputs["version"] != "2.1.0" || outputs["channel"] != "production" ||
		outputs["bundle-url"] != "https://cdn.example.com/b/io.mycorp.tasks/2.1.0/io.mycorp.tasks-2.1.0.zip" || outputs["session-key"] == "" {
		t.Errorf("outputs = %v", outputs)
	}
	if len(relay.bundles) != 1 {
		t.Fatalf("relay got %d registrations, want 1", len(relay.bundles))
	}
	got := relay.bundles[0]
	if got.Commit != testCommit || got.Ref != "refs/tags/v2.1.0" || got.Channel != "production" || got.Repository != "mycorp/tasks" || got.Checksum != outputs["checksum"] {
		t.Errorf("registered %+v", got)
	}
	if relay.headers[0].Get("X-Ferry-Signature-256") == "" || relay.headers[0].Get("User-Agent") != "ferry-publish" {
		t.Errorf("registration headers %v, want an HMAC signature from ferry-publish", relay.headers[0])
	}
	var rec channel.Bundle
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, rec); diff != "" {
		t.Errorf("--bundle-json differs from the registration (-registered +file):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(bucket, "io.mycorp.tasks", "2.1.0", "io.mycorp.tasks-2.1.0.zip")); err != nil {
		t.Errorf("bundle not in the destination: %v", err)
	}
}

// TestPublishReportsEveryProblem: bad options are all reported at once, with the pipeline's
// own messages, before anything runs.
func TestPublishReportsEveryProblem(t *testing.T) {
	t.Parallel()
	env := map[string]string{"FERRY_DESTINATION": "ftp://x", "FERRY_SIGNING": "sometimes"}
	var stdout, stderr bytes.Buffer
	err := publishCmd(t.Context(), []string{"--build-dir", filepath.Join(t.TempDir(), "missing"), "--version", "1.0.0"}, func(k string) string { return env[k] }, &stdout, &stderr)
	if err == nil {
		t.Fatal("publish succeeded")
	}
	for _, want := range []string{"app-id is required", "build-dir", "signing \"sometimes\"", "destination \"ftp://x\""} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestCIContext: each CI's own variables give the ref, commit, run and repository.
func TestCIContext(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  map[string]string
		want pipeline.Context
	}{
		{"gitlab branch", map[string]string{"GITLAB_CI": "true", "CI_COMMIT_BRANCH": "main", "CI_COMMIT_SHA": "c1", "CI_PIPELINE_ID": "7", "CI_PROJECT_PATH": "g/p"},
			pipeline.Context{Ref: "refs/heads/main", RefName: "main", RefType: "branch", SHA: "c1", RunID: "7", Repository: "g/p"}},
		{"azure tag", map[string]string{"TF_BUILD": "True", "BUILD_SOURCEBRANCH": "refs/tags/v1.0.0", "BUILD_SOURCEVERSION": "c2", "BUILD_BUILDID": "8", "BUILD_REPOSITORY_NAME": "a/p"},
			pipeline.Context{Ref: "refs/tags/v1.0.0", RefName: "v1.0.0", RefType: "tag", SHA: "c2", RunID: "8", Repository: "a/p"}},
		{"bitbucket", map[string]string{"BITBUCKET_BUILD_NUMBER": "9", "BITBUCKET_BRANCH": "dev", "BITBUCKET_COMMIT": "c3", "BITBUCKET_REPO_FULL_NAME": "b/p"},
			pipeline.Context{Ref: "refs/heads/dev", RefName: "dev", RefType: "branch", SHA: "c3", RunID: "9", Repository: "b/p"}},
		{"jenkins", map[string]string{"JENKINS_URL": "http://j", "TAG_NAME": "v2.0.0", "GIT_COMMIT": "c4", "BUILD_NUMBER": "10"},
			pipeline.Context{Ref: "refs/tags/v2.0.0", RefName: "v2.0.0", RefType: "tag", SHA: "c4", RunID: "10"}},
		{"laptop", map[string]string{}, pipeline.Context{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ciContext(func(k string) string { return tc.env[k] })
			refNames(got)
			if diff := cmp.Diff(tc.want, *got); diff != "" {
				t.Errorf("context (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRegisterFromRecord: `ferry register` posts a record from --from (publish's
// --bundle-json, or pack's --json plus flags), flags override the file, and an OIDC token
// from FERRY_ID_TOKEN is sent as a bearer token when there is no HMAC secret.
func TestRegisterFromRecord(t *testing.T) {
	t.Parallel()
	relay := newFakeRelay(t)
	dir := t.TempDir()
	pack := filepath.Join(dir, "pack.json")
	// The fields `ferry pack --json` prints.
	if err := os.WriteFile(pack, []byte(`{"file":"b.zip","checksum":"abc","session_key":"iv:key","key_id":"k1","sha256":"def","artifact_sha256":"x","size":123,"zip_size":100,"files":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"FERRY_RELAY_URL": relay.URL, "FERRY_ID_TOKEN": "the-oidc-token", "FERRY_REF": "refs/heads/main", "FERRY_COMMIT": testCommit}
	var stdout, stderr bytes.Buffer
	err := registerCmd(t.Context(), []string{"--from", pack, "--app-id", "io.mycorp.tasks", "--version", "1.0.1", "--url", "https://cdn.example.com/b.zip", "--key-id", "k2"},
		func(k string) string { return env[k] }, &stdout, &stderr)
	if err != nil {
		t.Fatalf("register: %v\n%s", err, stderr.String())
	}
	want := channel.Bundle{AppID: "io.mycorp.tasks", Version: "1.0.1", URL: "https://cdn.example.com/b.zip", Checksum: "abc", SHA256: "def",
		Size: 123, SessionKey: "iv:key", KeyID: "k2", Commit: testCommit, Ref: "refs/heads/main"}
	if len(relay.bundles) != 1 {
		t.Fatalf("relay got %d registrations", len(relay.bundles))
	}
	if diff := cmp.Diff(want, relay.bundles[0]); diff != "" {
		t.Errorf("registered (-want +got):\n%s", diff)
	}
	if got := relay.headers[0].Get("Authorization"); got != "Bearer the-oidc-token" {
		t.Errorf("Authorization = %q, want the OIDC token", got)
	}
	if !strings.Contains(stdout.String(), "registered io.mycorp.tasks 1.0.1: channel production now serves it") {
		t.Errorf("stdout = %q", stdout.String())
	}
}

// TestRegisterReportsEveryProblem: missing fields and a missing way to authenticate are
// listed together, naming FERRY_HMAC_SECRET and the token options.
func TestRegisterReportsEveryProblem(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	err := registerCmd(t.Context(), []string{"--size", "-1"}, func(string) string { return "" }, &stdout, &stderr)
	if err == nil {
		t.Fatal("register succeeded")
	}
	for _, want := range []string{"--size", "--relay-url", "--app-id", "--version", "--url", "--checksum", "FERRY_HMAC_SECRET", "--id-token-file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}
