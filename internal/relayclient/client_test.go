package relayclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relayclient"
)

// request is what the stand-in relay saw of one request.
type request struct {
	Method, Path, Query, Body, Auth, ContentType, UserAgent string
}

// recorder is a stand-in relay that records requests and answers each with answer.
type recorder struct {
	mu   sync.Mutex
	seen []request
}

func (r *recorder) serve(t *testing.T, status int, answer string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.seen = append(r.seen, request{req.Method, req.URL.EscapedPath(), req.URL.RawQuery, string(body),
			req.Header.Get("Authorization"), req.Header.Get("Content-Type"), req.Header.Get("User-Agent")})
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func (r *recorder) last() request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[len(r.seen)-1]
}

// TestAdminRequests pins what each admin method sends: method, path (escaped), query, body,
// the admin token and the user agent.
func TestAdminRequests(t *testing.T) {
	t.Parallel()
	var rec recorder
	srv := rec.serve(t, http.StatusOK, `{}`)
	c, err := relayclient.New(srv.URL+"/", relayclient.Options{HTTPClient: srv.Client(), AdminToken: "tok", UserAgent: "ferry-test"})
	if err != nil {
		t.Fatal(err)
	}
	const app = "com.example.app"
	tests := []struct {
		name string
		call func(ctx context.Context) error
		want request
	}{
		{"list channels", func(ctx context.Context) error { _, err := c.ListChannels(ctx, app); return err },
			request{Method: "GET", Path: "/api/v1/apps/com.example.app/channels"}},
		{"get channel", func(ctx context.Context) error { _, err := c.GetChannel(ctx, app, "beta/x"); return err },
			request{Method: "GET", Path: "/api/v1/apps/com.example.app/channels/beta%2Fx"}},
		{"list bundles", func(ctx context.Context) error { _, err := c.ListBundles(ctx, app, 0); return err },
			request{Method: "GET", Path: "/api/v1/apps/com.example.app/bundles"}},
		{"list bundles with a limit", func(ctx context.Context) error { _, err := c.ListBundles(ctx, app, 2); return err },
			request{Method: "GET", Path: "/api/v1/apps/com.example.app/bundles", Query: "limit=2"}},
		{"get bundle", func(ctx context.Context) error { _, err := c.GetBundle(ctx, app, "1.0.0+b"); return err },
			request{Method: "GET", Path: "/api/v1/apps/com.example.app/bundles/1.0.0+b"}},
		{"promote", func(ctx context.Context) error { _, err := c.Promote(ctx, app, "production", "1.0.1"); return err },
			request{Method: "POST", Path: "/api/v1/apps/com.example.app/channels/production/promote", Body: `{"version":"1.0.1"}`, ContentType: "application/json"}},
		{"promote with a native range", func(ctx context.Context) error {
			_, err := c.PromoteWith(ctx, app, "production", relayclient.PromoteRequest{Version: "1.0.1", Native: new(">=2.0.0 <3")})
			return err
		}, request{Method: "POST", Path: "/api/v1/apps/com.example.app/channels/production/promote", Body: `{"version":"1.0.1","native":"\u003e=2.0.0 \u003c3"}`, ContentType: "application/json"}},
		{"promote removing a native override", func(ctx context.Context) error {
			_, err := c.PromoteWith(ctx, app, "production", relayclient.PromoteRequest{Version: "1.0.1", Native: new("")})
			return err
		}, request{Method: "POST", Path: "/api/v1/apps/com.example.app/channels/production/promote", Body: `{"version":"1.0.1","native":""}`, ContentType: "application/json"}},
		{"rollback", func(ctx context.Context) error { _, err := c.Rollback(ctx, app, "production"); return err },
			request{Method: "POST", Path: "/api/v1/apps/com.example.app/channels/production/rollback"}},
		{"set rollout", func(ctx context.Context) error {
			_, err := c.SetRollout(ctx, app, "production", "1.1.0", 0)
			return err
		},
			request{Method: "PUT", Path: "/api/v1/apps/com.example.app/channels/production/rollout", Body: `{"version":"1.1.0","percent":0}`, ContentType: "application/json"}},
		{"pause rollout", func(ctx context.Context) error {
			_, err := c.ChangeRollout(ctx, app, "production", relayclient.RolloutPause)
			return err
		}, request{Method: "POST", Path: "/api/v1/apps/com.example.app/channels/production/rollout/pause"}},
		{"set policy", func(ctx context.Context) error {
			_, err := c.SetPolicy(ctx, app, "beta", &relayclient.PolicyOverride{Public: true, AllowDev: new(bool)})
			return err
		}, request{Method: "PUT", Path: "/api/v1/apps/com.example.app/channels/beta/policy", Body: `{"policy":{"public":true,"allow_dev":false}}`, ContentType: "application/json"}},
		{"remove policy", func(ctx context.Context) error { _, err := c.SetPolicy(ctx, app, "beta", nil); return err },
			request{Method: "PUT", Path: "/api/v1/apps/com.example.app/channels/beta/policy", Body: `{"policy":null}`, ContentType: "application/json"}},
		{"stats", func(ctx context.Context) error { _, err := c.Stats(ctx, app); return err },
			request{Method: "GET", Path: "/api/v1/apps/com.example.app/stats"}},
		{"audit", func(ctx context.Context) error { _, err := c.Audit(ctx, app, 3); return err },
			request{Method: "GET", Path: "/api/v1/apps/com.example.app/audit", Query: "limit=3"}},
	}
	for _, tc := range tests {
		if err := tc.call(t.Context()); err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		want := tc.want
		want.Auth, want.UserAgent = "Bearer tok", "ferry-test"
		if diff := cmp.Diff(want, rec.last()); diff != "" {
			t.Errorf("%s sent (-want +got):\n%s", tc.name, diff)
		}
	}
}

// TestAdminAnswers: answers decode into the wire types; refusals are *Error.
func TestAdminAnswers(t *testing.T) {
	t.Parallel()
	var rec recorder
	srv := rec.serve(t, http.StatusOK, `{"changed":true,"channel":{"name":"production","policy":{"public":false,"allow_device_self_set":false},`+
		`"policy_overridden":false,"default":true,"state":{"app":"a","channel":"production","version":"1.0.1","history":["1.0.0"],"rev":3}}}`)
	c, err := relayclient.New(srv.URL, relayclient.Options{HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Promote(t.Context(), "a", "production", "1.0.1")
	if err != nil {
		t.Fatal(err)
	}
	want := &relayclient.ChangeResult{Changed: true, Channel: relayclient.ChannelView{Name: "production", Default: true,
		State: &channel.State{App: "a", Channel: "production", Version: "1.0.1", History: []string{"1.0.0"}, Rev: 3}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Promote (-want +got):\n%s", diff)
	}
	if rec.last().UserAgent != "ferry" {
		t.Errorf("default user agent = %q", rec.last().UserAgent)
	}

	refusing := (&recorder{}).serve(t, http.StatusConflict, `{"error":"conflict","message":"channel has no rollout"}`)
	c, err = relayclient.New(refusing.URL, relayclient.Options{HTTPClient: refusing.Client()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ChangeRollout(t.Context(), "a", "production", relayclient.RolloutResume)
	var re *relayclient.Error
	if !errors.As(err, &re) || re.StatusCode != http.StatusConflict || re.Code != "conflict" || re.Message != "channel has no rollout" || re.Method != "POST" {
		t.Errorf("ChangeRollout = %#v, want a 409 conflict *Error", err)
	}

	garbled := (&recorder{}).serve(t, http.StatusOK, `[1,2`)
	c, err = relayclient.New(garbled.URL, relayclient.Options{HTTPClient: garbled.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stats(t.Context(), "a"); err == nil || !strings.Contains(err.Error(), "unreadable body") {
		t.Errorf("Stats of a garbled answer = %v", err)
	}
}

// TestCredentialsRedacted: a base URL with user information never shows it in errors,
// whether the relay refuses or cannot be reached.
func TestCredentialsRedacted(t *testing.T) {
	t.Parallel()
	srv := (&recorder{}).serve(t, http.StatusInternalServerError, `oops`)
	withCreds := strings.Replace(srv.URL, "http://", "http://user:hunter2@", 1)
	c, err := relayclient.New(withCreds, relayclient.Options{HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(c.BaseURL(), "hunter2") || strings.Contains(c.BaseURL(), "user") {
		t.Errorf("BaseURL() = %q", c.BaseURL())
	}
	_, err = c.ListChannels(t.Context(), "a")
	if err == nil || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "user@") {
		t.Errorf("refusal = %v; want an error without credentials", err)
	}

	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	c, err = relayclient.New(strings.Replace(down.URL, "http://", "http://user:hunter2@", 1), relayclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListChannels(t.Context(), "a")
	if err == nil || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "user@") {
		t.Errorf("transport error = %v; want an error without credentials", err)
	}
	_, err = relayclient.New("http://user:hunter2@[::1", relayclient.Options{})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("New with a broken URL = %v; want an error without credentials", err)
	}
}

func TestNewRefusesNonHTTP(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "relay.example.com", "ftp://relay.example.com", "https://"} {
		if _, err := relayclient.New(u, relayclient.Options{}); err == nil {
			t.Errorf("New(%q) succeeded", u)
		}
	}
	// A host without a scheme is told how to write it.
	for _, u := range []string{"relay.example.com", "relay.example.com:8443/"} {
		_, err := relayclient.New(u, relayclient.Options{})
		if want := "has no scheme: write it as https://" + strings.TrimSuffix(u, "/"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New(%q) = %v, want an error saying %q", u, err, want)
		}
	}
}

// TestWireTypesMatchRelayJSON: the types decode the relay's answers field for field (a
// round trip keeps every field), so printing a decoded answer shows what the relay sent.
func TestWireTypesMatchRelayJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		raw  string
		into any
	}{
		{"registration", `{"bundle":{"app_id":"a","version":"1.0.0","url":"https://d.test/a.zip","checksum":"c","sha256":"c","size":1,"commit":"x","ref":"refs/heads/main"},"created":true,"channel":"beta","promoted":false,"reason":"why","pending_applied":["staging"]}`, &relayclient.Registration{}},
		{"error", `{"error":"version_conflict","message":"m"}`, &relayclient.ErrorBody{}},
		{"channels", `{"app":"a","channels":[{"name":"beta","policy":{"public":true,"allow_device_self_set":false},"policy_overridden":true,"default":false,"state":{"app":"a","channel":"beta","version":"","rev":0}}]}`, &relayclient.ChannelList{}},
		{"stats", `{"app":"a","time":"2026-01-02T03:04:05Z","versions":[{"version":"1.0.0","actions":{"set":2},"devices":2}]}`, &relayclient.Stats{}},
		{"audit", `{"app":"a","entries":[{"time":"2026-01-02T03:04:05Z","app":"a","channel":"beta","action":"promote","version":"1.0.0","cause":"admin"}]}`, &relayclient.AuditList{}},
	}
	for _, tc := range tests {
		if err := json.Unmarshal([]byte(tc.raw), tc.into); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		out, err := json.Marshal(tc.into)
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != tc.raw {
			t.Errorf("%s round trip:\n got %s\nwant %s", tc.name, out, tc.raw)
		}
	}
}
