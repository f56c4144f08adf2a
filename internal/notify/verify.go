package notify

import (
	"crypto/hmac"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ferryhq/ferry/internal/relayclient"
)

// VerifyWindow is how far from the receiver's clock [Verify] accepts X-Ferry-Timestamp.
// The relay signs every attempt anew, so a retry carries a fresh timestamp.
const VerifyWindow = 5 * time.Minute

// Errors of [Verify].
var (
	ErrUnsigned     = errors.New("notify: no X-Ferry-Signature-256 or X-Ferry-Timestamp")
	ErrBadSignature = errors.New("notify: signature does not match the body and timestamp")
	ErrStale        = errors.New("notify: X-Ferry-Timestamp is outside the allowed window")
)

// Verify is the receiver's check of a delivery: it recomputes
//
//	"sha256=" + hex(HMAC-SHA256(secret, X-Ferry-Timestamp + "." + body))
//
// over the raw body exactly as received and the timestamp header exactly as sent, compares
// it with X-Ferry-Signature-256 in constant time, and requires the timestamp (unix
// seconds) within [VerifyWindow] of now. Receivers in other languages do the same.
func Verify(secret []byte, h http.Header, body []byte, now time.Time) error {
	sig, stamp := h.Get(relayclient.HeaderSignature), h.Get(relayclient.HeaderTimestamp)
	if sig == "" || stamp == "" {
		return ErrUnsigned
	}
	hexSig, ok := strings.CutPrefix(sig, relayclient.SignaturePrefix)
	got, err := hex.DecodeString(hexSig)
	if !ok || err != nil || !hmac.Equal(got, relayclient.MAC(secret, stamp, body)) {
		return ErrBadSignature
	}
	secs, err := strconv.ParseInt(stamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q is not unix seconds", ErrStale, stamp)
	}
	if d := now.Sub(time.Unix(secs, 0)); d > VerifyWindow || d < -VerifyWindow {
		return fmt.Errorf("%w: %s from now", ErrStale, d.Round(time.Second))
	}
	return nil
}
