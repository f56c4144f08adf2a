package relay

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/assetlink"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/publish/publishtest"
)

// herd sends n concurrent downloads of the bundle's archive, without following redirects,
// and returns each one's Location ("" for an answer other than 302).
func (r *privateRig) herd(t *testing.T, n int) []string {
	t.Helper()
	locs := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := noFollow.Get(r.srv.URL + archivePath)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusFound {
				locs[i] = resp.Header.Get("Location")
			}
		}()
	}
	wg.Wait()
	return locs
}

// privateRig is a relay serving a bundle of a private repository's release, registered and
// promoted on production, with the fake GitHub behind its download route.
type privateRig struct {
	gh    *publishtest.GitHub
	srv   *httptest.Server
	clock *publishtest.Clock
	st    interface {
		PutBundle(context.Context, *channel.Bundle, *channel.AuditEntry) (*channel.Bundle, bool, error)
	}
	content []byte
}

func newPrivateRig(t *testing.T) *privateRig { return newPrivateRigWith(t, false) }

// newPrivateRigWith reads the releases with a GitHub App installation whose tokens live
// 62 seconds when app is set, else with a token.
func newPrivateRigWith(t *testing.T, app bool) *privateRig {
	t.Helper()
	gh := publishtest.NewGitHub(t, "acme/mobile-app")
	gh.Private = true
	clock := publishtest.NewClock(time.Now())
	gh.Now = clock.Now
	content := []byte(strings.Repeat("encrypted bundle bytes ", 100))
	gh.AddRelease("v3.0.0", false)
	gh.AddAsset("v3.0.0", "app-3.0.0.zip", content)
	gh.AddAsset("v3.0.0", "app-3.0.0.zip.sigstore.json", []byte("{}"))
	assets := gh.Releases()[0].Assets

	lo := assetlink.Options{Token: gh.Token, APIURL: gh.URL, Now: clock.Now}
	if app {
		appID, inst, key := gh.InstallApp(t)
		gh.InstallationTokenLifetime = 62 * time.Second
		lo.Token, lo.App = "", &assetlink.App{AppID: appID, InstallationID: inst, PrivateKey: key}
	}
	l, err := assetlink.New("acme/mobile-app", lo)
	if err != nil {
		t.Fatal(err)
	}
	st := openBolt(t)
	seed(t, st)
	var srv *httptest.Server
	s := newServer(t, st, func(o *Options) {
		o.RateLimit = -1
		o.Now = clock.Now
		o.LinkStore = st // as cmd/relay wires it: the embedded store's asset_links bucket
		o.Links = map[string]LinkFunc{testApp: func(ctx context.Context, id int64) (string, time.Time, error) {
			link, err := l.Link(ctx, id)
			if err != nil {
				return "", time.Time{}, err
			}
			return link.URL, link.Expires, nil
		}}
	})
	srv = httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	sum := strings.Repeat("f", 64)
	b := &channel.Bundle{AppID: testApp, Version: "3.0.0", URL: srv.URL + "/dl/" + testApp + "/3.0.0/app-3.0.0.zip",
		Checksum: sum, SHA256: sum, Size: int64(len(content)), Commit: "c300", Ref: "refs/tags/v3.0.0",
		Assets: &channel.ReleaseAssets{Repository: "acme/mobile-app", Archive: channel.ReleaseAsset{Name: "app-3.0.0.zip", ID: assets[0].ID},
			Signature: &channel.ReleaseAsset{Name: "app-3.0.0.zip.sigstore.json", ID: assets[1].ID}}}
	if _, _, err := st.PutBundle(t.Context(), b, nil); err != nil {
		t.Fatal(err)
	}
	promote(t, st, "production", "3.0.0")
	change(t, st, "production", func(s *channel.State) error { s.Rollout = nil; return nil }) // the fixture's rollout of 1.2.0
	s.Invalidate(testApp)
	return &privateRig{gh: gh, srv: srv, clock: clock, st: st, content: content}
}

// check sends the fixture device's update check.
func (r *privateRig) check(t *testing.T) channel.UpdateResponse {
	t.Helper()
	ur, err := http.Post(r.srv.URL+"/updates", "application/json", strings.NewReader(info(nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer ur.Body.Close()
	var got channel.UpdateResponse
	if err := json.NewDecoder(ur.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	return got
}

var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// get fetches path from the relay without following redirects.
func (r *privateRig) get(t *testing.T, path string) (int, http.Header) {
	t.Helper()
	resp, err := noFollow.Get(r.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header
}

func (r *privateRig) location(t *testing.T, path string) string {
	t.Helper()
	_, h := r.get(t, path)
	return h.Get("Location")
}

const archivePath = "/dl/" + testApp + "/3.0.0/app-3.0.0.zip"

// TestDownloadHerd: 1,000 devices downloading at once after a promotion cost one GitHub
// call; all are redirected to the same signed URL, which serves the bytes with Range.
func TestDownloadHerd(t *testing.T) {
	t.Parallel()
	r := newPrivateRig(t)
	const n = 1000
	locs := r.herd(t, n)
	for i, l := range locs {
		if l == "" || l != locs[0] {
			t.Fatalf("download %d: Location %q, want the same signed URL as the first (%q)", i, l, locs[0])
		}
	}
	if got := r.gh.Requests("download-asset"); got != 1 {
		t.Errorf("GitHub asset API calls = %d for %d downloads, want 1", got, n)
	}
	// A device resuming: Range through the redirect (net/http keeps Range on redirects).
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, r.srv.URL+archivePath, nil)
	req.Header.Set("Range", "bytes=100-")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || string(body) != string(r.content[100:]) {
		t.Errorf("Range bytes=100- through the redirect = %d, %d bytes; want 206 with the last %d bytes", resp.StatusCode, len(body), len(r.content)-100)
	}
}

// TestDownloadExpiryRefresh: the cached URL is handed out until shortly before it
// expires; then GitHub is asked once for a new one, and the old URL no longer works.
func TestDownloadExpiryRefresh(t *testing.T) {
	t.Parallel()
	r := newPrivateRig(t)
	first := r.location(t, archivePath)
	r.clock.Add(4 * time.Minute)
	if again := r.location(t, archivePath); again != first || r.gh.Requests("download-asset") != 1 {
		t.Errorf("4 minutes in: Location changed or GitHub asked again (%d calls); want the cached URL", r.gh.Requests("download-asset"))
	}
	r.clock.Add(40 * time.Second) // within linkMargin of the 5-minute expiry
	second := r.location(t, archivePath)
	if second == first || r.gh.Requests("download-asset") != 2 {
		t.Errorf("near expiry: Location %q (first %q), %d GitHub calls; want a new URL from a second call", second, first, r.gh.Requests("download-asset"))
	}
	r.clock.Add(time.Minute)
	resp, err := http.Get(first)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("the first URL after its expiry = %d, want 403", resp.StatusCode)
	}
}

// TestDownloadHostile: what is not registered is 404 without any GitHub call.
func TestDownloadHostile(t *testing.T) {
	t.Parallel()
	r := newPrivateRig(t)
	for _, p := range []string{
		"/dl/com.other.app/3.0.0/app-3.0.0.zip",            // an app this relay does not serve
		"/dl/" + testApp + "/9.9.9/app-3.0.0.zip",          // an unregistered version
		"/dl/" + testApp + "/1.0.0/app-3.0.0.zip",          // a public bundle: no assets
		"/dl/" + testApp + "/3.0.0/other-app.zip",          // an asset the bundle does not name
		"/dl/" + testApp + "/3.0.0/..%2F..%2Fetc%2Fpasswd", // encoded traversal
		"/dl/" + testApp + "/3.0.0/../3.0.0/app-3.0.0.zip",
		"/dl/" + testApp + "/..%2F3.0.0/app-3.0.0.zip",
		"/dl/" + testApp + "/3.0.0/app-3.0.0.zip/extra",
	} {
		if code, h := r.get(t, p); code != http.StatusNotFound {
			t.Errorf("GET %s = %d (Location %q), want 404", p, code, h.Get("Location"))
		}
	}
	if n := r.gh.Requests("download-asset"); n != 0 {
		t.Errorf("GitHub asset API calls = %d for hostile requests, want 0", n)
	}
}

// TestDownloadRateLimited: under GitHub's rate limit the route answers 503 with
// Retry-After, GitHub is not asked again until the reset, and update checks answer
// no_new_version_available rather than a URL that would fail.
func TestDownloadRateLimited(t *testing.T) {
	t.Parallel()
	r := newPrivateRig(t)
	if got := r.check(t); got.URL != r.srv.URL+archivePath {
		t.Fatalf("update check before the limit = %+v, want the relay's download URL", got)
	}
	r.gh.Fail("download-asset", publishtest.Fault{PrimaryRateLimit: true, ResetIn: 10 * time.Minute})
	code, h := r.get(t, archivePath)
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
		t.Fatalf("GET under a rate limit = %d (Retry-After %q), want 503 with Retry-After", code, h.Get("Retry-After"))
	}
	r.get(t, archivePath)
	if n := r.gh.Requests("download-asset"); n != 1 {
		t.Errorf("GitHub calls while paused = %d, want 1", n)
	}
	if got := r.check(t); got.Error != channel.CodeNoNewVersion || got.URL != "" {
		t.Errorf("update check while paused = %+v, want no_new_version_available and no URL", got)
	}
	r.clock.Add(11 * time.Minute)
	if code, _ := r.get(t, archivePath); code != http.StatusFound {
		t.Errorf("GET after the reset = %d, want 302", code)
	}
}

// TestDownloadTokenExpiresMidHerd: with a GitHub App, the installation token nears its
// expiry between two herds (ghinstallation refreshes it a minute early, so a 62-second token
// after 2 seconds); the second herd, on a new signed URL, costs one token and one asset call.
func TestDownloadTokenExpiresMidHerd(t *testing.T) {
	t.Parallel()
	r := newPrivateRigWith(t, true)
	herd := func() {
		for _, l := range r.herd(t, 200) {
			if l == "" {
				t.Errorf("a download was not redirected (want 302)")
			}
		}
	}
	herd()
	if tok, calls := r.gh.Requests("access-token"), r.gh.Requests("download-asset"); tok != 1 || calls != 1 {
		t.Fatalf("first herd: %d tokens minted, %d asset calls; want 1 and 1", tok, calls)
	}
	time.Sleep(2500 * time.Millisecond) // the token is now within ghinstallation's refresh minute
	r.clock.Add(5 * time.Minute)        // and the signed URL expired
	herd()
	if tok, calls := r.gh.Requests("access-token"), r.gh.Requests("download-asset"); tok != 2 || calls != 2 {
		t.Errorf("second herd: %d tokens minted, %d asset calls in all; want 2 and 2", tok, calls)
	}
}
