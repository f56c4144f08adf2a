package pipeline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/channel"
)

func TestDeriveVersion(t *testing.T) {
	t.Parallel()
	const sha = "89e6c98d92887913cadf06b2adb97f26cde4849b"
	tests := []struct {
		name, ref, refType, runID, sha string
		want, wantErr                  string
	}{
		{name: "v tag", ref: "refs/tags/v1.2.3", refType: "tag", want: "1.2.3"},
		{name: "bare tag", ref: "refs/tags/1.2.3", refType: "tag", want: "1.2.3"},
		{name: "pre-release tag", ref: "refs/tags/v2.0.0-rc.1", refType: "tag", want: "2.0.0-rc.1"},
		{name: "tag without ref type", ref: "refs/tags/v4.5.6", want: "4.5.6"},
		{name: "non-version tag", ref: "refs/tags/channel/production", refType: "tag", runID: "77", sha: sha, want: "0.0.0-tag-channel-production.77.g89e6c98"},
		{name: "branch", ref: "refs/heads/main", refType: "branch", runID: "12345678901", sha: sha, want: "0.0.0-main.12345678901.g89e6c98"},
		{name: "branch with slashes and case", ref: "refs/heads/Feature/Login_Page", refType: "branch", runID: "5", sha: sha, want: "0.0.0-feature-login-page.5.g89e6c98"},
		{name: "pull request", ref: "refs/pull/12/merge", runID: "5", sha: sha, want: "0.0.0-pr-12.5.g89e6c98"},
		{name: "numeric branch", ref: "refs/heads/0042", runID: "5", sha: sha, want: "0.0.0-r0042.5.g89e6c98"},
		{name: "no ref", wantErr: "no GITHUB_REF"},
		{name: "no run id", ref: "refs/heads/main", sha: sha, wantErr: "GITHUB_RUN_ID"},
		{name: "no sha", ref: "refs/heads/main", runID: "1", wantErr: "GITHUB_SHA"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := DeriveVersion(&Context{Ref: tc.ref, RefType: tc.refType, RunID: tc.runID, SHA: tc.sha})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("deriveVersion(%q) error = %v, want %q", tc.ref, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("deriveVersion(%q) = %q, %v; want %q", tc.ref, got, err, tc.want)
			}
		})
	}
}

// TestDerivedVersionsSort: later runs of a ref sort higher, and every branch build sorts
// below every release, under the relay's version order.
func TestDerivedVersionsSort(t *testing.T) {
	t.Parallel()
	var prev string
	for _, run := range []string{"9", "10", "99", "100", "12345678901"} {
		v, err := DeriveVersion(&Context{Ref: "refs/heads/main", RunID: run, SHA: "ffffffffffffffffffffffffffffffffffffffff"})
		if err != nil {
			t.Fatal(err)
		}
		if prev != "" && channel.CompareVersions(prev, v) >= 0 {
			t.Errorf("CompareVersions(%q, %q) >= 0, want the later run higher", prev, v)
		}
		if channel.CompareVersions(v, "0.0.1") >= 0 {
			t.Errorf("CompareVersions(%q, 0.0.1) >= 0, want branch builds below releases", v)
		}
		prev = v
	}
}

func FuzzDeriveVersion(f *testing.F) {
	f.Add("refs/heads/main", "branch", "4242", "89e6c98d92887913cadf06b2adb97f26cde4849b")
	f.Add("refs/tags/v1.2.3", "tag", "1", "")
	f.Add("refs/pull/7/merge", "", "99", "abcdefabcdefabcdefabcdefabcdefabcdefabcd")
	f.Add("refs/heads/ünï/çødé", "branch", "1", "0000000000000000000000000000000000000000")
	f.Fuzz(func(t *testing.T, ref, refType, runID, sha string) {
		v, err := DeriveVersion(&Context{Ref: ref, RefType: refType, RunID: runID, SHA: sha})
		if err != nil {
			return
		}
		if err := CheckVersion(v); err != nil {
			t.Fatalf("deriveVersion(%q, %q, %q) = %q, which the relay refuses: %v", ref, runID, sha, v, err)
		}
		// Every derived version is a semantic version: those sort above any non-semver.
		if channel.CompareVersions(v, "~not-semver") <= 0 {
			t.Fatalf("deriveVersion(%q) = %q is not a semantic version", ref, v)
		}
		if len(v) > 128 {
			t.Fatalf("deriveVersion(%q) = %q is longer than 128", ref, v)
		}
	})
}

func TestValidateReportsDefaultsAndDerivations(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := map[string]string{"GITHUB_WORKSPACE": dir, "ACTIONS_ID_TOKEN_REQUEST_URL": "http://x", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "t", "GITHUB_TOKEN": "tok"}
	vals := ReadInputs(func(name string) string {
		return map[string]string{"app-id": "com.a.b", "build-dir": ".", "relay-url": "https://relay.example.com/"}[name]
	})
	rc := &Context{Repository: "acme/app", Ref: "refs/tags/v1.0.0", RefName: "v1.0.0", RefType: "tag", SHA: strings.Repeat("a", 40), Visibility: "public", WorkflowRef: "acme/app/.github/workflows/r.yml@refs/tags/v1.0.0"}
	c, err := Validate(vals, func(k string) string { return env[k] }, rc)
	if err != nil {
		t.Fatal(err)
	}
	got := []any{c.Version, c.Signing, c.Provenance, c.Destination, c.ReleaseTag, c.Audience, c.RelayURL, c.GitHubToken, c.Delta}
	want := []any{"1.0.0", signingKeyless, true, "github-release", "v1.0.0", "https://relay.example.com", "https://relay.example.com", "tok", false}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("derived[%d] = %v, want %v", i, got[i], want[i])
		}
	}
}

// TestRunnerTempOutsideTheContainer: a Docker container action is given the host's
// RUNNER_TEMP, a path that does not exist inside the container; the action must fall back
// to the container's own temporary directory instead of failing its first stage.
func TestRunnerTempOutsideTheContainer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	vals := ReadInputs(func(name string) string {
		return map[string]string{"app-id": "com.a.b", "build-dir": ".", "signing": "none"}[name]
	})
	rc := &Context{Repository: "acme/app", Ref: "refs/tags/v1.0.0", RefName: "v1.0.0", RefType: "tag", SHA: strings.Repeat("a", 40), Visibility: "public"}
	for _, tc := range []struct{ runnerTemp, want string }{
		{filepath.Join(dir, "home", "runner", "work", "_temp"), os.TempDir()}, // host path, not mounted
		{"", os.TempDir()},
		{dir, dir}, // mounted (or not in a container): used
	} {
		env := map[string]string{"GITHUB_WORKSPACE": dir, "GITHUB_TOKEN": "tok", "RUNNER_TEMP": tc.runnerTemp}
		c, err := Validate(vals, func(k string) string { return env[k] }, rc)
		if err != nil {
			t.Fatal(err)
		}
		if c.TempDir != tc.want {
			t.Errorf("RUNNER_TEMP=%q: work directory parent %q, want %q", tc.runnerTemp, c.TempDir, tc.want)
		}
	}
}
