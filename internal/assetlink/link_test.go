package assetlink_test

import (
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/assetlink"
	"github.com/ferryhq/ferry/internal/publish/publishtest"
)

const repo = "acme/mobile-app"

func privateRelease(t *testing.T) (*publishtest.GitHub, int64) {
	t.Helper()
	gh := publishtest.NewGitHub(t, repo)
	gh.Private = true
	gh.AddRelease("v1.0.0", false)
	gh.AddAsset("v1.0.0", "app-1.0.0.zip", []byte("0123456789"))
	return gh, gh.Releases()[0].Assets[0].ID
}

func get(t *testing.T, u string, hdr http.Header) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestLinkToken: a fine-grained token gets a signed URL that serves the asset (with Range)
// until the expiry Link reports, and 403 after it.
func TestLinkToken(t *testing.T) {
	t.Parallel()
	gh, id := privateRelease(t)
	c := publishtest.NewClock(time.Now())
	gh.Now = c.Now
	l, err := assetlink.New(repo, assetlink.Options{Token: gh.Token, APIURL: gh.URL, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	link, err := l.Link(t.Context(), id)
	if err != nil {
		t.Fatalf("Link: %v", err)
	}
	if want := c.Now().Truncate(time.Second).Add(5 * time.Minute); !link.Expires.Equal(want) {
		t.Errorf("Expires = %v, want %v (X-Amz-Date + X-Amz-Expires of the fake)", link.Expires, want)
	}
	if code, body := get(t, link.URL, http.Header{"Range": {"bytes=4-"}}); code != http.StatusPartialContent || body != "456789" {
		t.Errorf("GET Range bytes=4- = %d %q, want 206 \"456789\"", code, body)
	}
	c.Add(5*time.Minute + time.Second)
	if code, _ := get(t, link.URL, nil); code != http.StatusForbidden {
		t.Errorf("GET after expiry = %d, want 403", code)
	}
	if _, err := l.Link(t.Context(), 999999); !errors.Is(err, assetlink.ErrNotFound) {
		t.Errorf("Link(unknown) = %v, want ErrNotFound", err)
	}
	bad, _ := assetlink.New(repo, assetlink.Options{Token: "wrong", APIURL: gh.URL})
	if _, err := bad.Link(t.Context(), id); err == nil || errors.Is(err, assetlink.ErrNotFound) {
		t.Errorf("Link with a bad token = %v, want an authentication error", err)
	}
}

// TestLinkApp: a GitHub App installation mints a token through ghinstallation, reuses it,
// and mints a new one before the old one expires (ghinstallation refreshes a token one
// minute before its expires_at, so a 62-second token is refreshed after 2 seconds).
func TestLinkApp(t *testing.T) {
	t.Parallel()
	gh, id := privateRelease(t)
	appID, inst, key := gh.InstallApp(t)
	gh.InstallationTokenLifetime = 62 * time.Second
	l, err := assetlink.New(repo, assetlink.Options{App: &assetlink.App{AppID: appID, InstallationID: inst, PrivateKey: key}, APIURL: gh.URL})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := l.Link(t.Context(), id); err != nil {
			t.Fatalf("Link %d: %v", i, err)
		}
	}
	if n := gh.Requests("access-token"); n != 1 {
		t.Errorf("installation tokens minted = %d, want 1 for three calls", n)
	}
	time.Sleep(2500 * time.Millisecond)
	if _, err := l.Link(t.Context(), id); err != nil {
		t.Fatalf("Link after the token neared expiry: %v", err)
	}
	if n := gh.Requests("access-token"); n != 2 {
		t.Errorf("installation tokens minted = %d, want 2 (refreshed before expiry)", n)
	}
	if _, err := assetlink.New(repo, assetlink.Options{App: &assetlink.App{AppID: 1, InstallationID: 2, PrivateKey: []byte("not a key")}}); err == nil {
		t.Error("New with a bad private key = nil error")
	}
}

// TestLinkRateLimited: 403 with X-RateLimit-Remaining: 0, the secondary limit and 429 are
// RateLimitErrors saying when to ask again.
func TestLinkRateLimited(t *testing.T) {
	t.Parallel()
	gh, id := privateRelease(t)
	l, err := assetlink.New(repo, assetlink.Options{Token: gh.Token, APIURL: gh.URL})
	if err != nil {
		t.Fatal(err)
	}
	gh.Fail("download-asset", publishtest.Fault{PrimaryRateLimit: true, ResetIn: 30 * time.Minute},
		publishtest.Fault{SecondaryRateLimit: true, RetryAfter: 90}, publishtest.Fault{Status: http.StatusTooManyRequests})
	for _, wantMin := range []time.Duration{29 * time.Minute, 89 * time.Second, 59 * time.Second} {
		_, err := l.Link(t.Context(), id)
		var rl *assetlink.RateLimitError
		if !errors.As(err, &rl) || !errors.Is(err, assetlink.ErrRateLimited) {
			t.Fatalf("Link = %v, want a RateLimitError", err)
		}
		if wait := time.Until(rl.Until); wait < wantMin {
			t.Errorf("Until in %v, want at least %v", wait, wantMin)
		}
	}
	if _, err := l.Link(t.Context(), id); err != nil {
		t.Errorf("Link after the faults = %v", err)
	}
}
