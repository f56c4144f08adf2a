package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

const testApp = "com.example.app"

// testConfig is the relay configuration every test serves: one app, four channels.
const testConfig = `
apps:
  - id: com.example.app
    repository: acme/mobile-app
    default_channel: production
    channels:
      production: { public: true }
      beta: { allow_device_self_set: true }
      internal: { allow_device_self_set: true, allow_emulator: false, allow_dev: false, platforms: [android] }
      locked: {}
    rules:
      - { ref: refs/heads/main, channel: beta }
      - { ref: "refs/tags/v*", channel: production }
`

func testAppConfig(t testing.TB) *channel.Config {
	t.Helper()
	cfg, err := channel.ParseConfig([]byte(testConfig))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	return cfg
}

// Bundles of the fixture. The key id and session key are docs/protocol.md §5.6 vector B.
const (
	keyID      = "MIIBCgKCAQEAwsCct5LR"
	sessionKey = "CjmjNLQUWi1rKb0PGKnbJQ==:DADRu47rFV/nce16RN4RXuablcZNPp4sDDQgUagwFMJlk7fi7ANIL+SnpT4lweq2c1G2FGMCW1Qvmrtxbi9gyl16hwmGIVu2pgyk8q+LYAbCRz4dbUf7ka0j4qpHNrScJ+pFJaYVlTjauGyfxLPotlIxJilIlCaxqLWRrfnIxpgVGhqtdMgShGhrGTeN8ZE25NReQ5oJR3Hv6/smIy56IC1vQkXtqki5E2J32yLhu3XZaAoyRQSUr2ijWwdH822+/xU6CMy9dJsZ55bfwBGbF8JHNHXK82APPo863tBDtM6BZp4C1CxT83gdJGbc/qdpQ1UmNhO2cT0DAaSoPsxbjA=="
)

func fixtureBundles() []*channel.Bundle {
	plain := func(v, sum string) *channel.Bundle {
		return &channel.Bundle{
			AppID: testApp, Version: v, URL: "https://cdn.example.com/app/" + v + ".zip?sig=a&exp=1",
			Checksum: sum, SHA256: sum, Size: 1234, Commit: "c" + strings.ReplaceAll(v, ".", ""), Ref: "refs/tags/v" + v,
		}
	}
	b100 := plain("1.0.0", strings.Repeat("a", 64))
	b110 := plain("1.1.0", strings.Repeat("b", 64))
	b120 := plain("1.2.0", strings.Repeat("c", 64))
	b120.Manifest = []channel.ManifestEntry{
		{FileName: "index.html", FileHash: strings.Repeat("1", 64), DownloadURL: "https://cdn.example.com/app/1.2.0/index.html", Size: 512},
		{FileName: "assets/app.js.br", FileHash: strings.Repeat("2", 64), DownloadURL: "https://cdn.example.com/app/1.2.0/assets/app.js.br", Size: 20480},
	}
	enc := plain("2.0.0-beta.1", strings.Repeat("d", 512))
	enc.SessionKey, enc.KeyID, enc.SHA256 = sessionKey, keyID, strings.Repeat("e", 64)
	return []*channel.Bundle{b100, b110, b120, enc}
}

// seed registers the fixture bundles and promotes: production 1.0.0 → 1.1.0 with a 50 %
// rollout of 1.2.0; beta 2.0.0-beta.1 (encrypted); internal 1.1.0.
func seed(t testing.TB, st store.Store) {
	t.Helper()
	ctx := context.Background()
	for _, b := range fixtureBundles() {
		if _, _, err := st.PutBundle(ctx, b, nil); err != nil {
			t.Fatalf("PutBundle %s: %v", b.Version, err)
		}
	}
	promote(t, st, "production", "1.0.0")
	promote(t, st, "production", "1.1.0")
	change(t, st, "production", func(s *channel.State) error { return channel.SetRollout(s, "1.2.0", 50) })
	promote(t, st, "beta", "2.0.0-beta.1")
	promote(t, st, "internal", "1.1.0")
}

func promote(t testing.TB, st store.Store, ch, version string) {
	t.Helper()
	change(t, st, ch, func(s *channel.State) error {
		channel.Promote(s, version)
		return nil
	})
}

func change(t testing.TB, st store.Store, ch string, fn func(*channel.State) error) {
	t.Helper()
	_, err := st.UpdateState(context.Background(), testApp, ch, func(s *channel.State) (*channel.AuditEntry, error) {
		if err := fn(s); err != nil {
			return nil, err
		}
		return &channel.AuditEntry{Action: "test", Cause: "test"}, nil
	})
	if err != nil {
		t.Fatalf("UpdateState %s: %v", ch, err)
	}
}

// openBolt opens a real embedded store in a temp dir.
func openBolt(t testing.TB) store.Store {
	t.Helper()
	b, err := store.OpenBolt(filepath.Join(t.TempDir(), "ferry.db"), store.BoltOptions{})
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// backends are the real stores every device-endpoint test runs against.
var backends = []struct {
	name string
	open func(t testing.TB) store.Store
}{
	{"bolt", openBolt},
	{"redis", openRedis},
}

// onSeededBackends runs test in parallel against each of [backends], on a store [seed]ed
// with the test app's channels.
func onSeededBackends(t *testing.T, test func(t *testing.T, st store.Store)) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			st := be.open(t)
			seed(t, st)
			test(t, st)
		})
	}
}

// flaky wraps a real store and fails every call while down is set, like an unreachable
// Redis; calls counts the calls that reached it.
type flaky struct {
	store.Store
	down  atomic.Bool
	calls atomic.Int64
}

var errDown = fmt.Errorf("dial tcp 127.0.0.1:1: connection refused: %w", channel.ErrUnavailable)

func (f *flaky) fail() error {
	f.calls.Add(1)
	if f.down.Load() {
		return errDown
	}
	return nil
}

func (f *flaky) ListStates(ctx context.Context, app string) ([]*channel.State, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.ListStates(ctx, app)
}

func (f *flaky) GetBundles(ctx context.Context, app string, vs []string) (map[string]*channel.Bundle, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.GetBundles(ctx, app, vs)
}

func (f *flaky) GetBundle(ctx context.Context, app, v string) (*channel.Bundle, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.GetBundle(ctx, app, v)
}

func (f *flaky) FailedVersions(ctx context.Context, app, device string) ([]string, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.FailedVersions(ctx, app, device)
}

func (f *flaky) RecordStats(ctx context.Context, app string, ev []channel.StatEvent) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.RecordStats(ctx, app, ev)
}

func (f *flaky) Ping(ctx context.Context) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.Ping(ctx)
}

// testLogger sends the server's logs to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func newServer(t testing.TB, st Store, mod func(*Options)) *Server {
	t.Helper()
	// Tests send many checks from one device; TestDeviceRateLimit turns the limit back on.
	opts := Options{Config: testAppConfig(t), Store: st, Logger: testLogger(t), DeviceRateLimit: -1}
	if mod != nil {
		mod(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// do sends one request through the server's handler.
func do(t testing.TB, h http.Handler, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, target, nil)
	} else {
		r = httptest.NewRequest(method, target, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// info builds an update-check body like the Android plugin 8.51.23 sends, with overrides.
func info(over map[string]any) string {
	m := map[string]any{
		"platform": "android", "device_id": "7239a82f-4ea8-4e33-9085-f4ad974d3fc4", "app_id": testApp,
		"custom_id": "", "version_build": "1.0.0", "version_code": "7", "version_os": "14",
		"version_name": "builtin", "plugin_version": "8.51.23", "is_emulator": false, "is_prod": true,
		"install_source": "google_play", "defaultChannel": "",
	}
	for k, v := range over {
		if v == nil {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// deviceIn returns a device id inside (or outside) the cohort of version at percent.
func deviceIn(t testing.TB, version string, percent int, inside bool) string {
	t.Helper()
	for i := range 10000 {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		if channel.InCohort(id, version, percent) == inside {
			return id
		}
	}
	t.Fatalf("no device %v the cohort of %s at %d%%", inside, version, percent)
	return ""
}

// golden compares got with testdata/golden/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(bytes.Clone(got), '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(bytes.TrimSuffix(want, []byte("\n"))), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", name, diff)
	}
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
