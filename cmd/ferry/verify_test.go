package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/sign"
	"github.com/ferryhq/ferry/internal/sign/signtest"
)

type signedFiles struct {
	dir, artifact, bundle, provenance, trustedRoot string
}

// signKeyless writes an artifact signed by the harness's acme/mobile-app release workflow.
func signKeyless(t *testing.T, h *signtest.Harness, content []byte) signedFiles {
	t.Helper()
	s, err := sign.NewSigner(t.Context(), sign.Options{Mode: sign.ModeKeyless, IDToken: h.IDToken(h.Claims()),
		FulcioURL: h.FulcioURL, RekorURL: h.RekorURL, TrustedRoot: h.TrustedRootPath})
	if err != nil {
		t.Fatal(err)
	}
	return write(t, s, content, h.TrustedRootPath)
}

func write(t *testing.T, s *sign.Signer, content []byte, trustedRoot string) signedFiles {
	t.Helper()
	dir := t.TempDir()
	f := signedFiles{dir: dir, artifact: filepath.Join(dir, "web.zip.enc"), bundle: filepath.Join(dir, "web.zip.enc.sigstore.json"),
		provenance: filepath.Join(dir, "provenance.sigstore.json"), trustedRoot: trustedRoot}
	sig, err := s.SignArtifact(t.Context(), "web.zip.enc", bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	prov, err := s.SignProvenance(t.Context(), sign.ProvenanceInput{SubjectName: "web.zip.enc", SHA256: hex.EncodeToString(sum[:]),
		Claims: signtest.New(t, signtest.Options{}).DefaultClaims()})
	if err != nil {
		t.Fatal(err)
	}
	for p, b := range map[string][]byte{f.artifact: content, f.bundle: sig, f.provenance: prov} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func runFerry(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(t.Context(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestVerifyCommand(t *testing.T) {
	t.Parallel()
	h := signtest.New(t, signtest.Options{})
	good := signKeyless(t, h, []byte("archive v1.2.3"))
	other := signKeyless(t, h, []byte("a different archive"))
	tampered := filepath.Join(t.TempDir(), "web.zip.enc")
	if err := os.WriteFile(tampered, []byte("archive v1.2.4"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"verify", "--trusted-root", good.trustedRoot}

	// A bundle whose certificate had expired when it was logged (Ferry's signer refuses to make
	// one; the harness can).
	h.ExpireCertificates(true)
	expiredSig, err := h.SignBlobUnverified(t.Context(), []byte("archive v1.2.3"), h.Claims(), false)
	h.ExpireCertificates(false)
	if err != nil {
		t.Fatal(err)
	}
	expired := filepath.Join(t.TempDir(), "expired.sigstore.json")
	if err := os.WriteFile(expired, expiredSig, 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string // substrings of stdout
		wantErr  string   // substring of stderr
	}{
		{"signature and provenance", []string{"--artifact", good.artifact, "--provenance", good.provenance, "--repo", "acme/mobile-app"}, 0,
			[]string{"Verified web.zip.enc", "signed by:   https://github.com/acme/mobile-app/.github/workflows/release.yml@refs/tags/v1.2.3",
				"commit:      0123456789abcdef0123456789abcdef01234567", "workflow:    .github/workflows/release.yml", "ref:         refs/tags/v1.2.3",
				"log index:   0", "provenance:  SLSA v1, verified"}, ""},
		{"workflow and ref pinned", []string{"--artifact", good.artifact, "--repo", "acme/mobile-app", "--workflow", ".github/workflows/release.yml", "--ref", "refs/tags/v1.2.3"}, 0,
			[]string{"Verified web.zip.enc", "not checked (pass --provenance)"}, ""},
		{"wrong repository", []string{"--artifact", good.artifact, "--repo", "acme/other"}, 1, nil, "signer identity does not match the policy"},
		{"wrong workflow", []string{"--artifact", good.artifact, "--repo", "acme/mobile-app", "--workflow", ".github/workflows/ci.yml"}, 1, nil, "signer identity does not match the policy"},
		{"wrong ref", []string{"--artifact", good.artifact, "--repo", "acme/mobile-app", "--ref", "refs/heads/main"}, 1, nil, "signer identity does not match the policy"},
		{"changed artifact", []string{"--artifact", tampered, "--bundle", good.bundle, "--repo", "acme/mobile-app"}, 1, nil, "artifact digest does not match"},
		{"swapped bundle", []string{"--artifact", good.artifact, "--bundle", other.bundle, "--repo", "acme/mobile-app"}, 1, nil, "artifact digest does not match"},
		{"provenance of another artifact", []string{"--artifact", good.artifact, "--provenance", other.provenance, "--repo", "acme/mobile-app"}, 1, nil, "provenance is about web.zip.enc@sha256:"},
		{"provenance as signature", []string{"--artifact", good.artifact, "--bundle", good.provenance, "--repo", "acme/mobile-app"}, 1, nil, "expected an artifact signature"},
		{"garbage bundle", []string{"--artifact", good.artifact, "--bundle", good.artifact, "--repo", "acme/mobile-app"}, 1, nil, "invalid sigstore bundle"},
		{"expired certificate", []string{"--artifact", good.artifact, "--bundle", expired, "--repo", "acme/mobile-app"}, 1, nil, "signing certificate was not valid at signing time"},
		{"no policy", []string{"--artifact", good.artifact}, 2, nil, "pin who must have signed"},
		{"no artifact", []string{"--repo", "acme/mobile-app"}, 2, nil, "--artifact is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runFerry(t, append(append([]string{}, base...), tc.args...)...)
			t.Logf("stdout:\n%s\nstderr:\n%s", out, errOut)
			if code != tc.wantCode {
				t.Fatalf("ferry verify %v = exit %d, want %d\nstdout: %s\nstderr: %s", tc.args, code, tc.wantCode, out, errOut)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout does not contain %q:\n%s", w, out)
				}
			}
			if !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("stderr does not contain %q:\n%s", tc.wantErr, errOut)
			}
		})
	}
}

func TestVerifyCommandJSON(t *testing.T) {
	t.Parallel()
	h := signtest.New(t, signtest.Options{Org: signtest.OrgGitHub})
	s, err := sign.NewSigner(t.Context(), sign.Options{Mode: sign.ModeKeyless, Private: true, IDToken: h.IDToken(h.Claims()),
		FulcioURL: h.FulcioURL, TSAURL: h.TSAURL, TrustedRoot: h.TrustedRootPath})
	if err != nil {
		t.Fatal(err)
	}
	f := write(t, s, []byte("private archive"), h.TrustedRootPath)
	code, out, errOut := runFerry(t, "verify", "--json", "--trusted-root", f.trustedRoot, "--artifact", f.artifact, "--provenance", f.provenance, "--repo", "acme/mobile-app")
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	var rep verifyReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	if !rep.Verified || rep.Signature.Commit != h.Claims().SHA || rep.Provenance == nil || rep.Signature.LogIndex != nil ||
		len(rep.Signature.TimestampKinds) != 1 || rep.Signature.TimestampKinds[0] != "TimestampAuthority" {
		t.Errorf("report = %s", out)
	}

	code, out, _ = runFerry(t, "verify", "--json", "--trusted-root", f.trustedRoot, "--artifact", f.artifact, "--repo", "evil/app")
	if code != 1 || json.Unmarshal([]byte(out), &rep) != nil || rep.Verified || !strings.Contains(rep.Error, "does not match the policy") {
		t.Errorf("wrong repo: exit %d, report %s", code, out)
	}
}

func TestVerifyCommandKey(t *testing.T) {
	t.Parallel()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	priv := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	s, err := sign.NewSigner(t.Context(), sign.Options{Mode: sign.ModeKey, Key: priv})
	if err != nil {
		t.Fatal(err)
	}
	f := write(t, s, []byte("key-signed archive"), "")
	pub, _ := sign.PublicKeyPEM(priv, nil)
	pubPath := filepath.Join(f.dir, "pub.pem")
	if err := os.WriteFile(pubPath, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runFerry(t, "verify", "--artifact", f.artifact, "--provenance", f.provenance, "--key", pubPath)
	if code != 0 || !strings.Contains(out, "signed by:   key ") || !strings.Contains(out, "repository:  acme/mobile-app") {
		t.Errorf("key verify: exit %d\n%s\n%s", code, out, errOut)
	}
	// Another key is refused.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	oder, _ := x509.MarshalPKIXPublicKey(&other.PublicKey)
	if err := os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: oder}), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runFerry(t, "verify", "--artifact", f.artifact, "--key", pubPath)
	if code != 1 || !strings.Contains(errOut, "NOT verified") {
		t.Errorf("other key: exit %d, stderr %s", code, errOut)
	}
}
