package sign

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	sgsign "github.com/sigstore/sigstore-go/pkg/sign"
	"google.golang.org/protobuf/encoding/protojson"
)

// maxEd25519Artifact bounds what pure Ed25519 signing reads into memory (it signs raw bytes).
const maxEd25519Artifact = 1 << 30

// Signer produces Sigstore bundles and verifies each one before returning it. It is safe for
// concurrent use; every signature gets a fresh ephemeral key (keyless) or uses the one key.
type Signer struct {
	opts     Options
	priv     any // key mode
	verifier *Verifier
	log      *slog.Logger
}

// NewSigner validates opts and loads the key and trusted root. It reports every problem with
// the options at once. In keyless mode it does not fetch a token yet; that happens per signature.
func NewSigner(ctx context.Context, opts Options) (*Signer, error) {
	var errs []error
	switch opts.Mode {
	case ModeKeyless:
		if opts.IDToken == nil {
			errs = append(errs, fmt.Errorf("keyless signing needs an OIDC token source: %w", ErrNoIDToken))
		}
		if len(opts.Key) > 0 {
			errs = append(errs, errors.New("a signing key was given in keyless mode: choose mode \"key\" or drop the key"))
		}
	case ModeKey:
		if len(opts.Key) == 0 {
			errs = append(errs, errors.New("key mode needs a private key (PEM or a cosign key file)"))
		}
	case ModeNone:
		return nil, errors.New("signing mode is \"none\": there is no signer to create")
	default:
		errs = append(errs, fmt.Errorf("unknown signing mode %q: use keyless, key or none", opts.Mode))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s := &Signer{opts: opts, log: opts.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.opts.HTTPClient == nil {
		s.opts.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if opts.Mode == ModeKey {
		priv, err := parsePrivateKey(opts.Key, opts.KeyPassword)
		if err != nil {
			return nil, err
		}
		kp, err := newKeyPair(priv)
		if err != nil {
			return nil, err
		}
		if opts.TransparencyLog && kp.alg == protocommon.PublicKeyDetails_PKIX_ED25519 {
			return nil, errors.New("an Ed25519 key cannot be logged in Rekor (its hashedrekord entries need SHA-512 prehashing, which cosign does not verify): use an ECDSA P-256 key or turn the transparency log off")
		}
		s.priv = priv
	}
	if s.opts.Mode == ModeKeyless {
		if s.opts.FulcioURL == "" {
			s.opts.FulcioURL = PublicFulcioURL
			if s.opts.Private {
				s.opts.FulcioURL = GitHubFulcioURL
			}
		}
		if s.opts.Private && s.opts.TSAURL == "" {
			s.opts.TSAURL = GitHubTSAURL
		}
		if !s.opts.Private && s.opts.RekorURL == "" {
			s.opts.RekorURL = PublicRekorURL
		}
	}
	if s.opts.Mode == ModeKey && s.opts.TransparencyLog && s.opts.RekorURL == "" {
		s.opts.RekorURL = PublicRekorURL
	}
	needRoot := s.opts.Mode == ModeKeyless || s.opts.TransparencyLog || s.opts.TSAURL != ""
	v, err := NewVerifier(ctx, VerifierOptions{TrustedRoot: opts.TrustedRoot, Private: opts.Private,
		Logger: s.log, KeyOnly: !needRoot})
	if err != nil {
		return nil, fmt.Errorf("load trusted root for verify-before-publish: %w", err)
	}
	s.verifier = v
	return s, nil
}

// Mode reports the signer's mode.
func (s *Signer) Mode() Mode { return s.opts.Mode }

// SignArtifact signs the artifact read from r (a message signature over SHA-256 of its bytes)
// and returns the Sigstore bundle JSON (`<name>.sigstore.json`). The bundle is verified against
// the trusted root and the expected identity before it is returned. r is read to the end and
// not closed; with ECDSA keys and keyless signing only its digest is kept in memory.
func (s *Signer) SignArtifact(ctx context.Context, name string, r io.Reader) ([]byte, error) {
	b, _, err := s.SignArtifactReport(ctx, name, r)
	return b, err
}

// SignArtifactReport is [Signer.SignArtifact] that also returns the report of the
// verification the bundle passed before it was returned (identity, issuer, log entry).
func (s *Signer) SignArtifactReport(ctx context.Context, name string, r io.Reader) ([]byte, *Report, error) {
	kp, err := s.keyPair()
	if err != nil {
		return nil, nil, err
	}
	var content sgsign.Content
	var digest, data []byte
	if kp.alg == protocommon.PublicKeyDetails_PKIX_ED25519 {
		var err error
		data, err = io.ReadAll(io.LimitReader(r, maxEd25519Artifact+1))
		if err != nil {
			return nil, nil, fmt.Errorf("read artifact %q: %w", name, err)
		}
		if len(data) > maxEd25519Artifact {
			return nil, nil, fmt.Errorf("artifact %q is larger than %d bytes, the Ed25519 limit: use an ECDSA P-256 key", name, maxEd25519Artifact)
		}
		sum := sha256.Sum256(data)
		digest, content = sum[:], &sgsign.PlainData{Data: data}
	} else {
		h := sha256.New()
		if _, err := io.Copy(h, r); err != nil {
			return nil, nil, fmt.Errorf("read artifact %q: %w", name, err)
		}
		digest = h.Sum(nil)
		kp.prehashed = digest
		content = &sgsign.PlainData{Data: digest}
	}
	bundleJSON, claims, err := s.sign(ctx, content, kp)
	if err != nil {
		return nil, nil, fmt.Errorf("sign %q: %w", name, err)
	}
	rep, err := s.verifier.verifySignature(ctx, bundleJSON, digest, data, s.selfPolicy(claims))
	if err != nil {
		return nil, nil, fmt.Errorf("verify-before-publish of %q: %w", name, err)
	}
	s.log.InfoContext(ctx, "signed artifact", "name", name, "sha256", hex.EncodeToString(digest), "mode", string(s.opts.Mode))
	return bundleJSON, rep, nil
}

// ProvenanceInput describes the artifact a provenance statement is about.
type ProvenanceInput struct {
	// SubjectName is the artifact's file name, e.g. web.zip.enc.
	SubjectName string
	// SHA256 is the artifact's hex SHA-256.
	SHA256 string
	// Claims fill the statement in key mode (there is no token to read them from). In keyless
	// mode the claims of the OIDC token are used and these are ignored.
	Claims Claims
}

// SignProvenance writes an SLSA v1 provenance statement for in (shaped like
// actions/attest-build-provenance's), signs it as a DSSE envelope and returns the bundle JSON,
// verified before it is returned. In keyless mode every field comes from the OIDC token claims.
func (s *Signer) SignProvenance(ctx context.Context, in ProvenanceInput) ([]byte, error) {
	digest, err := hex.DecodeString(in.SHA256)
	if err != nil || len(digest) != sha256.Size {
		return nil, fmt.Errorf("provenance subject %q: SHA256 %q is not a hex SHA-256", in.SubjectName, in.SHA256)
	}
	kp, err := s.keyPair()
	if err != nil {
		return nil, err
	}
	var bundleJSON []byte
	var claims Claims
	stmtFor := func(c Claims) (sgsign.Content, error) {
		stmt, err := Provenance(in.SubjectName, in.SHA256, c)
		if err != nil {
			return nil, err
		}
		return &sgsign.DSSEData{Data: stmt, PayloadType: "application/vnd.in-toto+json"}, nil
	}
	if s.opts.Mode == ModeKeyless {
		bundleJSON, claims, err = s.signKeyless(ctx, kp, stmtFor)
	} else {
		claims = in.Claims
		var content sgsign.Content
		if content, err = stmtFor(claims); err == nil {
			bundleJSON, err = s.signWithKey(ctx, content, kp)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("sign provenance for %q: %w", in.SubjectName, err)
	}
	if _, err := s.verifier.verifyAttestation(ctx, bundleJSON, digest, s.selfPolicy(claims)); err != nil {
		return nil, fmt.Errorf("verify-before-publish of provenance for %q: %w", in.SubjectName, err)
	}
	s.log.InfoContext(ctx, "signed provenance", "subject", in.SubjectName, "sha256", in.SHA256)
	return bundleJSON, nil
}

func (s *Signer) keyPair() (*keyPair, error) {
	if s.opts.Mode == ModeKey {
		return newKeyPair(s.priv)
	}
	return newEphemeralKeyPair()
}

// sign signs content and returns the bundle JSON and, in keyless mode, the token's claims.
func (s *Signer) sign(ctx context.Context, content sgsign.Content, kp *keyPair) ([]byte, Claims, error) {
	if s.opts.Mode == ModeKeyless {
		return s.signKeyless(ctx, kp, func(Claims) (sgsign.Content, error) { return content, nil })
	}
	b, err := s.signWithKey(ctx, content, kp)
	return b, Claims{}, err
}

func (s *Signer) signKeyless(ctx context.Context, kp *keyPair, contentFor func(Claims) (sgsign.Content, error)) ([]byte, Claims, error) {
	tok, err := s.opts.IDToken(ctx, "sigstore")
	if err != nil {
		return nil, Claims{}, fmt.Errorf("get OIDC token (audience sigstore): %w; the job needs `permissions: id-token: write` (and `contents: read`)", err)
	}
	if tok == "" {
		return nil, Claims{}, ErrNoIDToken
	}
	claims, err := ParseClaims(tok)
	if err != nil {
		return nil, Claims{}, err
	}
	claims.ServerURL = s.opts.ServerURL
	content, err := contentFor(claims)
	if err != nil {
		return nil, Claims{}, err
	}
	opts := sgsign.BundleOptions{
		Context: ctx, // sigstore-go reads ctx from its options; it is not kept after Bundle returns.
		CertificateProvider: sgsign.NewFulcio(&sgsign.FulcioOptions{
			BaseURL: s.opts.FulcioURL, Timeout: 30 * time.Second, Retries: 3, Transport: s.opts.HTTPClient.Transport}),
		CertificateProviderOptions: &sgsign.CertificateProviderOptions{IDToken: tok},
	}
	s.addTimestamps(&opts)
	pb, err := sgsign.Bundle(content, kp, opts)
	if err != nil {
		return nil, Claims{}, explain(err, s.opts)
	}
	b, err := marshalBundle(pb)
	return b, claims, err
}

func (s *Signer) signWithKey(ctx context.Context, content sgsign.Content, kp *keyPair) ([]byte, error) {
	opts := sgsign.BundleOptions{Context: ctx}
	s.addTimestamps(&opts)
	pb, err := sgsign.Bundle(content, kp, opts)
	if err != nil {
		return nil, explain(err, s.opts)
	}
	return marshalBundle(pb)
}

func (s *Signer) addTimestamps(opts *sgsign.BundleOptions) {
	if s.opts.TSAURL != "" {
		opts.TimestampAuthorities = []*sgsign.TimestampAuthority{sgsign.NewTimestampAuthority(&sgsign.TimestampAuthorityOptions{
			URL: s.opts.TSAURL, Timeout: 30 * time.Second, Retries: 3, Transport: s.opts.HTTPClient.Transport})}
	}
	if s.opts.RekorURL != "" && (s.opts.Mode == ModeKeyless || s.opts.TransparencyLog) {
		opts.TransparencyLogs = []sgsign.Transparency{sgsign.NewRekor(&sgsign.RekorOptions{
			BaseURL: s.opts.RekorURL, Version: 1, Retries: 3, Timeout: 30 * time.Second})}
	}
}

// selfPolicy is the policy a fresh bundle must satisfy: the token's identity (keyless) or the key.
func (s *Signer) selfPolicy(c Claims) Policy {
	if s.opts.Mode == ModeKey {
		kp, _ := newKeyPair(s.priv)
		pem, _ := kp.GetPublicKeyPem()
		return Policy{Key: []byte(pem)}
	}
	p := Policy{Issuer: c.Issuer, Repository: c.Repository, Identity: c.identity(), ServerURL: c.ServerURL}
	if s.opts.Identity != "" {
		p.Identity = s.opts.Identity
	}
	if s.opts.Issuer != "" {
		p.Issuer = s.opts.Issuer
	}
	return p
}

func marshalBundle(pb *protobundle.Bundle) ([]byte, error) {
	b, err := protojson.Marshal(pb)
	if err != nil {
		return nil, fmt.Errorf("marshal bundle: %w", err)
	}
	return b, nil
}

// explain turns service errors into advice about what to change in the workflow.
func explain(err error, o Options) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "fulcio") || strings.Contains(msg, "Fulcio") || strings.Contains(msg, "signingCert"):
		return fmt.Errorf("get signing certificate from %s: %w; check that the job has `permissions: id-token: write` and that the token's audience is \"sigstore\"", o.FulcioURL, err)
	case o.TSAURL != "" && strings.Contains(msg, "timestamp"):
		return fmt.Errorf("get RFC 3161 timestamp from %s: %w; retry the job, or set the TSA URL input if you run your own", o.TSAURL, err)
	case o.RekorURL != "" && o.Mode == ModeKey:
		return fmt.Errorf("log signature in Rekor %s: %w; retry the job, or turn the transparency log off", o.RekorURL, err)
	case o.RekorURL != "":
		return fmt.Errorf("log signature in Rekor %s: %w; retry the job, or for a private repository use GitHub's Sigstore instance (no public log)", o.RekorURL, err)
	}
	return err
}
