package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// Bounds of the asset links (see [AssetLinks]).
const (
	// DefaultMaxAssetLinks is how many asset links the embedded store keeps at once; storing
	// one more deletes the one that expires first (an expired one, when there is one).
	DefaultMaxAssetLinks = 10000
	// MaxAssetLinkURL is the longest URL an asset link may have, in bytes. GitHub's signed
	// URLs are under 1 KiB.
	MaxAssetLinkURL = 8 << 10
	// MaxAssetLinkLifetime is the furthest ahead an asset link's expiry may be: a store
	// keeps a link no longer than an object store signs one (S3: 7 days).
	MaxAssetLinkLifetime = 7 * 24 * time.Hour
)

// AssetLinks is the part of the store contract that shares the short-lived signed download
// URLs of private release assets between relay instances, so one GitHub API call per asset
// and URL lifetime serves every instance sharing the store (docs/relay.md#private-repositories).
// A link is a cache entry, not a record: it vanishes at its expiry, and a store may drop
// one earlier (the embedded store keeps at most [BoltOptions].MaxAssetLinks).
type AssetLinks interface {
	// PutAssetLink stores url as the download link of release asset assetID of app until
	// expires, replacing any link stored for it. An invalid app id, an assetID <= 0, an empty
	// url, one longer than [MaxAssetLinkURL] or with control characters, or an expiry not
	// after now or beyond [MaxAssetLinkLifetime] from now wraps [ErrInvalid] and stores
	// nothing.
	PutAssetLink(ctx context.Context, app string, assetID int64, url string, expires time.Time) error
	// GetAssetLink returns the link stored for asset assetID of app and its expiry; ok is
	// false when there is none or it expired. The caller decides how close to the expiry a
	// link is still worth handing out.
	GetAssetLink(ctx context.Context, app string, assetID int64) (url string, expires time.Time, ok bool, err error)
}

// assetLinkRecord is how a link is stored: its URL and its expiry.
type assetLinkRecord struct {
	URL     string    `json:"url"`
	Expires time.Time `json:"expires"`
}

// checkAssetID validates the app and asset id of an asset link.
func checkAssetID(op, app string, id int64) error {
	if err := checkApp(app); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if id <= 0 {
		return fmt.Errorf("%s: asset id %d must be positive: %w", op, id, ErrInvalid)
	}
	return nil
}

// encodeAssetLink checks the arguments of PutAssetLink against t (now) and encodes the link.
func encodeAssetLink(app string, id int64, url string, expires, t time.Time) ([]byte, error) {
	const op = "put asset link"
	if err := checkAssetID(op, app, id); err != nil {
		return nil, err
	}
	switch {
	case url == "":
		return nil, fmt.Errorf("%s %d: empty url: %w", op, id, ErrInvalid)
	case len(url) > MaxAssetLinkURL:
		return nil, fmt.Errorf("%s %d: url of %d bytes is longer than %d: %w", op, id, len(url), MaxAssetLinkURL, ErrInvalid)
	case strings.ContainsFunc(url, unicode.IsControl):
		return nil, fmt.Errorf("%s %d: url has control characters: %w", op, id, ErrInvalid)
	case !expires.After(t):
		return nil, fmt.Errorf("%s %d: expiry %s is not in the future: %w", op, id, expires.UTC().Format(time.RFC3339), ErrInvalid)
	case expires.After(t.Add(MaxAssetLinkLifetime)):
		return nil, fmt.Errorf("%s %d: expiry %s is more than %s ahead: %w", op, id, expires.UTC().Format(time.RFC3339), MaxAssetLinkLifetime, ErrInvalid)
	}
	return json.Marshal(assetLinkRecord{URL: url, Expires: expires.UTC()})
}

// decodeAssetLink decodes a stored link; one expired at t is reported as absent.
func decodeAssetLink(raw []byte, t time.Time) (string, time.Time, bool, error) {
	var r assetLinkRecord
	if err := json.Unmarshal(raw, &r); err != nil {
		return "", time.Time{}, false, fmt.Errorf("decode asset link: %w", err)
	}
	if r.URL == "" || !r.Expires.After(t) {
		return "", time.Time{}, false, nil
	}
	return r.URL, r.Expires, true, nil
}
