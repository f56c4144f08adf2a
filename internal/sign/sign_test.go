package sign_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/sign"
	"github.com/ferryhq/ferry/internal/sign/signtest"
)

// testLogger sends slog output to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// fixture is one signing setup: a signer, the matching verifier and the policy that accepts it.
type fixture struct {
	name     string
	h        *signtest.Harness
	signer   *sign.Signer
	verifier *sign.Verifier
	policy   sign.Policy
	pubPEM   []byte // key mode
	privPEM  []byte
	password []byte
}

func keylessFixture(t *testing.T, private bool) fixture {
	t.Helper()
	org := signtest.OrgPublicGood
	if private {
		org = signtest.OrgGitHub
	}
	h := signtest.New(t, signtest.Options{Org: org})
	opts := sign.Options{Mode: sign.ModeKeyless, IDToken: h.IDToken(h.Claims()), FulcioURL: h.FulcioURL,
		TrustedRoot: h.TrustedRootPath, Logger: testLogger(t), Private: private}
	if private {
		opts.TSAURL = h.TSAURL
	} else {
		opts.RekorURL = h.RekorURL
	}
	s, err := sign.NewSigner(t.Context(), opts)
	if err != nil {
		t.Fatalf("NewSigner: %v", err)
	}
	v, err := sign.NewVerifier(t.Context(), sign.VerifierOptions{TrustedRoot: h.TrustedRootPath})
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	name := "keyless-rekor"
	if private {
		name = "keyless-tsa"
	}
	return fixture{name: name, h: h, signer: s, verifier: v, policy: sign.Policy{Repository: "acme/mobile-app",
		Workflow: ".github/workflows/release.yml", Ref: "refs/tags/v1.2.3"}}
}

func pemKey(t *testing.T, priv any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func keyFixture(t *testing.T, name string, privPEM, password []byte, tlog *signtest.Harness) fixture {
	t.Helper()
	opts := sign.Options{Mode: sign.ModeKey, Key: privPEM, KeyPassword: password, Logger: testLogger(t)}
	vopts := sign.VerifierOptions{KeyOnly: true}
	if tlog != nil {
		opts.TransparencyLog, opts.RekorURL, opts.TrustedRoot = true, tlog.RekorURL, tlog.TrustedRootPath
		vopts.TrustedRoot = tlog.TrustedRootPath
	}
	s, err := sign.NewSigner(t.Context(), opts)
	if err != nil {
		t.Fatalf("NewSigner(%s): %v", name, err)
	}
	v, err := sign.NewVerifier(t.Context(), vopts)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	pub, err := sign.PublicKeyPEM(privPEM, password)
	if err != nil {
		t.Fatalf("PublicKeyPEM: %v", err)
	}
	return fixture{name: name, h: tlog, signer: s, verifier: v, policy: sign.Policy{Key: pub}, pubPEM: pub, privPEM: privPEM, password: password}
}

func ecdsaPEM(t *testing.T) []byte {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pemKey(t, k)
}

func ed25519PEM(t *testing.T) []byte {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pemKey(t, k)
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// signBoth signs artifact and its provenance and returns both bundles.
func signBoth(t *testing.T, f fixture, artifact []byte) (sig, prov []byte) {
	t.Helper()
	ctx := t.Context()
	sig, err := f.signer.SignArtifact(ctx, "web.zip.enc", bytes.NewReader(artifact))
	if err != nil {
		t.Fatalf("%s: SignArtifact: %v", f.name, err)
	}
	claims := signtest.New(t, signtest.Options{}).DefaultClaims()
	if f.h != nil {
		claims = f.h.Claims()
	}
	prov, err = f.signer.SignProvenance(ctx, sign.ProvenanceInput{SubjectName: "web.zip.enc", SHA256: sha(artifact), Claims: claims})
	if err != nil {
		t.Fatalf("%s: SignProvenance: %v", f.name, err)
	}
	return sig, prov
}

func TestSignAndVerifyEveryMode(t *testing.T) {
	t.Parallel()
	artifact := []byte("encrypted archive bytes \x00\x01\x02")
	tests := []struct {
		name  string
		setup func(t *testing.T) fixture
	}{
		{"keyless public good (Fulcio + Rekor)", func(t *testing.T) fixture { return keylessFixture(t, false) }},
		{"keyless GitHub instance (Fulcio + TSA)", func(t *testing.T) fixture { return keylessFixture(t, true) }},
		{"key ECDSA P-256 PEM", func(t *testing.T) fixture { return keyFixture(t, "ecdsa", ecdsaPEM(t), nil, nil) }},
		{"key Ed25519 PEM", func(t *testing.T) fixture { return keyFixture(t, "ed25519", ed25519PEM(t), nil, nil) }},
		{"key ECDSA with Rekor entry", func(t *testing.T) fixture {
			return keyFixture(t, "ecdsa-tlog", ecdsaPEM(t), nil, signtest.New(t, signtest.Options{}))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := tc.setup(t)
			sig, prov := signBoth(t, f, artifact)
			rep, err := f.verifier.VerifyArtifact(t.Context(), bytes.NewReader(artifact), sig, f.policy)
			if err != nil {
				t.Fatalf("VerifyArtifact: %v", err)
			}
			prep, err := f.verifier.VerifyProvenance(t.Context(), sha(artifact), prov, f.policy)
			if err != nil {
				t.Fatalf("VerifyProvenance: %v", err)
			}
			if rep.ArtifactSHA256 != sha(artifact) || prep.ArtifactSHA256 != sha(artifact) {
				t.Errorf("report digests = %s, %s, want %s", rep.ArtifactSHA256, prep.ArtifactSHA256, sha(artifact))
			}
			if prep.PredicateType != sign.SLSAProvenanceV1 {
				t.Errorf("predicate type = %q", prep.PredicateType)
			}
			if len(f.policy.Key) == 0 {
				want := signtest.Identity(f.h.Claims())
				if rep.Identity != want || rep.Repository != "acme/mobile-app" || rep.Commit != f.h.Claims().SHA || rep.Ref != "refs/tags/v1.2.3" {
					t.Errorf("report = %+v, want identity %s, repo acme/mobile-app, commit %s", rep, want, f.h.Claims().SHA)
				}
				if rep.Workflow != ".github/workflows/release.yml" {
					t.Errorf("report workflow = %q", rep.Workflow)
				}
				if rep.SignedAt.IsZero() {
					t.Error("report has no verified signing time")
				}
			} else if rep.KeyHint == "" {
				t.Error("key report has no key hint")
			}
			if prep.Commit != "0123456789abcdef0123456789abcdef01234567" {
				t.Errorf("provenance report commit = %q", prep.Commit)
			}
			js, _ := json.Marshal(prep)
			t.Logf("provenance report: %s", js)
		})
	}
}

func TestVerifyEmptyPolicy(t *testing.T) {
	t.Parallel()
	f := keyFixture(t, "ecdsa", ecdsaPEM(t), nil, nil)
	sig, _ := signBoth(t, f, []byte("x"))
	_, err := f.verifier.VerifyArtifact(context.Background(), bytes.NewReader([]byte("x")), sig, sign.Policy{})
	if !errors.Is(err, sign.ErrEmptyPolicy) {
		t.Fatalf("VerifyArtifact(empty policy) = %v, want ErrEmptyPolicy", err)
	}
}

// TestSignArtifactReport: signing keyless with a transparency log reports what
// verify-before-publish found (the identity, issuer, workflow and log entry), which the
// pipeline sends with the registration.
func TestSignArtifactReport(t *testing.T) {
	t.Parallel()
	f := keylessFixture(t, false)
	artifact := []byte("encrypted archive bytes")
	sig, rep, err := f.signer.SignArtifactReport(t.Context(), "web.zip.enc", bytes.NewReader(artifact))
	if err != nil {
		t.Fatal(err)
	}
	if len(sig) == 0 || rep == nil {
		t.Fatalf("SignArtifactReport = %d bytes, report %v", len(sig), rep)
	}
	if rep.Mode != sign.ModeKeyless || rep.Identity == "" || rep.Issuer == "" || rep.Workflow == "" || rep.LogIndex == nil ||
		rep.IntegratedTime.IsZero() || rep.ArtifactSHA256 != sha(artifact) {
		t.Errorf("report = %+v, want keyless with identity, issuer, workflow, log index and integrated time", rep)
	}
}
