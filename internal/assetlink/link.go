package assetlink

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/google/go-github/v60/github"
)

// DefaultAPIURL is github.com's REST API.
const DefaultAPIURL = "https://api.github.com"

// Errors callers branch on.
var (
	// ErrNotFound means GitHub has no such asset (or the credential cannot see it).
	ErrNotFound = errors.New("release asset not found")
	// ErrRateLimited means GitHub refused the call for its rate limits; see [RateLimitError].
	ErrRateLimited = errors.New("GitHub rate limit")
)

// RateLimitError is a refusal for GitHub's rate limits; Until is when to ask again.
type RateLimitError struct {
	Until time.Time
	Err   error
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("%v until %s: %v", ErrRateLimited, e.Until.UTC().Format(time.RFC3339), e.Err)
}

// Is reports whether target is ErrRateLimited.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

// Unwrap returns the GitHub error.
func (e *RateLimitError) Unwrap() error { return e.Err }

// RetryAt returns Until: when GitHub may be asked again.
func (e *RateLimitError) RetryAt() time.Time { return e.Until }

// StatusError is any other refusal by GitHub, with its HTTP status.
type StatusError struct {
	Code int
	Err  error
}

func (e *StatusError) Error() string { return e.Err.Error() }

// StatusCode returns GitHub's HTTP status.
func (e *StatusError) StatusCode() int { return e.Code }

// Is reports whether target is ErrNotFound and the status 404.
func (e *StatusError) Is(target error) bool {
	return target == ErrNotFound && e.Code == http.StatusNotFound
}

// Unwrap returns the GitHub error.
func (e *StatusError) Unwrap() error { return e.Err }

// Options configure [New]: exactly one of Token or App.
type Options struct {
	// Token is a fine-grained token with contents: read on the repository.
	Token string
	// App is a GitHub App installation.
	App *App
	// APIURL is the REST API base; empty means [DefaultAPIURL].
	APIURL string
	// Transport carries the requests; nil means http.DefaultTransport.
	Transport http.RoundTripper
	// Timeout bounds each call; 0 means 10 seconds.
	Timeout time.Duration
	// Now is the clock for expiry arithmetic; nil means time.Now.
	Now func() time.Time
}

// App is a GitHub App installation: tokens are minted from PrivateKey (PEM) and refreshed
// before they expire by ghinstallation.
type App struct {
	AppID, InstallationID int64
	PrivateKey            []byte
}

// Link is a short-lived download URL.
type Link struct {
	URL string
	// Expires is when URL stops working, read from its query (see [Expiry]).
	Expires time.Time
}

// Linker asks GitHub for download URLs of one repository's release assets. It is safe
// for concurrent use; it does not cache (the relay does).
type Linker struct {
	c           *github.Client
	owner, repo string
	now         func() time.Time
}

// New checks opts and returns a Linker for repository "owner/name"; it makes no call.
func New(repository string, opts Options) (*Linker, error) {
	owner, repo, ok := strings.Cut(repository, "/")
	if !ok || owner == "" || repo == "" || strings.Contains(repo, "/") {
		return nil, fmt.Errorf("repository %q is not owner/name", repository)
	}
	if (opts.Token == "") == (opts.App == nil) {
		return nil, errors.New("give either a token or a GitHub App installation")
	}
	tr := opts.Transport
	if tr == nil {
		tr = http.DefaultTransport
	}
	api := strings.TrimRight(opts.APIURL, "/")
	if api == "" {
		api = DefaultAPIURL
	}
	var it *ghinstallation.Transport
	if opts.App != nil {
		var err error
		if it, err = ghinstallation.New(tr, opts.App.AppID, opts.App.InstallationID, opts.App.PrivateKey); err != nil {
			return nil, fmt.Errorf("GitHub App private key: %w", err)
		}
		tr = it
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	c := github.NewClient(&http.Client{Transport: tr, Timeout: timeout})
	if opts.Token != "" {
		c = c.WithAuthToken(opts.Token)
	}
	if api != DefaultAPIURL {
		var err error
		if c, err = c.WithEnterpriseURLs(api+"/", api+"/"); err != nil {
			return nil, fmt.Errorf("API URL %q: %w", api, err)
		}
	}
	if it != nil {
		// Installation tokens come from the same API (GHES: HOST/api/v3).
		it.BaseURL = strings.TrimRight(c.BaseURL.String(), "/")
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Linker{c: c, owner: owner, repo: repo, now: now}, nil
}

// Link asks GitHub for a download URL of asset id (one API call). It returns an error
// matching [ErrNotFound] for an unknown asset and a [*RateLimitError] when GitHub's limits
// refuse the call.
func (l *Linker) Link(ctx context.Context, id int64) (*Link, error) {
	rc, loc, err := l.c.Repositories.DownloadReleaseAsset(ctx, l.owner, l.repo, id, nil)
	if err != nil {
		return nil, l.classify(id, err)
	}
	if rc != nil {
		rc.Close()
		return nil, fmt.Errorf("asset %d: GitHub answered with the content instead of a redirect", id)
	}
	if loc == "" {
		return nil, fmt.Errorf("asset %d: GitHub's redirect had no location", id)
	}
	return &Link{URL: loc, Expires: Expiry(loc, l.now())}, nil
}

func (l *Linker) classify(id int64, err error) error {
	var rl *github.RateLimitError
	var abuse *github.AbuseRateLimitError
	var er *github.ErrorResponse
	switch {
	case errors.As(err, &rl):
		return &RateLimitError{Until: rl.Rate.Reset.Time, Err: err}
	case errors.As(err, &abuse):
		wait := time.Minute
		if abuse.RetryAfter != nil {
			wait = *abuse.RetryAfter
		}
		return &RateLimitError{Until: l.now().Add(wait), Err: err}
	case errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusTooManyRequests:
		return &RateLimitError{Until: l.now().Add(time.Minute), Err: err}
	case errors.As(err, &er) && er.Response != nil:
		return &StatusError{Code: er.Response.StatusCode, Err: fmt.Errorf("asset %d of %s/%s: %w", id, l.owner, l.repo, err)}
	}
	return fmt.Errorf("asset %d of %s/%s: %w", id, l.owner, l.repo, err)
}
