package relay

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/assetlink"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/publish/publishtest"
	"github.com/ferryhq/ferry/internal/store"
	"github.com/ferryhq/ferry/internal/testpeers"
)

// fleetRig is two relay instances sharing one real redis-server (each through its own
// client, as two processes would), one fake GitHub behind both download routes, and one
// settable clock for GitHub's signed URLs and both relays.
type fleetRig struct {
	redis   *testpeers.Process
	gh      *publishtest.GitHub
	clock   *publishtest.Clock
	servers [2]*Server
	urls    [2]string
	stores  [2]store.Store
	// archive and sig are the /dl paths of the bundle's two release assets.
	archive, sig string
	bundle       *channel.Bundle
}

func newFleetRig(t *testing.T) *fleetRig {
	t.Helper()
	r := &fleetRig{redis: testpeers.Redis(t), gh: publishtest.NewGitHub(t, "acme/mobile-app"), clock: publishtest.NewClock(time.Now())}
	r.gh.Private = true
	r.gh.Now = r.clock.Now
	r.gh.AddRelease("v3.0.0", false)
	r.gh.AddAsset("v3.0.0", "app-3.0.0.zip", []byte(strings.Repeat("encrypted bundle bytes ", 100)))
	r.gh.AddAsset("v3.0.0", "app-3.0.0.zip.sigstore.json", []byte("{}"))
	assets := r.gh.Releases()[0].Assets
	l, err := assetlink.New("acme/mobile-app", assetlink.Options{Token: r.gh.Token, APIURL: r.gh.URL, Now: r.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	link := func(ctx context.Context, id int64) (string, time.Time, error) {
		got, err := l.Link(ctx, id)
		if err != nil {
			return "", time.Time{}, err
		}
		return got.URL, got.Expires, nil
	}
	stores := &r.stores
	for i := range r.servers {
		// A one-second store timeout, without retries: the outage costs little test time.
		st, err := store.OpenRedis(t.Context(), "redis://"+r.redis.Addr, store.RedisOptions{MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second})
		if err != nil {
			t.Fatalf("OpenRedis: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		stores[i] = st
		r.servers[i] = newServer(t, st, func(o *Options) {
			o.RateLimit = -1
			o.Now = r.clock.Now
			o.StoreTimeout = time.Second
			o.Links = map[string]LinkFunc{testApp: link}
			o.LinkStore = st
		})
		srv := httptest.NewServer(r.servers[i].Handler())
		t.Cleanup(srv.Close)
		r.urls[i] = srv.URL
	}
	sum := strings.Repeat("f", 64)
	r.bundle = &channel.Bundle{AppID: testApp, Version: "3.0.0", URL: r.urls[0] + "/dl/" + testApp + "/3.0.0/app-3.0.0.zip",
		Checksum: sum, SHA256: sum, Size: int64(len(strings.Repeat("encrypted bundle bytes ", 100))), Commit: "c300", Ref: "refs/tags/v3.0.0",
		Assets: &channel.ReleaseAssets{Repository: "acme/mobile-app", Archive: channel.ReleaseAsset{Name: "app-3.0.0.zip", ID: assets[0].ID},
			Signature: &channel.ReleaseAsset{Name: "app-3.0.0.zip.sigstore.json", ID: assets[1].ID}}}
	r.register(t)
	r.archive = "/dl/" + testApp + "/3.0.0/app-3.0.0.zip"
	r.sig = "/dl/" + testApp + "/3.0.0/app-3.0.0.zip.sigstore.json"
	return r
}

// register seeds the store (again, after Redis restarted empty) with the fixture and the
// private bundle, promoted on production.
func (r *fleetRig) register(t *testing.T) {
	t.Helper()
	seed(t, r.stores[0])
	if _, _, err := r.stores[0].PutBundle(t.Context(), r.bundle, nil); err != nil {
		t.Fatal(err)
	}
	promote(t, r.stores[0], "production", "3.0.0")
	for _, s := range r.servers {
		s.Invalidate(testApp)
	}
}

// download asks instance i for path and returns the Location of its 302 ("" otherwise).
func (r *fleetRig) download(t *testing.T, i int, path string) string {
	t.Helper()
	resp, err := noFollow.Get(r.urls[i] + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Errorf("GET %s on instance %d = %d, want 302", path, i, resp.StatusCode)
		return ""
	}
	return resp.Header.Get("Location")
}

func (r *fleetRig) calls() int { return r.gh.Requests("download-asset") }

// metric returns the /metrics line of instance i that starts with prefix ("" if none).
func (r *fleetRig) metric(t *testing.T, i int, prefix string) string {
	t.Helper()
	for _, line := range strings.Split(do(t, r.servers[i].Handler(), http.MethodGet, "/metrics", "").Body.String(), "\n") {
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
	return ""
}

// TestDownloadSharedAcrossInstances: a signed URL one instance got from GitHub is handed
// out by the other without a GitHub call, until shortly before it expires; then one new
// call serves both again.
func TestDownloadSharedAcrossInstances(t *testing.T) {
	t.Parallel()
	r := newFleetRig(t)
	first := r.download(t, 0, r.archive)
	if n := r.calls(); first == "" || n != 1 {
		t.Fatalf("first download on instance A: Location %q, %d GitHub calls; want a URL and 1 call", first, n)
	}
	if got := r.download(t, 1, r.archive); got != first || r.calls() != 1 {
		t.Errorf("same asset on instance B: Location %q (A's %q), %d GitHub calls in all; want A's URL and no new call", got, first, r.calls())
	}
	if got := r.metric(t, 1, `ferry_release_links_total{result="shared"}`); !strings.HasSuffix(got, " 1") {
		t.Errorf("instance B's shared-link counter = %q, want 1", got)
	}
	// Within the safety margin of the 5-minute expiry neither instance hands the URL out:
	// B, whose memory holds nothing, finds it in the store but asks GitHub, and A then
	// takes B's new URL from the store.
	r.clock.Add(4*time.Minute + 40*time.Second)
	second := r.download(t, 1, r.archive)
	if second == "" || second == first || r.calls() != 2 {
		t.Fatalf("near expiry on instance B: Location %q (first %q), %d GitHub calls; want a new URL from a second call", second, first, r.calls())
	}
	if got := r.download(t, 0, r.archive); got != second || r.calls() != 2 {
		t.Errorf("near expiry on instance A: Location %q (B's new %q), %d GitHub calls; want B's URL and no third call", got, second, r.calls())
	}
	// Well past expiry both ask again: one call between them.
	r.clock.Add(10 * time.Minute)
	third := r.download(t, 0, r.archive)
	if got := r.download(t, 1, r.archive); third == "" || got != third || r.calls() != 3 {
		t.Errorf("after expiry: A %q, B %q, %d GitHub calls; want one new URL for both from a third call", third, got, r.calls())
	}
}

// TestDownloadLinkStoreOutage: with Redis down, downloads still get a fresh URL from GitHub
// (the bundle comes from the cached snapshot), the failure is counted, and the store is
// not asked again for a while; when Redis is back links are shared again.
func TestDownloadLinkStoreOutage(t *testing.T) {
	t.Parallel()
	r := newFleetRig(t)
	if r.download(t, 0, r.archive) == "" {
		t.FailNow()
	}
	r.redis.Stop()
	r.clock.Add(10 * time.Minute) // A's URL expired: its memory cannot answer
	if got := r.download(t, 0, r.archive); got == "" || r.calls() != 2 {
		t.Fatalf("with Redis down: Location %q, %d GitHub calls; want a new URL from a second call", got, r.calls())
	}
	if got := r.metric(t, 0, `ferry_store_errors_total{op="get_asset_link"}`); !strings.HasSuffix(got, " 1") {
		t.Errorf("store errors after a lookup with Redis down = %q, want get_asset_link 1", got)
	}
	// Within linkStoreSkip the store is not asked: the other asset goes to GitHub at once.
	if got := r.download(t, 0, r.sig); got == "" || r.calls() != 3 {
		t.Errorf("second asset with Redis down: Location %q, %d GitHub calls; want 3", got, r.calls())
	}
	if got := r.metric(t, 0, `ferry_store_errors_total{op="get_asset_link"}`); !strings.HasSuffix(got, " 1") {
		t.Errorf("store errors within the skip = %q, want still get_asset_link 1 (the store not asked)", got)
	}
	if got := r.metric(t, 0, `ferry_store_errors_total{op="put_asset_link"}`); got != "" {
		t.Errorf("store errors within the skip = %q, want no put_asset_link (the store not asked)", got)
	}

	if err := r.redis.Start(); err != nil {
		t.Fatal(err)
	}
	// go-redis may fail fast for up to a second after failed dials (see TestRedisOutage).
	for i, st := range r.stores {
		waitFor(t, "store "+strconv.Itoa(i)+" to reach the restarted Redis", func() bool { return st.Ping(t.Context()) == nil })
	}
	r.register(t)                 // the test's Redis keeps nothing across a restart
	r.clock.Add(10 * time.Minute) // past the skip, and every URL so far expired
	shared := r.download(t, 0, r.archive)
	waitFor(t, "the link store after Redis restarted", func() bool {
		// A's put may have raced the reconnection: the next expiry gives it another chance.
		if got := r.download(t, 1, r.archive); got != "" && got == shared {
			return true
		}
		r.clock.Add(10 * time.Minute)
		shared = r.download(t, 0, r.archive)
		return false
	})
}
