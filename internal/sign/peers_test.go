package sign_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/sign"
	"github.com/ferryhq/ferry/internal/sign/signtest"
	"github.com/ferryhq/ferry/internal/testpeers"
)

const slsaType = "https://slsa.dev/provenance/v1"

// peerEnv is a private environment for cosign and gh: a fresh HOME (no TUF cache, no login).
func peerEnv(t *testing.T) []string {
	t.Helper()
	home := t.TempDir()
	env := []string{"HOME=" + home, "GH_CONFIG_DIR=" + filepath.Join(home, "gh"), "PATH=" + os.Getenv("PATH"),
		"NO_COLOR=1", "GH_NO_UPDATE_NOTIFIER=1", "GH_PROMPT_DISABLED=1", "SIGSTORE_NO_CACHE=1"}
	return env
}

func runPeer(t *testing.T, env []string, bin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	t.Logf("$ %s %s\n%s", filepath.Base(bin), strings.Join(args, " "), out)
	return string(out), err
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// keylessCosignArgs pins identity and issuer strictly (SCT, and tlog unless TSA-only).
func keylessCosignArgs(f fixture, private bool) []string {
	args := []string{"--trusted-root", f.h.TrustedRootPath,
		"--certificate-identity", signtest.Identity(f.h.Claims()),
		"--certificate-oidc-issuer", sign.GitHubActionsIssuer,
		"--certificate-github-workflow-repository", "acme/mobile-app",
		"--certificate-github-workflow-ref", "refs/tags/v1.2.3",
		"--certificate-github-workflow-sha", f.h.Claims().SHA,
		"--certificate-github-workflow-trigger", "push"}
	if private {
		args = append(args, "--insecure-ignore-tlog=true", "--use-signed-timestamps")
	}
	return args
}

func TestPeersAcceptKeyless(t *testing.T) {
	t.Parallel()
	cosign := testpeers.Path(t, testpeers.Cosign)
	gh := testpeers.Path(t, testpeers.GH)
	for _, private := range []bool{false, true} {
		f := keylessFixture(t, private)
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			artifact := []byte("archive for " + f.name)
			sig, prov := signBoth(t, f, artifact)
			art := writeFile(t, dir, "web.zip.enc", artifact)
			sigPath := writeFile(t, dir, "web.zip.enc.sigstore.json", sig)
			provPath := writeFile(t, dir, "provenance.sigstore.json", prov)
			env := peerEnv(t)

			args := append([]string{"verify-blob", "--bundle", sigPath}, keylessCosignArgs(f, private)...)
			if out, err := runPeer(t, env, cosign, append(args, art)...); err != nil || !strings.Contains(out, "Verified OK") {
				t.Errorf("cosign verify-blob: %v\n%s", err, out)
			}
			// The form docs/security.md tells users to copy.
			args = []string{"verify-blob", "--bundle", sigPath, "--trusted-root", f.h.TrustedRootPath,
				"--certificate-identity-regexp", `^https://github\.com/acme/mobile-app/\.github/workflows/release\.yml@`,
				"--certificate-oidc-issuer", sign.GitHubActionsIssuer, "--certificate-github-workflow-repository", "acme/mobile-app"}
			if private {
				args = append(args, "--use-signed-timestamps", "--insecure-ignore-tlog=true")
			}
			if out, err := runPeer(t, env, cosign, append(args, art)...); err != nil || !strings.Contains(out, "Verified OK") {
				t.Errorf("cosign verify-blob (identity regexp): %v\n%s", err, out)
			}
			args = append([]string{"verify-blob-attestation", "--bundle", provPath, "--type", slsaType}, keylessCosignArgs(f, private)...)
			if out, err := runPeer(t, env, cosign, append(args, art)...); err != nil || !strings.Contains(out, "Verified OK") {
				t.Errorf("cosign verify-blob-attestation: %v\n%s", err, out)
			}
			out, err := runPeer(t, env, gh, "attestation", "verify", art, "--bundle", provPath,
				"--custom-trusted-root", f.h.TrustedRootPath, "--repo", "acme/mobile-app", "--format", "json")
			if err != nil {
				t.Fatalf("gh attestation verify: %v\n%s", err, out)
			}
			if out, err := runPeer(t, env, gh, "attestation", "verify", art, "--bundle", provPath, "--custom-trusted-root", f.h.TrustedRootPath,
				"--repo", "acme/mobile-app", "--signer-workflow", "acme/mobile-app/.github/workflows/release.yml"); err != nil {
				t.Errorf("gh attestation verify --signer-workflow: %v\n%s", err, out)
			}
			if out, err := runPeer(t, env, gh, "attestation", "verify", art, "--bundle", provPath, "--custom-trusted-root", f.h.TrustedRootPath,
				"--repo", "acme/other"); err == nil {
				t.Errorf("gh attestation verify --repo acme/other accepted the provenance:\n%s", out)
			}
			var res []struct {
				VerificationResult struct {
					Statement struct {
						PredicateType string `json:"predicateType"`
					} `json:"statement"`
					Signature struct {
						Certificate struct {
							SAN     string `json:"subjectAlternativeName"`
							RepoURI string `json:"sourceRepositoryURI"`
						} `json:"certificate"`
					} `json:"signature"`
				} `json:"verificationResult"`
			}
			start := strings.Index(out, "[")
			if start < 0 {
				t.Fatalf("gh output holds no JSON array:\n%s", out)
			}
			if err := json.Unmarshal([]byte(out[start:]), &res); err != nil || len(res) != 1 {
				t.Fatalf("gh output: %v", err)
			}
			got := res[0].VerificationResult
			if got.Statement.PredicateType != slsaType || got.Signature.Certificate.SAN != signtest.Identity(f.h.Claims()) ||
				got.Signature.Certificate.RepoURI != "https://github.com/acme/mobile-app" {
				t.Errorf("gh verified %+v", got)
			}
		})
	}
}

func TestCosignAcceptsKeyMode(t *testing.T) {
	t.Parallel()
	cosign := testpeers.Path(t, testpeers.Cosign)

	// A key made by cosign itself, encrypted with a password.
	keyDir := t.TempDir()
	env := peerEnv(t)
	cmd := exec.Command(cosign, "generate-key-pair")
	cmd.Dir = keyDir
	cmd.Env = append(slices.Clip(env), "COSIGN_PASSWORD=correct horse") // env is used again below
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	cosignKey, err := os.ReadFile(filepath.Join(keyDir, "cosign.key"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(cosignKey, []byte("ENCRYPTED SIGSTORE PRIVATE KEY")) {
		t.Fatalf("cosign.key is not cosign's encrypted format:\n%s", cosignKey)
	}
	cosignPub, err := os.ReadFile(filepath.Join(keyDir, "cosign.pub"))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		priv   []byte
		pw     []byte
		pubPEM []byte // the pub key cosign made, when there is one
	}{
		{"cosign encrypted key", cosignKey, []byte("correct horse"), cosignPub},
		{"PEM ECDSA P-256", ecdsaPEM(t), nil, nil},
		{"PEM Ed25519", ed25519PEM(t), nil, nil},
		{"PEM ECDSA P-256 with Rekor entry", ecdsaPEM(t), nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var tlog *signtest.Harness
			if strings.Contains(tc.name, "Rekor") {
				tlog = signtest.New(t, signtest.Options{})
			}
			f := keyFixture(t, tc.name, tc.priv, tc.pw, tlog)
			if tc.pubPEM != nil {
				id1, _ := sign.KeyID(tc.pubPEM)
				id2, _ := sign.KeyID(f.pubPEM)
				if id1 != id2 || id1 == "" {
					t.Fatalf("public key from cosign.key = %s, cosign.pub = %s", id2, id1)
				}
			}
			dir := t.TempDir()
			artifact := []byte("archive signed with " + tc.name)
			sig, prov := signBoth(t, f, artifact)
			art := writeFile(t, dir, "web.zip.enc", artifact)
			pub := writeFile(t, dir, "pub.pem", f.pubPEM)
			sigPath := writeFile(t, dir, "web.zip.enc.sigstore.json", sig)
			provPath := writeFile(t, dir, "provenance.sigstore.json", prov)
			tlogArgs := []string{"--insecure-ignore-tlog=true"}
			if tlog != nil { // logged in Rekor: cosign checks the entry strictly
				tlogArgs = []string{"--trusted-root", tlog.TrustedRootPath}
			}
			if out, err := runPeer(t, env, cosign, append(append([]string{"verify-blob", "--bundle", sigPath, "--key", pub}, tlogArgs...), art)...); err != nil || !strings.Contains(out, "Verified OK") {
				t.Errorf("cosign verify-blob --key: %v\n%s", err, out)
			}
			if out, err := runPeer(t, env, cosign, append(append([]string{"verify-blob-attestation", "--bundle", provPath, "--key", pub, "--type", slsaType}, tlogArgs...), art)...); err != nil || !strings.Contains(out, "Verified OK") {
				t.Errorf("cosign verify-blob-attestation --key: %v\n%s", err, out)
			}
			// The wrong password is refused with a clear error.
			if tc.pw != nil {
				_, err := sign.NewSigner(t.Context(), sign.Options{Mode: sign.ModeKey, Key: tc.priv, KeyPassword: []byte("wrong")})
				if err == nil || !strings.Contains(err.Error(), "wrong password") {
					t.Errorf("NewSigner(wrong password) = %v", err)
				}
			}
		})
	}
}

// TestTamperRejected shows that Ferry's verifier and cosign both reject every kind of tampering,
// each for the right reason.
func TestTamperRejected(t *testing.T) {
	t.Parallel()
	cosign := testpeers.Path(t, testpeers.Cosign)
	f := keylessFixture(t, false)
	ctx := t.Context()
	env := peerEnv(t)

	artifact := []byte("the real archive")
	other := []byte("another archive")
	sig, _ := signBoth(t, f, artifact)
	otherSig, err := f.signer.SignArtifact(ctx, "other.zip.enc", bytes.NewReader(other))
	if err != nil {
		t.Fatal(err)
	}
	otherProv, err := f.signer.SignProvenance(ctx, sign.ProvenanceInput{SubjectName: "other.zip.enc", SHA256: sha(other)})
	if err != nil {
		t.Fatal(err)
	}
	changed := bytes.Clone(artifact)
	changed[3] ^= 0x01

	// An expired certificate: the signer refuses to publish it ...
	f.h.ExpireCertificates(true)
	if _, err := f.signer.SignArtifact(ctx, "web.zip.enc", bytes.NewReader(artifact)); err == nil || !strings.Contains(err.Error(), "verify-before-publish") {
		t.Errorf("SignArtifact with an expired certificate = %v, want a verify-before-publish error", err)
	}
	// ... and a bundle made without that check is rejected by every verifier.
	expired, err := f.h.SignBlobUnverified(ctx, artifact, f.h.Claims(), false)
	if err != nil {
		t.Fatal(err)
	}
	f.h.ExpireCertificates(false)

	evil := f.h.Claims()
	evil.Repository = "evil/mobile-app"
	evil.WorkflowRef = "evil/mobile-app/.github/workflows/release.yml@refs/tags/v1.2.3"
	evil.JobWorkflowRef = evil.WorkflowRef
	evilSig, err := f.h.SignBlobUnverified(ctx, artifact, evil, false)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		artifact   []byte
		bundle     []byte
		provenance bool
		identity   string // cosign --certificate-identity
		wantErr    error  // Ferry's sentinel, if any
		wantFerry  string // substring of Ferry's error
		wantCosign string // substring of cosign's output
	}{
		{"changed artifact byte", changed, sig, false, "", sign.ErrDigestMismatch, "bundle signs sha256:", "invalid signature"},
		{"swapped bundle", artifact, otherSig, false, "", sign.ErrDigestMismatch, "bundle signs sha256:" + sha(other), "invalid signature"},
		{"wrong identity (other repository signed it)", artifact, evilSig, false, "", sign.ErrIdentityMismatch, "evil/mobile-app", "no matching CertificateIdentity"},
		{"expired certificate", artifact, expired, false, "", sign.ErrCertificateNotValid, "integrated time outside certificate validity", "integrated time outside certificate validity"},
		{"provenance for another digest", artifact, otherProv, true, "", sign.ErrDigestMismatch, "provenance is about other.zip.enc", "provided artifact digests do not match"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var err error
			if tc.provenance {
				_, err = f.verifier.VerifyProvenance(ctx, sha(tc.artifact), tc.bundle, f.policy)
			} else {
				_, err = f.verifier.VerifyArtifact(ctx, bytes.NewReader(tc.artifact), tc.bundle, f.policy)
			}
			if err == nil {
				t.Fatal("Ferry accepted a tampered bundle")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("Ferry error = %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantFerry) {
				t.Errorf("Ferry error = %q, want it to mention %q", err, tc.wantFerry)
			}
			t.Logf("Ferry: %v", err)

			sub := t.TempDir()
			art := writeFile(t, sub, "web.zip.enc", tc.artifact)
			b := writeFile(t, sub, "bundle.sigstore.json", tc.bundle)
			verb := "verify-blob"
			args := []string{"--bundle", b}
			if tc.provenance {
				verb = "verify-blob-attestation"
				args = append(args, "--type", slsaType)
			}
			args = append(args, "--trusted-root", f.h.TrustedRootPath,
				"--certificate-identity", signtest.Identity(f.h.Claims()), "--certificate-oidc-issuer", sign.GitHubActionsIssuer)
			out, cerr := runPeer(t, env, cosign, append(append([]string{verb}, args...), art)...)
			if cerr == nil {
				t.Fatalf("cosign accepted a tampered bundle:\n%s", out)
			}
			if !strings.Contains(out, tc.wantCosign) {
				t.Errorf("cosign output does not mention %q:\n%s", tc.wantCosign, out)
			}
		})
	}
}
