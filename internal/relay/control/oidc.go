package control

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// Bounds of OIDC verification.
const (
	// OIDCClockSkew is how far in the future a token's iat may lie (the issuer's clock may
	// run slightly ahead of the relay's).
	OIDCClockSkew = time.Minute
	// OIDCMaxTokenAge is how old a token may be (now - iat). GitHub's Actions tokens are
	// valid for minutes and the action asks for a fresh one for every attempt, so an older
	// token is refused even if its exp says otherwise.
	OIDCMaxTokenAge = 20 * time.Minute
	// KeyRefreshBurst and KeyRefreshInterval bound how often the issuer's keys are fetched:
	// at most KeyRefreshBurst fetches in any KeyRefreshInterval, whatever tokens arrive. A
	// token naming a key id the relay does not know triggers a fetch only within that
	// budget; a known key id never triggers one.
	KeyRefreshBurst    = 3
	KeyRefreshInterval = time.Minute
	// DiscoveryRetryInterval is how long a failed discovery of the issuer is remembered:
	// tokens arriving within it are answered 503 without asking the issuer again.
	DiscoveryRetryInterval = 10 * time.Second
	// maxJWKSBody bounds the issuer's key set document; maxTokenLen bounds a token.
	maxJWKSBody = 1 << 20
	maxTokenLen = 16 << 10
)

// actionsClaims are the GitHub Actions OIDC claims the relay uses.
type actionsClaims struct {
	Repository     string `json:"repository"`
	RepositoryID   string `json:"repository_id"`
	Ref            string `json:"ref"`
	SHA            string `json:"sha"`
	EventName      string `json:"event_name"`
	JobWorkflowRef string `json:"job_workflow_ref"`
	RunID          string `json:"run_id"`
}

// oidcVerifier verifies GitHub Actions OIDC tokens. Cheap checks come first: the token's
// unverified header and claims (algorithm, issuer, audience, expiry, issue time) are
// checked before the issuer is asked for anything, so forged tokens with a wrong audience
// or an old date cost no request to the issuer; the signature still decides. The
// discovery document is fetched on first use and kept (a failure is remembered for
// [DiscoveryRetryInterval]); keys are cached and refetched only for an unknown key id, at
// most [KeyRefreshBurst] times per [KeyRefreshInterval].
type oidcVerifier struct {
	issuer   string
	audience string
	client   *http.Client
	now      func() time.Time

	mu        sync.Mutex
	verifier  *oidc.IDTokenVerifier
	keys      *keySet
	failedAt  time.Time // last failed discovery
	failedErr error
}

func newOIDCVerifier(issuer, audience string, client *http.Client, now func() time.Time) *oidcVerifier {
	return &oidcVerifier{issuer: issuer, audience: audience, client: client, now: now}
}

func (v *oidcVerifier) get(ctx context.Context) (*oidc.IDTokenVerifier, *keySet, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.verifier != nil {
		return v.verifier, v.keys, nil
	}
	if v.failedErr != nil && v.now().Sub(v.failedAt) < DiscoveryRetryInterval {
		return nil, nil, v.failedErr
	}
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, v.client), v.issuer)
	var doc struct {
		JWKSURL string `json:"jwks_uri"`
	}
	if err == nil {
		err = p.Claims(&doc)
	}
	if err == nil && doc.JWKSURL == "" {
		err = errors.New("the discovery document has no jwks_uri")
	}
	if err != nil {
		v.failedAt, v.failedErr = v.now(), fmt.Errorf("discover OIDC issuer %q: %w", v.issuer, err)
		return nil, nil, v.failedErr
	}
	v.keys = &keySet{url: doc.JWKSURL, client: v.client, now: v.now}
	v.verifier = oidc.NewVerifier(v.issuer, v.keys, &oidc.Config{ClientID: v.audience, Now: v.now, SupportedSigningAlgs: []string{oidc.RS256}})
	return v.verifier, v.keys, nil
}

// verify checks the token's claims, its signature against the issuer's keys, and returns
// the principal its claims describe.
func (v *oidcVerifier) verify(ctx context.Context, raw string) (*principal, error) {
	kid, err := v.precheck(raw)
	if err != nil {
		return nil, err
	}
	ver, keys, err := v.get(ctx)
	if err != nil {
		return nil, &httpError{Status: http.StatusServiceUnavailable, Code: "oidc_unavailable",
			Msg: "cannot reach the OIDC issuer to verify the token; retry later", Err: err}
	}
	if err := keys.prepare(ctx, kid); err != nil {
		return nil, &httpError{Status: http.StatusServiceUnavailable, Code: "oidc_unavailable",
			Msg: "cannot fetch the OIDC issuer's keys to verify the token; retry later", Err: err}
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
	// The signature holds: check the issue time again on the verified claims.
	if err := v.checkIssuedAt(tok.IssuedAt); err != nil {
		return nil, err
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
	return &principal{Method: "oidc", Repository: cl.Repository, RepositoryID: cl.RepositoryID, Ref: cl.Ref, Commit: strings.ToLower(cl.SHA),
		EventName: cl.EventName, Workflow: cl.JobWorkflowRef, RunID: cl.RunID}, nil
}

// unverifiedClaims are the registered claims precheck reads before the signature is known
// to hold.
type unverifiedClaims struct {
	Issuer   string          `json:"iss"`
	Audience json.RawMessage `json:"aud"`
	Expiry   *json.Number    `json:"exp"`
	IssuedAt *json.Number    `json:"iat"`
}

// precheck reads the token's header and claims without verifying the signature and refuses
// what no signature could make acceptable: another algorithm, issuer or audience, an
// expired token, a token issued in the future or too long ago. It is only a filter that
// spares the issuer requests for such tokens; go-oidc's verification after it decides. It
// returns the header's key id.
func (v *oidcVerifier) precheck(raw string) (kid string, err error) {
	invalid := func(msg string) error {
		return errorf(http.StatusUnauthorized, "invalid_token", "the OIDC token is not valid: %s", msg)
	}
	if len(raw) > maxTokenLen {
		return "", invalid(fmt.Sprintf("longer than %d bytes", maxTokenLen))
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", invalid("malformed jwt: not three dot-separated parts")
	}
	var hdr struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return "", invalid("malformed jwt header")
	}
	if hdr.Alg != oidc.RS256 {
		return "", invalid(fmt.Sprintf("signed with %q; want %s", hdr.Alg, oidc.RS256))
	}
	var cl unverifiedClaims
	if err := decodeSegment(parts[1], &cl); err != nil {
		return "", invalid("malformed jwt claims")
	}
	if cl.Issuer != v.issuer {
		return "", invalid(fmt.Sprintf("id token issued by a different provider, expected %q got %q", v.issuer, cl.Issuer))
	}
	if !audienceHas(cl.Audience, v.audience) {
		return "", invalid(fmt.Sprintf("expected audience %q", v.audience))
	}
	exp, ok := unixClaim(cl.Expiry)
	if !ok {
		return "", invalid("no valid exp claim")
	}
	if exp.Before(v.now()) {
		return "", errorf(http.StatusUnauthorized, "token_expired", "the OIDC token expired at %s", exp.UTC().Format(time.RFC3339))
	}
	iat, ok := unixClaim(cl.IssuedAt)
	if !ok {
		return "", invalid("no valid iat claim")
	}
	if err := v.checkIssuedAt(iat); err != nil {
		return "", err
	}
	return hdr.Kid, nil
}

// checkIssuedAt refuses a token issued in the future (beyond [OIDCClockSkew]) or more than
// [OIDCMaxTokenAge] ago.
func (v *oidcVerifier) checkIssuedAt(iat time.Time) error {
	now := v.now()
	switch {
	case iat.IsZero():
		return errorf(http.StatusUnauthorized, "invalid_token", "the OIDC token is not valid: no iat claim")
	case iat.After(now.Add(OIDCClockSkew)):
		return errorf(http.StatusUnauthorized, "invalid_token", "the OIDC token is not valid: issued at %s, in the future", iat.UTC().Format(time.RFC3339))
	case now.Sub(iat) > OIDCMaxTokenAge:
		return errorf(http.StatusUnauthorized, "token_expired", "the OIDC token was issued at %s, more than %s ago; ask for a fresh token", iat.UTC().Format(time.RFC3339), OIDCMaxTokenAge)
	}
	return nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

// audienceHas reports whether the aud claim (a string or an array of strings) names want.
func audienceHas(raw json.RawMessage, want string) bool {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one == want
	}
	var many []string
	return json.Unmarshal(raw, &many) == nil && slices.Contains(many, want)
}

// unixClaim reads a NumericDate claim.
func unixClaim(n *json.Number) (time.Time, bool) {
	if n == nil {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || f <= 0 || f > 1e11 {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

// keySet is the issuer's signing keys, cached by key id. It implements go-oidc's KeySet:
// VerifySignature only ever uses the cache; [keySet.prepare], called before verification,
// fetches the keys when the token names a key id the cache lacks, within the refresh
// budget. A token whose key id is known but whose signature does not match is refused
// without a fetch (go-oidc's own RemoteKeySet refetches for every signature that fails).
type keySet struct {
	url    string
	client *http.Client
	now    func() time.Time

	fetchMu sync.Mutex // one fetch at a time; waiters then find the keys it fetched

	mu      sync.RWMutex
	keys    map[string]*rsa.PublicKey
	fetches []time.Time // fetches within the last KeyRefreshInterval
}

func (k *keySet) lookup(kid string) (*rsa.PublicKey, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if kid == "" && len(k.keys) == 1 {
		for _, key := range k.keys {
			return key, true
		}
	}
	key, ok := k.keys[kid]
	return key, ok
}

// prepare makes sure the key kid is cached, fetching the key set if it is not and the
// refresh budget allows. An unknown key id beyond the budget is no error here: the
// verification then fails for want of the key.
func (k *keySet) prepare(ctx context.Context, kid string) error {
	if _, ok := k.lookup(kid); ok {
		return nil
	}
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	if _, ok := k.lookup(kid); ok { // fetched while this call waited
		return nil
	}
	now := k.now()
	k.mu.Lock()
	k.fetches = slices.DeleteFunc(k.fetches, func(t time.Time) bool { return now.Sub(t) >= KeyRefreshInterval })
	if len(k.fetches) >= KeyRefreshBurst {
		k.mu.Unlock()
		return nil
	}
	k.fetches = append(k.fetches, now)
	k.mu.Unlock()
	keys, err := k.fetch(ctx)
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.keys = keys
	k.mu.Unlock()
	return nil
}

// fetch downloads and parses the key set: its RSA signing keys by key id.
func (k *keySet) fetch(ctx context.Context) (map[string]*rsa.PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch OIDC keys: %w", err)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch OIDC keys: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBody+1))
	if err != nil {
		return nil, fmt.Errorf("fetch OIDC keys: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch OIDC keys: %s", resp.Status)
	}
	if len(body) > maxJWKSBody {
		return nil, fmt.Errorf("fetch OIDC keys: key set larger than %d bytes", maxJWKSBody)
	}
	var doc struct {
		Keys []struct {
			Kty string `json:"kty"`
			Use string `json:"use"`
			Kid string `json:"kid"`
			N   string `json:"n"`
			E   string `json:"e"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("decode OIDC keys: %w", err)
	}
	keys := map[string]*rsa.PublicKey{}
	for _, jk := range doc.Keys {
		if jk.Kty != "RSA" || (jk.Use != "" && jk.Use != "sig") {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(strings.TrimRight(jk.N, "="))
		e, err2 := base64.RawURLEncoding.DecodeString(strings.TrimRight(jk.E, "="))
		if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
			continue
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if pub.N.BitLen() < 2048 || pub.E < 3 {
			continue
		}
		keys[jk.Kid] = pub
	}
	if len(keys) == 0 {
		return nil, errors.New("fetch OIDC keys: the key set has no RSA signing key")
	}
	return keys, nil
}

// VerifySignature verifies jwt with the cached key its header names (go-oidc has already
// checked the algorithm). It never fetches.
func (k *keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	hdr, _, _ := strings.Cut(jwt, ".")
	var h struct {
		Kid string `json:"kid"`
	}
	if err := decodeSegment(hdr, &h); err != nil {
		return nil, errors.New("malformed jwt header")
	}
	key, ok := k.lookup(h.Kid)
	if !ok {
		return nil, fmt.Errorf("the token's key id %q is not among the issuer's keys", h.Kid)
	}
	return (&oidc.StaticKeySet{PublicKeys: []crypto.PublicKey{key}}).VerifySignature(ctx, jwt)
}
