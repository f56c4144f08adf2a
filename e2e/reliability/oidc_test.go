package reliability

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// issuer is a GitHub-Actions-shaped OIDC issuer served from httptest: discovery and JWKS.
type issuer struct {
	srv *httptest.Server
	key *rsa.PrivateKey
	// discoveries and keyFetches count the requests the relay made.
	discoveries, keyFetches atomic.Int32
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	iss := &issuer{key: rsaKey(t)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		iss.discoveries.Add(1)
		writeJSON(w, map[string]any{
			"issuer": iss.srv.URL, "jwks_uri": iss.srv.URL + "/.well-known/jwks",
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public", "pairwise"},
		})
	})
	mux.HandleFunc("GET /.well-known/jwks", func(w http.ResponseWriter, r *http.Request) {
		iss.keyFetches.Add(1)
		writeJSON(w, map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "kid": "rel", "use": "sig", "alg": "RS256",
			"n": base64.RawURLEncoding.EncodeToString(iss.key.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(iss.key.E)).Bytes()),
		}}})
	})
	iss.srv = httptest.NewServer(mux)
	t.Cleanup(iss.srv.Close)
	return iss
}

func rsaKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// tokenOpts varies a token from the valid one.
type tokenOpts struct {
	Repository string
	Audience   string
	Expiry     time.Time
	Key        *rsa.PrivateKey // default the issuer's
	Ref, SHA   string
	// Event is the event_name claim (default "push"); RepositoryID, when set, the
	// repository_id claim.
	Event        string
	RepositoryID string
}

// token returns an RS256 GitHub Actions OIDC token for a push of ref at sha.
func (iss *issuer) token(t *testing.T, o tokenOpts) string {
	t.Helper()
	now := time.Now()
	if o.Repository == "" {
		o.Repository = repository
	}
	if o.Audience == "" {
		o.Audience = oidcAudience
	}
	if o.Expiry.IsZero() {
		o.Expiry = now.Add(5 * time.Minute)
	}
	if o.Key == nil {
		o.Key = iss.key
	}
	if o.Event == "" {
		o.Event = "push"
	}
	claims := map[string]any{
		"iss": iss.srv.URL, "aud": o.Audience, "iat": now.Add(-10 * time.Minute).Unix(), "nbf": now.Add(-10 * time.Minute).Unix(),
		"exp": o.Expiry.Unix(), "sub": "repo:" + o.Repository + ":ref:" + o.Ref, "repository": o.Repository,
		"repository_owner": "acme", "ref": o.Ref, "sha": o.SHA, "event_name": o.Event,
		"job_workflow_ref": o.Repository + "/.github/workflows/release.yml@" + o.Ref, "runner_environment": "github-hosted",
	}
	if o.RepositoryID != "" {
		claims["repository_id"] = o.RepositoryID
	}
	enc := func(v any) string { return base64.RawURLEncoding.EncodeToString(mustJSON(t, v)) }
	signing := enc(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "rel"}) + "." + enc(claims)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, o.Key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}
