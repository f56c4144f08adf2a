package publish

import (
	"context"
	"crypto/md5" //nolint:gosec // MD5 is what S3 and gocloud compare objects with, not a security check.
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// DestinationGitHub is the destination that publishes to GitHub Release assets.
const DestinationGitHub = "github-release"

// Errors callers can branch on.
var (
	// ErrAssetExists means the name already holds different bytes. Nothing was replaced: a
	// published URL never serves different content. Publish under a new version instead.
	ErrAssetExists = errors.New("a different file already exists under this name")
	// ErrDestination means the destination string or its options are invalid.
	ErrDestination = errors.New("invalid destination")
	// ErrRateLimited means GitHub's rate limit would need a longer wait than allowed.
	ErrRateLimited = errors.New("rate limited")
)

// ExistsError reports that Name already holds different bytes; it matches [ErrAssetExists]
// with errors.Is. URL is where the existing file is served, for callers that may keep it
// (e.g. a signature made by an earlier attempt for the same, reused archive).
type ExistsError struct {
	Name   string
	URL    string
	Detail string // how the existing file differs
	// AssetID is the existing release asset's id ("github-release" only).
	AssetID int64
}

func (e *ExistsError) Error() string {
	return fmt.Sprintf("%q: %v (%s); publish a new version instead", e.Name, ErrAssetExists, e.Detail)
}

// Is reports whether target is ErrAssetExists.
func (e *ExistsError) Is(target error) bool { return target == ErrAssetExists }

// File is one file to publish.
type File struct {
	// Name is the asset name (GitHub) or the object key inside the bucket (and its prefix).
	// GitHub asset names may use letters, digits and ". _ - +"; keys may also use "/".
	Name string
	// Body is read from its start. It is read more than once (to hash it, to compare it
	// with an existing object, and on retries), so it must seek; each upload attempt reads
	// it through its own io.SectionReader, because net/http may still be reading a failed
	// attempt's body when the retry starts (*os.File and *bytes.Reader qualify). The caller
	// closes it.
	Body interface {
		io.ReadSeeker
		io.ReaderAt
	}
	// ContentType defaults to application/octet-stream.
	ContentType string
}

// Object describes a published file.
type Object struct {
	Name string
	// URL is where devices download the file. It never serves different bytes.
	URL string
	// Size is the byte size, SHA256 the lowercase hex SHA-256 of the content.
	Size   int64
	SHA256 string
	// Reused reports that identical bytes were already published under Name (a re-run).
	Reused bool
	// Expires is when URL stops working (presigned bucket URLs); zero when it does not.
	Expires time.Time
	// AssetID is GitHub's id of the release asset (the "github-release" destination only),
	// which the relay needs to download assets of a private repository.
	AssetID int64
}

// Publisher uploads files to one destination. Implementations are safe for concurrent use.
type Publisher interface {
	// Put publishes f and returns where it can be downloaded. It blocks until the upload is
	// complete and durable, or has failed without leaving anything downloadable.
	Put(ctx context.Context, f File) (*Object, error)
	// Close releases the destination's resources.
	Close() error
}

// Options configure [New]. Every zero value is a documented default.
type Options struct {
	// GitHub configures the "github-release" destination; ignored for buckets.
	GitHub GitHubOptions

	// PublicBaseURL is how devices reach bucket objects: the object URL is PublicBaseURL +
	// "/" + key (keys are path-escaped). Empty: a presigned URL valid for SignedURLExpiry.
	PublicBaseURL string
	// SignedURLExpiry is the lifetime of presigned URLs. Default and maximum: 7 days (S3's limit).
	SignedURLExpiry time.Duration
	// Getenv supplies AWS credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
	// AWS_SESSION_TOKEN) and AWS_REGION for s3:// destinations. Nil: the SDK's default chain,
	// which reads the process environment, shared config and instance roles.
	Getenv func(string) string

	// HTTPClient is used for GitHub. Nil: a client with a 10-minute timeout.
	HTTPClient *http.Client
	// Logger receives progress and warnings. Nil: discard.
	Logger *slog.Logger
	// Progress, when set, is called every ProgressInterval while an upload runs (so only
	// uploads that take longer than that report), with bytes sent so far and the total.
	Progress func(name string, sent, total int64)
	// ProgressInterval defaults to 3 seconds.
	ProgressInterval time.Duration

	// Attempts bounds the tries of one GitHub operation (default 4: three retries).
	Attempts int
	// MaxWait caps one wait for a rate-limit reset or Retry-After (default 60 s); a longer
	// wait fails with ErrRateLimited instead.
	MaxWait time.Duration
	// Backoff is the first retry delay after a 5xx or transport error, doubled after each
	// try (default 1 s).
	Backoff time.Duration
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = 3 * time.Second
	}
	if o.Attempts <= 0 {
		o.Attempts = 4
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 60 * time.Second
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.SignedURLExpiry <= 0 || o.SignedURLExpiry > maxSignedURLExpiry {
		o.SignedURLExpiry = maxSignedURLExpiry
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Minute}
	}
}

const maxSignedURLExpiry = 7 * 24 * time.Hour

// New opens the destination: "github-release" (see [GitHubOptions]) or a bucket URL with the
// scheme s3, gs, azblob or file. It checks the options but makes no network call.
func New(ctx context.Context, destination string, opts Options) (Publisher, error) {
	if destination == DestinationGitHub {
		return NewGitHub(opts)
	}
	return OpenBucket(ctx, destination, opts)
}

// digest hashes r from its start and rewinds it.
func digest(r io.ReadSeeker) (size int64, sum string, md5sum []byte, err error) {
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return 0, "", nil, fmt.Errorf("rewind: %w", err)
	}
	h, m := sha256.New(), md5.New() //nolint:gosec // see import
	n, err := io.Copy(io.MultiWriter(h, m), r)
	if err != nil {
		return 0, "", nil, fmt.Errorf("hash: %w", err)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return 0, "", nil, fmt.Errorf("rewind: %w", err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), m.Sum(nil), nil
}

// hashReader returns the size and hex SHA-256 of what r yields.
func hashReader(r io.Reader) (int64, string, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return n, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

func contentType(ct string) string {
	if ct == "" {
		return "application/octet-stream"
	}
	return ct
}

// progressReader reports progress every interval while it is read.
type progressReader struct {
	r        io.Reader
	name     string
	total    int64
	interval time.Duration
	report   func(name string, sent, total int64)

	mu   sync.Mutex
	sent int64
	last time.Time
}

func newProgressReader(r io.Reader, name string, total int64, o *Options) io.Reader {
	if o.Progress == nil {
		return r
	}
	return &progressReader{r: r, name: name, total: total, interval: o.ProgressInterval, report: o.Progress, last: time.Now()}
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.mu.Lock()
	p.sent += int64(n)
	now := time.Now()
	due := now.Sub(p.last) >= p.interval
	if due {
		p.last = now
	}
	sent := p.sent
	p.mu.Unlock()
	if due {
		p.report(p.name, sent, p.total)
	}
	return n, err
}

// checkName refuses names that GitHub would rewrite or that escape a bucket prefix.
func checkName(name string, slash bool) error {
	if name == "" {
		return fmt.Errorf("%w: empty file name", ErrDestination)
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: file name %q has an empty, . or .. segment", ErrDestination, name)
		}
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-+", c) || (slash && c == '/')
		if !ok {
			return fmt.Errorf("%w: file name %q: character %q is not allowed", ErrDestination, name, c)
		}
	}
	return nil
}
