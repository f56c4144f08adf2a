package relaytest_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferryhq/ferry/internal/relay/relaytest"
)

// The expected signatures below were computed independently (Python's hmac module); the
// webhook one is GitHub's own example from "Validating webhook deliveries". That the relay
// accepts both kinds of headers is checked in TestRelayLifecycle.

func TestHMACHeaders(t *testing.T) {
	t.Parallel()
	got := relaytest.HMACHeaders("Jefe", []byte(`{"version":"1.0.0"}`), time.Unix(1700000000, 0))
	want := map[string]string{
		"Content-Type":          "application/json",
		"X-Ferry-Timestamp":     "1700000000",
		"X-Ferry-Signature-256": "sha256=276e29f296e33f9d856e70d69e4ea4427ab69070ae76fba36d1033da30035a87",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("HMACHeaders mismatch (-want +got):\n%s", diff)
	}
	if sig := relaytest.HMACSignature("Jefe", "1700000000", []byte(`{"version":"1.0.0"}`)); sig != want["X-Ferry-Signature-256"] {
		t.Errorf("HMACSignature = %q, want %q", sig, want["X-Ferry-Signature-256"])
	}
}

func TestWebhookHeaders(t *testing.T) {
	t.Parallel()
	got := relaytest.WebhookHeaders("It's a Secret to Everybody", "push", "d-1", []byte("Hello, World!"))
	want := map[string]string{
		"Content-Type":        "application/json",
		"User-Agent":          "GitHub-Hookshot/relaytest",
		"X-GitHub-Event":      "push",
		"X-GitHub-Delivery":   "d-1",
		"X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("WebhookHeaders mismatch (-want +got):\n%s", diff)
	}
}
