package publish_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/publish"
	"github.com/ferryhq/ferry/internal/publish/publishtest"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const testRepo = "acme/mobile-app"

func newGitHub(t *testing.T, gh *publishtest.GitHub, tag string) *publish.GitHub {
	t.Helper()
	p, err := publish.NewGitHub(publish.Options{
		GitHub: publish.GitHubOptions{
			Repository: testRepo, Token: gh.Token, Tag: tag, Commit: "0123456789abcdef0123456789abcdef01234567",
			APIURL: gh.URL, ServerURL: gh.URL,
		},
		Logger:  testLogger(t),
		Backoff: 10 * time.Millisecond,
		MaxWait: 3 * time.Second,
	})
	if err != nil {
		t.Fatalf("NewGitHub: %v", err)
	}
	return p
}

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func download(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return b
}

func TestGitHubPut(t *testing.T) {
	t.Parallel()
	content := bytes.Repeat([]byte("encrypted web build "), 5000)
	other := bytes.Repeat([]byte("ENCRYPTED WEB BUILD "), 5000)
	const name = "com.acme.app-1.2.3.zip"
	tests := []struct {
		name   string
		setup  func(gh *publishtest.GitHub)
		want   bool // Reused
		err    error
		errHas string
		check  func(t *testing.T, gh *publishtest.GitHub)
	}{
		{name: "creates the release at the commit and uploads", check: func(t *testing.T, gh *publishtest.GitHub) {
			rels := gh.Releases()
			if len(rels) != 1 || rels[0].Target != "0123456789abcdef0123456789abcdef01234567" || rels[0].Draft {
				t.Errorf("releases = %+v, want one published release at the commit", rels)
			}
		}},
		{name: "uses an existing release", setup: func(gh *publishtest.GitHub) { gh.AddRelease("v1.2.3", false) }, check: func(t *testing.T, gh *publishtest.GitHub) {
			if n := gh.Requests("create-release"); n != 0 {
				t.Errorf("create-release requests = %d, want 0", n)
			}
		}},
		{name: "refuses a draft release", setup: func(gh *publishtest.GitHub) { gh.AddRelease("v1.2.3", true) }, err: publish.ErrDestination, errHas: "draft"},
		{name: "reuses identical bytes", setup: func(gh *publishtest.GitHub) {
			gh.AddRelease("v1.2.3", false)
			gh.AddAsset("v1.2.3", name, content)
		}, want: true, check: func(t *testing.T, gh *publishtest.GitHub) {
			if n := gh.Requests("upload"); n != 0 {
				t.Errorf("upload requests = %d, want 0", n)
			}
		}},
		{name: "never replaces different bytes", setup: func(gh *publishtest.GitHub) {
			gh.AddRelease("v1.2.3", false)
			gh.AddAsset("v1.2.3", name, other)
		}, err: publish.ErrAssetExists, check: func(t *testing.T, gh *publishtest.GitHub) {
			if got, _ := gh.Asset("v1.2.3", name); !bytes.Equal(got, other) {
				t.Error("existing asset was changed")
			}
			var ee *publish.ExistsError
			if _, err := newGitHub(t, gh, "v1.2.3").Put(t.Context(), publish.File{Name: name, Body: bytes.NewReader(content)}); !errors.As(err, &ee) || !strings.HasSuffix(ee.URL, "/releases/download/v1.2.3/"+name) {
				t.Errorf("Put() error = %v, want an ExistsError with the existing asset's URL", err)
			}
		}},
		{name: "never replaces a different size", setup: func(gh *publishtest.GitHub) {
			gh.AddRelease("v1.2.3", false)
			gh.AddAsset("v1.2.3", name, []byte("short"))
		}, err: publish.ErrAssetExists},
		{name: "concurrent run creates the release first", setup: func(gh *publishtest.GitHub) {
			gh.Fail("list-releases", publishtest.Fault{Before: func() { gh.AddRelease("v1.2.3", false) }})
		}, check: func(t *testing.T, gh *publishtest.GitHub) {
			if n := gh.Requests("get-release"); n != 2 {
				t.Errorf("get-release requests = %d, want 2 (before and after the 422)", n)
			}
		}},
		{name: "concurrent run uploads the same asset first", setup: func(gh *publishtest.GitHub) {
			gh.AddRelease("v1.2.3", false)
			gh.Fail("upload", publishtest.Fault{Before: func() { gh.AddAsset("v1.2.3", name, content) }})
		}, want: true},
		{name: "primary rate limit waits for the reset", setup: func(gh *publishtest.GitHub) {
			gh.Fail("get-release", publishtest.Fault{PrimaryRateLimit: true, ResetIn: time.Second})
		}, check: func(t *testing.T, gh *publishtest.GitHub) {
			if n := gh.Requests("get-release"); n != 2 {
				t.Errorf("get-release requests = %d, want 2", n)
			}
		}},
		{name: "primary rate limit beyond the wait bound fails", setup: func(gh *publishtest.GitHub) {
			gh.Fail("get-release", publishtest.Fault{PrimaryRateLimit: true, ResetIn: time.Hour})
		}, err: publish.ErrRateLimited},
		{name: "secondary rate limit honours Retry-After", setup: func(gh *publishtest.GitHub) {
			gh.Fail("upload", publishtest.Fault{SecondaryRateLimit: true, RetryAfter: 1})
		}, check: func(t *testing.T, gh *publishtest.GitHub) {
			if n := gh.Requests("upload"); n != 2 {
				t.Errorf("upload requests = %d, want 2", n)
			}
		}},
		{name: "secondary rate limit beyond the wait bound fails", setup: func(gh *publishtest.GitHub) {
			gh.Fail("create-release", publishtest.Fault{SecondaryRateLimit: true, RetryAfter: 600})
		}, err: publish.ErrRateLimited},
		{name: "429 with Retry-After is retried", setup: func(gh *publishtest.GitHub) {
			gh.Fail("list-assets", publishtest.Fault{Status: 429})
		}},
		{name: "5xx then success", setup: func(gh *publishtest.GitHub) {
			gh.Fail("get-release", publishtest.Fault{Status: 502})
			gh.Fail("list-assets", publishtest.Fault{Status: 500}, publishtest.Fault{Status: 503})
			gh.Fail("upload", publishtest.Fault{Status: 500})
		}},
		{name: "persistent 5xx gives up", setup: func(gh *publishtest.GitHub) {
			gh.Fail("create-release", publishtest.Fault{Status: 500}, publishtest.Fault{Status: 500}, publishtest.Fault{Status: 500}, publishtest.Fault{Status: 500})
		}, errHas: "500"},
		{name: "half-made upload is deleted and redone", setup: func(gh *publishtest.GitHub) {
			gh.Fail("upload", publishtest.Fault{HalfUpload: true})
		}, check: func(t *testing.T, gh *publishtest.GitHub) {
			if n := gh.Requests("delete-asset"); n != 1 {
				t.Errorf("delete-asset requests = %d, want 1", n)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gh := publishtest.NewGitHub(t, testRepo)
			if tc.setup != nil {
				tc.setup(gh)
			}
			p := newGitHub(t, gh, "v1.2.3")
			obj, err := p.Put(t.Context(), publish.File{Name: name, Body: bytes.NewReader(content), ContentType: "application/zip"})
			if tc.check != nil {
				defer tc.check(t, gh)
			}
			if tc.err != nil || tc.errHas != "" {
				if err == nil || (tc.err != nil && !errors.Is(err, tc.err)) || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("Put() error = %v, want %v containing %q", err, tc.err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("Put() error = %v", err)
			}
			want := &publish.Object{Name: name, URL: gh.URL + "/" + testRepo + "/releases/download/v1.2.3/" + name, Size: int64(len(content)), SHA256: sum(content), Reused: tc.want}
			if obj.AssetID <= 0 {
				t.Errorf("Put() AssetID = %d, want GitHub's asset id", obj.AssetID)
			}
			if diff := cmp.Diff(want, obj, cmpopts.IgnoreFields(publish.Object{}, "AssetID")); diff != "" {
				t.Errorf("Put() (-want +got):\n%s", diff)
			}
			if got := download(t, obj.URL); !bytes.Equal(got, content) {
				t.Errorf("downloaded %d bytes, want the %d uploaded", len(got), len(content))
			}
		})
	}
}

func TestGitHubContentTypeAndProgress(t *testing.T) {
	t.Parallel()
	gh := publishtest.NewGitHub(t, testRepo)
	var calls int
	p, err := publish.NewGitHub(publish.Options{
		GitHub:           publish.GitHubOptions{Repository: testRepo, Token: gh.Token, Tag: "ferry-1.0.0", APIURL: gh.URL, ServerURL: gh.URL, Prerelease: true},
		Progress:         func(string, int64, int64) { calls++ },
		ProgressInterval: time.Nanosecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte{7}, 1<<20)
	if _, err := p.Put(t.Context(), publish.File{Name: "a.sigstore.json", Body: bytes.NewReader(body), ContentType: "application/json"}); err != nil {
		t.Fatal(err)
	}
	rel := gh.Releases()[0]
	if got := rel.Assets[0].ContentType; got != "application/json" {
		t.Errorf("content type = %q, want application/json", got)
	}
	if !rel.Prerelease {
		t.Error("release is not a prerelease")
	}
	if calls == 0 {
		t.Error("progress was never reported")
	}
}

func TestNewGitHubValidates(t *testing.T) {
	t.Parallel()
	_, err := publish.NewGitHub(publish.Options{GitHub: publish.GitHubOptions{Repository: "nope"}})
	if !errors.Is(err, publish.ErrDestination) {
		t.Fatalf("NewGitHub() error = %v, want ErrDestination", err)
	}
	for _, want := range []string{"owner/name", "token", "tag"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("NewGitHub() error = %v, want it to mention %q", err, want)
		}
	}
	gh := publishtest.NewGitHub(t, testRepo)
	p := newGitHub(t, gh, "v1")
	if _, err := p.Put(t.Context(), publish.File{Name: "has space.zip", Body: bytes.NewReader(nil)}); !errors.Is(err, publish.ErrDestination) {
		t.Errorf("Put(bad name) error = %v, want ErrDestination", err)
	}
}

func TestGitHubBadToken(t *testing.T) {
	t.Parallel()
	gh := publishtest.NewGitHub(t, testRepo)
	p, err := publish.NewGitHub(publish.Options{GitHub: publish.GitHubOptions{Repository: testRepo, Token: "wrong", Tag: "v1", APIURL: gh.URL, ServerURL: gh.URL}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Put(t.Context(), publish.File{Name: "a.zip", Body: bytes.NewReader([]byte("x"))})
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("Put() error = %v, want a 401", err)
	}
	if n := gh.Requests("get-release"); n != 1 {
		t.Errorf("get-release requests = %d, want 1 (401 is not retried)", n)
	}
}

// TestGitHubPrivate: Private reports the repository's visibility from the API, assets carry
// their ids, and a re-run in a private repository (whose browser URLs need a login)
// compares the existing asset through the API's signed redirect and reuses it.
func TestGitHubPrivate(t *testing.T) {
	t.Parallel()
	for _, private := range []bool{false, true} {
		gh := publishtest.NewGitHub(t, testRepo)
		gh.Private = private
		p := newGitHub(t, gh, "v1.0.0")
		got, err := p.Private(t.Context())
		if err != nil || got != private {
			t.Fatalf("Private() = %v, %v, want %v", got, err, private)
		}
		body := []byte("archive bytes")
		first, err := p.Put(t.Context(), publish.File{Name: "app-1.0.0.zip", Body: bytes.NewReader(body)})
		if err != nil {
			t.Fatalf("Put: %v", err)
		}
		again, err := newGitHub(t, gh, "v1.0.0").Put(t.Context(), publish.File{Name: "app-1.0.0.zip", Body: bytes.NewReader(body)})
		if err != nil {
			t.Fatalf("Put again (private %v): %v", private, err)
		}
		if first.AssetID == 0 || again.AssetID != first.AssetID || !again.Reused {
			t.Errorf("private %v: asset ids %d then %d (reused %v), want one nonzero id reused", private, first.AssetID, again.AssetID, again.Reused)
		}
		resp, err := http.Get(first.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[bool]int{false: 200, true: 404}[private]; resp.StatusCode != want {
			t.Errorf("private %v: anonymous GET of the browser URL = %d, want %d", private, resp.StatusCode, want)
		}
	}
}
