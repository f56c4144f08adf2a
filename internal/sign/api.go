package sign

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"
)

// Mode selects how [Signer] signs.
type Mode string

// Signing modes.
const (
	// ModeKeyless signs with a short-lived Fulcio certificate bound to the workflow's OIDC identity.
	ModeKeyless Mode = "keyless"
	// ModeKey signs with a long-lived key supplied by the user (cosign key file or PEM).
	ModeKey Mode = "key"
	// ModeNone disables signing.
	ModeNone Mode = "none"
)

// Default service endpoints, chosen from the repository's visibility like actions/attest does.
const (
	PublicFulcioURL = "https://fulcio.sigstore.dev"
	PublicRekorURL  = "https://rekor.sigstore.dev"
	GitHubFulcioURL = "https://fulcio.githubapp.com"
	GitHubTSAURL    = "https://timestamp.githubapp.com/api/v1/timestamp"
	// GitHubActionsIssuer is the OIDC issuer of GitHub Actions tokens.
	GitHubActionsIssuer = "https://token.actions.githubusercontent.com"
	// SLSAProvenanceV1 is the predicate type of the provenance statements Ferry writes.
	SLSAProvenanceV1 = "https://slsa.dev/provenance/v1"
	// GitHubWorkflowBuildType is the SLSA buildType used by actions/attest-build-provenance.
	GitHubWorkflowBuildType = "https://actions.github.io/buildtypes/workflow/v1"
)

// Errors callers can branch on.
var (
	// ErrNoIDToken means no OIDC token could be obtained: the workflow lacks `id-token: write`.
	ErrNoIDToken = errors.New("no OIDC token: add `permissions: id-token: write` to the job (or workflow) that runs Ferry")
	// ErrEmptyPolicy means a verification was asked for without any identity to pin.
	ErrEmptyPolicy = errors.New("verification policy is empty: pin at least the repository (or a key)")
	// ErrIdentityMismatch means the signature is valid but was made by someone else.
	ErrIdentityMismatch = errors.New("signer identity does not match the policy")
	// ErrDigestMismatch means the bundle or provenance covers a different artifact.
	ErrDigestMismatch = errors.New("artifact digest does not match")
	// ErrCertificateNotValid means the signing certificate was not valid when the signature
	// was made (expired, or not yet valid, at the logged or timestamped time).
	ErrCertificateNotValid = errors.New("signing certificate was not valid at signing time")
	// ErrInvalidBundle means the bundle could not be parsed.
	ErrInvalidBundle = errors.New("invalid sigstore bundle")
)

// Options configure a [Signer]. The zero value of every optional field is a documented default.
type Options struct {
	// Mode is required.
	Mode Mode

	// IDToken fetches an OIDC token for the audience (keyless; "sigstore"). Required in keyless mode.
	IDToken func(ctx context.Context, audience string) (string, error)
	// Private selects GitHub's Sigstore instance (Fulcio + RFC 3161 timestamp, no public log),
	// as actions/attest does for private and internal repositories.
	Private bool
	// FulcioURL, RekorURL and TSAURL override the endpoints. TSAURL is the full timestamp URL.
	// Defaults: public good (Fulcio + Rekor v1) or, with Private, GitHub's Fulcio + TSA.
	FulcioURL, RekorURL, TSAURL string

	// Key is a private key PEM (key mode): cosign's encrypted format, PKCS#8, EC or Ed25519.
	Key []byte
	// KeyPassword decrypts Key when it is encrypted.
	KeyPassword []byte
	// TransparencyLog adds a Rekor entry in key mode (RekorURL or public good).
	TransparencyLog bool

	// TrustedRoot is the path of a trusted_root.json used to verify what was signed before it
	// is returned. Empty: the public-good root (or GitHub's with Private), fetched through TUF.
	TrustedRoot string
	// Identity is the certificate identity (SAN) expected on keyless signatures. Empty: derived
	// from the OIDC token's job_workflow_ref.
	Identity string
	// Issuer is the expected OIDC issuer. Empty: the token's iss claim.
	Issuer string

	// ServerURL is the GitHub server (GITHUB_SERVER_URL) used in provenance URIs and the expected
	// certificate identity. Empty: https://github.com.
	ServerURL string

	// HTTPClient is used for Fulcio, Rekor and the TSA. Nil: a client with a 30 s timeout.
	HTTPClient *http.Client
	// Logger receives progress messages. Nil: discard.
	Logger *slog.Logger
}

// Claims are the GitHub Actions OIDC token claims that provenance is built from.
type Claims struct {
	Issuer            string `json:"iss"`
	Subject           string `json:"sub"`
	Repository        string `json:"repository"`
	RepositoryID      string `json:"repository_id"`
	RepositoryOwner   string `json:"repository_owner"`
	RepositoryOwnerID string `json:"repository_owner_id"`
	Visibility        string `json:"repository_visibility"`
	Workflow          string `json:"workflow"`
	WorkflowRef       string `json:"workflow_ref"`
	JobWorkflowRef    string `json:"job_workflow_ref"`
	Ref               string `json:"ref"`
	SHA               string `json:"sha"`
	RunID             string `json:"run_id"`
	RunAttempt        string `json:"run_attempt"`
	EventName         string `json:"event_name"`
	RunnerEnvironment string `json:"runner_environment"`
	// ServerURL is not a token claim; it defaults to https://github.com.
	ServerURL string `json:"-"`
}

// Policy is what a verified signature must match. An empty policy is an error.
type Policy struct {
	// Issuer is the expected OIDC issuer; empty means GitHub Actions.
	Issuer string
	// Repository is owner/name (required for keyless).
	Repository string
	// Workflow optionally pins the workflow file path, e.g. .github/workflows/release.yml.
	Workflow string
	// Ref optionally pins the git ref, e.g. refs/tags/v1.2.3.
	Ref string
	// Identity optionally pins the exact certificate SAN.
	Identity string
	// Key is a PEM public key; set it to verify key-mode bundles instead of an identity.
	Key []byte
	// ServerURL is the GitHub server; empty means https://github.com.
	ServerURL string
}

// Report describes a verified bundle.
type Report struct {
	Mode           Mode      `json:"mode"`
	Identity       string    `json:"identity,omitempty"`
	Issuer         string    `json:"issuer,omitempty"`
	Repository     string    `json:"repository,omitempty"`
	Workflow       string    `json:"workflow,omitempty"`
	Ref            string    `json:"ref,omitempty"`
	Commit         string    `json:"commit,omitempty"`
	Trigger        string    `json:"trigger,omitempty"`
	RunURL         string    `json:"run_url,omitempty"`
	KeyHint        string    `json:"key_hint,omitempty"`
	SignedAt       time.Time `json:"signed_at,omitzero"`
	TimestampKinds []string  `json:"timestamps,omitempty"`
	LogIndex       *int64    `json:"log_index,omitempty"`
	IntegratedTime time.Time `json:"integrated_time,omitzero"`
	ArtifactSHA256 string    `json:"artifact_sha256"`
	PredicateType  string    `json:"predicate_type,omitempty"`
	BuilderID      string    `json:"builder_id,omitempty"`
}
