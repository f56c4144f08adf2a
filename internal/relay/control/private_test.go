package control

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/channel"
)

// privateConfig gives the app release_access through a GitHub App.
var privateConfig = strings.Replace(testConfigY, "    repository: acme/mobile-app\n",
	"    repository: acme/mobile-app\n    release_access: { app_id: 12, installation_id: 34, private_key_env: GH_APP_KEY }\n", 1)

func privateEnv(name string) string {
	if name == "GH_APP_KEY" {
		return "-----BEGIN RSA PRIVATE KEY-----"
	}
	return ""
}

func privateBundle(version string) *channel.Bundle {
	b := testBundle(version, commitA)
	b.SignatureURL = "https://github.com/acme/mobile-app/releases/download/v" + version + "/web.zip.sigstore.json"
	b.Assets = &channel.ReleaseAssets{Repository: repo, Archive: channel.ReleaseAsset{Name: "web.zip", ID: 501},
		Signature: &channel.ReleaseAsset{Name: "web.zip.sigstore.json", ID: 502}}
	return b
}

// TestRegisterPrivateAssets: a bundle of a private repository is stored with download URLs
// under the relay's public URL; without release_access it is refused with the fix, and
// assets of another repository or malformed ones change nothing.
func TestRegisterPrivateAssets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{config: privateConfig, getenv: privateEnv, publicURL: "https://relay.example.com/"})
	w := e.registerHMAC(privateBundle("1.0.0"), http.StatusCreated)
	r := decodeRegistration(t, w)
	if want := "https://relay.example.com/dl/com.example.app/1.0.0/web.zip"; r.Bundle.URL != want {
		t.Errorf("URL = %q, want %q", r.Bundle.URL, want)
	}
	if want := "https://relay.example.com/dl/com.example.app/1.0.0/web.zip.sigstore.json"; r.Bundle.SignatureURL != want {
		t.Errorf("SignatureURL = %q, want %q", r.Bundle.SignatureURL, want)
	}
	if r.Bundle.Assets == nil || r.Bundle.Assets.Find("web.zip").ID != 501 {
		t.Errorf("stored assets = %+v, want the archive's id 501", r.Bundle.Assets)
	}

	tests := []struct {
		name     string
		mutate   func(b *channel.Bundle)
		wantCode int
		wantErr  string
	}{
		{"other repository", func(b *channel.Bundle) { b.Assets.Repository = "evil/app" }, http.StatusForbidden, "repository_not_allowed"},
		{"path in a name", func(b *channel.Bundle) { b.Assets.Archive.Name = "../web.zip" }, http.StatusBadRequest, "invalid_bundle"},
		{"no id", func(b *channel.Bundle) { b.Assets.Archive.ID = 0 }, http.StatusBadRequest, "invalid_bundle"},
		{"name twice", func(b *channel.Bundle) { b.Assets.Signature.Name = "web.zip" }, http.StatusBadRequest, "invalid_bundle"},
	}
	for _, tc := range tests {
		before := e.snapshot()
		b := privateBundle("2.0.0")
		tc.mutate(b)
		w := e.registerHMAC(b, tc.wantCode)
		if code, msg := errorBody(t, w); code != tc.wantErr {
			t.Errorf("%s: error = %q (%s), want %q", tc.name, code, msg, tc.wantErr)
		}
		e.unchanged(before)
	}

	plain := newEnv(t, envOptions{})
	w = plain.registerHMAC(privateBundle("1.0.0"), http.StatusUnprocessableEntity)
	if code, msg := errorBody(t, w); code != "private_release_unconfigured" || !strings.Contains(msg, "add release_access") {
		t.Errorf("without release_access: error = %q (%s), want private_release_unconfigured naming the fix", code, msg)
	}
}

// TestReleaseAccessRefusedAtStart: a missing key variable or public URL stops New.
func TestReleaseAccessRefusedAtStart(t *testing.T) {
	t.Parallel()
	cfg, err := channel.ParseConfig([]byte(privateConfig))
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(context.Background(), Options{Config: cfg, Store: newBolt(t), Getenv: func(string) string { return "" }})
	for _, want := range []string{
		`app "com.example.app": release_access.private_key_env names GH_APP_KEY, which is not set in the environment`,
		"an app has release_access but --public-url (FERRY_PUBLIC_URL)",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New() = %v, want it to contain %q", err, want)
		}
	}
}
