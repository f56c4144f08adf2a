package relayclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Default retry timing of [Client.RegisterBundle].
const (
	DefaultRetryBackoff = time.Second
	DefaultRetryMaxWait = 30 * time.Second
)

// Options configures a [Client]. Every field is optional; a client without credentials can
// still be built, and the relay refuses what it sends.
type Options struct {
	// HTTPClient sends the requests; nil means http.DefaultClient.
	HTTPClient *http.Client
	// UserAgent is sent with every request; empty means "ferry".
	UserAgent string
	// AdminToken is the credential sent as a bearer token to the admin API: an API token
	// ("ferry_…"), a single sign-on session ("ferrys_…") or the bootstrap token
	// (FERRY_ADMIN_TOKEN).
	AdminToken string
	// HMACSecret (the relay's FERRY_HMAC_SECRET) signs registrations. When it is empty,
	// registrations carry the token IDToken returns.
	HMACSecret []byte
	// IDToken returns a GitHub Actions OIDC token for the relay's audience. It is called
	// again for every attempt of a registration, so a runner's token endpoint that fails
	// for a moment is retried like the relay itself.
	IDToken func(ctx context.Context) (string, error)
	// RetryBackoff is the first delay between registration attempts, doubled after each
	// (default [DefaultRetryBackoff]); RetryMaxWait caps one delay, Retry-After included
	// (default [DefaultRetryMaxWait]).
	RetryBackoff time.Duration
	RetryMaxWait time.Duration
	// Logger receives a warning for every registration attempt that will be retried; nil
	// discards them.
	Logger *slog.Logger
}

// Client calls the relay's control API. It is safe for concurrent use.
type Client struct {
	base *url.URL
	opts Options
	log  *slog.Logger
	// reached is set once the relay answered a request (any status): from then on a
	// refused connection is a restart to wait out, not a wrong address.
	reached atomic.Bool
}

// New returns a client of the relay at baseURL (scheme, host and an optional path prefix;
// a trailing slash is ignored).
func New(baseURL string, opts Options) (*Client, error) {
	if host := strings.TrimSpace(baseURL); host != "" && !strings.Contains(host, "://") && !strings.Contains(host, "@") {
		// "relay.example.com" or "relay.example.com:8443": a host without a scheme.
		return nil, fmt.Errorf("relay URL %q has no scheme: write it as https://%s (the relay's base URL)", host, strings.TrimRight(host, "/"))
	}
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		// The parse error quotes the URL, credentials included: keep only its reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("relay URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("relay URL %q: want the relay's base URL, e.g. https://relay.example.com", redact(u))
	}
	u.RawQuery, u.Fragment = "", ""
	if opts.HTTPClient == nil {
		opts.HTTPClient = http.DefaultClient
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "ferry"
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = DefaultRetryBackoff
	}
	if opts.RetryMaxWait <= 0 {
		opts.RetryMaxWait = DefaultRetryMaxWait
	}
	c := &Client{base: u, opts: opts, log: opts.Logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// BaseURL returns the relay's base URL without credentials.
func (c *Client) BaseURL() string { return redact(c.base) }

// endpoint returns the URL of path (already escaped) below the base URL.
func (c *Client) endpoint(path string) string { return c.base.String() + path }

// appPath returns the admin API path of app, with further escaped segments.
func appPath(app string, segments ...string) string {
	var b strings.Builder
	b.WriteString(AppsPath + "/" + url.PathEscape(app))
	for _, s := range segments {
		b.WriteString("/" + url.PathEscape(s))
	}
	return b.String()
}

// newRequest builds a request of path with body (already encoded, or nil).
func (c *Client) newRequest(ctx context.Context, method, path string, body []byte) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint(path), r)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", redactError(err, c.base))
	}
	req.Header.Set("User-Agent", c.opts.UserAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// do sends req and decodes a 2xx answer into out (unless out is nil); any other answer is
// an *Error.
func (c *Client) do(req *http.Request, out any) error {
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		return c.checkReach(redactError(err, req.URL))
	}
	defer resp.Body.Close()
	c.reached.Store(true)
	if err := CheckResponse(resp); err != nil {
		return err
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswer+1))
	if err != nil {
		return fmt.Errorf("read answer of %s %s: %w", req.Method, redact(req.URL), err)
	}
	if len(raw) > MaxAnswer {
		return &decodeError{status: resp.StatusCode, err: fmt.Errorf("larger than %d bytes", MaxAnswer)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return &decodeError{status: resp.StatusCode, err: err}
	}
	return nil
}

// decodeError is a 2xx answer whose body is not what the endpoint answers.
type decodeError struct {
	status int
	err    error
}

func (e *decodeError) Error() string {
	return fmt.Sprintf("relay answered %d with an unreadable body: %v", e.status, e.err)
}

func (e *decodeError) Unwrap() error { return e.err }

// admin sends an admin API request with the admin token and decodes the answer into out.
func (c *Client) admin(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
	}
	req, err := c.newRequest(ctx, method, path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.opts.AdminToken)
	return c.do(req, out)
}

// errNoCredentials means a registration was attempted with neither HMACSecret nor IDToken.
var errNoCredentials = errors.New("no registration credentials: set Options.HMACSecret or Options.IDToken")
