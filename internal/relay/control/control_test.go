package control

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relay"
	"github.com/ferryhq/ferry/internal/relay/relaytest"
	"github.com/ferryhq/ferry/internal/relay/reqlog"
	"github.com/ferryhq/ferry/internal/relayclient"
	"github.com/ferryhq/ferry/internal/store"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	os.Exit(m.Run())
}

const (
	appID       = "com.example.app"
	repo        = "acme/mobile-app"
	audience    = "https://relay.example.com"
	adminToken  = "admin-secret-token"
	hookSecret  = "webhook-secret"
	hmacSecret  = "hmac-secret"
	commitA     = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
	commitB     = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
	commitC     = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"
	tagObject   = "9f2c3b1e4a5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b"
	mainRef     = "refs/heads/main"
	testConfigY = `
apps:
  - id: com.example.app
    repository: acme/mobile-app
    default_channel: production
    channels:
      production: {}
      beta: { allow_device_self_set: true }
      staging: {}
    rules:
      - { ref: refs/heads/main, channel: beta }
      - { ref: "refs/tags/v*", channel: production }
      - { ref: "refs/tags/channel/*", channel: "$1" }
  - id: com.example.other
    repository: acme/other-app
    default_channel: production
    channels:
      production: {}
    rules:
      - { ref: "refs/tags/v*", channel: production }
`
)

// testLogger sends the API's logs to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlogWriter struct{ t *testing.T }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// fullStore is a real store: the whole contract, of which the control plane's Store is a
// part (tests seed and inspect through the rest).
type fullStore = store.Store

// newBolt opens a real bbolt store in a temporary directory.
func newBolt(t *testing.T) fullStore { return newBoltTB(t) }

func newBoltTB(t testing.TB) fullStore {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "ferry.db"), store.BoltOptions{SweepInterval: -1})
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// env is one API on a real store, mounted on a gin engine, with a fake OIDC issuer.
type env struct {
	t       *testing.T
	api     *API
	engine  *gin.Engine
	store   *faultStore
	issuer  *issuer
	changes *changeLog
}

type changeLog struct {
	mu   sync.Mutex
	apps []string
}

func (c *changeLog) add(app string) { c.mu.Lock(); c.apps = append(c.apps, app); c.mu.Unlock() }

func (c *changeLog) count() int { c.mu.Lock(); defer c.mu.Unlock(); return len(c.apps) }

type envOptions struct {
	store      fullStore // default: a new Bolt store
	noAdmin    bool
	noWebhooks bool
	noHMAC     bool
	noOIDC     bool
	// deliveryLease is Options.DeliveryLease (0: the default).
	deliveryLease time.Duration
	// config replaces testConfigY; getenv is Options.Getenv; now is Options.Now.
	config string
	getenv func(string) string
	now    func() time.Time
	// notifier is Options.Notifier.
	notifier Notifier
	// publicURL is Options.PublicURL.
	publicURL string
}

func newEnv(t *testing.T, eo envOptions) *env {
	t.Helper()
	yml := testConfigY
	if eo.config != "" {
		yml = eo.config
	}
	cfg, err := channel.ParseConfig([]byte(yml))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	st := eo.store
	if st == nil {
		st = newBolt(t)
	}
	e := &env{t: t, store: &faultStore{Store: st}, issuer: newIssuer(t), changes: &changeLog{}}
	opts := Options{
		Config:        cfg,
		Store:         e.store,
		Logger:        testLogger(t),
		AdminToken:    adminToken,
		WebhookSecret: hookSecret,
		HMACSecret:    hmacSecret,
		OIDCIssuer:    e.issuer.url(),
		OIDCAudience:  audience,
		HTTPClient:    e.issuer.srv.Client(),
		OnChange:      e.changes.add,
		DeliveryLease: eo.deliveryLease,
		Getenv:        eo.getenv,
		Now:           eo.now,
		Notifier:      eo.notifier,
		PublicURL:     eo.publicURL,
	}
	if eo.noAdmin {
		opts.AdminToken = ""
	}
	if eo.noWebhooks {
		opts.WebhookSecret = ""
	}
	if eo.noHMAC {
		opts.HMACSecret = ""
	}
	if eo.noOIDC {
		opts.OIDCAudience = ""
	}
	api, err := New(t.Context(), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(api.Close) // before the store closes (cleanups run last first)
	e.api = api
	e.engine = gin.New()
	api.Mount(e.engine)
	return e
}

// do sends one request through the engine.
func (e *env) do(method, path string, body []byte, hdr http.Header) *httptest.ResponseRecorder {
	e.t.Helper()
	req := httptest.NewRequestWithContext(e.t.Context(), method, path, bytes.NewReader(body))
	for k, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	w := httptest.NewRecorder()
	e.engine.ServeHTTP(w, req)
	return w
}

// errorBody decodes an error answer, failing unless it has exactly {error, message}.
func errorBody(t *testing.T, w *httptest.ResponseRecorder) (code, msg string) {
	t.Helper()
	var body map[string]string
	dec := json.NewDecoder(w.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("error body %q: %v", w.Body.String(), err)
	}
	if len(body) != 2 || body["error"] == "" || body["message"] == "" {
		t.Fatalf("error body = %v, want {error, message}", body)
	}
	return body["error"], body["message"]
}

// snapshot is everything the control plane can write for the test apps.
type snapshot struct {
	Bundles []*channel.Bundle
	States  []*channel.State
	Audit   []channel.AuditEntry
	Pending map[string][]channel.Pending
}

func (e *env) snapshot() snapshot {
	e.t.Helper()
	ctx := context.WithoutCancel(e.t.Context())
	st := e.store.Store
	var s snapshot
	s.Pending = map[string][]channel.Pending{}
	for _, app := range []string{appID, "com.example.other"} {
		bs, err := st.ListBundles(ctx, app, 1000)
		if err != nil {
			e.t.Fatal(err)
		}
		s.Bundles = append(s.Bundles, bs...)
		states, err := st.ListStates(ctx, app)
		if err != nil {
			e.t.Fatal(err)
		}
		s.States = append(s.States, states...)
		audit, err := st.ListAudit(ctx, app, 1000)
		if err != nil {
			e.t.Fatal(err)
		}
		s.Audit = append(s.Audit, audit...)
		for _, c := range []string{commitA, commitB, commitC} {
			p, err := st.ListPending(ctx, app, c)
			if err != nil {
				e.t.Fatal(err)
			}
			if len(p) > 0 {
				s.Pending[app+"@"+c] = p
			}
		}
	}
	return s
}

// unchanged fails the test if the store differs from before.
func (e *env) unchanged(before snapshot) {
	e.t.Helper()
	if diff := cmp.Diff(before, e.snapshot(), cmpopts.EquateEmpty()); diff != "" {
		e.t.Errorf("store changed by a refused request (-before +after):\n%s", diff)
	}
}

func (e *env) state(ch string) *channel.State {
	e.t.Helper()
	s, err := e.store.Store.GetState(context.WithoutCancel(e.t.Context()), appID, ch)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *env) audit() []channel.AuditEntry {
	e.t.Helper()
	es, err := e.store.Store.ListAudit(context.WithoutCancel(e.t.Context()), appID, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	return es
}

// testBundle returns a valid plain registration body for version built from commit.
func testBundle(version, commit string) *channel.Bundle {
	sum := sha256.Sum256([]byte("zip of " + version))
	h := hex.EncodeToString(sum[:])
	return &channel.Bundle{
		AppID:    appID,
		Version:  version,
		URL:      "https://github.com/acme/mobile-app/releases/download/v" + version + "/web.zip",
		Checksum: h,
		SHA256:   h,
		Size:     123456,
		Commit:   commit,
		Ref:      mainRef,
		Native:   ">=1.0.0",
	}
}

// encryptedBundle returns a valid encrypted registration body.
func encryptedBundle(version, commit string) *channel.Bundle {
	b := testBundle(version, commit)
	b.Checksum = strings.Repeat("ab", 256)
	b.SessionKey = base64.StdEncoding.EncodeToString(make([]byte, 16)) + ":" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 256))
	b.KeyID = "MIIBCgKCAQEAwsCct5LR"
	b.Manifest = []channel.ManifestEntry{
		{FileName: "index.html", FileHash: strings.Repeat("cd", 256), DownloadURL: "https://cdn.example.com/1/index.html", Size: 10},
		{FileName: "assets/app.js.br", FileHash: strings.Repeat("ef", 256), DownloadURL: "https://cdn.example.com/1/app.js.br", Size: 20},
	}
	return b
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hmacHeaders signs body at ts.
func hmacHeaders(secret string, ts time.Time, body []byte) http.Header {
	h := http.Header{}
	h.Set(relayclient.HeaderSignature, relayclient.Sign([]byte(secret), ts, body))
	h.Set(relayclient.HeaderTimestamp, fmt.Sprint(ts.Unix()))
	h.Set("Content-Type", "application/json")
	return h
}

// registerHMAC registers b with a valid HMAC signature and expects want.
func (e *env) registerHMAC(b *channel.Bundle, want int) *httptest.ResponseRecorder {
	e.t.Helper()
	body := mustJSON(e.t, b)
	w := e.do("POST", "/api/v1/bundles", body, hmacHeaders(hmacSecret, time.Now(), body))
	if w.Code != want {
		e.t.Fatalf("register %s: status %d, want %d: %s", b.Version, w.Code, want, w.Body)
	}
	return w
}

func decodeRegistration(t *testing.T, w *httptest.ResponseRecorder) relayclient.Registration {
	t.Helper()
	var r relayclient.Registration
	if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil {
		t.Fatalf("decode %q: %v", w.Body, err)
	}
	return r
}

// faultStore wraps a real store and, when armed, fails chosen methods with an error
// wrapping channel.ErrUnavailable (fault injection for 503 and retry tests), makes them
// lose their reply (the write happens, the caller sees an error, as when the relay dies
// after the store committed), or holds them until released.
type faultStore struct {
	Store
	failing sync.Map // method name -> *atomic.Int32 (failures left)
	losing  sync.Map // method name -> *atomic.Int32 (lost replies left)
	holding sync.Map // method name -> *hold (next call waits)
}

// hold makes one call wait: entered is closed when it arrives, release lets it go on.
type hold struct {
	entered, release chan struct{}
	once             sync.Once
}

// holdNext makes the next call of method wait until release is called (or the test ends).
func (f *faultStore) holdNext(t *testing.T, method string) (entered <-chan struct{}, release func()) {
	h := &hold{entered: make(chan struct{}), release: make(chan struct{})}
	f.holding.Store(method, h)
	rel := func() { h.once.Do(func() { close(h.release) }) }
	t.Cleanup(rel)
	return h.entered, rel
}

func (f *faultStore) wait(ctx context.Context, method string) {
	v, ok := f.holding.LoadAndDelete(method)
	if !ok {
		return
	}
	h := v.(*hold)
	close(h.entered)
	select {
	case <-h.release:
	case <-ctx.Done():
	}
}

func (f *faultStore) loseNext(method string, n int) {
	c := &atomic.Int32{}
	c.Store(int32(n))
	f.losing.Store(method, c)
}

func (f *faultStore) lose(method string) error {
	v, ok := f.losing.Load(method)
	if !ok {
		return nil
	}
	if v.(*atomic.Int32).Add(-1) >= 0 {
		return fmt.Errorf("reply lost after the write: %w", channel.ErrUnavailable)
	}
	return nil
}

var errInjected = fmt.Errorf("injected outage: %w", channel.ErrUnavailable)

func (f *faultStore) failNext(method string, n int) {
	c := &atomic.Int32{}
	c.Store(int32(n))
	f.failing.Store(method, c)
}

func (f *faultStore) fail(method string) error {
	v, ok := f.failing.Load(method)
	if !ok {
		return nil
	}
	if v.(*atomic.Int32).Add(-1) >= 0 {
		return errInjected
	}
	return nil
}

func (f *faultStore) PutBundle(ctx context.Context, b *channel.Bundle, audit *channel.AuditEntry) (*channel.Bundle, bool, error) {
	if err := f.fail("PutBundle"); err != nil {
		return nil, false, err
	}
	stored, created, err := f.Store.PutBundle(ctx, b, audit)
	if err == nil {
		err = f.lose("PutBundle")
	}
	return stored, created, err
}

func (f *faultStore) UpdateState(ctx context.Context, app, ch string, fn func(s *channel.State) (*channel.AuditEntry, error)) (*channel.State, error) {
	f.wait(ctx, "UpdateState")
	if err := f.fail("UpdateState"); err != nil {
		return nil, err
	}
	return f.Store.UpdateState(ctx, app, ch, fn)
}

func (f *faultStore) BundleByCommit(ctx context.Context, app, commit string) (*channel.Bundle, error) {
	f.wait(ctx, "BundleByCommit")
	if err := f.fail("BundleByCommit"); err != nil {
		return nil, err
	}
	return f.Store.BundleByCommit(ctx, app, commit)
}

func (f *faultStore) ForgetDelivery(ctx context.Context, id string) error {
	if err := f.fail("ForgetDelivery"); err != nil {
		return err
	}
	return f.Store.ForgetDelivery(ctx, id)
}

func (f *faultStore) MarkDelivery(ctx context.Context, id string, ttl time.Duration) error {
	if err := f.fail("MarkDelivery"); err != nil {
		return err
	}
	return f.Store.MarkDelivery(ctx, id, ttl)
}

func (f *faultStore) ListStates(ctx context.Context, app string) ([]*channel.State, error) {
	if err := f.fail("ListStates"); err != nil {
		return nil, err
	}
	return f.Store.ListStates(ctx, app)
}

// issuer is a fake GitHub Actions OIDC issuer: discovery document and JWKS over httptest,
// tokens signed with an RSA key.
type issuer struct {
	srv  *httptest.Server
	hits atomic.Int32 // discovery document fetches
	// keyHits counts key set (JWKS) fetches.
	keyHits atomic.Int32

	mu  sync.Mutex
	key *rsa.PrivateKey
	kid string
}

// rotate replaces the issuer's signing key, as GitHub does from time to time.
func (is *issuer) rotate(key *rsa.PrivateKey, kid string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.key, is.kid = key, kid
}

func (is *issuer) current() (*rsa.PrivateKey, string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.key, is.kid
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	is := &issuer{key: testRSAKey(t, 0), kid: "test-key-1"}
	mux := http.NewServeMux()
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		is.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                is.url(),
			"jwks_uri":                              is.url() + "/.well-known/jwks",
			"subject_types_supported":               []string{"public", "pairwise"},
			"response_types_supported":              []string{"id_token"},
			"claims_supported":                      []string{"sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "sha", "repository", "repository_owner", "run_id", "event_name", "job_workflow_ref"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"scopes_supported":                      []string{"openid"},
		})
	})
	mux.HandleFunc("GET /.well-known/jwks", func(w http.ResponseWriter, r *http.Request) {
		is.keyHits.Add(1)
		key, kid := is.current()
		pub := key.PublicKey
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
			"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
		}}})
	})
	return is
}

func (is *issuer) url() string { return is.srv.URL }

// claims returns GitHub Actions claims for a push to main of repo, valid for 5 minutes.
func (is *issuer) claims(now time.Time) map[string]any {
	return map[string]any{
		"iss":                is.url(),
		"aud":                audience,
		"sub":                "repo:" + repo + ":ref:" + mainRef,
		"iat":                now.Unix(),
		"nbf":                now.Add(-5 * time.Second).Unix(),
		"exp":                now.Add(5 * time.Minute).Unix(),
		"jti":                "b3d1c5a0-8f1e-4c3a-9d5e-2f6a7b8c9d0e",
		"ref":                mainRef,
		"ref_type":           "branch",
		"sha":                commitA,
		"repository":         repo,
		"repository_owner":   "acme",
		"repository_id":      "700000001",
		"run_id":             "9876543210",
		"run_attempt":        "1",
		"actor":              "octocat",
		"event_name":         "push",
		"workflow":           "release",
		"job_workflow_ref":   repo + "/.github/workflows/release.yml@" + mainRef,
		"runner_environment": "github-hosted",
	}
}

// token signs claims as an RS256 JWT with key and kid.
func signJWT(t *testing.T, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	hdr := base64.RawURLEncoding.EncodeToString(mustJSON(t, map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid}))
	body := base64.RawURLEncoding.EncodeToString(mustJSON(t, claims))
	digest := sha256.Sum256([]byte(hdr + "." + body))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return hdr + "." + body + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func (is *issuer) token(t *testing.T, claims map[string]any) string {
	t.Helper()
	key, kid := is.current()
	return signJWT(t, key, kid, claims)
}

var (
	rsaKeysMu sync.Mutex
	rsaKeys   = map[int]*rsa.PrivateKey{}
)

// testRSAKey returns the n-th test key, generated once per test binary (2048-bit key
// generation is slow under -race).
func testRSAKey(t *testing.T, n int) *rsa.PrivateKey {
	t.Helper()
	rsaKeysMu.Lock()
	defer rsaKeysMu.Unlock()
	if k, ok := rsaKeys[n]; ok {
		return k
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaKeys[n] = k
	return k
}

func bearerHeader(tok string) http.Header {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+tok)
	h.Set("Content-Type", "application/json")
	return h
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	_, err := New(t.Context(), Options{OIDCIssuer: "ftp://issuer"})
	if err == nil {
		t.Fatal("New(empty options) succeeded")
	}
	for _, want := range []string{"config is required", "store is required", "not an http(s) URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("New error %q does not mention %q", err, want)
		}
	}
}

func TestStoreErrorMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"unavailable", fmt.Errorf("x: %w", channel.ErrUnavailable), http.StatusServiceUnavailable},
		{"deadline", context.DeadlineExceeded, http.StatusServiceUnavailable},
		{"other", errors.New("disk on fire"), http.StatusInternalServerError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := http.StatusInternalServerError
			var he *httpError
			if errors.As(storeError("step", tc.err), &he) {
				got = he.Status
			}
			if got != tc.want {
				t.Errorf("storeError(%v) status = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

// storeMaker opens a fresh real store for one test.
type storeMaker func(t *testing.T) fullStore

func TestLogsCarryRequestID(t *testing.T) {
	t.Parallel()
	cfg, err := channel.ParseConfig([]byte(testConfigY))
	if err != nil {
		t.Fatal(err)
	}
	var buf relaytest.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	api, err := New(t.Context(), Options{Config: cfg, Store: newBolt(t), HMACSecret: hmacSecret, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	engine := gin.New()
	engine.Use(func(c *gin.Context) { // as the relay's middleware does
		c.Request = c.Request.WithContext(reqlog.NewContext(c.Request.Context(), logger, "req-42", c.FullPath()))
	})
	api.Mount(engine)
	body := mustJSON(t, testBundle("1.0.0", commitA))
	req := httptest.NewRequestWithContext(t.Context(), "POST", "/api/v1/bundles", bytes.NewReader(body))
	req.Header = hmacHeaders("wrong", time.Now(), body)
	engine.ServeHTTP(httptest.NewRecorder(), req)
	if out := buf.String(); !strings.Contains(out, "request_id=req-42") || !strings.Contains(out, "route=/api/v1/bundles") || !strings.Contains(out, "code=bad_signature") {
		t.Errorf("log lacks request_id, route or code:\n%s", out)
	}
	if line := logLine(buf.String(), "code=bad_signature"); !strings.Contains(line, "request_id=req-42") || !strings.Contains(line, "route=/api/v1/bundles") {
		t.Errorf("the refusal's log line lacks request_id or route: %q", line)
	}

	// Without the relay's middleware, the control plane's own logger names the route.
	buf.Reset()
	bare := gin.New()
	api.Mount(bare)
	req = httptest.NewRequestWithContext(t.Context(), "POST", "/api/v1/bundles", bytes.NewReader(body))
	req.Header = hmacHeaders("wrong", time.Now(), body)
	bare.ServeHTTP(httptest.NewRecorder(), req)
	if line := logLine(buf.String(), "code=bad_signature"); !strings.Contains(line, "route=/api/v1/bundles") || strings.Contains(line, "request_id=") {
		t.Errorf("without the relay's middleware, the refusal's log line = %q; want route and no request_id", line)
	}

	// Mounted on the real relay, the id the client sent reaches the control plane's lines.
	buf.Reset()
	srv, err := relay.New(relay.Options{Config: cfg, Store: newBolt(t), Logger: logger, RateLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	srv.Mount(api)
	req = httptest.NewRequestWithContext(t.Context(), "POST", "/api/v1/bundles", bytes.NewReader(body))
	req.Header = hmacHeaders("wrong", time.Now(), body)
	req.Header.Set(relay.RequestIDHeader, "req-43")
	srv.Handler().ServeHTTP(httptest.NewRecorder(), req)
	if line := logLine(buf.String(), "code=bad_signature"); !strings.Contains(line, "request_id=req-43") || !strings.Contains(line, "route=/api/v1/bundles") {
		t.Errorf("on the relay, the refusal's log line = %q; want request_id=req-43 and the route", line)
	}
}

// logLine returns the first line of out containing s, or "".
func logLine(out, s string) string {
	for line := range strings.Lines(out) {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}
