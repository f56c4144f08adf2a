package pipeline

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/archive"
	"github.com/ferryhq/ferry/internal/publish"
)

// TestSigningNoneWarning: signing left to its default says how to sign; signing: none
// chosen on purpose is not told to grant id-token: write.
func TestSigningNoneWarning(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		chosen  bool
		idToken bool
	}{{false, true}, {true, false}} {
		w := strings.Join(Warnings(&Config{Signing: signingNone, SigningChosen: tc.chosen, EncKey: []byte("k"), Destination: "file:///x"}), "\n")
		if !strings.Contains(w, "signing is none") || strings.Contains(w, "id-token: write") != tc.idToken {
			t.Errorf("signing chosen %v: warnings %q, want id-token advice %v", tc.chosen, w, tc.idToken)
		}
	}
}

// TestSignDetailWithoutProvenance: without provenance there is one signature, so the log
// does not say "both verified".
func TestSignDetailWithoutProvenance(t *testing.T) {
	t.Parallel()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(ec)
	artifact := filepath.Join(t.TempDir(), "a.zip")
	if err := os.WriteFile(artifact, []byte("bundle"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &Pipeline{Config: &Config{Signing: signingKey, SigningKey: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})},
		Log: slog.New(slog.DiscardHandler), Getenv: func(string) string { return "" }}
	res := &Result{name: "a.zip", pk: &packed{}}
	var sig, prov []byte
	detail, err := p.sign(t.Context(), res, artifact, &sig, &prov)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(detail, "both") || !strings.HasSuffix(detail, ", verified") {
		t.Errorf("sign detail = %q, want one signature verified", detail)
	}
	// The registration reports what verify-before-publish found: a key signature, its key
	// hint, no identity and no log entry.
	if sg := res.signature; sg == nil || sg.Mode != "key" || sg.KeyHint == "" || !sg.Verified || sg.Identity != "" || sg.LogIndex != nil {
		t.Errorf("signature facts for the registration = %+v, want a verified key signature with its hint", sg)
	}
}

// TestRegisterBadHMACNamesBothSecrets: a relay refusing the HMAC signature gets an error
// naming the action's relay-secret and the relay's FERRY_HMAC_SECRET.
func TestRegisterBadHMACNamesBothSecrets(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":"bad_signature","message":"signature does not match the body and timestamp"}`)
	}))
	t.Cleanup(srv.Close)
	p := &Pipeline{Config: &Config{AppID: "io.mycorp.tasks", Version: "1.0.0", RelayURL: srv.URL, RelaySecret: "wrong",
		SHA: strings.Repeat("a", 40), Ref: "refs/heads/main"},
		Log: slog.New(slog.DiscardHandler), Getenv: func(string) string { return "" }}
	res := &Result{pk: &packed{Result: archive.Result{Checksum: strings.Repeat("ab", 32), SHA256: strings.Repeat("ab", 32), Size: 1}},
		bundle: &publish.Object{URL: "https://d.test/a.zip"}}
	_, err := p.register(t.Context(), res)
	if err == nil || !strings.Contains(err.Error(), "relay-secret") || !strings.Contains(err.Error(), "FERRY_HMAC_SECRET") {
		t.Errorf("register = %v, want an error naming relay-secret and FERRY_HMAC_SECRET", err)
	}
}
