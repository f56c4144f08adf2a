package sign_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ferryhq/ferry/internal/sign"
	"github.com/ferryhq/ferry/internal/sign/signtest"
)

// FuzzVerifyBundle feeds arbitrary bundle JSON to the verifier: it must never panic and never
// accept anything but the one genuine bundle for the artifact.
func FuzzVerifyBundle(f *testing.F) {
	h := signtest.New(f, signtest.Options{})
	s, err := sign.NewSigner(f.Context(), sign.Options{Mode: sign.ModeKeyless, IDToken: h.IDToken(h.Claims()),
		FulcioURL: h.FulcioURL, RekorURL: h.RekorURL, TrustedRoot: h.TrustedRootPath})
	if err != nil {
		f.Fatal(err)
	}
	artifact := []byte("fuzzed archive")
	sig, err := s.SignArtifact(f.Context(), "a", bytes.NewReader(artifact))
	if err != nil {
		f.Fatal(err)
	}
	prov, err := s.SignProvenance(f.Context(), sign.ProvenanceInput{SubjectName: "a", SHA256: sha(artifact)})
	if err != nil {
		f.Fatal(err)
	}
	v, err := sign.NewVerifier(f.Context(), sign.VerifierOptions{TrustedRoot: h.TrustedRootPath})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sig)
	f.Add(prov)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`))
	f.Add(bytes.Replace(sig, []byte(`"logIndex":"0"`), []byte(`"logIndex":"1"`), 1))
	policy := sign.Policy{Repository: "acme/mobile-app"}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := sign.ParseBundle(b)
		if err != nil && !errors.Is(err, sign.ErrInvalidBundle) {
			t.Fatalf("ParseBundle error %v does not wrap ErrInvalidBundle", err)
		}
		_, aerr := v.VerifyArtifact(t.Context(), bytes.NewReader(artifact), b, policy)
		if aerr == nil && !bytes.Equal(b, sig) {
			// Re-encodings of the same bundle are fine; anything else verifying is not.
			if _, perr := sign.ParseBundle(b); perr != nil {
				t.Fatalf("unparseable bundle verified: %q", b)
			}
		}
		_, _ = v.VerifyProvenance(t.Context(), sha(artifact), b, policy)
	})
}

// FuzzParseClaims: token payloads from outside never panic the claims parser.
func FuzzParseClaims(f *testing.F) {
	h := signtest.New(f, signtest.Options{})
	f.Add(h.Token(h.DefaultClaims()))
	f.Add("a.e30.c")
	f.Add("a.eyJydW5faWQiOjEyMy40fQ.c")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := sign.ParseClaims(tok)
		if err == nil && c.Repository != "" {
			if _, perr := sign.Provenance("a", "3fa0cb3a98b07d06a02ee28c64f4416a2da1a667dfefb7e82d230ccb98b0d16e", c); perr != nil && c.SHA != "" && c.WorkflowRef != "" {
				t.Fatalf("claims %+v: %v", c, perr)
			}
		}
	})
}
