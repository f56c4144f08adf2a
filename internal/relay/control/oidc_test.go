package control

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable Options.Now.
type fakeClock struct{ offset atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *fakeClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// Forged tokens must not make the relay ask the issuer for anything: claims that no
// signature could make acceptable are refused before discovery or a key fetch, a known key
// id with a bad signature is refused from the cache, and unknown key ids refetch the keys
// at most KeyRefreshBurst times per KeyRefreshInterval.
func TestOIDCForgedTokensCostNoKeyFetches(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{}
	e := newEnv(t, envOptions{now: clock.now})
	post := func(tok string) int {
		t.Helper()
		b := testBundle("1.0.0", "")
		b.Ref = ""
		return e.do("POST", "/api/v1/bundles", mustJSON(t, b), bearerHeader(tok)).Code
	}
	key, kid := e.issuer.current()
	forged := map[string]func(c map[string]any){
		"wrong audience":   func(c map[string]any) { c["aud"] = "https://someone-else.example.com" },
		"wrong issuer":     func(c map[string]any) { c["iss"] = "https://token.actions.githubusercontent.com" },
		"expired":          func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() },
		"issued in future": func(c map[string]any) { c["iat"] = time.Now().Add(time.Hour).Unix() },
		"issued long ago":  func(c map[string]any) { c["iat"] = time.Now().Add(-2 * OIDCMaxTokenAge).Unix() },
		"no iat":           func(c map[string]any) { delete(c, "iat") },
	}
	for name, edit := range forged {
		for range 100 {
			c := e.issuer.claims(time.Now())
			edit(c)
			if code := post(signJWT(t, testRSAKey(t, 1), kid, c)); code != http.StatusUnauthorized {
				t.Fatalf("%s: status %d, want 401", name, code)
			}
		}
	}
	if d, k := e.issuer.hits.Load(), e.issuer.keyHits.Load(); d != 0 || k != 0 {
		t.Fatalf("600 tokens with impossible claims caused %d discovery and %d key fetches, want 0 and 0", d, k)
	}

	// One valid token: discovery and one key fetch.
	if code := post(signJWT(t, key, kid, e.issuer.claims(time.Now()))); code != http.StatusCreated {
		t.Fatalf("valid token: status %d", code)
	}
	if d, k := e.issuer.hits.Load(), e.issuer.keyHits.Load(); d != 1 || k != 1 {
		t.Fatalf("a valid token caused %d discovery and %d key fetches, want 1 and 1", d, k)
	}

	// The issuer's key id with another key's signature: refused from the cache.
	for range 100 {
		if code := post(signJWT(t, testRSAKey(t, 1), kid, e.issuer.claims(time.Now()))); code != http.StatusUnauthorized {
			t.Fatalf("bad signature: status %d, want 401", code)
		}
	}
	if k := e.issuer.keyHits.Load(); k != 1 {
		t.Fatalf("100 tokens with a known key id and a bad signature caused %d key fetches, want 0 more than the 1 before", k-1)
	}

	// A flood of unknown key ids: at most KeyRefreshBurst fetches per KeyRefreshInterval,
	// counting the first fetch.
	flood := func(round int) {
		for i := range 100 {
			if code := post(signJWT(t, testRSAKey(t, 1), fmt.Sprintf("unknown-%d-%d", round, i), e.issuer.claims(clock.now()))); code != http.StatusUnauthorized {
				t.Fatalf("unknown key id: status %d, want 401", code)
			}
		}
	}
	flood(0)
	if k := e.issuer.keyHits.Load(); k > KeyRefreshBurst {
		t.Fatalf("100 unknown key ids: %d key fetches in one interval, want at most %d", k, KeyRefreshBurst)
	}
	clock.advance(KeyRefreshInterval + time.Second)
	before := e.issuer.keyHits.Load()
	flood(1)
	if k := e.issuer.keyHits.Load() - before; k < 1 || k > KeyRefreshBurst {
		t.Fatalf("100 unknown key ids in a new interval: %d key fetches, want 1 to %d", k, KeyRefreshBurst)
	}
	// Valid tokens still pass: their key is cached.
	if code := post(signJWT(t, key, kid, e.issuer.claims(clock.now()))); code != http.StatusOK {
		t.Fatalf("valid token after the flood: status %d, want 200 (existing)", code)
	}
}

// An issuer that is down is asked again only after DiscoveryRetryInterval.
func TestOIDCDiscoveryFailureRemembered(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{}
	e := newEnv(t, envOptions{now: clock.now})
	tok := e.issuer.token(t, e.issuer.claims(time.Now()))
	var down atomic.Bool
	down.Store(true)
	real := e.issuer.srv.Config.Handler
	e.issuer.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			e.issuer.hits.Add(1)
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		real.ServeHTTP(w, r)
	})
	b := testBundle("1.0.0", "")
	b.Ref = ""
	for range 20 {
		if w := e.do("POST", "/api/v1/bundles", mustJSON(t, b), bearerHeader(tok)); w.Code != http.StatusServiceUnavailable {
			t.Fatalf("issuer down: status %d, want 503", w.Code)
		}
	}
	if n := e.issuer.hits.Load(); n != 1 {
		t.Fatalf("20 tokens while the issuer is down asked it %d times, want 1", n)
	}
	down.Store(false)
	clock.advance(DiscoveryRetryInterval)
	if w := e.do("POST", "/api/v1/bundles", mustJSON(t, b), bearerHeader(tok)); w.Code != http.StatusCreated {
		t.Fatalf("issuer back: status %d, want 201: %s", w.Code, w.Body)
	}
}

// The repository is pinned by id when the configuration says so: a repository deleted and
// re-created under the same name cannot publish.
func TestRegisterOIDCRepositoryID(t *testing.T) {
	t.Parallel()
	cfg := `
apps:
  - id: com.example.app
    repository: acme/mobile-app
    repository_id: 700000001
    default_channel: production
    channels:
      production: {}
      beta: {}
    rules:
      - { ref: refs/heads/main, channel: beta }
`
	for _, tc := range []struct {
		name string
		id   any // nil: no claim
		want int
	}{
		{"same id", "700000001", http.StatusCreated},
		{"re-created repository", "700000002", http.StatusForbidden},
		{"no repository_id claim", nil, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{config: cfg})
			before := e.snapshot()
			c := e.issuer.claims(time.Now())
			if tc.id == nil {
				delete(c, "repository_id")
			} else {
				c["repository_id"] = tc.id
			}
			b := testBundle("1.0.0", "")
			b.Ref = ""
			w := e.do("POST", "/api/v1/bundles", mustJSON(t, b), bearerHeader(e.issuer.token(t, c)))
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.want, w.Body)
			}
			if tc.want != http.StatusCreated {
				if code, _ := errorBody(t, w); code != "repository_not_allowed" {
					t.Errorf("error = %q, want repository_not_allowed", code)
				}
				e.unchanged(before)
			}
		})
	}
}

func TestUnverifiedClaimHelpers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		aud  string
		want bool
	}{
		{`"a"`, true}, {`["b","a"]`, true}, {`"b"`, false}, {`["b"]`, false}, {`7`, false}, {``, false},
	} {
		if got := audienceHas([]byte(tc.aud), "a"); got != tc.want {
			t.Errorf("audienceHas(%s) = %v, want %v", tc.aud, got, tc.want)
		}
	}
}
