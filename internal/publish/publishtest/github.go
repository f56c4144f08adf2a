// Package publishtest provides a fake GitHub REST API for tests of code that publishes
// release assets: the endpoints go-github v60 calls for releases and assets, an uploads
// host path, browser downloads, and injectable failures (rate limits, 5xx, uploads that
// break half-way). It keeps real GitHub semantics where they matter: GetReleaseByTag does
// not see drafts, duplicate release tags and asset names answer 422 already_exists, a
// broken upload leaves an asset in the "starter" state, and only "uploaded" assets download.
//
//	gh := publishtest.NewGitHub(t, "acme/app")
//	gh.Fail("upload", publishtest.Fault{Status: 502})
//	// GITHUB_API_URL=gh.URL GITHUB_SERVER_URL=gh.URL GITHUB_TOKEN=gh.Token
package publishtest

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v4"
)

// Fault is one injected failure, consumed by the next request of its kind.
type Fault struct {
	// Status is the HTTP status answered (e.g. 500, 403, 429).
	Status int
	// PrimaryRateLimit answers 403 with X-RateLimit-Remaining: 0 and a reset ResetIn from now.
	PrimaryRateLimit bool
	ResetIn          time.Duration
	// SecondaryRateLimit answers 403 with the secondary-limit documentation URL and
	// Retry-After: RetryAfter seconds.
	SecondaryRateLimit bool
	RetryAfter         int
	// HalfUpload (uploads only) reads half the body, records a "starter" asset, then answers
	// Status (default 502), as when GitHub's upload breaks part-way.
	HalfUpload bool
	// Before, when set, runs before the request is handled (e.g. to simulate a concurrent
	// run creating the release or asset first). With no other field set the request is then
	// handled normally.
	Before func()
}

// Asset is a stored release asset.
type Asset struct {
	ID          int64
	Name        string
	State       string // "uploaded" or "starter"
	ContentType string
	Content     []byte
}

// Release is a stored release.
type Release struct {
	ID         int64
	Tag        string
	Target     string
	Name       string
	Draft      bool
	Prerelease bool
	Assets     []*Asset
}

// GitHub is the fake. Its methods are safe for concurrent use.
type GitHub struct {
	// URL is both GITHUB_API_URL and GITHUB_SERVER_URL: the API is under /api/v3/, uploads
	// under /api/uploads/ and browser downloads under /{owner}/{repo}/releases/download/.
	URL string
	// Token is the token the fake accepts.
	Token string
	Repo  string
	// Private makes the repository private: GET /repos/{owner}/{repo} says so, and browser
	// download URLs answer 404 without a login, as GitHub's do. Set it before use.
	Private bool
	// SignedURLLifetime is how long the object-store URLs the asset API redirects to stay
	// valid (X-Amz-Expires); default 5 minutes, GitHub's lifetime for these URLs.
	SignedURLLifetime time.Duration
	// Now is the fake's clock for signing and checking those URLs; nil means time.Now.
	Now func() time.Time

	signKey []byte
	// GitHub App installation (see InstallApp).
	appID, installationID int64
	appKey                *rsa.PublicKey
	// InstallationTokenLifetime is how long minted installation tokens work; default 1 hour,
	// GitHub's.
	InstallationTokenLifetime time.Duration
	instTokens                map[string]time.Time // token → expiry

	mu           sync.Mutex
	releases     []*Release
	nextID       int64
	faults       map[string][]Fault
	requests     map[string]int
	attestations [][]byte
}

// Attestations returns the Sigstore bundles posted to the attestations API.
func (g *GitHub) Attestations() [][]byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([][]byte(nil), g.attestations...)
}

func (g *GitHub) attest(w http.ResponseWriter, r *http.Request, _ *Fault) {
	var req struct {
		Bundle json.RawMessage `json:"bundle"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 16<<20)).Decode(&req); err != nil || len(req.Bundle) == 0 {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": "bundle is required"})
		return
	}
	g.mu.Lock()
	g.attestations = append(g.attestations, req.Bundle)
	id := len(g.attestations)
	g.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]int{"id": id})
}

// NewGitHub starts a fake for repository "owner/name"; it stops when the test ends.
// Fault kinds are "get-repo", "get-release", "list-releases", "create-release", "list-assets",
// "delete-asset", "download-asset", "upload" and "attestation".
func NewGitHub(t testing.TB, repo string) *GitHub {
	t.Helper()
	g := &GitHub{Token: "ghs_faketoken", Repo: repo, nextID: 100, faults: map[string][]Fault{}, requests: map[string]int{}, signKey: make([]byte, 32)}
	_, _ = rand.Read(g.signKey)
	mux := http.NewServeMux()
	p := "/api/v3/repos/" + repo
	mux.HandleFunc("GET "+p, g.api("get-repo", g.getRepo))
	mux.HandleFunc("GET "+p+"/releases", g.api("list-releases", g.listReleases))
	mux.HandleFunc("POST "+p+"/releases", g.api("create-release", g.createRelease))
	mux.HandleFunc("DELETE "+p+"/releases/assets/{id}", g.api("delete-asset", g.deleteAsset))
	// releases/tags/{tag}, releases/assets/{id} and releases/{id}/assets overlap as patterns.
	getTag, getAsset, listAssets := g.api("get-release", g.getByTag), g.api("download-asset", g.downloadAsset), g.api("list-assets", g.listAssets)
	mux.HandleFunc("GET "+p+"/releases/{a}/{b}", func(w http.ResponseWriter, r *http.Request) {
		a, b := r.PathValue("a"), r.PathValue("b")
		switch {
		case a == "tags":
			r.SetPathValue("tag", b)
			getTag(w, r)
		case a == "assets":
			r.SetPathValue("id", b)
			getAsset(w, r)
		case b == "assets":
			r.SetPathValue("id", a)
			listAssets(w, r)
		default:
			notFound(w)
		}
	})
	mux.HandleFunc("POST /api/uploads/repos/"+repo+"/releases/{id}/assets", g.api("upload", g.upload))
	mux.HandleFunc("GET /"+repo+"/releases/download/{tag}/{name}", g.browserDownload)
	mux.HandleFunc("GET /objects/{id}", g.objectDownload)
	mux.HandleFunc("POST /api/v3/app/installations/{id}/access_tokens", g.accessToken)
	// The attestations API, under /api/v3 (GHES style) and at the root (api.github.com style).
	mux.HandleFunc("POST /api/v3/repos/"+repo+"/attestations", g.api("attestation", g.attest))
	mux.HandleFunc("POST /repos/"+repo+"/attestations", g.api("attestation", g.attest))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	g.URL = srv.URL
	return g
}

// Fail queues faults for the next requests of kind.
func (g *GitHub) Fail(kind string, faults ...Fault) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.faults[kind] = append(g.faults[kind], faults...)
}

// Requests returns how many requests of kind arrived (faulted ones included).
func (g *GitHub) Requests(kind string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.requests[kind]
}

// AddRelease stores a release, e.g. a draft, as if made by someone else.
func (g *GitHub) AddRelease(tag string, draft bool) *Release {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.nextID++
	r := &Release{ID: g.nextID, Tag: tag, Name: tag, Draft: draft}
	g.releases = append(g.releases, r)
	return r
}

// AddAsset stores an uploaded asset in the release for tag, as if uploaded earlier.
func (g *GitHub) AddAsset(tag, name string, content []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, r := range g.releases {
		if r.Tag == tag {
			g.nextID++
			r.Assets = append(r.Assets, &Asset{ID: g.nextID, Name: name, State: "uploaded", ContentType: "application/octet-stream", Content: content})
		}
	}
}

// Releases returns a snapshot of the stored releases.
func (g *GitHub) Releases() []Release {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Release, 0, len(g.releases))
	for _, r := range g.releases {
		c := *r
		c.Assets = nil
		for _, a := range r.Assets {
			ac := *a
			c.Assets = append(c.Assets, &ac)
		}
		out = append(out, c)
	}
	return out
}

// Asset returns the content of the asset name in the release for tag, and whether it
// exists in the "uploaded" state.
func (g *GitHub) Asset(tag, name string) ([]byte, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, r := range g.releases {
		if r.Tag != tag {
			continue
		}
		for _, a := range r.Assets {
			if a.Name == name && a.State == "uploaded" {
				return a.Content, true
			}
		}
	}
	return nil, false
}

// api wraps a handler with auth, request counting and fault injection. Faults are
// answered after the body has been read by the handler only for HalfUpload.
func (g *GitHub) api(kind string, h func(w http.ResponseWriter, r *http.Request, f *Fault)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.requests[kind]++
		var f *Fault
		if q := g.faults[kind]; len(q) > 0 {
			f = &q[0]
			g.faults[kind] = q[1:]
		}
		g.mu.Unlock()
		w.Header().Set("X-RateLimit-Limit", "5000")
		w.Header().Set("X-RateLimit-Remaining", "4999")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10))
		if !g.authorized(r.Header.Get("Authorization")) {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})
			return
		}
		if f != nil && f.Before != nil {
			f.Before()
		}
		switch {
		case f == nil || f.HalfUpload || (f.Status == 0 && !f.PrimaryRateLimit && !f.SecondaryRateLimit):
			h(w, r, f)
		case f.PrimaryRateLimit:
			w.Header().Set("X-RateLimit-Remaining", "0")
			w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(f.ResetIn).Unix(), 10))
			writeJSON(w, http.StatusForbidden, map[string]string{"message": "API rate limit exceeded for installation ID 1.", "documentation_url": "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"})
		case f.SecondaryRateLimit:
			w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
			writeJSON(w, http.StatusForbidden, map[string]string{"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"})
		default:
			writeJSON(w, f.Status, map[string]string{"message": http.StatusText(f.Status)})
		}
	}
}

// InstallApp registers a GitHub App installed on the repository and returns its ids and
// private key (PEM). Tokens it mints at POST /app/installations/{id}/access_tokens (with a
// JWT signed by that key) are accepted like Token until they expire.
func (g *GitHub) InstallApp(t testing.TB) (appID, installationID int64, keyPEM []byte) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.appID, g.installationID, g.appKey = 4242, 777, &k.PublicKey
	return g.appID, g.installationID, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

// authorized accepts the fake's token or an unexpired installation token, in either of
// the forms GitHub takes ("Bearer x", "token x").
func (g *GitHub) authorized(h string) bool {
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(h, "token ")
	}
	if !ok {
		return false
	}
	if tok == g.Token {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	exp, ok := g.instTokens[tok]
	return ok && g.now().Before(exp)
}

// accessToken mints an installation token for a request carrying a JWT the App's key
// signed (RS256, iss the App id, not expired), as GitHub does.
func (g *GitHub) accessToken(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	g.requests["access-token"]++
	key, appID, inst := g.appKey, g.appID, g.installationID
	g.mu.Unlock()
	raw, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	claims := jwt.RegisteredClaims{}
	_, err := jwt.ParseWithClaims(raw, &claims, func(tk *jwt.Token) (any, error) {
		if key == nil {
			return nil, fmt.Errorf("no app installed")
		}
		return key, nil
	}, jwt.WithValidMethods([]string{"RS256"}))
	if err != nil || claims.Issuer != strconv.FormatInt(appID, 10) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "A JSON web token could not be decoded", "documentation_url": "https://docs.github.com/rest"})
		return
	}
	if r.PathValue("id") != strconv.FormatInt(inst, 10) {
		notFound(w)
		return
	}
	life := g.InstallationTokenLifetime
	if life <= 0 {
		life = time.Hour
	}
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	tok := "ghs_" + hex.EncodeToString(b)
	g.mu.Lock()
	exp := g.now().Add(life)
	if g.instTokens == nil {
		g.instTokens = map[string]time.Time{}
	}
	g.instTokens[tok] = exp
	g.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{"token": tok, "expires_at": exp.UTC().Format(time.RFC3339), "permissions": map[string]string{"contents": "read"}, "repository_selection": "selected"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func notFound(w http.ResponseWriter) {
	writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
}

func alreadyExists(w http.ResponseWriter, resource, field string) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
		"message": "Validation Failed",
		"errors":  []map[string]string{{"resource": resource, "code": "already_exists", "field": field}},
	})
}

func (g *GitHub) releaseJSON(r *Release) map[string]any {
	assets := []map[string]any{}
	for _, a := range r.Assets {
		assets = append(assets, g.assetJSON(r, a))
	}
	return map[string]any{
		"id": r.ID, "tag_name": r.Tag, "target_commitish": r.Target, "name": r.Name, "draft": r.Draft, "prerelease": r.Prerelease,
		"url":        fmt.Sprintf("%s/api/v3/repos/%s/releases/%d", g.URL, g.Repo, r.ID),
		"upload_url": fmt.Sprintf("%s/api/uploads/repos/%s/releases/%d/assets{?name,label}", g.URL, g.Repo, r.ID),
		"assets":     assets,
	}
}

func (g *GitHub) assetJSON(r *Release, a *Asset) map[string]any {
	tag := r.Tag
	if r.Draft {
		tag = fmt.Sprintf("untagged-%d", r.ID)
	}
	return map[string]any{
		"id": a.ID, "name": a.Name, "state": a.State, "content_type": a.ContentType, "size": len(a.Content),
		"url":                  fmt.Sprintf("%s/api/v3/repos/%s/releases/assets/%d", g.URL, g.Repo, a.ID),
		"browser_download_url": fmt.Sprintf("%s/%s/releases/download/%s/%s", g.URL, g.Repo, tag, a.Name),
	}
}

func (g *GitHub) getByTag(w http.ResponseWriter, r *http.Request, _ *Fault) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, rel := range g.releases {
		if rel.Tag == r.PathValue("tag") && !rel.Draft {
			writeJSON(w, http.StatusOK, g.releaseJSON(rel))
			return
		}
	}
	notFound(w)
}

func (g *GitHub) getRepo(w http.ResponseWriter, _ *http.Request, _ *Fault) {
	g.mu.Lock()
	defer g.mu.Unlock()
	owner, name, _ := strings.Cut(g.Repo, "/")
	vis := "public"
	if g.Private {
		vis = "private"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": 700000001, "name": name, "full_name": g.Repo, "private": g.Private, "visibility": vis,
		"owner": map[string]any{"login": owner},
		"url":   fmt.Sprintf("%s/api/v3/repos/%s", g.URL, g.Repo),
	})
}

func (g *GitHub) listReleases(w http.ResponseWriter, _ *http.Request, _ *Fault) {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := []map[string]any{}
	for i := len(g.releases) - 1; i >= 0; i-- {
		out = append(out, g.releaseJSON(g.releases[i]))
	}
	writeJSON(w, http.StatusOK, out)
}

func (g *GitHub) createRelease(w http.ResponseWriter, r *http.Request, _ *Fault) {
	var req struct {
		TagName         string `json:"tag_name"`
		TargetCommitish string `json:"target_commitish"`
		Name            string `json:"name"`
		Draft           bool   `json:"draft"`
		Prerelease      bool   `json:"prerelease"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.TagName == "" {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "Validation Failed", "errors": []map[string]string{{"resource": "Release", "code": "missing_field", "field": "tag_name"}}})
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, rel := range g.releases {
		if rel.Tag == req.TagName {
			alreadyExists(w, "Release", "tag_name")
			return
		}
	}
	g.nextID++
	rel := &Release{ID: g.nextID, Tag: req.TagName, Target: req.TargetCommitish, Name: req.Name, Draft: req.Draft, Prerelease: req.Prerelease}
	g.releases = append(g.releases, rel)
	writeJSON(w, http.StatusCreated, g.releaseJSON(rel))
}

// find returns the release with id and, if assetID is not 0, its asset. Callers hold g.mu.
func (g *GitHub) find(id, assetID int64) (*Release, *Asset) {
	for _, rel := range g.releases {
		if assetID == 0 && rel.ID == id {
			return rel, nil
		}
		for _, a := range rel.Assets {
			if assetID != 0 && a.ID == assetID {
				return rel, a
			}
		}
	}
	return nil, nil
}

func (g *GitHub) listAssets(w http.ResponseWriter, r *http.Request, _ *Fault) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	g.mu.Lock()
	defer g.mu.Unlock()
	rel, _ := g.find(id, 0)
	if rel == nil {
		notFound(w)
		return
	}
	out := []map[string]any{}
	for _, a := range rel.Assets {
		out = append(out, g.assetJSON(rel, a))
	}
	writeJSON(w, http.StatusOK, out)
}

func (g *GitHub) deleteAsset(w http.ResponseWriter, r *http.Request, _ *Fault) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	g.mu.Lock()
	defer g.mu.Unlock()
	rel, a := g.find(0, id)
	if a == nil {
		notFound(w)
		return
	}
	for i, x := range rel.Assets {
		if x == a {
			rel.Assets = append(rel.Assets[:i], rel.Assets[i+1:]...)
			break
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// downloadAsset answers the API asset URL: JSON, or with Accept: application/octet-stream
// a redirect to the download, like GitHub's redirect to its object store.
func (g *GitHub) downloadAsset(w http.ResponseWriter, r *http.Request, _ *Fault) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	g.mu.Lock()
	defer g.mu.Unlock()
	rel, a := g.find(0, id)
	if a == nil {
		notFound(w)
		return
	}
	if r.Header.Get("Accept") != "application/octet-stream" {
		writeJSON(w, http.StatusOK, g.assetJSON(rel, a))
		return
	}
	http.Redirect(w, r, g.signedURL(a.ID), http.StatusFound)
}

// The asset API redirects to an object store URL signed like an S3 presigned URL
// (AWS Signature V4 query parameters): X-Amz-Date is when it was signed, X-Amz-Expires
// its lifetime in seconds. GitHub's own redirect targets have carried these parameters;
// the signature here is an HMAC of the fake's own, not AWS's algorithm.
const amzDate = "20060102T150405Z"

func (g *GitHub) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

// signedURL returns a short-lived download URL for asset id. Callers hold g.mu.
func (g *GitHub) signedURL(id int64) string {
	life := g.SignedURLLifetime
	if life <= 0 {
		life = 5 * time.Minute
	}
	q := url.Values{}
	q.Set("X-Amz-Algorithm", "AWS4-HMAC-SHA256")
	q.Set("X-Amz-Date", g.now().UTC().Format(amzDate))
	q.Set("X-Amz-Expires", strconv.Itoa(int(life/time.Second)))
	q.Set("X-Amz-SignedHeaders", "host")
	q.Set("X-Amz-Signature", g.sign(id, q))
	return fmt.Sprintf("%s/objects/%d?%s", g.URL, id, q.Encode())
}

func (g *GitHub) sign(id int64, q url.Values) string {
	m := hmac.New(sha256.New, g.signKey)
	fmt.Fprintf(m, "%d\n%s\n%s", id, q.Get("X-Amz-Date"), q.Get("X-Amz-Expires"))
	return hex.EncodeToString(m.Sum(nil))
}

// objectDownload serves a signed URL: 403 (S3's AccessDenied) when the signature is wrong
// or the URL expired, else the content with Range support, as an object store does.
func (g *GitHub) objectDownload(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	q := r.URL.Query()
	g.mu.Lock()
	g.requests["object"]++
	signed, err1 := time.Parse(amzDate, q.Get("X-Amz-Date"))
	secs, err2 := strconv.Atoi(q.Get("X-Amz-Expires"))
	valid := err1 == nil && err2 == nil && hmac.Equal([]byte(q.Get("X-Amz-Signature")), []byte(g.sign(id, q)))
	expired := valid && !g.now().Before(signed.Add(time.Duration(secs)*time.Second))
	_, a := g.find(0, id)
	var content []byte
	if a != nil && a.State == "uploaded" {
		content = a.Content
	}
	g.mu.Unlock()
	switch {
	case !valid:
		http.Error(w, "<Error><Code>AccessDenied</Code><Message>Request has invalid signature</Message></Error>", http.StatusForbidden)
	case expired:
		http.Error(w, "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>", http.StatusForbidden)
	case content == nil:
		http.Error(w, "<Error><Code>NoSuchKey</Code></Error>", http.StatusNotFound)
	default:
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(content))
	}
}

func (g *GitHub) browserDownload(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.Private {
		// GitHub hides a private repository's downloads from anonymous requests.
		http.NotFound(w, r)
		return
	}
	for _, rel := range g.releases {
		if rel.Tag != r.PathValue("tag") && fmt.Sprintf("untagged-%d", rel.ID) != r.PathValue("tag") {
			continue
		}
		for _, a := range rel.Assets {
			if a.Name == r.PathValue("name") && a.State == "uploaded" {
				w.Header().Set("Content-Type", a.ContentType)
				w.Header().Set("Content-Length", strconv.Itoa(len(a.Content)))
				_, _ = w.Write(a.Content)
				return
			}
		}
	}
	http.NotFound(w, r)
}

func (g *GitHub) upload(w http.ResponseWriter, r *http.Request, f *Fault) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	name := r.URL.Query().Get("name")
	if r.ContentLength < 0 {
		writeJSON(w, http.StatusLengthRequired, map[string]string{"message": "Content-Length required"})
		return
	}
	limit := r.ContentLength
	if f != nil && f.HalfUpload {
		limit /= 2
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": err.Error()})
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	rel, _ := g.find(id, 0)
	if rel == nil {
		notFound(w)
		return
	}
	for _, a := range rel.Assets {
		if a.Name == name {
			alreadyExists(w, "ReleaseAsset", "name")
			return
		}
	}
	g.nextID++
	a := &Asset{ID: g.nextID, Name: name, State: "uploaded", ContentType: r.Header.Get("Content-Type"), Content: body}
	rel.Assets = append(rel.Assets, a)
	if f != nil && f.HalfUpload {
		a.State = "starter"
		code := f.Status
		if code == 0 {
			code = http.StatusBadGateway
		}
		w.Header().Set("Connection", "close")
		writeJSON(w, code, map[string]string{"message": "upload interrupted"})
		return
	}
	if int64(len(body)) != r.ContentLength {
		a.State = "starter"
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": "short body"})
		return
	}
	writeJSON(w, http.StatusCreated, g.assetJSON(rel, a))
}
