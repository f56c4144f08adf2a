package sign_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/sign"
	"github.com/ferryhq/ferry/internal/sign/signtest"
)

func TestActionsIDToken(t *testing.T) {
	t.Parallel()
	h := signtest.New(t, signtest.Options{})
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name    string
		env     map[string]string
		wantErr error
		wantMsg string
	}{
		{"runner token", map[string]string{"ACTIONS_ID_TOKEN_REQUEST_URL": h.TokenURL, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": h.TokenRequestToken}, nil, ""},
		{"no id-token permission", map[string]string{}, sign.ErrNoIDToken, "permissions: id-token: write"},
		{"bad request token", map[string]string{"ACTIONS_ID_TOKEN_REQUEST_URL": h.TokenURL, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "nope"}, sign.ErrNoIDToken, "answered 401"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok, err := sign.ActionsIDToken(env(tc.env), nil)(t.Context(), "sigstore")
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("token = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tc.wantMsg) {
					t.Errorf("error %q does not mention %q", err, tc.wantMsg)
				}
				return
			}
			c, err := sign.ParseClaims(tok)
			if err != nil || c.Repository != "acme/mobile-app" || c.SHA != h.Claims().SHA {
				t.Errorf("claims = %+v, %v", c, err)
			}
		})
	}
}

// TestKeylessErrorsSayWhatToFix: a signer without a token, or whose token Fulcio refuses,
// tells the user to grant `id-token: write`; nothing is signed.
func TestKeylessErrorsSayWhatToFix(t *testing.T) {
	t.Parallel()
	h := signtest.New(t, signtest.Options{})
	_, err := sign.NewSigner(t.Context(), sign.Options{Mode: sign.ModeKeyless, TrustedRoot: h.TrustedRootPath})
	if !errors.Is(err, sign.ErrNoIDToken) || !strings.Contains(err.Error(), "id-token: write") {
		t.Errorf("NewSigner without IDToken = %v", err)
	}

	noEnv := sign.ActionsIDToken(func(string) string { return "" }, nil)
	s, err := sign.NewSigner(t.Context(), sign.Options{Mode: sign.ModeKeyless, IDToken: noEnv, FulcioURL: h.FulcioURL,
		RekorURL: h.RekorURL, TrustedRoot: h.TrustedRootPath})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.SignArtifact(t.Context(), "web.zip.enc", strings.NewReader("x"))
	if !errors.Is(err, sign.ErrNoIDToken) || !strings.Contains(err.Error(), "permissions: id-token: write") {
		t.Errorf("SignArtifact without a runner token = %v", err)
	}

	garbage := func(context.Context, string) (string, error) { return "a.b.c", nil }
	s, err = sign.NewSigner(t.Context(), sign.Options{Mode: sign.ModeKeyless, IDToken: garbage, FulcioURL: h.FulcioURL,
		RekorURL: h.RekorURL, TrustedRoot: h.TrustedRootPath})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.SignArtifact(t.Context(), "web.zip.enc", strings.NewReader("x"))
	if err == nil || !strings.Contains(err.Error(), "OIDC token") {
		t.Errorf("SignArtifact with a garbage token = %v", err)
	}
	if f, r, _ := h.Calls(); f != 0 || r != 0 {
		t.Errorf("services were called %d/%d times for unusable tokens", f, r)
	}

	// Fulcio refuses a token without a repository claim: the error names Fulcio and the permission.
	c := h.Claims()
	c.Repository = ""
	s, err = sign.NewSigner(t.Context(), sign.Options{Mode: sign.ModeKeyless, IDToken: h.IDToken(c), FulcioURL: h.FulcioURL,
		RekorURL: h.RekorURL, TrustedRoot: h.TrustedRootPath})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.SignArtifact(t.Context(), "web.zip.enc", strings.NewReader("x"))
	if err == nil || !strings.Contains(err.Error(), "signing certificate from "+h.FulcioURL) || !strings.Contains(err.Error(), "id-token: write") {
		t.Errorf("SignArtifact refused by Fulcio = %v", err)
	}
}

func TestNewSignerValidates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts sign.Options
		want []string
	}{
		{"unknown mode", sign.Options{Mode: "magic"}, []string{"unknown signing mode \"magic\""}},
		{"key mode without key", sign.Options{Mode: sign.ModeKey}, []string{"key mode needs a private key"}},
		{"key garbage", sign.Options{Mode: sign.ModeKey, Key: []byte("not a key")}, []string{"parse signing key"}},
		{"keyless with key and no token", sign.Options{Mode: sign.ModeKeyless, Key: []byte("k")}, []string{"id-token: write", "choose mode \"key\""}},
		{"none", sign.Options{Mode: sign.ModeNone}, []string{"no signer"}},
		{"Ed25519 in Rekor", sign.Options{Mode: sign.ModeKey, Key: ed25519PEM(t), TransparencyLog: true}, []string{"Ed25519 key cannot be logged in Rekor"}},
		{"P-384 key", sign.Options{Mode: sign.ModeKey, Key: p384PEM(t)}, []string{"unsupported ECDSA curve P-384"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := sign.NewSigner(t.Context(), tc.opts)
			if err == nil {
				t.Fatal("NewSigner accepted bad options")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("NewSigner error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func p384PEM(t *testing.T) []byte {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pemKey(t, k)
}
