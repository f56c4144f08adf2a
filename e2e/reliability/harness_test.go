package reliability

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relay/relaytest"
)

// Secrets and identities every relay of this package is started with.
const (
	adminToken    = "rel-admin-token"
	webhookSecret = "rel-webhook-secret"
	hmacSecret    = "rel-hmac-secret"
	appID         = "com.example.rel"
	repository    = "acme/rel-app"
	otherApp      = "com.example.other"
	otherRepo     = "acme/other-app"
	oidcAudience  = "https://relay.reliability.example"
)

// relayConfig is the relay configuration of every test: one app with three channels and
// rules for branches, version tags and channel tags, and a second app of another repository.
const relayConfig = `apps:
  - id: com.example.rel
    repository: acme/rel-app
    default_channel: production
    channels:
      production: { public: true }
      beta: { allow_device_self_set: true }
      staging: { allow_device_self_set: true }
    rules:
      - { ref: refs/heads/main, channel: beta }
      - { ref: "refs/tags/v*", channel: production }
      - { ref: "refs/tags/channel/*", channel: "$1" }
  - id: com.example.other
    repository: acme/other-app
    default_channel: production
    channels:
      production: {}
    rules:
      - { ref: "refs/tags/v*", channel: production }
`

func TestMain(m *testing.M) { os.Exit(relaytest.Run(m)) }

// relayOpts chooses a relay's store and extra flags.
type relayOpts struct {
	RedisURL   string // empty: the embedded store in DataDir
	DataDir    string // default a temp dir
	OIDCIssuer string // empty: OIDC disabled
	Extra      []string
	Env        []string // added to the relay's environment
}

// relayProc is one running relay binary, with the calls these tests make; Stop and Start
// kill and restart it on the same address and store.
type relayProc struct {
	*relaytest.Relay
}

func startRelay(t *testing.T, o relayOpts) *relayProc {
	t.Helper()
	args := []string{"--config", relaytest.WriteConfig(t, relayConfig), "--rate-limit", "0", "--log-format", "text", "--log-level", "warn",
		"--snapshot-ttl", "200ms", "--shutdown-timeout", "2s"}
	if o.RedisURL != "" {
		args = append(args, "--redis-url", o.RedisURL)
	} else {
		if o.DataDir == "" {
			o.DataDir = t.TempDir()
		}
		args = append(args, "--data-dir", o.DataDir)
	}
	if o.OIDCIssuer != "" {
		args = append(args, "--oidc-issuer", o.OIDCIssuer, "--oidc-audience", oidcAudience)
	}
	return &relayProc{relaytest.Start(t, relaytest.Build(t, "cmd/relay")[0], relaytest.Options{
		Args: append(args, o.Extra...),
		Env: append(append(os.Environ(), "FERRY_ADMIN_TOKEN="+adminToken, "FERRY_WEBHOOK_SECRET="+webhookSecret, "FERRY_HMAC_SECRET="+hmacSecret),
			o.Env...),
		// keep the last few MB of a chatty relay, and quote only its end in failures
		LogLimit: 4 << 20,
		LogTail:  4000,
	})}
}

// client is the HTTP client of every test: short timeouts, loopback only.
var client = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// reply is one HTTP answer.
type reply struct {
	Status int
	Header http.Header
	Body   []byte
}

// errBody decodes {error, message}.
func (r reply) errCode() string {
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &e)
	return e.Error
}

func (r reply) String() string {
	return fmt.Sprintf("HTTP %d %s", r.Status, relaytest.Tail(string(r.Body), 300))
}

// do sends one request; hdr values are set as given.
func do(ctx context.Context, method, url string, body []byte, hdr map[string]string) (reply, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return reply{}, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{Status: resp.StatusCode, Header: resp.Header, Body: raw}, nil
}

// bundleFor returns a valid plain bundle registration of version for app, built from
// relaytest.Commit(app+"@"+version) on ref. Its url and checksum are derived from the
// version, so any answer can be checked for consistency with bundleURL and bundleChecksum.
func bundleFor(app, version, ref string) channel.Bundle {
	sum := bundleChecksum(app, version)
	return channel.Bundle{
		AppID: app, Version: version, URL: bundleURL(app, version), Checksum: sum, SHA256: sum,
		Size: 1000 + int64(len(version)), Commit: relaytest.Commit(app + "@" + version), Ref: ref,
	}
}

func bundleURL(app, version string) string {
	return "https://cdn.example.com/" + app + "/" + version + ".zip"
}

func bundleChecksum(app, version string) string { return relaytest.Hex(app+"@"+version, 64) }

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// register sends one HMAC-signed registration.
func (r *relayProc) register(ctx context.Context, body []byte) (reply, error) {
	return do(ctx, http.MethodPost, r.URL+"/api/v1/bundles", body, relaytest.HMACHeaders(hmacSecret, body, time.Now()))
}

// registerRetrying registers body like the action does: on 503 it waits Retry-After (or
// 200 ms) and tries again, and on a transport error (relay down) it retries too, until the
// relay acknowledges (200/201) or ctx ends. Any other status is returned at once. It also
// returns the number of 503 answers seen.
func registerRetrying(ctx context.Context, url string, body []byte) (reply, int, error) {
	unavailable := 0
	for {
		hdr := relaytest.HMACHeaders(hmacSecret, body, time.Now()) // re-signed: the timestamp window
		rep, err := do(ctx, http.MethodPost, url+"/api/v1/bundles", body, hdr)
		wait := 200 * time.Millisecond
		switch {
		case err != nil:
		case rep.Status == http.StatusServiceUnavailable:
			unavailable++
			if s, perr := strconv.Atoi(rep.Header.Get("Retry-After")); perr == nil && s > 0 {
				wait = time.Duration(s) * time.Second
			}
		default:
			return rep, unavailable, nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("last answer %s", rep)
			}
			return rep, unavailable, fmt.Errorf("register: gave up: %w (%w)", ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}

// webhookPayload is GitHub's push event for a tag moved to commit (before "" = created).
func webhookPayload(repo, ref, before, commit string) []byte {
	zero := strings.Repeat("0", 40)
	if before == "" {
		before = zero
	}
	owner, name, _ := strings.Cut(repo, "/")
	return fmt.Appendf(nil, `{"ref":%q,"before":%q,"after":%q,"created":%v,"deleted":false,"forced":%v,`+
		`"head_commit":{"id":%q},"repository":{"name":%q,"full_name":%q,"owner":{"login":%q}},"pusher":{"name":"octocat"}}`,
		ref, before, commit, before == zero, before != zero, commit, name, repo, owner)
}

// webhook sends a signed push delivery.
func (r *relayProc) webhook(ctx context.Context, delivery string, body []byte) (reply, error) {
	return do(ctx, http.MethodPost, r.URL+"/webhooks/github", body, relaytest.WebhookHeaders(webhookSecret, "push", delivery, body))
}

// admin calls the admin API with the right token.
func (r *relayProc) admin(ctx context.Context, method, path string, body any) (reply, error) {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return reply{}, err
		}
	}
	return do(ctx, method, r.URL+"/api/v1/apps/"+path, raw, map[string]string{
		"Authorization": "Bearer " + adminToken, "Content-Type": "application/json",
	})
}

// mustAdmin calls the admin API and requires a 200.
func (r *relayProc) mustAdmin(t testing.TB, method, path string, body, out any) {
	t.Helper()
	rep, err := r.admin(context.Background(), method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if rep.Status != http.StatusOK {
		t.Fatalf("%s %s: %s", method, path, rep)
	}
	if out != nil {
		if err := json.Unmarshal(rep.Body, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, rep, err)
		}
	}
}

// channelView is one channel as the admin API lists it.
type channelView struct {
	Name  string        `json:"name"`
	State channel.State `json:"state"`
}

// stateOf returns the state of every channel of app by name.
func (r *relayProc) stateOf(t testing.TB, app string) map[string]channel.State {
	t.Helper()
	var out struct {
		Channels []channelView `json:"channels"`
	}
	r.mustAdmin(t, http.MethodGet, app+"/channels", nil, &out)
	m := map[string]channel.State{}
	for _, c := range out.Channels {
		m[c.Name] = c.State
	}
	return m
}

// bundlesOf returns every registered bundle of app by version.
func (r *relayProc) bundlesOf(t testing.TB, app string) map[string]channel.Bundle {
	t.Helper()
	var out struct {
		Bundles []channel.Bundle `json:"bundles"`
	}
	r.mustAdmin(t, http.MethodGet, app+"/bundles?limit=500", nil, &out)
	m := map[string]channel.Bundle{}
	for _, b := range out.Bundles {
		m[b.Version] = b
	}
	return m
}

// auditOf returns app's audit log, newest first.
func (r *relayProc) auditOf(t testing.TB, app string) []channel.AuditEntry {
	t.Helper()
	var out struct {
		Entries []channel.AuditEntry `json:"entries"`
	}
	r.mustAdmin(t, http.MethodGet, app+"/audit?limit=1000", nil, &out)
	return out.Entries
}

// snapshot is everything the admin API shows of both apps, as raw JSON, for before/after
// comparisons.
func (r *relayProc) snapshot(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	for _, app := range []string{appID, otherApp} {
		for _, p := range []string{"/channels", "/bundles?limit=500", "/audit?limit=1000"} {
			rep, err := r.admin(context.Background(), http.MethodGet, app+p, nil)
			if err != nil || rep.Status != http.StatusOK {
				t.Fatalf("snapshot %s%s: %v %s", app, p, err, rep)
			}
			fmt.Fprintf(&b, "%s%s: %s\n", app, p, rep.Body)
		}
	}
	return b.String()
}

// deviceBody is a realistic POST /updates body of a device on ch running current.
func deviceBody(app, deviceID, ch, current string) []byte {
	return fmt.Appendf(nil, `{"platform":"android","device_id":%q,"app_id":%q,"custom_id":"","version_build":"1.0.0",`+
		`"version_code":"10","version_os":"14","version_name":%q,"plugin_version":"8.51.23","is_emulator":false,`+
		`"is_prod":true,"defaultChannel":%q,"install_source":"google_play"}`, deviceID, app, current, ch)
}

// deviceID returns a UUID-shaped device id for n.
func deviceID(n int) string {
	h := relaytest.Hex(fmt.Sprint("device", n), 32)
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-8" + h[17:20] + "-" + h[20:32]
}

// check asks for an update as a device on ch running builtin.
func (r *relayProc) check(ctx context.Context, app, ch string, n int) (channel.UpdateResponse, reply, error) {
	rep, err := do(ctx, http.MethodPost, r.URL+"/updates", deviceBody(app, deviceID(n), ch, "builtin"),
		map[string]string{"Content-Type": "application/json"})
	var u channel.UpdateResponse
	if err != nil {
		return u, rep, err
	}
	if rep.Status != http.StatusOK {
		return u, rep, fmt.Errorf("updates: %s", rep)
	}
	if err := json.Unmarshal(rep.Body, &u); err != nil {
		return u, rep, fmt.Errorf("updates: decode %s: %w", rep, err)
	}
	return u, rep, nil
}

// consistent reports whether an offered answer names a bundle whose url and checksum are
// the ones registered for its version.
func consistent(app string, u channel.UpdateResponse) error {
	if u.Error != "" || u.Version == "" || u.Version == "builtin" {
		return nil
	}
	if u.URL != bundleURL(app, u.Version) || u.Checksum != bundleChecksum(app, u.Version) {
		return fmt.Errorf("answer for %s is inconsistent: url %q checksum %q", u.Version, u.URL, u.Checksum)
	}
	return nil
}

// metrics scrapes /metrics and returns the sum of the samples of each metric name (labels
// are summed over).
func (r *relayProc) metrics(t testing.TB) map[string]float64 {
	t.Helper()
	rep, err := do(context.Background(), http.MethodGet, r.URL+"/metrics", nil, nil)
	if err != nil || rep.Status != http.StatusOK {
		t.Fatalf("metrics: %v %s", err, rep)
	}
	return parseMetrics(rep.Body)
}

// parseMetrics sums the Prometheus text samples per metric name and also keeps each
// labelled series under its full name.
func parseMetrics(raw []byte) map[string]float64 {
	m := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		series := line[:i]
		m[series] = v
		if j := strings.IndexByte(series, '{'); j > 0 {
			m[series[:j]] += v
		}
	}
	return m
}

// envDuration reads a duration knob from the environment.
func envDuration(t testing.TB, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration such as 5m", name, v)
	}
	return d
}
