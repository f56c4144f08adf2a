package device

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ferryhq/ferry/internal/archive"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/redact"
	"github.com/ferryhq/ferry/internal/relayclient"
)

// Bounds on what the client reads from the network (docs/architecture.md §6.1).
const (
	// MaxResponseBytes bounds a JSON answer from /updates, /stats or /channel_self.
	MaxResponseBytes = 1 << 20
	// MaxDownloadBytes bounds one archive or manifest file.
	MaxDownloadBytes = 1 << 30
	// DefaultPluginVersion is the plugin version the client imitates when Info leaves it empty.
	DefaultPluginVersion = "8.51.23"
)

// Client is one device running @capgo/capacitor-updater 8.51.x, pointed at a relay. It
// keeps the device's state the way the plugin does: the running bundle (Info.VersionName),
// the channel it stored (Info.DefaultChannel), the bundles it has downloaded under Dir and
// their status. A Client is not safe for concurrent use; use one per simulated device.
type Client struct {
	// UpdateURL, StatsURL and ChannelURL are the plugin's updateUrl, statsUrl and
	// channelUrl. An empty StatsURL disables stats, as in the plugin.
	UpdateURL  string
	StatsURL   string
	ChannelURL string
	// Info is the device's info object. Empty PluginVersion defaults to
	// [DefaultPluginVersion], empty VersionName to "builtin" and empty Platform to "android".
	// KeyID is filled from PublicKey when empty.
	Info channel.DeviceInfo
	// PublicKey is the app's publicKey (PKCS#1 RSA). When set the device sends key_id,
	// requires a session key and an encrypted (V3) checksum, and decrypts bundles.
	PublicKey *rsa.PublicKey
	// HTTPClient is used for every request; nil means a client with a 20 s timeout (the
	// plugin's responseTimeout).
	HTTPClient *http.Client
	// Dir holds downloads and unpacked bundles (Dir/bundles/<version>); required for
	// Download and Update.
	Dir string
	// Logger receives progress messages; nil discards them.
	Logger *slog.Logger
	// Now returns the time used for stat timestamps; nil means time.Now.
	Now func() time.Time

	mu       sync.Mutex
	bundles  map[string]*Bundle // by version
	fallback string             // last bundle that called notifyAppReady ("builtin" at first)
}

// Status is a downloaded bundle's state, as the plugin's BundleInfo keeps it.
type Status string

// Bundle statuses.
const (
	StatusPending Status = "pending" // downloaded, not yet confirmed by notifyAppReady
	StatusSuccess Status = "success" // notifyAppReady was called while it ran
	StatusError   Status = "error"   // it failed to start; never installed again
)

// Bundle is a downloaded and unpacked bundle.
type Bundle struct {
	Version string
	// Path is the directory holding the unpacked web root (index.html at its top).
	Path string
	// Files lists the unpacked files, slash-separated and sorted.
	Files []string
	// Checksum is the plain lowercase hex SHA-256 that was verified (of the zip, or empty
	// for a manifest update).
	Checksum string
	// Encrypted reports whether the download was decrypted with the session key.
	Encrypted bool
	// BytesTransferred counts bytes received over HTTP for this bundle.
	BytesTransferred int64
	// FilesDownloaded and FilesReused count manifest files fetched and copied from earlier
	// bundles (zero for a zip update).
	FilesDownloaded, FilesReused int
	Status                       Status
}

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return &http.Client{Timeout: 20 * time.Second}
}

func (c *Client) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// info returns Info with the defaults applied.
func (c *Client) info() channel.DeviceInfo {
	in := c.Info
	if in.PluginVersion == "" {
		in.PluginVersion = DefaultPluginVersion
	}
	if in.VersionName == "" {
		in.VersionName = "builtin"
	}
	if in.Platform == "" {
		in.Platform = "android"
	}
	if in.KeyID == "" && c.PublicKey != nil {
		in.KeyID = archive.KeyID(c.PublicKey)
	}
	if c.PublicKey == nil {
		in.KeyID = ""
	}
	return in
}

// wireInfo is the info object exactly as 8.51.x Android sends it (docs/protocol.md §1.2):
// custom_id, version_code, version_os and defaultChannel are always present, install_source is
// present on Android (iOS omits it when empty) and key_id only with a public key.
type wireInfo struct {
	Platform       string  `json:"platform"`
	DeviceID       string  `json:"device_id"`
	AppID          string  `json:"app_id"`
	CustomID       string  `json:"custom_id"`
	VersionBuild   string  `json:"version_build"`
	VersionCode    string  `json:"version_code"`
	VersionOS      string  `json:"version_os"`
	VersionName    string  `json:"version_name"`
	PluginVersion  string  `json:"plugin_version"`
	IsEmulator     bool    `json:"is_emulator"`
	IsProd         bool    `json:"is_prod"`
	InstallSource  *string `json:"install_source,omitempty"`
	DefaultChannel string  `json:"defaultChannel"`
	KeyID          string  `json:"key_id,omitempty"`
}

func toWire(in channel.DeviceInfo) wireInfo {
	w := wireInfo{
		Platform: in.Platform, DeviceID: in.DeviceID, AppID: in.AppID, CustomID: in.CustomID,
		VersionBuild: in.VersionBuild, VersionCode: in.VersionCode, VersionOS: in.VersionOS,
		VersionName: in.VersionName, PluginVersion: in.PluginVersion, IsEmulator: in.IsEmulator,
		IsProd: in.IsProd, DefaultChannel: in.DefaultChannel, KeyID: in.KeyID,
	}
	if in.Platform != "ios" || in.InstallSource != "" {
		src := in.InstallSource
		w.InstallSource = &src
	}
	return w
}

// UserAgent returns the plugin's User-Agent: CapacitorUpdater/<plugin_version> (<app_id>)
// <platform>/<version_os>.
func (c *Client) UserAgent() string {
	in := c.info()
	return fmt.Sprintf("CapacitorUpdater/%s (%s) %s/%s", in.PluginVersion, in.AppID, in.Platform, in.VersionOS)
}

// newRequest builds a request with the plugin's headers.
func (c *Client) newRequest(ctx context.Context, method, u string, body any) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode body: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("User-Agent", c.UserAgent())
	if body != nil {
		if c.info().Platform == "ios" {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json")
		} else {
			req.Header.Set("Content-Type", "application/json; charset=utf-8")
		}
	}
	return req, nil
}

// do sends req and decodes a JSON answer into out. A non-2xx answer returns a
// *ResponseError (after decoding what it can into out); a 2xx answer that out cannot hold
// returns an error wrapping [ErrParse].
func (c *Client) do(req *http.Request, out any) (int, error) {
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s (network_error): %w", req.Method, redact.URL(req.URL.String()), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("read answer of %s: %w", redact.URL(req.URL.String()), err)
	}
	if len(b) > MaxResponseBytes {
		return resp.StatusCode, fmt.Errorf("answer of %s: larger than %d bytes: %w", redact.URL(req.URL.String()), MaxResponseBytes, ErrParse)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e, ok := relayclient.ParseError(b)
		if ok {
			_ = json.Unmarshal(b, out)
		}
		return resp.StatusCode, &ResponseError{StatusCode: resp.StatusCode, Code: e.Code, Message: e.Message}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return resp.StatusCode, fmt.Errorf("decode answer of %s: %w: %w", redact.URL(req.URL.String()), ErrParse, err)
	}
	return resp.StatusCode, nil
}

// Check asks the relay for an update (POST updateUrl) with the exact 8.51.x body and
// headers, and returns its answer. Protocol refusals (error/kind in the body, HTTP 200)
// are answers, not errors: inspect [Outcome]. Transport failures, non-2xx answers
// (*[ResponseError]) and bodies that are not a JSON object ([ErrParse]) are errors.
func (c *Client) Check(ctx context.Context) (*channel.UpdateResponse, error) {
	if c.UpdateURL == "" {
		return nil, fmt.Errorf("check: updateUrl is empty (auto-update disabled)")
	}
	req, err := c.newRequest(ctx, http.MethodPost, c.UpdateURL, toWire(c.info()))
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	var resp channel.UpdateResponse
	if _, err := c.do(req, &resp); err != nil {
		var re *ResponseError
		if errors.As(err, &re) && re.Code != "" {
			return &resp, err
		}
		return nil, fmt.Errorf("check: %w", err)
	}
	c.logger().DebugContext(ctx, "update check", "version", resp.Version, "error", resp.Error, "kind", resp.Kind)
	return &resp, nil
}

// Outcome classifies an update answer as the plugin does (docs/protocol.md §1.4): "update" when it
// offers a different version with a URL, "builtin" for a revert to the built-in bundle,
// "same_version" when it offers the running version, "invalid" when it offers nothing
// usable (no or bad URL, which the plugin reports as download_fail), or the normalised
// kind of a refusal: "up_to_date", "blocked" or "failed" (a missing or unknown kind is
// "failed").
func Outcome(resp *channel.UpdateResponse, running string) string {
	if resp.Error != "" || resp.Kind != "" {
		switch resp.Kind {
		case channel.KindUpToDate, channel.KindBlocked, channel.KindFailed:
			return resp.Kind
		}
		return channel.KindFailed
	}
	if resp.Version == "builtin" {
		return "builtin"
	}
	if u, err := url.Parse(resp.URL); resp.URL == "" || err != nil || u.Scheme == "" || u.Host == "" {
		return "invalid"
	}
	if resp.Version == "" || resp.Version == running {
		return "same_version"
	}
	return "update"
}

// Running returns the version of the bundle the device runs ("builtin" at first).
func (c *Client) Running() string { return c.info().VersionName }

// Bundles returns the bundles downloaded so far, by version.
func (c *Client) Bundles() map[string]Bundle {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]Bundle, len(c.bundles))
	for k, b := range c.bundles {
		out[k] = *b
	}
	return out
}

// bundleDir is where the bundle of version is installed: one element under Dir/bundles,
// whatever the relay calls the version (see safeJoin).
func (c *Client) bundleDir(version string) (string, error) {
	return safeJoin(filepath.Join(c.Dir, "bundles"), safeName(version))
}

// safeName makes a version usable as one path element.
func safeName(s string) string {
	r := strings.NewReplacer("/", "_", "\\", "_", "\x00", "_", ":", "_")
	s = r.Replace(s)
	if s == "" || s == "." || s == ".." {
		s = "_" + s
	}
	return s
}

func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return nil
}
