// Package signtest runs an offline Sigstore for tests: a fake Fulcio that issues GitHub
// Actions-shaped certificates with a real embedded SCT from a fake CT log, an RFC 3161 TSA, a
// Rekor v1 log served over HTTP, a fake Actions OIDC token endpoint, and a written
// trusted_root.json that real cosign and gh accept.
//
//	h := signtest.New(t, signtest.Options{})
//	s, _ := sign.NewSigner(ctx, sign.Options{Mode: sign.ModeKeyless, IDToken: h.IDToken(h.Claims()),
//		FulcioURL: h.FulcioURL, RekorURL: h.RekorURL, TrustedRoot: h.TrustedRootPath})
//
// Every service is an httptest server closed by t.Cleanup. The harness is safe for concurrent use.
package signtest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/digitorus/timestamp"
	"github.com/go-openapi/runtime"
	"github.com/go-openapi/strfmt"
	ct "github.com/google/certificate-transparency-go"
	cttls "github.com/google/certificate-transparency-go/tls"
	"github.com/google/certificate-transparency-go/x509util"
	"github.com/sigstore/rekor/pkg/generated/models"
	"github.com/sigstore/rekor/pkg/types"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/ferryhq/ferry/internal/sign"
)

// Organizations of the fake CA. gh chooses its verification policy from the intermediate's
// Organization: public good needs SCT + tlog + observer timestamp, GitHub's instance an RFC
// 3161 timestamp.
const (
	OrgPublicGood = "sigstore.dev"
	OrgGitHub     = "GitHub, Inc."
)

// Options configure [New].
type Options struct {
	// Org is the CA's Organization; empty means [OrgPublicGood].
	Org string
}

// Harness is a running offline Sigstore.
type Harness struct {
	// FulcioURL is the fake Fulcio's base URL (POST /api/v2/signingCert).
	FulcioURL string
	// RekorURL is the fake Rekor v1's base URL (POST /api/v1/log/entries).
	RekorURL string
	// TSAURL is the full RFC 3161 timestamp URL.
	TSAURL string
	// TokenURL and TokenRequestToken play ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN: a GET with
	// `Authorization: Bearer TokenRequestToken` and `audience=` returns {"value": jwt}.
	TokenURL, TokenRequestToken string
	// TrustedRootPath is the trusted_root.json (one line ending in "\n", so it is also the
	// JSONL gh's --custom-trusted-root wants).
	TrustedRootPath string
	// Issuer is the OIDC issuer written into tokens and certificates.
	Issuer string
	// Org is the CA's Organization.
	Org string

	rootCert, inter *x509.Certificate
	rootKey         *ecdsa.PrivateKey
	interKey        *ecdsa.PrivateKey
	ctKey           *ecdsa.PrivateKey
	tsaLeaf         *x509.Certificate
	tsaInter        *x509.Certificate
	tsaKey          *ecdsa.PrivateKey
	vs              *ca.VirtualSigstore

	expired     atomic.Bool
	mu          sync.Mutex
	claims      sign.Claims
	fulcioCalls atomic.Int64
	rekorCalls  atomic.Int64
	tsaCalls    atomic.Int64
}

// TB is the part of testing.TB the harness uses; *testing.T, *testing.B and *testing.F have it.
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
	TempDir() string
}

var _ TB = testing.TB(nil)

// New starts the services and writes the trusted root into t.TempDir().
func New(t TB, opts Options) *Harness {
	t.Helper()
	h := &Harness{Issuer: sign.GitHubActionsIssuer, Org: opts.Org, TokenRequestToken: "request-token-" + randHex(8)}
	if h.Org == "" {
		h.Org = OrgPublicGood
	}
	var err error
	if h.vs, err = ca.NewVirtualSigstore(); err != nil {
		t.Fatalf("signtest: virtual sigstore: %v", err)
	}
	if err := h.genCA(); err != nil {
		t.Fatalf("signtest: CA: %v", err)
	}
	h.claims = h.DefaultClaims()

	fulcio := httptest.NewServer(http.HandlerFunc(h.serveFulcio))
	t.Cleanup(fulcio.Close)
	rekor := httptest.NewServer(http.HandlerFunc(h.serveRekor))
	t.Cleanup(rekor.Close)
	tsa := httptest.NewServer(http.HandlerFunc(h.serveTSA))
	t.Cleanup(tsa.Close)
	tok := httptest.NewServer(http.HandlerFunc(h.serveToken))
	t.Cleanup(tok.Close)
	h.FulcioURL, h.RekorURL, h.TSAURL = fulcio.URL, rekor.URL, tsa.URL+"/api/v1/timestamp"
	h.TokenURL = tok.URL + "/token?api-version=2.0"

	js, err := h.trustedRootJSON()
	if err != nil {
		t.Fatalf("signtest: trusted root: %v", err)
	}
	h.TrustedRootPath = filepath.Join(t.TempDir(), "trusted_root.json")
	if err := os.WriteFile(h.TrustedRootPath, js, 0o644); err != nil {
		t.Fatalf("signtest: %v", err)
	}
	return h
}

// DefaultClaims are the claims of a tag push in acme/mobile-app running release.yml.
func (h *Harness) DefaultClaims() sign.Claims {
	return sign.Claims{
		Issuer: h.Issuer, Subject: "repo:acme/mobile-app:ref:refs/tags/v1.2.3",
		Repository: "acme/mobile-app", RepositoryID: "111", RepositoryOwner: "acme", RepositoryOwnerID: "222",
		Visibility: "public", Workflow: "release",
		WorkflowRef:    "acme/mobile-app/.github/workflows/release.yml@refs/tags/v1.2.3",
		JobWorkflowRef: "acme/mobile-app/.github/workflows/release.yml@refs/tags/v1.2.3",
		Ref:            "refs/tags/v1.2.3", SHA: "0123456789abcdef0123456789abcdef01234567",
		RunID: "999", RunAttempt: "1", EventName: "push", RunnerEnvironment: "github-hosted",
		ServerURL: "https://github.com",
	}
}

// Claims returns the claims the token endpoint currently issues.
func (h *Harness) Claims() sign.Claims {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.claims
}

// SetClaims changes the claims the token endpoint issues.
func (h *Harness) SetClaims(c sign.Claims) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.claims = c
}

// Identity is the certificate SAN Fulcio issues for c (its job workflow).
func Identity(c sign.Claims) string {
	ref := c.JobWorkflowRef
	if ref == "" {
		ref = c.WorkflowRef
	}
	return server(c) + "/" + ref
}

func server(c sign.Claims) string {
	if c.ServerURL != "" {
		return strings.TrimRight(c.ServerURL, "/")
	}
	return "https://github.com"
}

// ExpireCertificates makes the fake Fulcio issue certificates that expired before they were
// issued (valid 30 to 20 minutes ago), for tamper tests.
func (h *Harness) ExpireCertificates(on bool) { h.expired.Store(on) }

// Calls reports how many requests Fulcio, Rekor and the TSA have served.
func (h *Harness) Calls() (fulcio, rekor, tsa int64) {
	return h.fulcioCalls.Load(), h.rekorCalls.Load(), h.tsaCalls.Load()
}

// Token returns an unsigned JWT carrying c (audience "sigstore"), like GitHub's OIDC token.
// Fulcio verifies real tokens; the fake trusts it.
func (h *Harness) Token(c sign.Claims) string {
	return token(c, "sigstore")
}

func token(c sign.Claims, aud string) string {
	claims := map[string]any{
		"iss": c.Issuer, "sub": c.Subject, "aud": aud, "repository": c.Repository,
		"repository_id": c.RepositoryID, "repository_owner": c.RepositoryOwner,
		"repository_owner_id": c.RepositoryOwnerID, "repository_visibility": c.Visibility,
		"workflow": c.Workflow, "workflow_ref": c.WorkflowRef, "job_workflow_ref": c.JobWorkflowRef,
		"ref": c.Ref, "sha": c.SHA, "run_id": c.RunID, "run_attempt": c.RunAttempt,
		"event_name": c.EventName, "runner_environment": c.RunnerEnvironment,
		"iat": time.Now().Unix(), "exp": time.Now().Add(10 * time.Minute).Unix(),
	}
	hdr, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
	body, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding.EncodeToString
	return enc(hdr) + "." + enc(body) + "." + enc([]byte("unsigned"))
}

// IDToken returns a token source for [sign.Options.IDToken] that issues tokens carrying c.
func (h *Harness) IDToken(c sign.Claims) func(ctx context.Context, audience string) (string, error) {
	return func(_ context.Context, audience string) (string, error) {
		return token(c, audience), nil
	}
}

// ---------- CA ----------

func (h *Harness) genCA() error {
	var err error
	now := time.Now()
	if h.rootKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return err
	}
	rt := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "signtest-root", Organization: []string{h.Org}},
		NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, rt, rt, &h.rootKey.PublicKey, h.rootKey)
	if err != nil {
		return err
	}
	if h.rootCert, err = x509.ParseCertificate(der); err != nil {
		return err
	}
	if h.interKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return err
	}
	it := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "signtest-intermediate", Organization: []string{h.Org}},
		NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true, IsCA: true}
	if der, err = x509.CreateCertificate(rand.Reader, it, h.rootCert, &h.interKey.PublicKey, h.rootKey); err != nil {
		return err
	}
	if h.inter, err = x509.ParseCertificate(der); err != nil {
		return err
	}
	if h.ctKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return err
	}
	tsaInter, tsaInterKey, err := ca.GenerateTSAIntermediate(h.rootCert, h.rootKey)
	if err != nil {
		return err
	}
	if h.tsaKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return err
	}
	eku, err := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 8}})
	if err != nil {
		return err
	}
	lt := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "signtest-tsa", Organization: []string{h.Org}},
		NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Critical: true, Value: eku}}}
	if der, err = x509.CreateCertificate(rand.Reader, lt, tsaInter, &h.tsaKey.PublicKey, tsaInterKey); err != nil {
		return err
	}
	if h.tsaLeaf, err = x509.ParseCertificate(der); err != nil {
		return err
	}
	h.tsaInter = tsaInter
	return nil
}

func (h *Harness) ctLogID() [32]byte {
	der, _ := x509.MarshalPKIXPublicKey(&h.ctKey.PublicKey)
	return sha256.Sum256(der)
}

func (h *Harness) trustedRootJSON() ([]byte, error) {
	now := time.Now()
	ctID := h.ctLogID()
	rekorLogs := h.vs.RekorLogs()
	for k, v := range rekorLogs {
		raw, err := hex.DecodeString(k)
		if err != nil {
			return nil, err
		}
		v.ID = raw // VirtualSigstore stores the hex string's bytes; the JSON wants the raw key ID
	}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01,
		[]root.CertificateAuthority{&root.FulcioCertificateAuthority{Root: h.rootCert, Intermediates: []*x509.Certificate{h.inter},
			ValidityPeriodStart: now.Add(-2 * time.Hour), URI: h.FulcioURL}},
		map[string]*root.TransparencyLog{hex.EncodeToString(ctID[:]): {BaseURL: "https://ctfe.signtest", ID: ctID[:],
			HashFunc: crypto.SHA256, PublicKey: &h.ctKey.PublicKey, SignatureHashFunc: crypto.SHA256, ValidityPeriodStart: now.Add(-2 * time.Hour)}},
		[]root.TimestampingAuthority{&root.SigstoreTimestampingAuthority{Root: h.rootCert, Intermediates: []*x509.Certificate{h.tsaInter},
			Leaf: h.tsaLeaf, ValidityPeriodStart: now.Add(-2 * time.Hour), URI: h.TSAURL}},
		rekorLogs)
	if err != nil {
		return nil, err
	}
	js, err := tr.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, js); err != nil {
		return nil, err
	}
	buf.WriteByte('\n') // gh reads JSONL and skips a last line without a newline
	return buf.Bytes(), nil
}

// ---------- Fulcio ----------

func fulcioOID(n int) asn1.ObjectIdentifier {
	return asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, n}
}

func rawExt(n int, v string) pkix.Extension {
	return pkix.Extension{Id: fulcioOID(n), Value: []byte(v)}
}

func utf8Ext(n int, v string) pkix.Extension {
	b, _ := asn1.MarshalWithParams(v, "utf8")
	return pkix.Extension{Id: fulcioOID(n), Value: b}
}

func (h *Harness) leaf(pub crypto.PublicKey, c sign.Claims) ([]byte, error) {
	srv := server(c)
	san, err := url.Parse(Identity(c))
	if err != nil {
		return nil, err
	}
	repoURI := srv + "/" + c.Repository
	attempt := c.RunAttempt
	if attempt == "" {
		attempt = "1"
	}
	now := time.Now()
	nb, na := now.Add(-1*time.Minute), now.Add(10*time.Minute)
	if h.expired.Load() {
		nb, na = now.Add(-30*time.Minute), now.Add(-20*time.Minute)
	}
	tmpl := &x509.Certificate{
		SerialNumber: new(big.Int).SetBytes(randBytes(16)),
		NotBefore:    nb, NotAfter: na,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		URIs:        []*url.URL{san},
		ExtraExtensions: []pkix.Extension{
			rawExt(1, c.Issuer), rawExt(2, c.EventName), rawExt(3, c.SHA), rawExt(4, c.Workflow), rawExt(5, c.Repository), rawExt(6, c.Ref),
			utf8Ext(8, c.Issuer), utf8Ext(9, san.String()), utf8Ext(10, c.SHA), utf8Ext(11, c.RunnerEnvironment),
			utf8Ext(12, repoURI), utf8Ext(13, c.SHA), utf8Ext(14, c.Ref), utf8Ext(15, c.RepositoryID),
			utf8Ext(16, srv+"/"+c.RepositoryOwner), utf8Ext(17, c.RepositoryOwnerID), utf8Ext(18, srv+"/"+c.WorkflowRef),
			utf8Ext(19, c.SHA), utf8Ext(20, c.EventName), utf8Ext(21, repoURI+"/actions/runs/"+c.RunID+"/attempts/"+attempt),
			utf8Ext(22, c.Visibility),
		},
	}
	if err := h.embedSCT(tmpl, pub); err != nil {
		return nil, err
	}
	return x509.CreateCertificate(rand.Reader, tmpl, h.inter, pub, h.interKey)
}

// embedSCT signs an RFC 6962 precertificate SCT over tmpl's TBS with the fake CT log's key and
// appends the SCT list extension to tmpl.
func (h *Harness) embedSCT(tmpl *x509.Certificate, pub crypto.PublicKey) error {
	preDER, err := x509.CreateCertificate(rand.Reader, tmpl, h.inter, pub, h.interKey)
	if err != nil {
		return err
	}
	pre, err := x509.ParseCertificate(preDER)
	if err != nil {
		return err
	}
	ts := uint64(time.Now().UnixMilli())
	leaf := ct.MerkleTreeLeaf{Version: ct.V1, LeafType: ct.TimestampedEntryLeafType, TimestampedEntry: &ct.TimestampedEntry{
		EntryType: ct.PrecertLogEntryType, Timestamp: ts,
		PrecertEntry: &ct.PreCert{IssuerKeyHash: sha256.Sum256(h.inter.RawSubjectPublicKeyInfo), TBSCertificate: pre.RawTBSCertificate}}}
	sct := ct.SignedCertificateTimestamp{SCTVersion: ct.V1, LogID: ct.LogID{KeyID: h.ctLogID()}, Timestamp: ts}
	input, err := ct.SerializeSCTSignatureInput(sct, ct.LogEntry{Leaf: leaf})
	if err != nil {
		return err
	}
	d := sha256.Sum256(input)
	sig, err := ecdsa.SignASN1(rand.Reader, h.ctKey, d[:])
	if err != nil {
		return err
	}
	sct.Signature = ct.DigitallySigned{Algorithm: cttls.SignatureAndHashAlgorithm{Hash: cttls.SHA256, Signature: cttls.ECDSA}, Signature: sig}
	list, err := x509util.MarshalSCTsIntoSCTList([]*ct.SignedCertificateTimestamp{&sct})
	if err != nil {
		return err
	}
	listBytes, err := cttls.Marshal(*list)
	if err != nil {
		return err
	}
	ext, err := asn1.Marshal(listBytes)
	if err != nil {
		return err
	}
	tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 2}, Value: ext})
	return nil
}

func (h *Harness) serveFulcio(w http.ResponseWriter, r *http.Request) {
	h.fulcioCalls.Add(1)
	if r.Method != http.MethodPost || r.URL.Path != "/api/v2/signingCert" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		http.Error(w, `{"code":401,"message":"missing bearer token"}`, http.StatusUnauthorized)
		return
	}
	c, err := sign.ParseClaims(tok)
	if err != nil || c.Repository == "" || c.Issuer == "" {
		http.Error(w, `{"code":401,"message":"invalid token"}`, http.StatusUnauthorized)
		return
	}
	var req struct {
		PublicKeyRequest struct {
			PublicKey struct {
				Algorithm string `json:"algorithm"`
				Content   string `json:"content"`
			} `json:"publicKey"`
			ProofOfPossession string `json:"proofOfPossession"`
		} `json:"publicKeyRequest"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey([]byte(req.PublicKeyRequest.PublicKey.Content))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// Proof of possession: a signature over the token's subject, as real Fulcio checks.
	pop, err := base64.StdEncoding.DecodeString(req.PublicKeyRequest.ProofOfPossession)
	ek, isEC := pub.(*ecdsa.PublicKey)
	d := sha256.Sum256([]byte(c.Subject))
	if err != nil || !isEC || !ecdsa.VerifyASN1(ek, d[:], pop) {
		http.Error(w, `{"code":400,"message":"proof of possession failed"}`, http.StatusBadRequest)
		return
	}
	der, err := h.leaf(pub, c)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	p := func(b []byte) string { return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b})) }
	resp := map[string]any{"signedCertificateEmbeddedSct": map[string]any{"chain": map[string]any{
		"certificates": []string{p(der), p(h.inter.Raw), p(h.rootCert.Raw)}}}}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK) // sigstore-go refuses 201
	_ = json.NewEncoder(w).Encode(resp)
}

// ---------- TSA ----------

func (h *Harness) serveTSA(w http.ResponseWriter, r *http.Request) {
	h.tsaCalls.Add(1)
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req, err := timestamp.ParseRequest(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ts := timestamp.Timestamp{HashAlgorithm: req.HashAlgorithm, HashedMessage: req.HashedMessage, Time: time.Now(),
		Policy: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 2}, Nonce: req.Nonce, AddTSACertificate: req.Certificates}
	resp, err := ts.CreateResponseWithOpts(h.tsaLeaf, h.tsaKey, crypto.SHA256)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/timestamp-reply")
	_, _ = w.Write(resp)
}

// ---------- Rekor v1 ----------

func (h *Harness) serveRekor(w http.ResponseWriter, r *http.Request) {
	h.rekorCalls.Add(1)
	if r.Method != http.MethodPost || r.URL.Path != "/api/v1/log/entries" {
		http.Error(w, `{"code":404,"message":"not found"}`, http.StatusNotFound)
		return
	}
	pe, err := models.UnmarshalProposedEntry(io.LimitReader(r.Body, 4<<20), runtime.JSONConsumer())
	if err != nil {
		http.Error(w, fmt.Sprintf(`{"code":400,"message":%q}`, err.Error()), http.StatusBadRequest)
		return
	}
	entry, err := h.logEntry(r, pe)
	if err != nil {
		http.Error(w, fmt.Sprintf(`{"code":400,"message":%q}`, err.Error()), http.StatusBadRequest)
		return
	}
	var uuid string
	for k := range entry {
		uuid = k
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("ETag", uuid)
	w.Header().Set("Location", "/api/v1/log/entries/"+uuid)
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(entry)
}

func (h *Harness) logEntry(r *http.Request, pe models.ProposedEntry) (models.LogEntry, error) {
	e, err := types.UnmarshalEntry(pe)
	if err != nil {
		return nil, err
	}
	canon, err := types.CanonicalizeEntry(r.Context(), e)
	if err != nil {
		return nil, err
	}
	body := base64.StdEncoding.EncodeToString(canon)
	it := time.Now().Unix()
	idx := int64(0) // GetInclusionProof builds a one-leaf tree, so every entry sits at index 0
	logID, err := h.vs.RekorLogID()
	if err != nil {
		return nil, err
	}
	set, err := h.vs.RekorSignPayload(tlog.RekorPayload{Body: body, IntegratedTime: it, LogIndex: idx, LogID: logID})
	if err != nil {
		return nil, err
	}
	proof, err := h.vs.GetInclusionProof(canon)
	if err != nil {
		return nil, err
	}
	leafHash := sha256.Sum256(append([]byte{0}, canon...))
	uuid := hex.EncodeToString(leafHash[:])
	return models.LogEntry{uuid: models.LogEntryAnon{
		Body: body, IntegratedTime: &it, LogID: &logID, LogIndex: &idx,
		Verification: &models.LogEntryAnonVerification{SignedEntryTimestamp: strfmt.Base64(set), InclusionProof: proof},
	}}, nil
}

// ---------- OIDC token endpoint ----------

func (h *Harness) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+h.TokenRequestToken {
		http.Error(w, `{"message":"bad request token"}`, http.StatusUnauthorized)
		return
	}
	aud := r.URL.Query().Get("audience")
	if aud == "" {
		aud = "https://github.com/" + h.Claims().RepositoryOwner
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"value": token(h.Claims(), aud)})
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func randHex(n int) string { return hex.EncodeToString(randBytes(n)) }
