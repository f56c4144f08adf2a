package main

import (
	"archive/zip"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/google/go-cmp/cmp"

	"github.com/ferryhq/ferry/internal/archive"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/pipeline"
	"github.com/ferryhq/ferry/internal/publish/publishtest"
	"github.com/ferryhq/ferry/internal/relay/relaytest"
	"github.com/ferryhq/ferry/internal/relayclient"
	"github.com/ferryhq/ferry/internal/sign"
	"github.com/ferryhq/ferry/internal/sign/signtest"
	"github.com/ferryhq/ferry/internal/testpeers"
)

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func newKey(t *testing.T) (*rsa.PrivateKey, string) {
	t.Helper()
	k, err := archive.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k, string(archive.MarshalPrivateKey(k))
}

// openBundle decrypts a published bundle with the app's public key the way the plugin does
// and checks it against the outputs: session key, V3 checksum, plain SHA-256, a valid zip.
func openBundle(t *testing.T, enc []byte, out map[string]string, pub *rsa.PublicKey) *zip.Reader {
	t.Helper()
	sk, err := archive.UnwrapSessionKey(out["session-key"], pub)
	if err != nil {
		t.Fatalf("UnwrapSessionKey: %v", err)
	}
	plain, err := io.ReadAll(sk.NewDecrypter(bytes.NewReader(enc)))
	if err != nil {
		t.Fatalf("decrypt: %v", err)
	}
	sum := sha256.Sum256(plain)
	if got := hex.EncodeToString(sum[:]); got != out["sha256"] {
		t.Errorf("sha256 of the decrypted zip = %s, output sha256 = %s", got, out["sha256"])
	}
	if err := archive.VerifyChecksum(pub, out["checksum"], sum[:]); err != nil {
		t.Errorf("VerifyChecksum(output checksum): %v", err)
	}
	zr, err := zip.NewReader(bytes.NewReader(plain), int64(len(plain)))
	if err != nil {
		t.Fatalf("decrypted bundle is not a zip: %v", err)
	}
	return zr
}

func zipNames(zr *zip.Reader) []string {
	var names []string
	for _, f := range zr.File {
		if !strings.HasSuffix(f.Name, "/") {
			names = append(names, f.Name)
		}
	}
	return names
}

var wantFiles = []string{"app.js", "assets/logo.svg", "assets/style.css", "index.html"}

// TestGitHubReleaseKeylessOIDC is the default setup: a tag push, GitHub Release assets,
// keyless signing with provenance, OIDC registration with the real relay. Then the same run
// again (a re-run) is idempotent.
func TestGitHubReleaseKeylessOIDC(t *testing.T) {
	t.Parallel()
	actionBin, relayBin := buildBinaries(t)
	const ref = "refs/tags/v1.2.3"
	gh := publishtest.NewGitHub(t, testRepo)
	sg := signtest.New(t, signtest.Options{})
	iss := newIssuer(t, claimsFor(ref, commitA))
	relay := startRelay(t, relayBin, iss.URL)
	key, keyPEM := newKey(t)

	r := newRunner(t, ref, commitA, gh.URL)
	r.oidc(iss)
	r.env["FERRY_FULCIO_URL"], r.env["FERRY_REKOR_URL"], r.env["FERRY_TRUSTED_ROOT"] = sg.FulcioURL, sg.RekorURL, sg.TrustedRootPath
	webBuild(t, filepath.Join(r.dir, "dist"), "v1")
	r.inputs = map[string]string{
		"app-id": testApp, "build-dir": "dist", "destination": "github-release", "github-token": gh.Token,
		"encryption-key": keyPEM, "relay-url": relay.URL, "relay-audience": audience,
		// defaults the runner fills in from action.yml
		"delta": "false",
	}
	res := r.exec(t, actionBin)
	if res.code != 0 {
		t.Fatalf("exit %d", res.code)
	}
	name := testApp + "-1.2.3.zip"
	base := gh.URL + "/" + testRepo + "/releases/download/v1.2.3/"
	out := res.outputs
	wantOut := map[string]string{
		"version": "1.2.3", "bundle-url": base + name, "signature-url": base + name + ".sigstore.json",
		"provenance-url": base + name + ".provenance.sigstore.json", "manifest-url": "", "channel": "production",
		"key-id":   archive.KeyID(&key.PublicKey),
		"checksum": out["checksum"], "sha256": out["sha256"], "session-key": out["session-key"],
	}
	if diff := cmp.Diff(wantOut, out); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
	if len(out["checksum"]) != 512 || out["session-key"] == "" {
		t.Errorf("checksum %q, session-key %q: want a V3 checksum and a session key", out["checksum"], out["session-key"])
	}

	// What devices download: decrypt and verify it.
	enc, ok := gh.Asset("v1.2.3", name)
	if !ok {
		t.Fatal("bundle asset missing")
	}
	if diff := cmp.Diff(wantFiles, zipNames(openBundle(t, enc, out, &key.PublicKey))); diff != "" {
		t.Errorf("zip entries (-want +got):\n%s", diff)
	}
	// The signature and provenance verify against the offline Sigstore and the identity.
	sig, _ := gh.Asset("v1.2.3", name+".sigstore.json")
	prov, _ := gh.Asset("v1.2.3", name+".provenance.sigstore.json")
	v, err := sign.NewVerifier(t.Context(), sign.VerifierOptions{TrustedRoot: sg.TrustedRootPath})
	if err != nil {
		t.Fatal(err)
	}
	pol := sign.Policy{Issuer: iss.URL, Repository: testRepo, Ref: ref}
	if _, err := v.VerifyArtifact(t.Context(), bytes.NewReader(enc), sig, pol); err != nil {
		t.Errorf("VerifyArtifact: %v", err)
	}
	if rep, err := v.VerifyProvenance(t.Context(), hexSHA(enc), prov, pol); err != nil {
		t.Errorf("VerifyProvenance: %v", err)
	} else if rep.Commit != commitA {
		t.Errorf("provenance commit = %q, want %q", rep.Commit, commitA)
	}
	if n := len(gh.Attestations()); n != 1 {
		t.Errorf("attestations stored = %d, want 1", n)
	}
	rels := gh.Releases()
	if len(rels) != 1 || rels[0].Tag != "v1.2.3" || rels[0].Target != commitA || rels[0].Prerelease {
		t.Errorf("releases = %+v, want one release v1.2.3 at %s", rels, commitA)
	}

	// The relay stored the registration, with ref and commit from the token.
	got := relay.bundle(t, "1.2.3")
	if got == nil {
		t.Fatal("relay has no bundle 1.2.3")
	}
	want := &channel.Bundle{AppID: testApp, Version: "1.2.3", URL: out["bundle-url"], Checksum: out["checksum"], SHA256: out["sha256"],
		Size: int64(len(enc)), SessionKey: out["session-key"], KeyID: out["key-id"], Commit: commitA, Ref: ref,
		SignatureURL: out["signature-url"], ProvenanceURL: out["provenance-url"], Repository: testRepo, CreatedAt: got.CreatedAt}
	// The registration carries what the pipeline's verify-before-publish found.
	if s := got.Signature; s == nil || s.Mode != "keyless" || s.Identity != "https://github.com/"+testRepo+"/.github/workflows/release.yml@"+ref ||
		s.Issuer != iss.URL || s.LogIndex == nil || s.IntegratedTime.IsZero() || !s.Verified {
		t.Errorf("registered signature facts = %+v, want keyless by the release workflow at %s, issuer %s, with a verified log entry", s, ref, iss.URL)
	} else {
		want.Signature = got.Signature
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("registered bundle (-want +got):\n%s", diff)
	}
	// One token for the relay's preflight before signing, two for Sigstore, one to register.
	if diff := cmp.Diff([]string{audience, "sigstore", "sigstore", audience}, iss.Audiences()); diff != "" {
		t.Errorf("OIDC audiences requested (-want +got):\n%s", diff)
	}

	// Logs and summary: secrets masked before use, one group per stage, the verify commands.
	for _, line := range strings.Split(keyPEM, "\n") {
		if len(line) > 20 && !strings.HasPrefix(line, "-----") {
			if !strings.Contains(res.stdout, "::add-mask::"+line) {
				t.Errorf("key line %q was not masked", line[:10])
			}
			if strings.Contains(res.stderr, line) {
				t.Errorf("key line %q appears in the log", line[:10])
			}
		}
	}
	if !strings.Contains(res.stdout, "::add-mask::"+gh.Token) {
		t.Error("github-token was not masked")
	}
	for _, g := range []string{"::group::Package", "::group::Preflight", "::group::Sign", "::group::Publish", "::group::Register"} {
		if !strings.Contains(res.stdout, g) {
			t.Errorf("stdout lacks %q", g)
		}
	}
	for _, s := range []string{
		"### Ferry: com.acme.app 1.2.3", "`production` — now served",
		"ferry verify --artifact " + name + " --bundle " + name + ".sigstore.json --provenance " + name + ".provenance.sigstore.json --repo " + testRepo,
		"cosign verify-blob " + name + " --bundle " + name + ".sigstore.json",
		"--certificate-oidc-issuer https://token.actions.githubusercontent.com",
		"gh attestation verify " + name + " --bundle " + name + ".provenance.sigstore.json --repo " + testRepo,
		out["sha256"],
	} {
		if !strings.Contains(res.summary, s) {
			t.Errorf("summary lacks %q:\n%s", s, res.summary)
		}
	}

	// The verify commands of the summary work with the real verifiers. Offline, they need
	// the test Sigstore's trusted root and the test issuer; certificates name github.com.
	verifyWithPeers(t, name, enc, sig, prov, sg.TrustedRootPath, iss.URL)

	// Re-run the same job: identical bytes, nothing replaced, nothing re-registered.
	uploads := gh.Requests("upload")
	res2 := r.exec(t, actionBin)
	if res2.code != 0 {
		t.Fatalf("re-run exit %d", res2.code)
	}
	if diff := cmp.Diff(out, res2.outputs); diff != "" {
		t.Errorf("re-run outputs (-first +second):\n%s", diff)
	}
	if n := gh.Requests("upload"); n != uploads {
		t.Errorf("re-run uploaded %d more files, want 0", n-uploads)
	}
	if again, _ := gh.Asset("v1.2.3", name); !bytes.Equal(again, enc) {
		t.Error("re-run changed the bundle asset")
	}
	if !strings.Contains(res2.summary, "already registered") {
		t.Errorf("re-run summary does not say the relay already had it:\n%s", res2.summary)
	}
}

// TestS3DeltaHMAC publishes a branch build to a real S3 server (versitygw) with delta files,
// registers it with HMAC, and checks what a device would fetch.
func TestS3DeltaHMAC(t *testing.T) {
	t.Parallel()
	actionBin, relayBin := buildBinaries(t)
	s3 := publishtest.Versitygw(t)
	s3.CreateBucket(t, "web")
	relay := startRelay(t, relayBin, "")
	key, keyPEM := newKey(t)

	r := newRunner(t, "refs/heads/main", commitB, "")
	for _, kv := range s3.Env() {
		k, v, _ := strings.Cut(kv, "=")
		r.env[k] = v
	}
	build := webBuild(t, filepath.Join(r.dir, "www"), "main")
	r.inputs = map[string]string{
		"app-id": testApp, "build-dir": "www", "destination": s3.BucketURL("web") + "&prefix=ferry/",
		"public-base-url": "https://cdn.test/web", "encryption-key": keyPEM, "relay-url": relay.URL,
		"relay-secret": hmacSecret, "delta": "true", "native": ">=2.0.0", "signing": "none",
	}
	res := r.exec(t, actionBin)
	if res.code != 0 {
		t.Fatalf("exit %d", res.code)
	}
	const version = "0.0.0-main.4242.g89e6c98"
	out := res.outputs
	prefix := "https://cdn.test/web/ferry/" + testApp + "/" + version + "/"
	if out["version"] != version || out["bundle-url"] != prefix+testApp+"-"+version+".zip" || out["channel"] != "beta" ||
		out["manifest-url"] != prefix+testApp+"-"+version+".zip.manifest.json" || out["signature-url"] != "" {
		t.Errorf("outputs = %v", out)
	}
	stored := func(u string) []byte {
		t.Helper()
		rel := strings.TrimPrefix(u, "https://cdn.test/web/")
		b, err := os.ReadFile(filepath.Join(s3.DataDir, "web", filepath.FromSlash(rel)))
		if err != nil {
			t.Fatalf("object for %s: %v", u, err)
		}
		return b
	}
	enc := stored(out["bundle-url"])
	openBundle(t, enc, out, &key.PublicKey)

	got := relay.bundle(t, version)
	if got == nil {
		t.Fatal("relay has no bundle")
	}
	if got.Native != ">=2.0.0" || got.Commit != commitB || got.Ref != "refs/heads/main" || got.ManifestURL != out["manifest-url"] || got.Checksum != out["checksum"] {
		t.Errorf("registered bundle = %+v", got)
	}
	if len(got.Manifest) != len(wantFiles) {
		t.Fatalf("manifest has %d entries, want %d", len(got.Manifest), len(wantFiles))
	}
	var manifest []channel.ManifestEntry
	if err := json.Unmarshal(stored(out["manifest-url"]), &manifest); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got.Manifest, manifest); diff != "" {
		t.Errorf("published manifest differs from the registered one (-registered +published):\n%s", diff)
	}
	// Each delta file decrypts (and decompresses) to the build's file, whose hash matches.
	sk, err := archive.UnwrapSessionKey(out["session-key"], &key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range manifest {
		data, err := io.ReadAll(sk.NewDecrypter(bytes.NewReader(stored(e.DownloadURL))))
		if err != nil {
			t.Fatalf("%s: decrypt: %v", e.FileName, err)
		}
		name := e.FileName
		if strings.HasSuffix(name, ".br") {
			name = strings.TrimSuffix(name, ".br")
			if data, err = io.ReadAll(brotli.NewReader(bytes.NewReader(data))); err != nil {
				t.Fatalf("%s: brotli: %v", e.FileName, err)
			}
		}
		orig, err := os.ReadFile(filepath.Join(build, filepath.FromSlash(name)))
		if err != nil || !bytes.Equal(orig, data) {
			t.Errorf("delta file %s does not restore %s (err %v)", e.FileName, name, err)
		}
		sum := sha256.Sum256(orig)
		if err := archive.VerifyChecksum(&key.PublicKey, e.FileHash, sum[:]); err != nil {
			t.Errorf("%s: file_hash: %v", e.FileName, err)
		}
	}

	// Re-run: the same version (same run id), the same bytes, nothing conflicts.
	res2 := r.exec(t, actionBin)
	if res2.code != 0 || res2.outputs["checksum"] != out["checksum"] {
		t.Errorf("re-run: exit %d, checksum %q (first %q)", res2.code, res2.outputs["checksum"], out["checksum"])
	}
}

// TestOtherCIKeySigning runs the binary the way another CI would: INPUT_* variables only, no
// GITHUB_OUTPUT, GITHUB_STEP_SUMMARY or workflow commands; a file:// bucket, key signing with
// provenance, HMAC registration with the real relay.
func TestOtherCIKeySigning(t *testing.T) {
	t.Parallel()
	actionBin, relayBin := buildBinaries(t)
	relay := startRelay(t, relayBin, "")
	_, keyPEM := newKey(t)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(ec)
	sigKey := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	pubDER, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})

	dir := t.TempDir()
	bucket := filepath.Join(dir, "bucket")
	build := webBuild(t, filepath.Join(dir, "dist"), "gitlab")
	r := &runner{dir: dir, env: map[string]string{
		"PATH": os.Getenv("PATH"), "HOME": dir, "CI": "true", "TMPDIR": dir,
		"GITHUB_REF": "refs/tags/v3.0.0", "GITHUB_SHA": commitA, "GITHUB_REPOSITORY": testRepo,
	}, outFile: filepath.Join(dir, "unused-out"), sumFile: filepath.Join(dir, "unused-sum")}
	r.inputs = map[string]string{
		"app-id": testApp, "build-dir": build, "destination": "file://" + filepath.ToSlash(bucket) + "?create_dir=1",
		"public-base-url": "https://downloads.test/b", "encryption-key": keyPEM, "signing": "key", "signing-key": sigKey,
		"relay-url": relay.URL, "relay-secret": hmacSecret,
	}
	res := r.exec(t, actionBin)
	if res.code != 0 {
		t.Fatalf("exit %d", res.code)
	}
	if strings.Contains(res.stdout, "::") {
		t.Errorf("workflow commands printed outside GitHub:\n%s", res.stdout)
	}
	for _, line := range strings.Split(sigKey+keyPEM, "\n") {
		if len(line) > 20 && !strings.HasPrefix(line, "-----") && strings.Contains(res.stdout+res.stderr, line) {
			t.Errorf("a key line was printed")
		}
	}
	out := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(res.stdout), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			out[k] = v
		}
	}
	if len(out) != len(pipeline.Outputs) || out["version"] != "3.0.0" || out["channel"] != "production" {
		t.Fatalf("printed outputs = %v", out)
	}
	rel := strings.TrimPrefix(out["bundle-url"], "https://downloads.test/b/")
	enc, err := os.ReadFile(filepath.Join(bucket, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := os.ReadFile(filepath.Join(bucket, filepath.FromSlash(strings.TrimPrefix(out["signature-url"], "https://downloads.test/b/"))))
	if err != nil {
		t.Fatal(err)
	}
	v, err := sign.NewVerifier(t.Context(), sign.VerifierOptions{KeyOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.VerifyArtifact(t.Context(), bytes.NewReader(enc), sig, sign.Policy{Key: pubPEM}); err != nil {
		t.Errorf("VerifyArtifact with the public key: %v", err)
	}
	if b := relay.bundle(t, "3.0.0"); b == nil || b.Checksum != out["checksum"] || b.Commit != commitA || b.Ref != "refs/tags/v3.0.0" {
		t.Errorf("registered = %+v", b)
	}
}

// TestInvalidInputsListEveryProblem: bad inputs give one error annotation listing all of
// them, exit 1, and nothing published or registered.
func TestInvalidInputsListEveryProblem(t *testing.T) {
	t.Parallel()
	actionBin, _ := buildBinaries(t)
	r := newRunner(t, "refs/heads/main", commitA, "")
	bucket := filepath.Join(r.dir, "bucket")
	r.inputs = map[string]string{
		"build-dir": "missing", "encryption-key": "not a key", "signing": "keyless", "provenance": "perhaps",
		"destination": "file://" + filepath.ToSlash(bucket) + "?create_dir=1", "relay-url": "ftp://relay", "native": ">=banana", "delta": "sometimes",
		"channel": "bad channel", "version": "-1",
	}
	res := r.exec(t, actionBin)
	if res.code != 1 {
		t.Fatalf("exit %d, want 1", res.code)
	}
	var errLines []string
	for _, l := range strings.Split(res.stdout, "\n") {
		if strings.HasPrefix(l, "::error") {
			errLines = append(errLines, l)
		}
	}
	if len(errLines) != 1 {
		t.Fatalf("error annotations = %d, want exactly 1:\n%s", len(errLines), res.stdout)
	}
	for _, want := range []string{"app-id is required", "build-dir \"missing\"", "encryption-key", "signing is keyless but no OIDC token",
		"provenance \"perhaps\"", "relay-url \"ftp://relay\"", "native \">=banana\"", "delta \"sometimes\"", "channel \"bad channel\"", "version \"-1\""} {
		if !strings.Contains(errLines[0], want) {
			t.Errorf("annotation lacks %q:\n%s", want, errLines[0])
		}
	}
	if _, err := os.Stat(bucket); !os.IsNotExist(err) {
		t.Errorf("bucket directory was created (err %v): nothing may change on invalid input", err)
	}
	if len(res.outputs) != 0 {
		t.Errorf("outputs written: %v", res.outputs)
	}
}

// TestBrokenUploadLeavesNothing: GitHub breaks every upload half-way; the run fails with one
// annotation, no asset is downloadable and nothing is registered.
func TestBrokenUploadLeavesNothing(t *testing.T) {
	t.Parallel()
	actionBin, relayBin := buildBinaries(t)
	gh := publishtest.NewGitHub(t, testRepo)
	for range 4 {
		gh.Fail("upload", publishtest.Fault{HalfUpload: true})
	}
	relay := startRelay(t, relayBin, "")
	_, keyPEM := newKey(t)
	r := newRunner(t, "refs/tags/v1.0.0", commitA, gh.URL)
	webBuild(t, filepath.Join(r.dir, "dist"), "x")
	r.inputs = map[string]string{"app-id": testApp, "github-token": gh.Token, "encryption-key": keyPEM, "signing": "none",
		"relay-url": relay.URL, "relay-secret": hmacSecret}
	res := r.exec(t, actionBin)
	if res.code != 1 || !strings.Contains(res.stdout, "::error title=Ferry%3A publish failed::") {
		t.Fatalf("exit %d; want 1 with a publish error annotation", res.code)
	}
	for _, rel := range gh.Releases() {
		for _, a := range rel.Assets {
			if a.State == "uploaded" {
				t.Errorf("asset %q is downloadable after a broken upload", a.Name)
			}
		}
	}
	if b := relay.bundle(t, "1.0.0"); b != nil {
		t.Errorf("relay registered %+v after a failed publish", b)
	}
}

// TestRegistrationRetriesAndConflicts: a relay that answers 503 with Retry-After is retried
// until it acknowledges; the real relay's 409 (same version, other checksum) is a clear failure
// that changes nothing.
func TestRegistrationRetriesAndConflicts(t *testing.T) {
	t.Parallel()
	actionBin, relayBin := buildBinaries(t)

	t.Run("503 then acknowledged", func(t *testing.T) {
		t.Parallel()
		var calls atomic.Int32
		stand := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/api/v1/bundles" {
				http.NotFound(w, r) // a relay older than the preflight endpoint
				return
			}
			body, _ := io.ReadAll(r.Body)
			ts := r.Header.Get(relayclient.HeaderTimestamp)
			if r.Header.Get(relayclient.HeaderSignature) != relaytest.HMACSignature(hmacSecret, ts, body) {
				http.Error(w, `{"error":"bad_signature"}`, http.StatusUnauthorized)
				return
			}
			if calls.Add(1) <= 2 {
				w.Header().Set("Retry-After", "1")
				http.Error(w, `{"error":"store_unavailable","message":"retry later"}`, http.StatusServiceUnavailable)
				return
			}
			var b channel.Bundle
			_ = json.Unmarshal(body, &b)
			w.WriteHeader(http.StatusCreated)
			writeJSON(w, map[string]any{"bundle": b, "created": true, "channel": "beta", "promoted": true})
		}))
		t.Cleanup(stand.Close)
		dir := t.TempDir()
		r := newRunner(t, "refs/heads/main", commitA, "")
		webBuild(t, filepath.Join(r.dir, "dist"), "retry")
		r.inputs = map[string]string{"app-id": testApp, "destination": "file://" + filepath.ToSlash(dir), "public-base-url": "https://d.test",
			"signing": "none", "relay-url": stand.URL, "relay-secret": hmacSecret}
		res := r.exec(t, actionBin)
		if res.code != 0 || calls.Load() != 3 || res.outputs["channel"] != "beta" {
			t.Errorf("exit %d after %d registration attempts, channel %q; want 0 after 3, beta", res.code, calls.Load(), res.outputs["channel"])
		}
	})

	t.Run("409 conflict", func(t *testing.T) {
		t.Parallel()
		relay := startRelay(t, relayBin, "")
		first := ""
		for i, flavour := range []string{"one", "two"} {
			r := newRunner(t, "refs/heads/main", commitA, "")
			webBuild(t, filepath.Join(r.dir, "dist"), flavour)
			r.inputs = map[string]string{"app-id": testApp, "version": "2.0.0", "destination": "file://" + filepath.ToSlash(filepath.Join(r.dir, "b")),
				"public-base-url": "https://d.test", "signing": "none", "relay-url": relay.URL, "relay-secret": hmacSecret}
			res := r.exec(t, actionBin)
			if i == 0 {
				if res.code != 0 {
					t.Fatalf("first publish: exit %d", res.code)
				}
				first = res.outputs["checksum"]
				continue
			}
			if res.code != 1 || !strings.Contains(res.stdout, "version_conflict") || !strings.Contains(res.stdout, "publish a new version") ||
				!strings.Contains(res.stdout, "Nothing was uploaded") {
				t.Errorf("second publish: exit %d, want 1 with a conflict explanation from the preflight:\n%s", res.code, res.stdout)
			}
		}
		if b := relay.bundle(t, "2.0.0"); b == nil || b.Checksum != first {
			t.Errorf("relay bundle = %+v, want the first checksum %s kept", b, first)
		}
	})
}

// verifyWithPeers runs the summary's ferry verify, cosign verify-blob and gh attestation
// verify commands on the published files, pointed at an offline trusted root and issuer.
func verifyWithPeers(t *testing.T, name string, enc, sig, prov []byte, trustedRoot, issuerURL string) {
	t.Helper()
	dir := t.TempDir()
	for f, b := range map[string][]byte{name: enc, name + ".sigstore.json": sig, name + ".provenance.sigstore.json": prov} {
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	idRegexp := "^https://github\\.com/acme/mobile-app/\\.github/workflows/"
	cmds := [][]string{
		{relaytest.Build(t, "cmd/ferry")[0], "verify", "--artifact", name, "--bundle", name + ".sigstore.json", "--provenance", name + ".provenance.sigstore.json",
			"--repo", testRepo, "--issuer", issuerURL, "--trusted-root", trustedRoot},
		{testpeers.Path(t, testpeers.Cosign), "verify-blob", name, "--bundle", name + ".sigstore.json", "--certificate-identity-regexp", idRegexp,
			"--certificate-oidc-issuer", issuerURL, "--trusted-root", trustedRoot},
		{testpeers.Path(t, testpeers.GH), "attestation", "verify", name, "--bundle", name + ".provenance.sigstore.json", "--repo", testRepo,
			"--cert-oidc-issuer", issuerURL, "--custom-trusted-root", trustedRoot},
	}
	for _, c := range cmds {
		cmd := exec.Command(c[0], c[1:]...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GH_CONFIG_DIR="+t.TempDir(), "TUF_ROOT="+t.TempDir(), "HOME="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s %s: %v\n%s", filepath.Base(c[0]), c[1], err, out)
		}
	}
}

// TestPrivateRepoKeyless: a private repository signs on GitHub's Sigstore instance (Fulcio
// plus an RFC 3161 timestamp, no public log), is warned off GitHub Release assets, and gets
// verify commands for that instance.
func TestPrivateRepoKeyless(t *testing.T) {
	t.Parallel()
	actionBin, _ := buildBinaries(t)
	sg := signtest.New(t, signtest.Options{Org: signtest.OrgGitHub})
	const ref = "refs/tags/v5.0.0"
	c := claimsFor(ref, commitA)
	c.Visibility = "private"
	iss := newIssuer(t, c)
	r := newRunner(t, ref, commitA, "")
	r.oidc(iss)
	ev := fmt.Sprintf(`{"ref":%q,"repository":{"full_name":%q,"visibility":"private","private":true}}`, ref, testRepo)
	if err := os.WriteFile(r.env["GITHUB_EVENT_PATH"], []byte(ev), 0o644); err != nil {
		t.Fatal(err)
	}
	r.env["FERRY_FULCIO_URL"], r.env["FERRY_TSA_URL"], r.env["FERRY_TRUSTED_ROOT"] = sg.FulcioURL, sg.TSAURL, sg.TrustedRootPath
	bucket := filepath.Join(r.dir, "bucket")
	webBuild(t, filepath.Join(r.dir, "dist"), "private")
	_, keyPEM := newKey(t)
	r.inputs = map[string]string{"app-id": testApp, "encryption-key": keyPEM, "destination": "file://" + filepath.ToSlash(bucket), "public-base-url": "https://cdn.test"}
	res := r.exec(t, actionBin)
	if res.code != 0 {
		t.Fatalf("exit %d", res.code)
	}
	name := testApp + "-5.0.0.zip"
	enc, err := os.ReadFile(filepath.Join(bucket, testApp, "5.0.0", name))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := os.ReadFile(filepath.Join(bucket, testApp, "5.0.0", name+".sigstore.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, rekor, tsa := sg.Calls(); rekor != 0 || tsa == 0 {
		t.Errorf("Rekor calls %d, TSA calls %d: a private repository must not use the public log", rekor, tsa)
	}
	v, err := sign.NewVerifier(t.Context(), sign.VerifierOptions{TrustedRoot: sg.TrustedRootPath, Private: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.VerifyArtifact(t.Context(), bytes.NewReader(enc), sig, sign.Policy{Issuer: iss.URL, Repository: testRepo}); err != nil {
		t.Errorf("VerifyArtifact: %v", err)
	}
	if !strings.Contains(res.summary, "--github-instance") || strings.Contains(res.summary, "cosign verify-blob") {
		t.Errorf("summary for a private repository:\n%s", res.summary)
	}

	// Release assets of a private repository need a login: the run warns.
	r2 := newRunner(t, ref, commitA, "")
	if err := os.WriteFile(r2.env["GITHUB_EVENT_PATH"], []byte(ev), 0o644); err != nil {
		t.Fatal(err)
	}
	// (The upload itself then fails: GITHUB_API_URL points where nothing listens.)
	r2.inputs = map[string]string{"app-id": testApp, "build-dir": ".", "signing": "none", "github-token": "unused"}
	res2 := r2.exec(t, actionBin)
	if !strings.Contains(res2.stdout, "::warning::the repository is not public") {
		t.Errorf("no warning about private release assets:\n%s", res2.stdout)
	}
}

// TestPrivateRepoRelayDownload: in a private repository (as GitHub's API reports it, not
// the event) the action registers the bundle by asset ids; the real relay, with
// release_access, stores download URLs under its public URL, and its /dl route redirects
// to the signed URL that serves the uploaded bytes, while GitHub's browser URL needs a login.
func TestPrivateRepoRelayDownload(t *testing.T) {
	t.Parallel()
	actionBin, relayBin := buildBinaries(t)
	gh := publishtest.NewGitHub(t, testRepo)
	gh.Private = true
	cfg := strings.Replace(relayConfigYAML, "    repository: acme/mobile-app\n",
		"    repository: acme/mobile-app\n    release_access: { token_env: FERRY_GH_TOKEN, api_url: '"+gh.URL+"' }\n", 1)
	relay := &relayProc{relaytest.Start(t, relayBin, relaytest.Options{
		Args: []string{"--config", relaytest.WriteConfig(t, cfg), "--data-dir", t.TempDir(), "--log-format", "text"},
		Env: append(os.Environ(), "FERRY_ADMIN_TOKEN="+adminToken, "FERRY_HMAC_SECRET="+hmacSecret, "FERRY_RATE_LIMIT=0",
			"FERRY_GH_TOKEN="+gh.Token, "FERRY_PUBLIC_URL=https://relay.example.com"),
	})}
	_, keyPEM := newKey(t)
	r := newRunner(t, "refs/tags/v1.0.0", commitA, gh.URL)
	webBuild(t, filepath.Join(r.dir, "dist"), "private")
	r.inputs = map[string]string{"app-id": testApp, "github-token": gh.Token, "encryption-key": keyPEM, "signing": "none",
		"relay-url": relay.URL, "relay-secret": hmacSecret}
	res := r.exec(t, actionBin)
	if res.code != 0 {
		t.Fatalf("exit %d", res.code)
	}
	if !strings.Contains(res.stdout, "is private: its release assets need a GitHub login") {
		t.Errorf("the job log does not explain the private mode:\n%s", res.stdout)
	}
	name := testApp + "-1.0.0.zip"
	enc, ok := gh.Asset("v1.0.0", name)
	if !ok {
		t.Fatal("bundle asset missing")
	}
	b := relay.bundle(t, "1.0.0")
	if b == nil || b.Assets == nil {
		t.Fatalf("relay bundle = %+v, want release assets", b)
	}
	path := "/dl/" + testApp + "/1.0.0/" + name
	if b.URL != "https://relay.example.com"+path || b.Assets.Archive.Name != name || b.Assets.Archive.ID <= 0 || b.Assets.Repository != testRepo {
		t.Errorf("relay bundle URL %q, assets %+v; want %q and the archive's asset id", b.URL, b.Assets, "https://relay.example.com"+path)
	}
	resp, err := http.Get(relay.URL + path) // follows the 302 to the fake's signed URL
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, enc) {
		t.Errorf("GET %s through the relay = %d, %d bytes; want 200 with the %d uploaded bytes", path, resp.StatusCode, len(got), len(enc))
	}
	if resp, err := http.Get(res.outputs["bundle-url"]); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("anonymous GET of GitHub's browser URL = %d, want 404 (private)", resp.StatusCode)
		}
	}
}
