package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferryhq/ferry/internal/sign"
)

// maxBundleFile bounds a Sigstore bundle read from disk.
const maxBundleFile = 16 << 20

// verifyReport is the --json output of ferry verify.
type verifyReport struct {
	Verified   bool         `json:"verified"`
	Artifact   string       `json:"artifact"`
	Signature  *sign.Report `json:"signature,omitempty"`
	Provenance *sign.Report `json:"provenance,omitempty"`
	Error      string       `json:"error,omitempty"`
}

// runVerify implements `ferry verify`: it checks an artifact's Sigstore bundle (and optionally
// its provenance bundle) against the expected repository, workflow and ref, or a public key,
// and prints who built it. It exits 1 when anything does not verify.
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("verify", "Usage: ferry verify --artifact FILE --bundle FILE.sigstore.json [--provenance P.sigstore.json] (--repo OWNER/NAME | --key pub.pem) [flags]\n\n", stderr)
	artifact := fs.String("artifact", "", "the published file, e.g. web.zip.enc (required)")
	bundlePath := fs.String("bundle", "", "its Sigstore bundle; default ARTIFACT.sigstore.json")
	provPath := fs.String("provenance", "", "the SLSA provenance bundle to check as well (optional)")
	repo := fs.String("repo", "", "repository that must have built it, owner/name (keyless)")
	workflow := fs.String("workflow", "", "workflow file that must have built it, e.g. .github/workflows/release.yml")
	ref := fs.String("ref", "", "git ref it must have been built from, e.g. refs/tags/v1.2.3")
	identity := fs.String("identity", "", "exact certificate identity (SAN) instead of --workflow")
	issuer := fs.String("issuer", sign.GitHubActionsIssuer, "OIDC issuer of the signing identity")
	serverURL := fs.String("server-url", "https://github.com", "GitHub server URL (GitHub Enterprise Server)")
	keyPath := fs.String("key", "", "public key PEM for bundles signed in key mode (instead of --repo)")
	trustedRoot := fs.String("trusted-root", "", "trusted_root.json; default the public-good root (through TUF, embedded snapshot offline)")
	githubInstance := fs.Bool("github-instance", false, "use GitHub's Sigstore instance's trusted root (private repositories)")
	asJSON := fs.Bool("json", false, "print one JSON object instead of sentences")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var problems []string
	switch {
	case *artifact == "" && fs.NArg() == 1:
		problems = append(problems, fmt.Sprintf("the artifact is given with --artifact: ferry verify --artifact %s …", fs.Arg(0)))
	case *artifact == "":
		problems = append(problems, "--artifact is required")
	}
	if *repo == "" && *keyPath == "" && *identity == "" {
		problems = append(problems, "pin who must have signed: --repo OWNER/NAME (keyless) or --key pub.pem (key mode)")
	}
	if *keyPath != "" && (*repo != "" || *identity != "") {
		problems = append(problems, "--key and --repo/--identity are exclusive")
	}
	if (fs.NArg() > 0 && *artifact != "") || fs.NArg() > 1 {
		problems = append(problems, fmt.Sprintf("unexpected arguments: %s", strings.Join(fs.Args(), " ")))
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(stderr, "ferry verify: %s\n", p)
		}
		fs.Usage()
		return errUsage
	}
	if *bundlePath == "" {
		*bundlePath = *artifact + ".sigstore.json"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	out := verifyReport{Artifact: filepath.Base(*artifact)}
	err := verifyAll(ctx, &out, verifyInput{artifact: *artifact, bundle: *bundlePath, provenance: *provPath,
		keyPath: *keyPath, trustedRoot: *trustedRoot, private: *githubInstance,
		policy: sign.Policy{Issuer: *issuer, Repository: *repo, Workflow: *workflow, Ref: *ref, Identity: *identity, ServerURL: *serverURL}})
	if err != nil {
		out.Error = err.Error()
	}
	out.Verified = err == nil
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if werr := enc.Encode(out); werr != nil {
			return werr
		}
	} else if err == nil {
		printVerifyReport(stdout, out)
	}
	if err != nil {
		return fmt.Errorf("NOT verified: %w", err)
	}
	return nil
}

type verifyInput struct {
	artifact, bundle, provenance, keyPath, trustedRoot string
	private                                            bool
	policy                                             sign.Policy
}

func verifyAll(ctx context.Context, out *verifyReport, in verifyInput) error {
	if _, err := os.Stat(in.artifact); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("artifact %s does not exist: pass the published file (e.g. web.zip.enc, from the release or bucket) with --artifact", in.artifact)
		}
		return fmt.Errorf("artifact %s: %w", in.artifact, err)
	}
	if in.keyPath != "" {
		key, err := os.ReadFile(in.keyPath)
		if err != nil {
			return fmt.Errorf("read key: %w", err)
		}
		in.policy = sign.Policy{Key: key}
	}
	bundleJSON, err := readBounded(in.bundle)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("Sigstore bundle %s of artifact %s does not exist: download it from where the artifact was published, or pass its path with --bundle", in.bundle, in.artifact) //nolint:staticcheck // ST1005: starts with a proper noun
	}
	if err != nil {
		return fmt.Errorf("read bundle: %w", err)
	}
	var provJSON []byte
	if in.provenance != "" {
		if provJSON, err = readBounded(in.provenance); err != nil {
			return fmt.Errorf("read provenance: %w", err)
		}
	}
	v, err := sign.NewVerifier(ctx, sign.VerifierOptions{TrustedRoot: in.trustedRoot, Private: in.private,
		KeyOnly: in.keyPath != "" && in.trustedRoot == ""})
	if err != nil {
		return err
	}
	f, err := os.Open(in.artifact)
	if err != nil {
		return fmt.Errorf("open artifact: %w", err)
	}
	defer f.Close()
	rep, err := v.VerifyArtifact(ctx, f, bundleJSON, in.policy)
	if err != nil {
		return fmt.Errorf("signature %s: %w", filepath.Base(in.bundle), err)
	}
	out.Signature = rep
	if provJSON != nil {
		prep, err := v.VerifyProvenance(ctx, rep.ArtifactSHA256, provJSON, in.policy)
		if err != nil {
			return fmt.Errorf("provenance %s: %w", filepath.Base(in.provenance), err)
		}
		if rep.Commit != "" && prep.Commit != "" && rep.Commit != prep.Commit {
			return fmt.Errorf("provenance %s: built from commit %s, but the signature's certificate says %s", filepath.Base(in.provenance), prep.Commit, rep.Commit)
		}
		out.Provenance = prep
	}
	return nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxBundleFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxBundleFile {
		return nil, errors.New("larger than 16 MiB: not a Sigstore bundle")
	}
	return b, nil
}

func printVerifyReport(w io.Writer, r verifyReport) {
	s := r.Signature
	fmt.Fprintf(w, "Verified %s (sha256:%s)\n", r.Artifact, s.ArtifactSHA256)
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "  %-12s %s\n", k+":", v)
		}
	}
	src := s
	if s.Mode == sign.ModeKey && r.Provenance != nil {
		src = r.Provenance // key mode: build facts come from the signed provenance
	}
	switch s.Mode {
	case sign.ModeKeyless:
		line("signed by", s.Identity)
		line("issuer", s.Issuer)
	case sign.ModeKey:
		line("signed by", "key "+s.KeyHint)
	case sign.ModeNone:
		// unsigned: no signer to show
	}
	line("repository", src.Repository)
	line("commit", src.Commit)
	line("workflow", src.Workflow)
	line("ref", src.Ref)
	line("trigger", src.Trigger)
	line("run", src.RunURL)
	if !s.SignedAt.IsZero() {
		kinds := make([]string, 0, len(s.TimestampKinds))
		for _, k := range s.TimestampKinds {
			switch k {
			case "Tlog":
				k = "transparency log"
			case "TimestampAuthority":
				k = "RFC 3161 timestamp"
			}
			kinds = append(kinds, k)
		}
		line("signed at", s.SignedAt.UTC().Format(time.RFC3339)+" ("+strings.Join(kinds, ", ")+")")
	} else {
		line("signed at", "unknown (key signature without a timestamp)")
	}
	if s.LogIndex != nil {
		line("log index", fmt.Sprint(*s.LogIndex))
	}
	if p := r.Provenance; p != nil {
		line("provenance", "SLSA v1, verified; builder "+p.BuilderID)
	} else {
		line("provenance", "not checked (pass --provenance)")
	}
}
