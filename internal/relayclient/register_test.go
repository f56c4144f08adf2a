package relayclient_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relayclient"
)

const secret = "ci-secret"

var bundle = &channel.Bundle{AppID: "com.example.app", Version: "1.0.0", URL: "https://d.test/1.0.0.zip",
	Checksum: strings.Repeat("a", 64), SHA256: strings.Repeat("a", 64), Size: 10, Commit: strings.Repeat("1", 40), Ref: "refs/heads/main"}

// signedRelay is a stand-in relay that checks each registration's HMAC signature (as the
// relay does: MAC over the timestamp header as sent) and then answers with next.
func signedRelay(t *testing.T, next func(w http.ResponseWriter, attempt int32, b *channel.Bundle)) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var attempts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := attempts.Add(1)
		body, _ := io.ReadAll(r.Body)
		sig, ok := strings.CutPrefix(r.Header.Get(relayclient.HeaderSignature), relayclient.SignaturePrefix)
		got, _ := hex.DecodeString(sig)
		want := relayclient.MAC([]byte(secret), r.Header.Get(relayclient.HeaderTimestamp), body)
		if r.Method != http.MethodPost || r.URL.Path != relayclient.BundlesPath || !ok || string(got) != string(want) ||
			r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"bad_signature","message":"signature does not match"}`)
			return
		}
		var b channel.Bundle
		if err := json.Unmarshal(body, &b); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		next(w, n, &b)
	}))
	t.Cleanup(srv.Close)
	return srv, &attempts
}

func newClient(t *testing.T, srv *httptest.Server, opts relayclient.Options) *relayclient.Client {
	t.Helper()
	opts.HTTPClient = srv.Client()
	if opts.IDToken == nil {
		opts.HMACSecret = []byte(secret)
	}
	if opts.RetryBackoff == 0 {
		opts.RetryBackoff = 5 * time.Millisecond
	}
	if opts.RetryMaxWait == 0 {
		opts.RetryMaxWait = 20 * time.Millisecond
	}
	opts.Logger = slog.New(slog.DiscardHandler)
	c, err := relayclient.New(srv.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// TestRegisterBundleRetries: 503 and 429 (with Retry-After, capped by RetryMaxWait) and a
// dropped connection are retried, each attempt signed anew, until the relay acknowledges.
func TestRegisterBundleRetries(t *testing.T) {
	t.Parallel()
	srv, attempts := signedRelay(t, func(w http.ResponseWriter, n int32, b *channel.Bundle) {
		switch n {
		case 1:
			w.Header().Set("Retry-After", "60")
			writeJSON(w, http.StatusServiceUnavailable, relayclient.ErrorBody{Code: "store_unavailable", Message: "retry later"})
		case 2:
			writeJSON(w, http.StatusTooManyRequests, relayclient.ErrorBody{Code: "rate_limited", Message: "slow down"})
		case 3:
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			conn.Close()
		default:
			writeJSON(w, http.StatusCreated, relayclient.Registration{Bundle: b, Created: true, Channel: "beta", Promoted: true, PendingApplied: []string{"staging"}})
		}
	})
	c := newClient(t, srv, relayclient.Options{})
	start := time.Now()
	got, err := c.RegisterBundle(t.Context(), bundle)
	if err != nil {
		t.Fatal(err)
	}
	want := &relayclient.Registration{Bundle: bundle, Created: true, Channel: "beta", Promoted: true, PendingApplied: []string{"staging"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("registration (-want +got):\n%s", diff)
	}
	if attempts.Load() != 4 {
		t.Errorf("%d attempts, want 4", attempts.Load())
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v: Retry-After was not capped by RetryMaxWait", d)
	}
}

// TestRegisterBundleRefusals: refusals a retry cannot change are returned after one attempt,
// with the relay's *Error reachable.
func TestRegisterBundleRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		status  int
		body    string
		want    *relayclient.Error // template for errors.Is; nil: no *Error
		wantMsg string
	}{
		{"conflict", http.StatusConflict, `{"error":"version_conflict","message":"version \"1.0.0\" is already registered with another checksum"}`,
			&relayclient.Error{StatusCode: http.StatusConflict, Code: "version_conflict"}, "relay refused the registration: POST "},
		{"invalid", http.StatusBadRequest, `{"error":"invalid_bundle","message":"size must be greater than 0"}`,
			&relayclient.Error{StatusCode: http.StatusBadRequest, Code: "invalid_bundle"}, "400 invalid_bundle: size must be greater than 0"},
		{"forbidden without a body", http.StatusForbidden, ``, &relayclient.Error{StatusCode: http.StatusForbidden}, "403 Forbidden"},
		{"unreadable acknowledgement", http.StatusCreated, `{"bundle":`, nil, "relay answered 201 with an unreadable body"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, attempts := signedRelay(t, func(w http.ResponseWriter, _ int32, _ *channel.Bundle) {
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			})
			_, err := newClient(t, srv, relayclient.Options{}).RegisterBundle(t.Context(), bundle)
			if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("RegisterBundle = %v, want an error containing %q", err, tc.wantMsg)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("errors.Is(%v, %+v) = false", err, tc.want)
			}
			if attempts.Load() != 1 {
				t.Errorf("%d attempts, want 1", attempts.Load())
			}
		})
	}
}

// TestRegisterBundleDeadline: when the context's deadline comes before the next attempt
// would, the registration gives up at once, naming the attempts and the last refusal.
func TestRegisterBundleDeadline(t *testing.T) {
	t.Parallel()
	srv, attempts := signedRelay(t, func(w http.ResponseWriter, _ int32, _ *channel.Bundle) {
		w.Header().Set("Retry-After", "30")
		writeJSON(w, http.StatusServiceUnavailable, relayclient.ErrorBody{Code: "store_unavailable", Message: "retry later"})
	})
	c := newClient(t, srv, relayclient.Options{RetryMaxWait: time.Minute})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.RegisterBundle(ctx, bundle)
	if err == nil || !strings.Contains(err.Error(), "before the deadline (1 attempts)") || !strings.Contains(err.Error(), "503 store_unavailable: retry later") {
		t.Errorf("RegisterBundle = %v", err)
	}
	var re *relayclient.Error
	if !errors.As(err, &re) || re.RetryAfter != 30*time.Second {
		t.Errorf("RegisterBundle = %#v, want the 503 *Error with its Retry-After", err)
	}
	if attempts.Load() != 1 || time.Since(start) > 4*time.Second {
		t.Errorf("%d attempts in %v; want 1, at once", attempts.Load(), time.Since(start))
	}
}

// TestRegisterBundleOIDC: without an HMAC secret each attempt carries a fresh token.
func TestRegisterBundleOIDC(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		first := len(seen) == 1
		mu.Unlock()
		if first {
			writeJSON(w, http.StatusBadGateway, nil)
			return
		}
		writeJSON(w, http.StatusOK, relayclient.Registration{Created: false, Channel: "beta", Reason: "the channel already serves or has served this version"})
	}))
	t.Cleanup(srv.Close)
	var n atomic.Int32
	c := newClient(t, srv, relayclient.Options{IDToken: func(context.Context) (string, error) {
		return fmt.Sprintf("tok-%d", n.Add(1)), nil
	}})
	reg, err := c.RegisterBundle(t.Context(), bundle)
	if err != nil || reg.Created || reg.Reason == "" {
		t.Fatalf("RegisterBundle = %+v, %v", reg, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]string{"Bearer tok-1", "Bearer tok-2"}, seen); diff != "" {
		t.Errorf("Authorization headers (-want +got):\n%s", diff)
	}
}

func TestRegisterBundleNeedsCredentials(t *testing.T) {
	t.Parallel()
	c, err := relayclient.New("https://relay.example.com", relayclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.RegisterBundle(t.Context(), bundle); err == nil || !strings.Contains(err.Error(), "no registration credentials") {
		t.Errorf("RegisterBundle without credentials = %v", err)
	}
}
