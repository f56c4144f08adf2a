package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestInputTypos: a misspelled input variable is not silently ignored: the action warns
// and names the input it probably meant; declared inputs and other variables pass.
func TestInputTypos(t *testing.T) {
	t.Parallel()
	got := inputTypos([]string{
		"INPUT_DESTINATON=s3://bucket", "INPUT_APP_ID=io.mycorp.tasks", "INPUT_APP-ID=io.mycorp.tasks",
		"INPUT_RELAY-URL=https://relay", "INPUT_WHATEVER-ELSE-ENTIRELY=x", "PATH=/bin", "GITHUB_REF=refs/heads/main",
	})
	want := []string{
		"INPUT_APP_ID is not an input of this action and is ignored; did you mean app-id (INPUT_APP-ID)?",
		"INPUT_DESTINATON is not an input of this action and is ignored; did you mean destination (INPUT_DESTINATION)?",
		"INPUT_WHATEVER-ELSE-ENTIRELY is not an input of this action and is ignored; inputs are app-id, build-dir, version, channel, encryption-key, signing, signing-key, signing-key-password, provenance, destination, public-base-url, github-token, release-tag, relay-url, relay-audience, relay-secret, native, delta, delta-key-epoch, register-only",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("inputTypos mismatch (-want +got):\n%s", diff)
	}
}
