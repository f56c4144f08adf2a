package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relay/relaytest"
	"github.com/ferryhq/ferry/internal/store"
	"github.com/ferryhq/ferry/internal/testpeers"
)

const testConfig = `
apps:
  - id: com.example.app
    repository: acme/mobile-app
    default_channel: production
    channels:
      production: {}
      beta: { allow_device_self_set: true }
    rules:
      - { ref: refs/heads/main, channel: beta }
      - { ref: "refs/tags/v*", channel: production }
`

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// TestRunFlagErrors: every bad flag or variable is reported at once, naming the flag and
// its variable.
func TestRunFlagErrors(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	err := run(t.Context(), []string{"--rate-limit", "-1", "--snapshot-ttl", "1ns", "--log-format", "xml"},
		env(map[string]string{"FERRY_RATE_BURST": "zero", "LOG_LEVEL": "loud"}), io.Discard, &stderr)
	if err == nil {
		t.Fatal("run accepted bad flags")
	}
	for _, want := range []string{
		"--config (FERRY_CONFIG) is required",
		`--rate-limit (FERRY_RATE_LIMIT) "-1"`,
		`--rate-burst (FERRY_RATE_BURST) "zero"`,
		`--snapshot-ttl (FERRY_SNAPSHOT_TTL) "1ns"`,
		`--log-format (LOG_FORMAT) "xml"`,
		`--log-level (LOG_LEVEL) "loud"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not list %q:\n%v", want, err)
		}
	}
	if err := run(t.Context(), []string{"--nope"}, env(nil), io.Discard, &stderr); !errors.Is(err, errUsage) {
		t.Errorf("unknown flag: %v, want errUsage", err)
	}
	if !strings.Contains(stderr.String(), "FERRY_ADMIN_TOKEN") {
		t.Errorf("usage does not mention the secret variables:\n%s", stderr.String())
	}
}

// TestRunConfigErrors: an invalid config file stops the relay at start-up with every
// problem listed.
func TestRunConfigErrors(t *testing.T) {
	t.Parallel()
	path := relaytest.WriteConfig(t, `
apps:
  - id: com.example.app
    repository: not-a-repo
    default_channel: nope
    channels:
      production: { disable_auto_update: sometimes }
    rules:
      - { ref: "refs/tags/v*", channel: missing }
`)
	err := run(t.Context(), []string{"--config", path, "--data-dir", t.TempDir()}, env(nil), io.Discard, io.Discard)
	if err == nil {
		t.Fatal("run accepted an invalid config")
	}
	msg := err.Error()
	if !strings.Contains(msg, "is invalid") {
		t.Errorf("error does not say the config is invalid: %v", msg)
	}
	for _, want := range []string{"not-a-repo", "nope", "sometimes", "missing"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not list the problem with %q:\n%s", want, msg)
		}
	}
	if lines := strings.Count(msg, "\n"); lines < 4 {
		t.Errorf("want one line per problem (at least 4), got:\n%s", msg)
	}
	err = run(t.Context(), []string{"--config", filepath.Join(t.TempDir(), "absent.yaml")}, env(nil), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "read config") {
		t.Errorf("missing config file: %v", err)
	}
}

// relayProc is a relay serving in-process through serve.
type relayProc struct {
	base   string
	stdout *relaytest.Buffer
	stop   func() error
}

func startInProcess(t *testing.T, args []string, vars map[string]string) *relayProc {
	t.Helper()
	cfg, err := parseFlags(args, env(vars), io.Discard)
	if err != nil {
		t.Fatalf("parseFlags: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &relaytest.Buffer{}
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, out, func(a string) { addrc <- a }) }()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v\n%s", err, out)
	case <-time.After(15 * time.Second):
		cancel()
		t.Fatal("relay did not start")
	}
	p := &relayProc{base: "http://" + addr, stdout: out}
	var once sync.Once
	var stopErr error
	p.stop = func() error {
		once.Do(func() {
			cancel()
			stopErr = <-done
		})
		return stopErr
	}
	t.Cleanup(func() { _ = p.stop() })
	return p
}

// TestServeEndToEnd wires the whole relay as cmd/relay does, on both stores: a bundle
// registered with an HMAC signature is offered to the next update check at once (the
// control plane's OnChange drops the cached state), the admin API is mounted behind its
// token, secrets never reach the logs, and the relay drains and stops on cancel.
func TestServeEndToEnd(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		extra func(t *testing.T) []string
		store string
	}{
		{"bolt", func(t *testing.T) []string { return []string{"--data-dir", t.TempDir()} }, `"store":"bolt `},
		{"redis", func(t *testing.T) []string {
			return []string{"--redis-url", "redis://" + testpeers.Redis(t).Addr + "/0"}
		}, `"store":"redis redis://127.0.0.1:`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const admin, hmacSecret = "admin-token-do-not-log", "hmac-secret-do-not-log"
			args := append([]string{"--config", relaytest.WriteConfig(t, testConfig), "--addr", "127.0.0.1:0", "--log-level", "debug"}, tc.extra(t)...)
			p := startInProcess(t, args, map[string]string{"FERRY_ADMIN_TOKEN": admin, "FERRY_HMAC_SECRET": hmacSecret})

			if code, body := relaytest.Call(t, "GET", p.base+"/healthz", nil, nil); code != 200 || body != `{"status":"ok"}` {
				t.Fatalf("GET /healthz = %d %s", code, body)
			}
			if code, _ := relaytest.Call(t, "GET", p.base+"/readyz", nil, nil); code != 200 {
				t.Fatalf("GET /readyz = %d", code)
			}
			check := []byte(`{"platform":"ios","device_id":"7239a82f-4ea8-4e33-9085-f4ad974d3fc4","app_id":"com.example.app","version_build":"1.0.0","version_name":"builtin","plugin_version":"8.51.23","is_emulator":false,"is_prod":true}`)
			if _, body := relaytest.Call(t, "POST", p.base+"/updates", check, nil); !strings.Contains(body, `"no_new_version_available"`) {
				t.Fatalf("before registration: %s", body)
			}

			bundle, _ := json.Marshal(channel.Bundle{
				AppID: "com.example.app", Version: "1.0.1", URL: "https://cdn.example.com/1.0.1.zip",
				Checksum: strings.Repeat("ab", 32), SHA256: strings.Repeat("ab", 32), Size: 10,
				Commit: "0123456789abcdef0123456789abcdef01234567", Ref: "refs/tags/v1.0.1",
			})
			code, body := relaytest.Call(t, "POST", p.base+"/api/v1/bundles", bundle, relaytest.HMACHeaders(hmacSecret, bundle, time.Now()))
			if code != http.StatusCreated {
				t.Fatalf("POST /api/v1/bundles = %d %s", code, body)
			}
			if _, body := relaytest.Call(t, "POST", p.base+"/updates", check, nil); body != `{"version":"1.0.1","url":"https://cdn.example.com/1.0.1.zip","checksum":"`+strings.Repeat("ab", 32)+`"}` {
				t.Fatalf("after registration: %s", body)
			}
			if code, _ := relaytest.Call(t, "GET", p.base+"/api/v1/apps/com.example.app/channels", nil, nil); code != http.StatusUnauthorized {
				t.Errorf("admin API without token = %d, want 401", code)
			}
			if code, body := relaytest.Call(t, "GET", p.base+"/api/v1/apps/com.example.app/channels", nil, map[string]string{"Authorization": "Bearer " + admin}); code != 200 || !strings.Contains(body, "1.0.1") {
				t.Errorf("admin API with token = %d %s", code, body)
			}
			if code, body := relaytest.Call(t, "GET", p.base+"/metrics", nil, nil); code != 200 || !strings.Contains(body, `ferry_update_decisions_total{outcome="offered"} 1`) {
				t.Errorf("GET /metrics = %d, decisions missing", code)
			}
			if err := p.stop(); err != nil {
				t.Fatalf("serve returned %v", err)
			}
			logs := p.stdout.String()
			for _, want := range []string{`"msg":"relay listening"`, tc.store, `"apps":["com.example.app"]`, `"admin_token":"set"`, `"msg":"relay stopped"`, `"request_id":`} {
				if !strings.Contains(logs, want) {
					t.Errorf("logs lack %s", want)
				}
			}
			for _, secret := range []string{admin, hmacSecret} {
				if strings.Contains(logs, secret) {
					t.Errorf("logs contain the secret %q", secret)
				}
			}
		})
	}
}

// TestEmbeddedStoreLocked: a second relay on the same data dir fails at once with a clear
// error instead of waiting or corrupting the file.
func TestEmbeddedStoreLocked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfgPath := relaytest.WriteConfig(t, testConfig)
	startInProcess(t, []string{"--config", cfgPath, "--addr", "127.0.0.1:0", "--data-dir", dir}, nil)
	err := run(t.Context(), []string{"--config", cfgPath, "--addr", "127.0.0.1:0", "--data-dir", dir}, env(nil), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "another relay uses this data dir") {
		t.Fatalf("second relay on the same data dir: %v", err)
	}
}

func TestMain(m *testing.M) { os.Exit(relaytest.Run(m)) }

// startBinary starts the built relay with args and an environment of PATH and extraEnv
// alone, so nothing of the test's own environment configures it.
func startBinary(t *testing.T, args []string, extraEnv ...string) *relaytest.Relay {
	t.Helper()
	return relaytest.Start(t, relaytest.Build(t, "cmd/relay")[0], relaytest.Options{
		Args: args,
		Env:  append([]string{"PATH=" + os.Getenv("PATH")}, extraEnv...),
	})
}

// TestBinarySIGTERM: the built binary starts from a config file with settings from the
// environment, answers /healthz, and exits 0 after draining on SIGTERM.
func TestBinarySIGTERM(t *testing.T) {
	t.Parallel()
	r := startBinary(t, nil,
		"FERRY_CONFIG="+relaytest.WriteConfig(t, testConfig), "FERRY_DATA_DIR="+t.TempDir(), "FERRY_ADMIN_TOKEN=x")
	if code, body := relaytest.Call(t, "GET", r.URL+"/healthz", nil, nil); code != 200 || body != `{"status":"ok"}` {
		t.Fatalf("GET /healthz = %d %s", code, body)
	}
	if err := r.Stop(syscall.SIGTERM); err != nil {
		t.Fatalf("relay after SIGTERM: %v", err)
	}
	logs := r.Log.String()
	if !strings.Contains(logs, `"msg":"relay listening","addr":"`+r.Addr+`"`) {
		t.Errorf("the relay did not report where it listens:\n%s", logs)
	}
	if !strings.Contains(logs, `"msg":"relay stopped","error":null`) {
		t.Errorf("no clean stop logged:\n%s", logs)
	}
}

// TestBinaryGCPercent: the built relay runs with GOGC=400 and a 64MiB soft memory limit
// unless the environment sets GOGC or GOMEMLIMIT, as its /metrics (the Go runtime's own
// gauges) reports.
func TestBinaryGCPercent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ env, want, wantLimit string }{
		{"", "400", "6.7108864e+07"},
		{"GOGC=100", "100", "6.7108864e+07"},
		{"GOMEMLIMIT=200MiB", "400", "2.097152e+08"},
	} {
		env := []string{"FERRY_CONFIG=" + relaytest.WriteConfig(t, testConfig), "FERRY_DATA_DIR=" + t.TempDir()}
		if tc.env != "" {
			env = append(env, tc.env)
		}
		r := startBinary(t, nil, env...)
		code, body := relaytest.Call(t, "GET", r.URL+"/metrics", nil, nil)
		if want := "\ngo_gc_gogc_percent " + tc.want + "\n"; code != 200 || !strings.Contains(body, want) {
			t.Errorf("with %q: /metrics = %d, want a line %q", tc.env, code, strings.TrimSpace(want))
		}
		if want := "\ngo_gc_gomemlimit_bytes " + tc.wantLimit + "\n"; !strings.Contains(body, want) {
			t.Errorf("with %q: /metrics lacks a line %q", tc.env, strings.TrimSpace(want))
		}
	}
}

// TestCapgoProbe runs the real @capgo/cli probe (docs/protocol.md §8) against the relay binary:
// it reads updateUrl from the project's capacitor config, posts an update check as the plugin
// would, and reports the version the relay offers.
func TestCapgoProbe(t *testing.T) {
	t.Parallel()
	cli, peerDir := testpeers.Capgo(t)
	data := t.TempDir()
	// Seed the embedded store: bundle 1.0.1 on production.
	st, err := store.OpenBolt(filepath.Join(data, boltFile), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, _, err := st.PutBundle(ctx, &channel.Bundle{AppID: "com.example.app", Version: "1.0.1", URL: "https://cdn.example.com/1.0.1.zip",
		Checksum: strings.Repeat("ab", 32), SHA256: strings.Repeat("ab", 32), Size: 10, Commit: "abc", Ref: "refs/tags/v1.0.1"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateState(ctx, "com.example.app", "production", func(s *channel.State) (*channel.AuditEntry, error) {
		channel.Promote(s, "1.0.1")
		return &channel.AuditEntry{Action: "promote", Cause: "test"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	relay := startBinary(t, []string{"--config", relaytest.WriteConfig(t, testConfig), "--data-dir", data, "--log-level", "debug"})
	base, logs := relay.URL, relay.Log

	proj := t.TempDir()
	files := map[string]string{
		"package.json":             `{"name":"probe","private":true}`,
		"capacitor.config.json":    `{"appId":"com.example.app","appName":"Probe","webDir":"dist","plugins":{"CapacitorUpdater":{"updateUrl":"` + base + `/updates","statsUrl":"` + base + `/stats","channelUrl":"` + base + `/channel_self"}}}`,
		"android/app/build.gradle": "android {\n  defaultConfig {\n    versionCode 7\n    versionName \"1.0.0\"\n  }\n}\n",
		"dist/index.html":          "<!doctype html>",
	}
	for name, text := range files {
		path := filepath.Join(proj, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(peerDir, "node_modules"), filepath.Join(proj, "node_modules")); err != nil {
		t.Fatal(err)
	}
	out, err := testpeers.Run(t, proj, testpeers.CapgoEnv(), cli, "probe", "--platform", "android")
	if err != nil {
		t.Fatalf("capgo probe: %v\n%s\nrelay logs:\n%s", err, out, logs)
	}
	t.Logf("capgo probe:\n%s", out)
	if !strings.Contains(out, "Update available: 1.0.1") || !strings.Contains(out, base+"/updates") {
		t.Errorf("capgo probe did not report version 1.0.1 from the relay:\n%s", out)
	}
	if !strings.Contains(logs.String(), `"route":"/updates"`) {
		t.Errorf("the relay did not log the probe's request:\n%s", logs)
	}
}

// TestServeWarnsWithoutRegistration: a relay with neither FERRY_HMAC_SECRET nor an OIDC
// audience can never receive a bundle, so it says so at start-up (a warning: device-only
// relays sharing a Redis legitimately have neither); with either, it stays quiet.
func TestServeWarnsWithoutRegistration(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		vars map[string]string
		args []string
		warn bool
	}{
		{"neither", nil, nil, true},
		{"hmac", map[string]string{"FERRY_HMAC_SECRET": "s"}, nil, false},
		{"oidc", nil, []string{"--oidc-audience", "https://relay.example.com"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"--config", relaytest.WriteConfig(t, testConfig), "--addr", "127.0.0.1:0", "--data-dir", t.TempDir()}, tc.args...)
			p := startInProcess(t, args, tc.vars)
			if err := p.stop(); err != nil {
				t.Fatal(err)
			}
			logs := p.stdout.String()
			got := strings.Contains(logs, `"level":"WARN","msg":"no way to register bundles: set FERRY_HMAC_SECRET`)
			if got != tc.warn {
				t.Errorf("warning logged = %v, want %v:\n%s", got, tc.warn, logs)
			}
		})
	}
}

// TestBinaryVersionAndHelp: the built relay names its build (module version and the commit
// Go stamped into it) with --version, and --help prints the usage and exits 0.
func TestBinaryVersionAndHelp(t *testing.T) {
	t.Parallel()
	bin := relaytest.Build(t, "cmd/relay")[0]
	out, err := exec.Command(bin, "--version").Output()
	if err != nil || !regexp.MustCompile(`^relay \S+( commit [0-9a-f]{7}( \(modified\))?)?\n$`).Match(out) {
		t.Errorf("relay --version = %q, %v; want the version (and the commit when the build recorded one)", out, err)
	}
	out, err = exec.Command(bin, "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Usage: relay --config FILE") {
		t.Errorf("relay --help: %v (want exit 0)\n%s", err, out)
	}
	if err := exec.Command(bin, "--nope").Run(); err == nil {
		t.Errorf("relay --nope exited 0")
	}
}

// TestServeRolloutController: the rollout controller runs with the relay. Of two relays
// on one Redis exactly one holds its lease (ferry_rollout_controller_leader); stopping that
// relay gives the lease up, so the other leads at its next tick instead of after the lease
// time.
func TestServeRolloutController(t *testing.T) {
	t.Parallel()
	redisURL := "redis://" + testpeers.Redis(t).Addr + "/0"
	cfgPath := relaytest.WriteConfig(t, testConfig)
	start := func() *relayProc {
		return startInProcess(t, []string{"--config", cfgPath, "--addr", "127.0.0.1:0", "--redis-url", redisURL, "--rollout-interval", "1s"}, nil)
	}
	leader := func(p *relayProc) bool {
		_, body := relaytest.Call(t, "GET", p.base+"/metrics", nil, nil)
		return strings.Contains(body, "\nferry_rollout_controller_leader 1\n")
	}
	a := start()
	deadline := time.Now().Add(10 * time.Second)
	for !leader(a) {
		if time.Now().After(deadline) {
			t.Fatal("the only relay never took the rollout controller lease")
		}
		time.Sleep(50 * time.Millisecond)
	}
	b := start()
	time.Sleep(1500 * time.Millisecond) // b ticks at least once
	if leader(b) {
		t.Fatal("two relays hold the rollout controller lease")
	}
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	for !leader(b) {
		if time.Since(stopped) > 2500*time.Millisecond { // the lease is 3s: a release was not waited out
			t.Fatal("the second relay did not lead within two ticks of the first one's graceful stop")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
