package assetlink

import (
	"net/url"
	"strconv"
	"time"
)

// UnknownLifetime is the lifetime assumed for a URL whose query names no expiry.
const UnknownLifetime = time.Minute

// maxLifetime caps any lifetime read from a URL (S3 presigned URLs live at most 7 days).
const maxLifetime = 7 * 24 * time.Hour

// Expiry reads when a signed download URL stops working from its query, in the forms
// object stores use: AWS Signature V4 (X-Amz-Date + X-Amz-Expires seconds), Azure SAS
// (se=RFC 3339 time) and the older S3 and CloudFront form (Expires=Unix seconds). GitHub's
// release asset redirects have used the first and then the second. A URL with none of
// them, or with values that do not parse, gets now + [UnknownLifetime]; a lifetime beyond
// 7 days is capped there. The result is never before now.
func Expiry(raw string, now time.Time) time.Time {
	fallback := now.Add(UnknownLifetime)
	u, err := url.Parse(raw)
	if err != nil {
		return fallback
	}
	q := u.Query()
	var t time.Time
	switch {
	case q.Get("X-Amz-Date") != "" && q.Get("X-Amz-Expires") != "":
		signed, err1 := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
		secs, err2 := strconv.ParseInt(q.Get("X-Amz-Expires"), 10, 64)
		if err1 != nil || err2 != nil || secs < 0 || secs > int64(maxLifetime/time.Second) {
			return fallback
		}
		t = signed.Add(time.Duration(secs) * time.Second)
	case q.Get("se") != "":
		if t, err = time.Parse(time.RFC3339, q.Get("se")); err != nil {
			return fallback
		}
	case q.Get("Expires") != "":
		secs, err := strconv.ParseInt(q.Get("Expires"), 10, 64)
		if err != nil || secs < 0 || secs > now.Add(maxLifetime).Unix() {
			return fallback
		}
		t = time.Unix(secs, 0)
	default:
		return fallback
	}
	if t.After(now.Add(maxLifetime)) {
		return now.Add(maxLifetime)
	}
	if t.Before(now) {
		return now
	}
	return t
}
