package main

import (
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/channel"
)

// TestReleaseLinksBadKey: a private_key_env holding something other than a PEM key stops
// the relay at start-up, naming the app and what the variable must hold.
func TestReleaseLinksBadKey(t *testing.T) {
	t.Parallel()
	cfg := &channel.Config{Apps: []channel.App{
		{ID: "com.a", Repository: "acme/a", ReleaseAccess: &channel.ReleaseAccess{AppID: 1, InstallationID: 2, PrivateKeyEnv: "KEY_A"}},
		{ID: "com.b", Repository: "acme/b", ReleaseAccess: &channel.ReleaseAccess{TokenEnv: "TOKEN_B"}},
		{ID: "com.c", Repository: "acme/c"},
	}}
	env := map[string]string{"KEY_A": "not a pem", "TOKEN_B": "github_pat_x"}
	links, err := releaseLinks(cfg, func(k string) string { return env[k] })
	if err == nil || !strings.Contains(err.Error(), `app "com.a": release_access:`) || !strings.Contains(err.Error(), "private key PEM") {
		t.Errorf("releaseLinks(bad key) error = %v, want one naming app com.a and the PEM it needs", err)
	}
	if links["com.b"] == nil || links["com.c"] != nil || links["com.a"] != nil {
		t.Errorf("links for %v, want only com.b", keys(links))
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
