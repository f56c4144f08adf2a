package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-github/v60/github"
)

// Defaults for github.com.
const (
	DefaultGitHubAPIURL    = "https://api.github.com"
	DefaultGitHubServerURL = "https://github.com"
)

// GitHubOptions configure the "github-release" destination.
type GitHubOptions struct {
	// Repository is "owner/name". Required.
	Repository string
	// Token authenticates; it needs `contents: write`. Required.
	Token string
	// Tag names the release. Required. A release that does not exist is created, and so is
	// its tag (at Commit) when the tag does not exist yet.
	Tag string
	// Commit is the tag's target when the tag must be created; empty: the default branch.
	Commit string
	// APIURL is GITHUB_API_URL (default https://api.github.com); any other value is treated
	// as GitHub Enterprise Server, whose uploads go to ServerURL + "/api/uploads/".
	APIURL string
	// ServerURL is GITHUB_SERVER_URL (default https://github.com).
	ServerURL string
	// ReleaseName names a created release (default Tag), Body describes it.
	ReleaseName, Body string
	// Prerelease marks a created release as a prerelease that is not made the latest.
	Prerelease bool
}

// GitHub publishes release assets. It is safe for concurrent use.
type GitHub struct {
	c           *github.Client
	owner, repo string
	opts        Options

	mu      sync.Mutex
	release *github.RepositoryRelease
}

var _ Publisher = (*GitHub)(nil)

// NewGitHub returns a publisher for opts.GitHub. It validates the options and makes no call.
func NewGitHub(opts Options) (*GitHub, error) {
	opts.defaults()
	g := opts.GitHub
	var errs []error
	owner, repo, ok := strings.Cut(g.Repository, "/")
	if !ok || owner == "" || repo == "" || strings.Contains(repo, "/") {
		errs = append(errs, fmt.Errorf("repository %q is not owner/name", g.Repository))
	}
	if g.Token == "" {
		errs = append(errs, errors.New("no GitHub token"))
	}
	if g.Tag == "" {
		errs = append(errs, errors.New("no release tag"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrDestination, errors.Join(errs...))
	}
	c := github.NewClient(opts.HTTPClient).WithAuthToken(g.Token)
	api := strings.TrimRight(g.APIURL, "/")
	if api != "" && api != DefaultGitHubAPIURL {
		server := g.ServerURL
		if server == "" {
			server = api
		}
		var err error
		if c, err = c.WithEnterpriseURLs(api+"/", strings.TrimRight(server, "/")+"/"); err != nil {
			return nil, fmt.Errorf("%w: GitHub URLs: %v", ErrDestination, err)
		}
	}
	return &GitHub{c: c, owner: owner, repo: repo, opts: opts}, nil
}

// Close does nothing; it is there for [Publisher].
func (g *GitHub) Close() error { return nil }

// Private asks GitHub whether the repository is private (or internal): its release assets
// then need a GitHub login to download, and devices must get them through the relay.
func (g *GitHub) Private(ctx context.Context) (bool, error) {
	var repo *github.Repository
	err := g.retry(ctx, "get repository", func() (*github.Response, error) {
		var resp *github.Response
		var err error
		repo, resp, err = g.c.Repositories.Get(ctx, g.owner, g.repo)
		return resp, err
	})
	if err != nil {
		return false, fmt.Errorf("get repository %s/%s: %w", g.owner, g.repo, err)
	}
	return repo.GetPrivate() || (repo.GetVisibility() != "" && repo.GetVisibility() != "public"), nil
}

// Release returns the release the assets go to, finding or creating it on first use.
func (g *GitHub) Release(ctx context.Context) (*github.RepositoryRelease, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.release != nil {
		return g.release, nil
	}
	rel, err := g.findOrCreate(ctx)
	if err != nil {
		return nil, err
	}
	g.release = rel
	return rel, nil
}

func (g *GitHub) findOrCreate(ctx context.Context) (*github.RepositoryRelease, error) {
	tag := g.opts.GitHub.Tag
	rel, err := g.byTag(ctx)
	if err != nil || rel != nil {
		return rel, err
	}
	// GetReleaseByTag does not see drafts; a draft's asset URLs are not public and change
	// when it is published, so refuse to publish into one.
	if err := g.checkNoDraft(ctx); err != nil {
		return nil, err
	}
	gh := g.opts.GitHub
	req := &github.RepositoryRelease{TagName: &tag, Name: github.String(gh.ReleaseName), Prerelease: github.Bool(gh.Prerelease)}
	if gh.ReleaseName == "" {
		req.Name = &tag
	}
	if gh.Body != "" {
		req.Body = &gh.Body
	}
	if gh.Commit != "" {
		req.TargetCommitish = &gh.Commit
	}
	if gh.Prerelease {
		req.MakeLatest = github.String("false")
	}
	err = g.retry(ctx, "create release "+tag, func() (*github.Response, error) {
		var resp *github.Response
		var err error
		rel, resp, err = g.c.Repositories.CreateRelease(ctx, g.owner, g.repo, req)
		return resp, err
	})
	if alreadyExists(err) {
		// A concurrent run created it first.
		if rel, err = g.byTag(ctx); err == nil && rel == nil {
			err = errors.New("GitHub said it exists but cannot find it")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("create release %q in %s/%s: %w", tag, g.owner, g.repo, err)
	}
	g.opts.Logger.InfoContext(ctx, "release created", "tag", tag, "id", rel.GetID())
	return rel, nil
}

// byTag returns the published release for the tag, or nil when there is none.
func (g *GitHub) byTag(ctx context.Context) (*github.RepositoryRelease, error) {
	var rel *github.RepositoryRelease
	err := g.retry(ctx, "get release", func() (*github.Response, error) {
		var resp *github.Response
		var err error
		rel, resp, err = g.c.Repositories.GetReleaseByTag(ctx, g.owner, g.repo, g.opts.GitHub.Tag)
		return resp, err
	})
	if statusIs(err, http.StatusNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get release %q of %s/%s: %w", g.opts.GitHub.Tag, g.owner, g.repo, err)
	}
	return rel, nil
}

func (g *GitHub) checkNoDraft(ctx context.Context) error {
	opt := &github.ListOptions{PerPage: 100}
	for page := 0; page < 10; page++ {
		var rels []*github.RepositoryRelease
		var resp *github.Response
		err := g.retry(ctx, "list releases", func() (*github.Response, error) {
			var err error
			rels, resp, err = g.c.Repositories.ListReleases(ctx, g.owner, g.repo, opt)
			return resp, err
		})
		if err != nil {
			return fmt.Errorf("list releases of %s/%s: %w", g.owner, g.repo, err)
		}
		for _, r := range rels {
			if r.GetTagName() == g.opts.GitHub.Tag && r.GetDraft() {
				return fmt.Errorf("%w: the release for tag %q is a draft, whose asset URLs are private and change on publishing: publish it first or use another release tag", ErrDestination, g.opts.GitHub.Tag)
			}
		}
		if resp == nil || resp.NextPage == 0 {
			return nil
		}
		opt.Page = resp.NextPage
	}
	return nil
}

// Put uploads f as a release asset. An asset with the same name and bytes is reused; one
// with other bytes is an error wrapping [ErrAssetExists]. An asset left half-uploaded by an
// earlier attempt (state "starter") is deleted and uploaded again.
func (g *GitHub) Put(ctx context.Context, f File) (*Object, error) {
	if err := checkName(f.Name, false); err != nil {
		return nil, err
	}
	size, sum, _, err := digest(f.Body)
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", f.Name, err)
	}
	rel, err := g.Release(ctx)
	if err != nil {
		return nil, err
	}
	obj := &Object{Name: f.Name, Size: size, SHA256: sum}
	var lastErr error
	for attempt := 0; attempt < g.opts.Attempts; attempt++ {
		existing, err := g.asset(ctx, rel.GetID(), f.Name)
		if err != nil {
			return nil, err
		}
		if existing != nil {
			if existing.GetState() == "uploaded" {
				if err := g.compare(ctx, existing, size, sum); err != nil {
					return nil, err
				}
				obj.URL, obj.Reused, obj.AssetID = existing.GetBrowserDownloadURL(), true, existing.GetID()
				return obj, nil
			}
			// A broken earlier upload: never downloadable, safe to remove.
			if err := g.retry(ctx, "delete asset", func() (*github.Response, error) {
				return g.c.Repositories.DeleteReleaseAsset(ctx, g.owner, g.repo, existing.GetID())
			}); err != nil {
				return nil, fmt.Errorf("delete half-uploaded asset %q: %w", f.Name, err)
			}
		}
		asset, err := g.upload(ctx, rel, f, size)
		if err == nil {
			obj.URL, obj.AssetID = asset.GetBrowserDownloadURL(), asset.GetID()
			return obj, nil
		}
		lastErr = err
		if alreadyExists(err) {
			continue // reconcile with what is there now
		}
		wait, ok := g.retryable(err, attempt)
		if !ok {
			return nil, fmt.Errorf("upload asset %q to release %d: %w", f.Name, rel.GetID(), giveUp(err))
		}
		g.opts.Logger.WarnContext(ctx, "upload failed, retrying", "asset", f.Name, "attempt", attempt+1, "wait", wait, "error", err)
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("upload asset %q to release %d: gave up after %d attempts: %w", f.Name, rel.GetID(), g.opts.Attempts, giveUp(lastErr))
}

func (g *GitHub) upload(ctx context.Context, rel *github.RepositoryRelease, f File, size int64) (*github.ReleaseAsset, error) {
	u := fmt.Sprintf("repos/%s/%s/releases/%d/assets?name=%s", g.owner, g.repo, rel.GetID(), url.QueryEscape(f.Name))
	// A reader of its own: the transport may still be reading a failed attempt's body.
	body := newProgressReader(io.NewSectionReader(f.Body, 0, size), f.Name, size, &g.opts)
	req, err := g.c.NewUploadRequest(u, body, size, contentType(f.ContentType))
	if err != nil {
		return nil, err
	}
	asset := new(github.ReleaseAsset)
	if _, err := g.c.Do(ctx, req, asset); err != nil {
		return nil, err
	}
	return asset, nil
}

// asset returns the release's asset named name, or nil.
func (g *GitHub) asset(ctx context.Context, releaseID int64, name string) (*github.ReleaseAsset, error) {
	opt := &github.ListOptions{PerPage: 100}
	for {
		var assets []*github.ReleaseAsset
		var resp *github.Response
		err := g.retry(ctx, "list assets", func() (*github.Response, error) {
			var err error
			assets, resp, err = g.c.Repositories.ListReleaseAssets(ctx, g.owner, g.repo, releaseID, opt)
			return resp, err
		})
		if err != nil {
			return nil, fmt.Errorf("list assets of release %d: %w", releaseID, err)
		}
		for _, a := range assets {
			if a.GetName() == name {
				return a, nil
			}
		}
		if resp == nil || resp.NextPage == 0 {
			return nil, nil
		}
		opt.Page = resp.NextPage
	}
}

// compare downloads an existing asset and checks it holds exactly size bytes hashing to sum.
func (g *GitHub) compare(ctx context.Context, a *github.ReleaseAsset, size int64, sum string) error {
	if int64(a.GetSize()) != size {
		return &ExistsError{Name: a.GetName(), URL: a.GetBrowserDownloadURL(), AssetID: a.GetID(), Detail: fmt.Sprintf("size %d, ours %d", a.GetSize(), size)}
	}
	var got string
	err := g.retry(ctx, "download asset", func() (*github.Response, error) {
		rc, _, err := g.c.Repositories.DownloadReleaseAsset(ctx, g.owner, g.repo, a.GetID(), g.opts.HTTPClient)
		if err != nil {
			return responseOf(err), err
		}
		defer rc.Close()
		_, got, err = hashReader(rc)
		return nil, err
	})
	if err != nil {
		return fmt.Errorf("download asset %q to compare: %w", a.GetName(), err)
	}
	if got != sum {
		return &ExistsError{Name: a.GetName(), URL: a.GetBrowserDownloadURL(), AssetID: a.GetID(), Detail: fmt.Sprintf("sha256 %s, ours %s", got, sum)}
	}
	return nil
}

// retry runs fn until it succeeds, fails for good, or the attempts are used up.
func (g *GitHub) retry(ctx context.Context, op string, fn func() (*github.Response, error)) error {
	var err error
	for attempt := 0; attempt < g.opts.Attempts; attempt++ {
		_, err = fn()
		if err == nil {
			return nil
		}
		wait, ok := g.retryable(err, attempt)
		if !ok || attempt == g.opts.Attempts-1 {
			return giveUp(err)
		}
		g.opts.Logger.WarnContext(ctx, "GitHub call failed, retrying", "op", op, "attempt", attempt+1, "wait", wait, "error", err)
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
	return err
}

// retryable says whether err is worth another try and how long to wait first. Rate-limit
// waits longer than MaxWait are not retried (and are reported as ErrRateLimited).
func (g *GitHub) retryable(err error, attempt int) (time.Duration, bool) {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return 0, false
	}
	backoff := min(g.opts.Backoff<<attempt, g.opts.MaxWait)
	var rl *github.RateLimitError
	var abuse *github.AbuseRateLimitError
	var er *github.ErrorResponse
	switch {
	case errors.As(err, &rl):
		wait := time.Until(rl.Rate.Reset.Time) + time.Second // reset has a one-second granularity
		return wait, wait <= g.opts.MaxWait
	case errors.As(err, &abuse):
		wait := time.Minute
		if abuse.RetryAfter != nil {
			wait = *abuse.RetryAfter
		}
		return wait, wait <= g.opts.MaxWait
	case errors.As(err, &er) && er.Response != nil:
		code := er.Response.StatusCode
		if code == http.StatusTooManyRequests {
			if s, err := strconv.Atoi(er.Response.Header.Get("Retry-After")); err == nil {
				wait := time.Duration(s) * time.Second
				return wait, wait <= g.opts.MaxWait
			}
			return backoff, true
		}
		return backoff, code >= 500
	}
	var ue *url.Error
	return backoff, errors.As(err, &ue) // transport errors
}

// giveUp marks a final rate-limit error with ErrRateLimited so callers can say what to do.
func giveUp(err error) error {
	var rl *github.RateLimitError
	var abuse *github.AbuseRateLimitError
	if errors.As(err, &rl) {
		return fmt.Errorf("%w: primary limit exhausted until %s (use a token with a higher limit, or re-run later): %w", ErrRateLimited, rl.Rate.Reset.Time.UTC().Format(time.RFC3339), err)
	}
	if errors.As(err, &abuse) {
		return fmt.Errorf("%w: secondary limit (too many requests in a short time; re-run later): %w", ErrRateLimited, err)
	}
	return err
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func statusIs(err error, code int) bool {
	var er *github.ErrorResponse
	return errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == code
}

func responseOf(err error) *github.Response {
	var er *github.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		return &github.Response{Response: er.Response}
	}
	return nil
}

// alreadyExists reports GitHub's 422 "already_exists" validation error.
func alreadyExists(err error) bool {
	var er *github.ErrorResponse
	if !errors.As(err, &er) || er.Response == nil || er.Response.StatusCode != http.StatusUnprocessableEntity {
		return false
	}
	for _, e := range er.Errors {
		if e.Code == "already_exists" {
			return true
		}
	}
	return false
}
