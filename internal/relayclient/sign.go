package relayclient

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"
)

// Registration authentication headers for CI without OIDC.
const (
	// HeaderSignature carries [SignaturePrefix] and the hex HMAC-SHA256 of
	// "<timestamp>.<raw body>" ([Sign]).
	HeaderSignature = "X-Ferry-Signature-256"
	// HeaderTimestamp carries the signing time in unix seconds.
	HeaderTimestamp = "X-Ferry-Timestamp"
	// SignaturePrefix starts every HeaderSignature value.
	SignaturePrefix = "sha256="
)

// MAC returns HMAC-SHA256(secret, stamp + "." + body): the raw signature of body signed at
// stamp, the HeaderTimestamp value exactly as sent.
func MAC(secret []byte, stamp string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(stamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Stamp returns the HeaderTimestamp value for t: unix seconds.
func Stamp(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// Sign returns the HeaderSignature value for body signed at ts with secret:
// "sha256=" + hex(HMAC-SHA256(secret, "<unix seconds>.<body>")).
func Sign(secret []byte, ts time.Time, body []byte) string {
	return SignaturePrefix + hex.EncodeToString(MAC(secret, Stamp(ts), body))
}

// SetSignature sets HeaderTimestamp and HeaderSignature on h for body signed at now.
func SetSignature(h http.Header, secret []byte, now time.Time, body []byte) {
	h.Set(HeaderTimestamp, Stamp(now))
	h.Set(HeaderSignature, Sign(secret, now, body))
}
