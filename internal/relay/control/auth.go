package control

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/relayclient"
)

// principal is who a registration comes from, as established by its credentials.
type principal struct {
	// Method is "oidc" or "hmac".
	Method string
	// Repository, Ref and Commit come from the OIDC token's claims; they are empty for
	// HMAC registrations (the body supplies ref and commit, the app's configuration the
	// repository).
	Repository string
	Ref        string
	Commit     string
	// EventName is the workflow's triggering event (OIDC only).
	EventName string
	// Workflow is the token's job_workflow_ref (OIDC only), for logs and audit.
	Workflow string
}

// fromPullRequest reports whether the principal's workflow ran for a pull request, whose
// bundles may register but never move a channel. (pull_request_target runs are refused
// earlier.)
func (p *principal) fromPullRequest(ref string) bool {
	return p.EventName == "pull_request" || strings.HasPrefix(ref, "refs/pull/")
}

// authenticateRegistration checks the registration's credentials and returns the raw
// body, which it reads (bounded by [MaxRegistrationBody]) only once whatever can be checked
// without it passed: an OIDC token is verified before the body is read, an HMAC timestamp
// is checked before and the signature after. It never parses the body.
func (a *API) authenticateRegistration(c *gin.Context) (*principal, []byte, error) {
	authz := c.GetHeader("Authorization")
	sig := c.GetHeader(relayclient.HeaderSignature)
	switch {
	case authz != "":
		tok, ok := bearer(authz)
		if !ok {
			return nil, nil, errorf(http.StatusUnauthorized, "unauthenticated", "the Authorization header must be \"Bearer <GitHub Actions OIDC token>\"")
		}
		if a.oidc == nil {
			return nil, nil, errorf(http.StatusUnauthorized, "oidc_disabled", "OIDC registration is disabled on this relay (no audience configured); use HMAC or ask the operator to set the OIDC audience")
		}
		who, err := a.oidc.verify(c.Request.Context(), tok)
		if err != nil {
			return nil, nil, err
		}
		body, err := readBody(c, MaxRegistrationBody)
		return who, body, err
	case sig != "":
		if len(a.hmacSecret) == 0 {
			return nil, nil, errorf(http.StatusUnauthorized, "hmac_disabled", "HMAC registration is disabled on this relay (FERRY_HMAC_SECRET is not set)")
		}
		ts := c.GetHeader(relayclient.HeaderTimestamp)
		if err := checkTimestamp(ts, a.now()); err != nil {
			return nil, nil, err
		}
		body, err := readBody(c, MaxRegistrationBody)
		if err != nil {
			return nil, nil, err
		}
		if err := verifyHMAC(a.hmacSecret, sig, ts, body, a.now()); err != nil {
			return nil, nil, err
		}
		return &principal{Method: "hmac"}, body, nil
	default:
		return nil, nil, errorf(http.StatusUnauthorized, "unauthenticated",
			"send Authorization: Bearer <GitHub Actions OIDC token>, or %s and %s", relayclient.HeaderSignature, relayclient.HeaderTimestamp)
	}
}

// bearer extracts the token of an "Authorization: Bearer <token>" header.
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// verifyHMAC checks an HMAC registration: the timestamp within [HMACWindow] of now, then the
// signature in constant time.
func verifyHMAC(secret []byte, sig, ts string, body []byte, now time.Time) error {
	if err := checkTimestamp(ts, now); err != nil {
		return err
	}
	hexSig, ok := strings.CutPrefix(sig, relayclient.SignaturePrefix)
	if !ok {
		return errorf(http.StatusUnauthorized, "bad_signature", "%s must be \"sha256=<hex>\"", relayclient.HeaderSignature)
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return errorf(http.StatusUnauthorized, "bad_signature", "%s must be \"sha256=<64 hex characters>\"", relayclient.HeaderSignature)
	}
	if !hmac.Equal(got, relayclient.MAC(secret, ts, body)) {
		return errorf(http.StatusUnauthorized, "bad_signature", "signature does not match the body and timestamp")
	}
	return nil
}

// checkTimestamp checks X-Ferry-Timestamp: unix seconds within [HMACWindow] of now.
func checkTimestamp(ts string, now time.Time) error {
	if ts == "" {
		return errorf(http.StatusUnauthorized, "bad_signature", "%s is required with %s", relayclient.HeaderTimestamp, relayclient.HeaderSignature)
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(ts) > 12 {
		return errorf(http.StatusUnauthorized, "bad_signature", "%s must be unix seconds", relayclient.HeaderTimestamp)
	}
	if d := now.Sub(time.Unix(secs, 0)); d > HMACWindow || d < -HMACWindow {
		return errorf(http.StatusUnauthorized, "stale_signature", "%s is %s away from the relay's clock (allowed: %s)", relayclient.HeaderTimestamp, d.Round(time.Second), HMACWindow)
	}
	return nil
}

// tokenEqual compares a presented token with the expected one in constant time, including
// their lengths (both are hashed first).
func tokenEqual(got, want string) bool {
	g := sha256.Sum256([]byte(got))
	w := sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// actionsClaims are the GitHub Actions OIDC claims the relay uses.
type actionsClaims struct {
	Repository     string `json:"repository"`
	Ref            string `json:"ref"`
	SHA            string `json:"sha"`
	EventName      string `json:"event_name"`
	JobWorkflowRef string `json:"job_workflow_ref"`
}

// oidcVerifier verifies GitHub Actions OIDC tokens. The issuer's discovery document is
// fetched on first use and kept; go-oidc caches the JWKS and refetches it when a token
// names an unknown key.
type oidcVerifier struct {
	issuer   string
	audience string
	client   *http.Client
	now      func() time.Time

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
}

func (v *oidcVerifier) get(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.verifier != nil {
		return v.verifier, nil
	}
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, v.client), v.issuer)
	if err != nil {
		return nil, fmt.Errorf("discover OIDC issuer %q: %w", v.issuer, err)
	}
	v.verifier = p.Verifier(&oidc.Config{ClientID: v.audience, Now: v.now, SupportedSigningAlgs: []string{oidc.RS256}})
	return v.verifier, nil
}

// verify checks the token's signature against the issuer's keys, its issuer, audience
// and expiry, and returns the principal its claims describe.
func (v *oidcVerifier) verify(ctx context.Context, raw string) (*principal, error) {
	ver, err := v.get(ctx)
	if err != nil {
		return nil, &httpError{Status: http.StatusServiceUnavailable, Code: "oidc_unavailable",
			Msg: "cannot reach the OIDC issuer to verify the token; retry later", Err: err}
	}
	tok, err := ver.Verify(ctx, raw)
	if err != nil {
		var expired *oidc.TokenExpiredError
		if errors.As(err, &expired) {
			return nil, &httpError{Status: http.StatusUnauthorized, Code: "token_expired",
				Msg: fmt.Sprintf("the OIDC token expired at %s", expired.Expiry.UTC().Format(time.RFC3339)), Err: err}
		}
		return nil, &httpError{Status: http.StatusUnauthorized, Code: "invalid_token",
			Msg: "the OIDC token is not valid: " + strings.TrimPrefix(err.Error(), "oidc: "), Err: err}
	}
	var cl actionsClaims
	if err := tok.Claims(&cl); err != nil {
		return nil, &httpError{Status: http.StatusUnauthorized, Code: "invalid_token", Msg: "the OIDC token's claims cannot be decoded", Err: err}
	}
	var missing []string
	for name, val := range map[string]string{"repository": cl.Repository, "ref": cl.Ref, "sha": cl.SHA} {
		if val == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, errorf(http.StatusUnauthorized, "invalid_token", "the OIDC token lacks the GitHub Actions claims %s", strings.Join(missing, ", "))
	}
	return &principal{Method: "oidc", Repository: cl.Repository, Ref: cl.Ref, Commit: strings.ToLower(cl.SHA), EventName: cl.EventName, Workflow: cl.JobWorkflowRef}, nil
}
