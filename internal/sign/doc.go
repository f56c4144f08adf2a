// Package sign signs what Ferry publishes with Sigstore and verifies it against a required
// identity policy. It is the only package that imports sigstore.
//
// Two things are signed for every bundle Ferry ships:
//
//   - the encrypted archive itself: a Sigstore bundle v0.3 holding a message signature over
//     SHA-256 of its bytes ([Signer.SignArtifact], written as `<file>.sigstore.json`);
//   - an SLSA v1 provenance statement shaped like actions/attest-build-provenance's, signed as
//     a DSSE envelope into its own Sigstore bundle ([Signer.SignProvenance]).
//
// Keyless mode (the default in GitHub Actions) trades the workflow's OIDC token for a
// 10-minute Fulcio certificate naming the workflow (`https://github.com/OWNER/REPO/.github/
// workflows/release.yml@refs/tags/v1.2.3`) and records the signature in Rekor (public
// repositories) or gets an RFC 3161 timestamp from GitHub's TSA (private ones). Key mode signs
// with a team's own ECDSA P-256 or Ed25519 key (cosign key files included).
//
// Every bundle is verified before it is returned ("verify before publish"): against the
// trusted root and the identity taken from the token, or the key. Verification for consumers
// ([Verifier]) always needs a [Policy]; an empty policy is an error.
//
//	s, err := sign.NewSigner(ctx, sign.Options{Mode: sign.ModeKeyless, IDToken: action.GetIDToken})
//	sig, err := s.SignArtifact(ctx, "web.zip.enc", f)
//	prov, err := s.SignProvenance(ctx, sign.ProvenanceInput{SubjectName: "web.zip.enc", SHA256: hexSum})
//
//	v, err := sign.NewVerifier(ctx, sign.VerifierOptions{})
//	rep, err := v.VerifyArtifact(ctx, f, sig, sign.Policy{Repository: "acme/app"})
//
// Package signtest provides an offline Fulcio, TSA, CT log and Rekor for tests.
package sign
