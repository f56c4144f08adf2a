package relaytest_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relay/relaytest"
)

func TestMain(m *testing.M) { os.Exit(relaytest.Run(m)) }

const (
	adminToken    = "relaytest-admin-token"
	hmacSecret    = "relaytest-hmac-secret"
	webhookSecret = "relaytest-webhook-secret"
	app           = "com.example.kit"
)

const config = `apps:
  - id: com.example.kit
    repository: acme/kit-app
    default_channel: production
    channels:
      production: { public: true }
    rules:
      - { ref: "refs/tags/v*", channel: production }
`

// fatalRecorder is a testing.TB whose Fatal and Fatalf keep the message and end only the
// goroutine they run on, so a test can check how the kit fails a test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatal(args ...any) {
	r.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// failure runs f on its own goroutine with a fatalRecorder and returns the message f failed
// with, "" when it did not fail.
func failure(t *testing.T, f func(tb testing.TB)) string {
	t.Helper()
	r := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.msg
}

func startKitRelay(t *testing.T) *relaytest.Relay {
	t.Helper()
	return relaytest.Start(t, relaytest.Build(t, "cmd/relay")[0], relaytest.Options{
		Args: []string{"--config", relaytest.WriteConfig(t, config), "--data-dir", t.TempDir(), "--rate-limit", "0"},
		Env: append(os.Environ(), "FERRY_ADMIN_TOKEN="+adminToken, "FERRY_HMAC_SECRET="+hmacSecret,
			"FERRY_WEBHOOK_SECRET="+webhookSecret),
	})
}

// TestBuild: a command is built once per test binary and its executable runs; a command
// that does not exist fails the test, naming it, on every call.
func TestBuild(t *testing.T) {
	t.Parallel()
	first := relaytest.Build(t, "cmd/relay")
	again := relaytest.Build(t, "cmd/relay")
	if len(first) != 1 || first[0] != again[0] {
		t.Fatalf("Build(cmd/relay) = %q, then %q; want the same one path", first, again)
	}
	out, err := exec.Command(first[0], "--help").CombinedOutput()
	if !strings.Contains(string(out), "Usage: relay --config FILE") {
		t.Errorf("%s --help: %v\n%s", first[0], err, out)
	}
	for i := range 2 {
		msg := failure(t, func(tb testing.TB) { relaytest.Build(tb, "cmd/no-such-command") })
		if !strings.Contains(msg, "build cmd/no-such-command") {
			t.Errorf("Build of a missing command, call %d: failure %q, want one naming it", i+1, msg)
		}
	}
}

// TestRelayLifecycle: the started relay is ready, accepts a registration signed with
// HMACHeaders and a delivery signed with WebhookHeaders and refuses forged ones; it drains
// and exits 0 on SIGTERM, comes back on the same address with the same store, and a
// SIGKILL shows as a killed process.
func TestRelayLifecycle(t *testing.T) {
	t.Parallel()
	r := startKitRelay(t)
	if !strings.HasPrefix(r.URL, "http://127.0.0.1:") || r.URL != "http://"+r.Addr {
		t.Fatalf("URL %q, Addr %q: want http://127.0.0.1:port and its address", r.URL, r.Addr)
	}
	if code, body := relaytest.Call(t, http.MethodGet, r.URL+"/readyz", nil, nil); code != http.StatusOK {
		t.Fatalf("GET /readyz = %d %s", code, body)
	}

	sum := relaytest.Hex("bundle", 64)
	bundle, err := json.Marshal(channel.Bundle{AppID: app, Version: "1.0.0", URL: "https://cdn.example.com/1.0.0.zip",
		Checksum: sum, SHA256: sum, Size: 10, Commit: relaytest.Commit("1.0.0"), Ref: "refs/tags/v1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"wrong secret", relaytest.HMACHeaders("not-the-secret", bundle, time.Now()), http.StatusUnauthorized},
		{"stale", relaytest.HMACHeaders(hmacSecret, bundle, time.Now().Add(-time.Hour)), http.StatusUnauthorized},
		{"signed", relaytest.HMACHeaders(hmacSecret, bundle, time.Now()), http.StatusCreated},
	} {
		if code, body := relaytest.Call(t, http.MethodPost, r.URL+"/api/v1/bundles", bundle, tc.hdr); code != tc.want {
			t.Errorf("register, %s: HTTP %d %s, want %d", tc.name, code, body, tc.want)
		}
	}
	push := fmt.Appendf(nil, `{"ref":"refs/tags/v1.0.0","before":%q,"after":%q,"created":true,"deleted":false,"forced":false,`+
		`"head_commit":{"id":%q},"repository":{"name":"kit-app","full_name":"acme/kit-app","owner":{"login":"acme"}},"pusher":{"name":"octocat"}}`,
		strings.Repeat("0", 40), relaytest.Commit("1.0.0"), relaytest.Commit("1.0.0"))
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"wrong secret", relaytest.WebhookHeaders("not-the-secret", "push", "kit-1", push), http.StatusUnauthorized},
		{"signed", relaytest.WebhookHeaders(webhookSecret, "push", "kit-2", push), http.StatusOK},
	} {
		if code, body := relaytest.Call(t, http.MethodPost, r.URL+"/webhooks/github", push, tc.hdr); code != tc.want {
			t.Errorf("webhook, %s: HTTP %d %s, want %d", tc.name, code, body, tc.want)
		}
	}

	if err := r.Stop(syscall.SIGTERM); err != nil {
		t.Fatalf("Stop(SIGTERM) = %v, want a clean exit", err)
	}
	if err := r.Stop(syscall.SIGTERM); err != nil {
		t.Errorf("Stop of a stopped relay = %v, want nil", err)
	}
	if resp, err := http.Get(r.URL + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("GET /healthz answered after Stop")
	}
	if !strings.Contains(r.Log.String(), "relay stopped") {
		t.Errorf("output lacks the relay's stop:\n%s", r.Log)
	}

	r.Start()
	admin := map[string]string{"Authorization": "Bearer " + adminToken}
	if code, body := relaytest.Call(t, http.MethodGet, r.URL+"/api/v1/apps/"+app+"/bundles/1.0.0", nil, admin); code != http.StatusOK || !strings.Contains(body, sum) {
		t.Errorf("after Start, GET bundle 1.0.0 = %d %s, want the bundle registered before", code, body)
	}
	err = r.Stop(syscall.SIGKILL)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("Stop(SIGKILL) = %v, want an exit by SIGKILL", err)
	}
	if n := strings.Count(r.Log.String(), "relay listening"); n != 2 {
		t.Errorf("output shows %d starts, want 2 (it spans restarts):\n%s", n, r.Log)
	}
}

// TestStartFailure: a relay that exits during start-up fails the test at once, quoting its
// output.
func TestStartFailure(t *testing.T) {
	t.Parallel()
	bin := relaytest.Build(t, "cmd/relay")[0]
	start := time.Now()
	msg := failure(t, func(tb testing.TB) {
		relaytest.Start(tb, bin, relaytest.Options{Args: []string{"--no-such-flag"}, Env: []string{}})
	})
	if !strings.Contains(msg, "relay exited during start-up") || !strings.Contains(msg, "no-such-flag") {
		t.Errorf("failure %q, want the early exit and the relay's complaint", msg)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the failure took %s, want it as soon as the relay exits", d)
	}
}
