package control

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relayclient"
)

// principal is who a registration comes from, as established by its credentials.
type principal struct {
	// Method is "oidc", "hmac" or "token" (an API token with the publisher role).
	Method string
	// Repository, Ref and Commit come from the OIDC token's claims; they are empty for
	// HMAC and token registrations (the body supplies ref and commit, the app's
	// configuration the repository).
	Repository string
	Ref        string
	Commit     string
	// RepositoryID is the token's repository_id claim (OIDC only), GitHub's numeric id of
	// the repository in decimal.
	RepositoryID string
	// EventName is the workflow's triggering event (OIDC only).
	EventName string
	// Workflow is the token's job_workflow_ref (OIDC only), for logs and audit.
	Workflow string
	// RunID is the token's run_id claim (OIDC only), for the audit log.
	RunID string
	// key is the HMAC secret that signed the request (HMAC only): it speaks for some apps.
	key *sharedKey
	// token is the API token's principal (token only).
	token *access.Principal
}

// fromPullRequest reports whether the principal's workflow ran for a pull request, whose
// bundles may register but never move a channel. (pull_request_target runs are refused
// earlier.)
func (p *principal) fromPullRequest(ref string) bool {
	return p.EventName == "pull_request" || strings.HasPrefix(ref, "refs/pull/")
}

// mayNameChannel reports whether a registration of ref by this principal may move the
// channel ch it names explicitly. OIDC credentials are per app and carry the ref the
// workflow ran for, and API tokens are narrow credentials a CI may hold for one app: an
// explicit channel is honoured only if the app's ref rules map that ref to ch, or ch's
// allow_refs list it (channel.App.RefMayTarget). HMAC registrations hold the app's (or the
// relay-wide) shared secret, which is full trust: their explicit channel is honoured as
// given (docs/security.md, "HMAC registration").
func (p *principal) mayNameChannel(app *channel.App, ref, ch string) bool {
	if p.Method == "hmac" {
		return true
	}
	return app.RefMayTarget(ref, ch)
}

// actor is the audit log's name for the registration: for an API token the token itself
// (kind "token", its id and name, as on the admin API); otherwise kind "ci", the
// repository, the workflow, and as id the run (OIDC) or "hmac".
func (p *principal) actor(repository, ip string) *channel.Actor {
	switch p.Method {
	case "token":
		return &channel.Actor{Kind: string(access.TokenKind), ID: p.token.ID, Name: p.token.Name, IP: ip}
	case "hmac":
		return &channel.Actor{Kind: "ci", ID: "hmac", Name: repository, IP: ip}
	}
	return &channel.Actor{Kind: "ci", ID: p.RunID, Name: repository, Workflow: p.Workflow, IP: ip}
}

// authenticateRegistration checks the registration's (or preflight's) credentials and
// returns the raw body, which it reads (bounded by limit) only once whatever can be checked
// without it passed: an OIDC token or an API token is verified before the body is read, an
// HMAC timestamp is checked before and the signature after. It never parses the body; which
// apps the credential may register for is checked once the body names the app.
func (a *API) authenticateRegistration(c *gin.Context, limit int64) (*principal, []byte, error) {
	authz := c.GetHeader("Authorization")
	sig := c.GetHeader(relayclient.HeaderSignature)
	switch {
	case authz != "":
		tok, ok := bearer(authz)
		if !ok {
			return nil, nil, errorf(http.StatusUnauthorized, "unauthenticated", "the Authorization header must be \"Bearer <GitHub Actions OIDC token or Ferry API token>\"")
		}
		if access.LooksLikeToken(tok) {
			p, err := a.authenticate(c)
			if err != nil {
				return nil, nil, err
			}
			body, err := readBody(c, limit)
			return &principal{Method: "token", token: p}, body, err
		}
		if a.oidc == nil {
			return nil, nil, errorf(http.StatusUnauthorized, "oidc_disabled", "OIDC registration is disabled on this relay (no audience configured); use HMAC or a publisher API token, or ask the operator to set the OIDC audience")
		}
		who, err := a.oidc.verify(c.Request.Context(), tok)
		if err != nil {
			return nil, nil, err
		}
		body, err := readBody(c, limit)
		return who, body, err
	case sig != "":
		if len(a.hmacKeys) == 0 {
			return nil, nil, errorf(http.StatusUnauthorized, "hmac_disabled", "HMAC registration is disabled on this relay (neither FERRY_HMAC_SECRET nor any app's hmac_secret_env is set)")
		}
		ts := c.GetHeader(relayclient.HeaderTimestamp)
		if err := checkTimestamp(ts, a.now()); err != nil {
			return nil, nil, err
		}
		body, err := readBody(c, limit)
		if err != nil {
			return nil, nil, err
		}
		key, err := verifyHMAC(a.hmacKeys, sig, ts, body, a.now())
		if err != nil {
			return nil, nil, err
		}
		return &principal{Method: "hmac", key: key}, body, nil
	default:
		return nil, nil, errorf(http.StatusUnauthorized, "unauthenticated",
			"send Authorization: Bearer <GitHub Actions OIDC token or Ferry API token>, or %s and %s", relayclient.HeaderSignature, relayclient.HeaderTimestamp)
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
// signature in constant time against every key. It returns the key that signed; whether
// that key speaks for the app the body names is checked once the body is parsed.
func verifyHMAC(keys []*sharedKey, sig, ts string, body []byte, now time.Time) (*sharedKey, error) {
	if err := checkTimestamp(ts, now); err != nil {
		return nil, err
	}
	hexSig, ok := strings.CutPrefix(sig, relayclient.SignaturePrefix)
	if !ok {
		return nil, errorf(http.StatusUnauthorized, "bad_signature", "%s must be \"sha256=<hex>\"", relayclient.HeaderSignature)
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return nil, errorf(http.StatusUnauthorized, "bad_signature", "%s must be \"sha256=<64 hex characters>\"", relayclient.HeaderSignature)
	}
	key := matchKey(keys, got, func(secret []byte) []byte { return relayclient.MAC(secret, ts, body) })
	if key == nil {
		return nil, errorf(http.StatusUnauthorized, "bad_signature", "signature does not match the body and timestamp")
	}
	return key, nil
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
