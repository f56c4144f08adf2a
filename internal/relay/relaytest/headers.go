package relaytest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// HMACSignature returns the X-Ferry-Signature-256 value of a registration body signed with
// secret at stamp (the X-Ferry-Timestamp value, unix seconds): "sha256=" and the hex
// HMAC-SHA256 of "<stamp>.<body>".
func HMACSignature(secret, stamp string, body []byte) string {
	return "sha256=" + mac(secret, []byte(stamp+"."), body)
}

// HMACHeaders returns the headers of a registration (POST /api/v1/bundles) of body signed
// with secret at ts: Content-Type (application/json), X-Ferry-Timestamp and
// X-Ferry-Signature-256. Each call returns a new map, which the caller may change.
func HMACHeaders(secret string, body []byte, ts time.Time) map[string]string {
	stamp := strconv.FormatInt(ts.Unix(), 10)
	return map[string]string{
		"Content-Type":          "application/json",
		"X-Ferry-Timestamp":     stamp,
		"X-Ferry-Signature-256": HMACSignature(secret, stamp, body),
	}
}

// WebhookHeaders returns the headers GitHub sends with a webhook delivery of body for event
// (such as "push") under the delivery id delivery, signed with the webhook secret:
// Content-Type, User-Agent, X-GitHub-Event, X-GitHub-Delivery and X-Hub-Signature-256
// ("sha256=" and the hex HMAC-SHA256 of the body). Each call returns a new map, which the
// caller may change.
func WebhookHeaders(secret, event, delivery string, body []byte) map[string]string {
	return map[string]string{
		"Content-Type":        "application/json",
		"User-Agent":          "GitHub-Hookshot/relaytest",
		"X-GitHub-Event":      event,
		"X-GitHub-Delivery":   delivery,
		"X-Hub-Signature-256": "sha256=" + mac(secret, body),
	}
}

// mac returns the hex HMAC-SHA256 of parts, concatenated, under secret.
func mac(secret string, parts ...[]byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	for _, p := range parts {
		m.Write(p)
	}
	return hex.EncodeToString(m.Sum(nil))
}
