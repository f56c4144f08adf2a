package sign

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"
)

// maxBundle bounds a Sigstore bundle read from outside.
const maxBundle = 16 << 20

// VerifierOptions configure a [Verifier].
type VerifierOptions struct {
	// TrustedRoot is the path of a trusted_root.json (or gh's JSONL). Empty: the public-good
	// root (GitHub's with Private), fetched through TUF; the embedded public-good snapshot is
	// used when TUF cannot be reached.
	TrustedRoot string
	// Private selects GitHub's Sigstore instance for the default trusted root.
	Private bool
	// KeyOnly defers loading the default trusted root until a bundle needs it (a key-mode
	// bundle logged in Rekor, or a keyless one), so plain key-mode verification never touches
	// the network. A TrustedRoot path is always loaded at once.
	KeyOnly bool
	// Logger receives warnings; nil discards them.
	Logger *slog.Logger
}

// Verifier checks Sigstore bundles against a trusted root and a [Policy]. It is safe for
// concurrent use.
type Verifier struct {
	log     *slog.Logger
	private bool

	mu sync.Mutex
	tr *root.TrustedRoot // nil until loaded in KeyOnly mode
}

// trustedRoot returns the trusted root, loading the default one on first use.
func (v *Verifier) trustedRoot(ctx context.Context) (*root.TrustedRoot, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.tr != nil {
		return v.tr, nil
	}
	tr, err := loadTrustedRoot(ctx, "", v.private, v.log)
	if err != nil {
		return nil, err
	}
	v.tr = tr
	return tr, nil
}

// NewVerifier loads the trusted root. It may block on the network (TUF) when no file is given.
func NewVerifier(ctx context.Context, opts VerifierOptions) (*Verifier, error) {
	v := &Verifier{log: opts.Logger, private: opts.Private}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	if opts.KeyOnly && opts.TrustedRoot == "" {
		return v, nil
	}
	tr, err := loadTrustedRoot(ctx, opts.TrustedRoot, opts.Private, v.log)
	if err != nil {
		return nil, err
	}
	v.tr = tr
	return v, nil
}

// VerifyArtifact checks that bundleJSON is a valid signature over the bytes read from artifact,
// made by the identity (or key) in p. r is read to the end and not closed.
func (v *Verifier) VerifyArtifact(ctx context.Context, artifact io.Reader, bundleJSON []byte, p Policy) (*Report, error) {
	var data []byte
	var digest []byte
	if isEd25519Policy(p) {
		b, err := io.ReadAll(io.LimitReader(artifact, maxEd25519Artifact+1))
		if err != nil {
			return nil, fmt.Errorf("read artifact: %w", err)
		}
		sum := sha256.Sum256(b)
		data, digest = b, sum[:]
	} else {
		h := sha256.New()
		if _, err := io.Copy(h, artifact); err != nil {
			return nil, fmt.Errorf("read artifact: %w", err)
		}
		digest = h.Sum(nil)
	}
	return v.verifySignature(ctx, bundleJSON, digest, data, p)
}

// VerifyProvenance checks that bundleJSON is a signed SLSA v1 provenance statement whose
// subject is the artifact with hex SHA-256 sha256hex, made by the identity (or key) in p.
func (v *Verifier) VerifyProvenance(ctx context.Context, sha256hex string, bundleJSON []byte, p Policy) (*Report, error) {
	digest, err := hex.DecodeString(sha256hex)
	if err != nil || len(digest) != sha256.Size {
		return nil, fmt.Errorf("artifact digest %q is not a hex SHA-256", sha256hex)
	}
	return v.verifyAttestation(ctx, bundleJSON, digest, p)
}

func isEd25519Policy(p Policy) bool {
	if len(p.Key) == 0 {
		return false
	}
	pub, err := ParsePublicKey(p.Key)
	if err != nil {
		return false
	}
	_, ok := pub.(ed25519.PublicKey)
	return ok
}

// ParseBundle parses Sigstore bundle JSON (v0.1–v0.3) and checks its structure.
func ParseBundle(bundleJSON []byte) (*bundle.Bundle, error) {
	if len(bundleJSON) > maxBundle {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalidBundle, maxBundle)
	}
	var b bundle.Bundle
	if err := b.UnmarshalJSON(bundleJSON); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidBundle, err)
	}
	return &b, nil
}

func (p Policy) validate() error {
	if len(p.Key) == 0 && p.Repository == "" && p.Identity == "" {
		return ErrEmptyPolicy
	}
	if len(p.Key) > 0 && (p.Repository != "" || p.Identity != "") {
		return errors.New("policy pins both a key and an identity: choose one")
	}
	if p.Repository != "" && strings.Count(p.Repository, "/") != 1 {
		return fmt.Errorf("policy repository %q is not owner/name", p.Repository)
	}
	return nil
}

func (p Policy) server() string {
	if p.ServerURL != "" {
		return strings.TrimRight(p.ServerURL, "/")
	}
	return "https://github.com"
}

// certificateIdentity turns a keyless policy into sigstore-go's identity matcher.
func (p Policy) certificateIdentity() (verify.CertificateIdentity, error) {
	issuer := p.Issuer
	if issuer == "" {
		issuer = GitHubActionsIssuer
	}
	var sanValue, sanRegex string
	var ext certificate.Extensions
	switch {
	case p.Identity != "":
		sanValue = p.Identity
	case p.Workflow != "":
		wf := strings.TrimPrefix(p.Workflow, "/")
		sanRegex = "^" + regexp.QuoteMeta(p.server()+"/"+p.Repository+"/"+wf+"@")
	default:
		sanRegex = "^" + regexp.QuoteMeta(p.server()+"/"+p.Repository+"/")
	}
	if p.Repository != "" {
		ext.SourceRepositoryURI = p.server() + "/" + p.Repository
	}
	ext.SourceRepositoryRef = p.Ref
	san, err := verify.NewSANMatcher(sanValue, sanRegex)
	if err != nil {
		return verify.CertificateIdentity{}, err
	}
	iss, err := verify.NewIssuerMatcher(issuer, "")
	if err != nil {
		return verify.CertificateIdentity{}, err
	}
	return verify.NewCertificateIdentity(san, iss, ext)
}

// verifySignature checks that bundleJSON is an artifact signature (a message signature)
// over digest made by the identity (or key) in p. data is the artifact itself when the
// policy's key is Ed25519, which signs the whole artifact, and nil otherwise.
func (v *Verifier) verifySignature(ctx context.Context, bundleJSON, digest, data []byte, p Policy) (*Report, error) {
	b, rep, err := openBundle(bundleJSON, digest, p)
	if err != nil {
		return nil, err
	}
	if err := checkSignedDigest(b, digest, rep); err != nil {
		return nil, err
	}
	return v.verifyBundle(ctx, b, digest, data, nil, p, rep)
}

// verifyAttestation checks that bundleJSON is a DSSE-signed SLSA v1 provenance statement
// whose subject is the artifact with SHA-256 digest, made by the identity (or key) in p.
func (v *Verifier) verifyAttestation(ctx context.Context, bundleJSON, digest []byte, p Policy) (*Report, error) {
	b, rep, err := openBundle(bundleJSON, digest, p)
	if err != nil {
		return nil, err
	}
	stmt, err := checkProvenance(b, rep)
	if err != nil {
		return nil, err
	}
	return v.verifyBundle(ctx, b, digest, nil, stmt, p, rep)
}

// openBundle checks the policy, parses the bundle and starts the report.
func openBundle(bundleJSON, digest []byte, p Policy) (*bundle.Bundle, *Report, error) {
	if err := p.validate(); err != nil {
		return nil, nil, err
	}
	b, err := ParseBundle(bundleJSON)
	if err != nil {
		return nil, nil, err
	}
	return b, &Report{ArtifactSHA256: hex.EncodeToString(digest)}, nil
}

// checkSignedDigest checks that b is a message signature and, when it names the digest it
// signs, that it is the artifact's.
func checkSignedDigest(b *bundle.Bundle, digest []byte, rep *Report) error {
	ms := b.GetMessageSignature()
	if ms == nil {
		return fmt.Errorf("%w: expected an artifact signature, found a DSSE attestation (use it as provenance)", ErrInvalidBundle)
	}
	md := ms.GetMessageDigest()
	if md != nil && !bytes.Equal(md.GetDigest(), digest) {
		return fmt.Errorf("%w: bundle signs sha256:%x, artifact is sha256:%s", ErrDigestMismatch, md.GetDigest(), rep.ArtifactSHA256)
	}
	return nil
}

// checkProvenance checks that b is a DSSE envelope holding an in-toto SLSA v1 provenance
// statement with the artifact among its subjects, and returns the statement.
func checkProvenance(b *bundle.Bundle, rep *Report) (*statement, error) {
	env := b.GetDsseEnvelope()
	if env == nil {
		return nil, fmt.Errorf("%w: expected a DSSE provenance attestation, found an artifact signature", ErrInvalidBundle)
	}
	if env.GetPayloadType() != "application/vnd.in-toto+json" {
		return nil, fmt.Errorf("%w: DSSE payload type %q is not in-toto", ErrInvalidBundle, env.GetPayloadType())
	}
	stmt := new(statement)
	if err := json.Unmarshal(env.GetPayload(), stmt); err != nil {
		return nil, fmt.Errorf("%w: parse in-toto statement: %w", ErrInvalidBundle, err)
	}
	if stmt.PredicateType != SLSAProvenanceV1 {
		return nil, fmt.Errorf("%w: predicate type %q, want %s", ErrInvalidBundle, stmt.PredicateType, SLSAProvenanceV1)
	}
	var names []string
	match := false
	for _, s := range stmt.Subject {
		names = append(names, s.Name+"@sha256:"+s.Digest["sha256"])
		if strings.EqualFold(s.Digest["sha256"], rep.ArtifactSHA256) {
			match = true
		}
	}
	if !match {
		return nil, fmt.Errorf("%w: provenance is about %s, artifact is sha256:%s", ErrDigestMismatch, strings.Join(names, ", "), rep.ArtifactSHA256)
	}
	rep.PredicateType = stmt.PredicateType
	rep.BuilderID = stmt.Predicate.RunDetails.Builder.ID
	return stmt, nil
}

// verifyBundle runs sigstore-go's verification of b against the trust p calls for, and
// completes the report. stmt is the provenance statement, nil for an artifact signature.
func (v *Verifier) verifyBundle(ctx context.Context, b *bundle.Bundle, digest, data []byte, stmt *statement, p Policy, rep *Report) (*Report, error) {
	t, err := v.trustFor(ctx, b, p, rep)
	if err != nil {
		return nil, err
	}
	sev, err := verify.NewVerifier(t.material, t.vopts...)
	if err != nil {
		return nil, fmt.Errorf("configure verifier: %w", err)
	}
	artifactOpt := verify.WithArtifactDigest("sha256", digest)
	if data != nil {
		artifactOpt = verify.WithArtifact(bytes.NewReader(data))
	}
	res, err := sev.Verify(b, verify.NewPolicy(artifactOpt, t.popts...))
	if err != nil {
		return nil, classifyVerifyError(err)
	}
	fillReport(rep, res, b, stmt, p)
	return rep, nil
}

// trust is what sigstore-go checks a bundle with: the trusted material, the verifier's
// options (which time evidence is required) and the policy's (which key or identity).
type trust struct {
	material root.TrustedMaterial
	vopts    []verify.VerifierOption
	popts    []verify.PolicyOption
}

// trustFor builds the trust for bundle b under policy p: the pinned key (plus the trusted
// root when the bundle has log or timestamp evidence), or the trusted root and the
// workflow identity. It records the mode in rep.
func (v *Verifier) trustFor(ctx context.Context, b *bundle.Bundle, p Policy, rep *Report) (trust, error) {
	vm := b.GetVerificationMaterial()
	hasTlog := len(vm.GetTlogEntries()) > 0
	hasTSA := len(vm.GetTimestampVerificationData().GetRfc3161Timestamps()) > 0
	var t trust
	var tr *root.TrustedRoot
	if len(p.Key) == 0 || hasTlog || hasTSA {
		var err error
		if tr, err = v.trustedRoot(ctx); err != nil {
			return trust{}, err
		}
		t.material = tr
	}
	if len(p.Key) > 0 {
		return v.keyTrust(ctx, b, p, t, hasTlog, hasTSA, rep)
	}
	return keylessTrust(b, p, t, tr, hasTlog, hasTSA, rep)
}

// keyTrust adds the policy's public key to t: a key-mode bundle is checked against the key,
// with the log or timestamp evidence it carries, if any.
func (v *Verifier) keyTrust(ctx context.Context, b *bundle.Bundle, p Policy, t trust, hasTlog, hasTSA bool, rep *Report) (trust, error) {
	vm := b.GetVerificationMaterial()
	if vm.GetPublicKey() == nil {
		return trust{}, fmt.Errorf("%w: policy pins a key but the bundle was signed keyless (verify with --repo instead)", ErrIdentityMismatch)
	}
	pub, err := ParsePublicKey(p.Key)
	if err != nil {
		return trust{}, err
	}
	sv, err := signature.LoadVerifier(pub, cryptoHash(pub))
	if err != nil {
		return trust{}, fmt.Errorf("load verification key: %w", err)
	}
	hint, err := keyHint(pub)
	if err != nil {
		return trust{}, err
	}
	keyMat := root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) {
		return root.NewExpiringKey(sv, time.Time{}, time.Time{}), nil
	})
	if t.material != nil {
		t.material = root.TrustedMaterialCollection{t.material, keyMat}
	} else {
		t.material = keyMat
	}
	switch {
	case hasTlog:
		t.vopts = append(t.vopts, verify.WithTransparencyLog(1), verify.WithIntegratedTimestamps(1))
	case hasTSA:
		t.vopts = append(t.vopts, verify.WithSignedTimestamps(1))
	default:
		t.vopts = append(t.vopts, verify.WithNoObserverTimestamps())
	}
	t.popts = append(t.popts, verify.WithKey())
	rep.Mode = ModeKey
	rep.KeyHint = hint
	if h := vm.GetPublicKey().GetHint(); h != "" && h != hint {
		v.log.DebugContext(ctx, "bundle key hint differs from policy key", "bundle_hint", h, "policy_hint", hint)
	}
	return t, nil
}

// keylessTrust requires of a keyless bundle the trusted root tr's evidence (certificate
// timestamps, log entry, signed or integrated time) and the policy's workflow identity.
func keylessTrust(b *bundle.Bundle, p Policy, t trust, tr *root.TrustedRoot, hasTlog, hasTSA bool, rep *Report) (trust, error) {
	if b.GetVerificationMaterial().GetPublicKey() != nil {
		return trust{}, fmt.Errorf("%w: bundle was signed with a key, not a workflow identity (verify with --key)", ErrIdentityMismatch)
	}
	if !hasTlog && !hasTSA {
		return trust{}, fmt.Errorf("%w: bundle has neither a transparency log entry nor a signed timestamp, so the short-lived certificate cannot be checked", ErrInvalidBundle)
	}
	if len(tr.CTLogs()) > 0 {
		t.vopts = append(t.vopts, verify.WithSignedCertificateTimestamps(1))
	}
	if hasTlog {
		t.vopts = append(t.vopts, verify.WithTransparencyLog(1))
	}
	if hasTSA {
		t.vopts = append(t.vopts, verify.WithSignedTimestamps(1))
	} else {
		// Rekor v1's integrated time is the only time evidence; Rekor v2 entries come with a TSA.
		t.vopts = append(t.vopts, verify.WithIntegratedTimestamps(1))
	}
	id, err := p.certificateIdentity()
	if err != nil {
		return trust{}, fmt.Errorf("build identity policy: %w", err)
	}
	t.popts = append(t.popts, verify.WithCertificateIdentity(id))
	rep.Mode = ModeKeyless
	return t, nil
}

// classifyVerifyError wraps a sigstore-go verification error in the package's sentinel for
// its cause: a workflow identity that does not match, or a certificate not valid at the
// signing time.
func classifyVerifyError(err error) error {
	var idErr *verify.ErrNoMatchingCertificateIdentity
	if errors.As(err, &idErr) {
		return fmt.Errorf("%w: %w", ErrIdentityMismatch, err)
	}
	if msg := err.Error(); strings.Contains(msg, "outside certificate validity") || strings.Contains(msg, "certificate has expired") ||
		strings.Contains(msg, "certificate is not valid") {
		return fmt.Errorf("%w: %w", ErrCertificateNotValid, err)
	}
	return fmt.Errorf("verify bundle: %w", err)
}

func fillReport(rep *Report, res *verify.VerificationResult, b *bundle.Bundle, stmt *statement, p Policy) {
	if c := res.Signature.Certificate; c != nil {
		rep.Identity = c.SubjectAlternativeName
		rep.Issuer = c.Extensions.Issuer
		rep.Repository = strings.TrimPrefix(c.SourceRepositoryURI, p.server()+"/")
		rep.Commit = c.SourceRepositoryDigest
		rep.Ref = c.SourceRepositoryRef
		rep.Trigger = c.BuildTrigger
		rep.RunURL = c.RunInvocationURI
		if wf := c.BuildConfigURI; wf != "" {
			path, _ := splitWorkflowRef(strings.TrimPrefix(wf, p.server()+"/"), rep.Repository)
			rep.Workflow = path
		}
	}
	if stmt != nil && rep.Mode == ModeKey {
		// Key mode: the statement's claims are signed by the key holder, not by Fulcio.
		ext := stmt.Predicate.BuildDefinition.ExternalParameters.Workflow
		rep.Repository = strings.TrimPrefix(ext.Repository, p.server()+"/")
		rep.Workflow = ext.Path
		if deps := stmt.Predicate.BuildDefinition.ResolvedDependencies; len(deps) > 0 {
			rep.Commit = deps[0].Digest["gitCommit"]
			if _, ref, ok := strings.Cut(deps[0].URI, "@"); ok {
				rep.Ref = ref
			}
		}
		rep.Trigger = stmt.Predicate.BuildDefinition.InternalParameters.GitHub.EventName
		rep.RunURL = stmt.Predicate.RunDetails.Metadata.InvocationID
	}
	var kinds []string
	for _, ts := range res.VerifiedTimestamps {
		if rep.SignedAt.IsZero() || ts.Timestamp.Before(rep.SignedAt) {
			rep.SignedAt = ts.Timestamp.UTC()
		}
		kinds = append(kinds, ts.Type)
	}
	sort.Strings(kinds)
	rep.TimestampKinds = kinds
	if entries := b.GetVerificationMaterial().GetTlogEntries(); len(entries) > 0 {
		idx := entries[0].GetLogIndex()
		rep.LogIndex = &idx
		if it := entries[0].GetIntegratedTime(); it > 0 {
			rep.IntegratedTime = time.Unix(it, 0).UTC()
		}
	}
}

// KeyID returns the key hint (base64 SHA-256 of the PKIX public key) of a PEM public key.
func KeyID(pubPEM []byte) (string, error) {
	pub, err := ParsePublicKey(pubPEM)
	if err != nil {
		return "", err
	}
	return keyHint(pub)
}
