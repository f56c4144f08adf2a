package sign_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferryhq/ferry/internal/sign"
	"github.com/ferryhq/ferry/internal/sign/signtest"
)

func TestProvenanceShape(t *testing.T) {
	t.Parallel()
	c := signtest.New(t, signtest.Options{}).DefaultClaims()
	// Tags may contain '@': the workflow ref is split at the first '@' after the path.
	c.WorkflowRef = "acme/mobile-app/.github/workflows/release.yml@refs/tags/v1@beta"
	c.JobWorkflowRef = "acme/shared/.github/workflows/build.yml@refs/heads/main" // reusable workflow
	c.Ref = "refs/tags/v1@beta"
	sum := "3fa0cb3a98b07d06a02ee28c64f4416a2da1a667dfefb7e82d230ccb98b0d16e"
	js, err := sign.Provenance("web.zip.enc", sum, c)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(js, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"name": "web.zip.enc", "digest": map[string]any{"sha256": sum}}},
		"predicateType": "https://slsa.dev/provenance/v1",
		"predicate": map[string]any{
			"buildDefinition": map[string]any{
				"buildType": "https://actions.github.io/buildtypes/workflow/v1",
				"externalParameters": map[string]any{"workflow": map[string]any{
					"ref": "refs/tags/v1@beta", "repository": "https://github.com/acme/mobile-app", "path": ".github/workflows/release.yml"}},
				"internalParameters": map[string]any{"github": map[string]any{
					"event_name": "push", "repository_id": "111", "repository_owner_id": "222", "runner_environment": "github-hosted"}},
				"resolvedDependencies": []any{map[string]any{
					"uri": "git+https://github.com/acme/mobile-app@refs/tags/v1@beta", "digest": map[string]any{"gitCommit": c.SHA}}},
			},
			"runDetails": map[string]any{
				"builder":  map[string]any{"id": "https://github.com/acme/shared/.github/workflows/build.yml@refs/heads/main"},
				"metadata": map[string]any{"invocationId": "https://github.com/acme/mobile-app/actions/runs/999/attempts/1"},
			},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Provenance (-want +got):\n%s", diff)
	}
}

func TestProvenanceRejectsBadInput(t *testing.T) {
	t.Parallel()
	c := signtest.New(t, signtest.Options{}).DefaultClaims()
	tests := []struct {
		name, subject, sum string
		claims             sign.Claims
	}{
		{"no name", "", "3fa0cb3a98b07d06a02ee28c64f4416a2da1a667dfefb7e82d230ccb98b0d16e", c},
		{"short digest", "a", "3fa0", c},
		{"upper-case digest", "a", "3FA0CB3A98B07D06A02EE28C64F4416A2DA1A667DFEFB7E82D230CCB98B0D16E", c},
		{"no claims", "a", "3fa0cb3a98b07d06a02ee28c64f4416a2da1a667dfefb7e82d230ccb98b0d16e", sign.Claims{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := sign.Provenance(tc.subject, tc.sum, tc.claims); err == nil {
				t.Errorf("Provenance(%q, %q) accepted bad input", tc.subject, tc.sum)
			}
		})
	}
}

func TestParseClaims(t *testing.T) {
	t.Parallel()
	h := signtest.New(t, signtest.Options{})
	want := h.DefaultClaims()
	got, err := sign.ParseClaims(h.Token(want))
	if err != nil {
		t.Fatal(err)
	}
	want.ServerURL = "" // not a claim
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseClaims (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"", "a.b", "a.!!!.c", "a.bm90IGpzb24.c"} {
		if _, err := sign.ParseClaims(bad); err == nil {
			t.Errorf("ParseClaims(%q) accepted garbage", bad)
		}
	}
}
