package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relay/control"
	"github.com/ferryhq/ferry/internal/relayclient"
	"github.com/ferryhq/ferry/internal/store"
)

// adminRelay serves the real control plane on a bbolt store with three bundles registered
// from a branch no rule maps; it returns the relay URL and a token file.
func adminRelay(t *testing.T) (relayURL, tokenFile string) {
	t.Helper()
	cfg, err := channel.ParseConfig([]byte(`
rollout_plans:
  staged: {steps: [{percent: 1, bake: 1h}, {percent: 100}]}
apps:
  - id: com.example.app
    repository: acme/mobile-app
    default_channel: production
    channels: {production: {}, beta: {}}
    rules:
      - {ref: refs/heads/main, channel: beta}
`))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "ferry.db"), store.BoltOptions{SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	api, err := control.New(t.Context(), control.Options{Config: cfg, Store: st, AdminToken: "s3cret", HMACSecret: "ci"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close) // before the store closes
	gin.SetMode(gin.TestMode)
	engine := gin.New()
	api.Mount(engine)
	srv := httptest.NewServer(engine)
	t.Cleanup(srv.Close)
	for i, v := range []string{"1.0.0", "1.0.1", "1.1.0"} {
		sum := sha256.Sum256([]byte(v))
		h := hex.EncodeToString(sum[:])
		body, _ := json.Marshal(channel.Bundle{AppID: "com.example.app", Version: v, URL: "https://cdn.example.com/" + v + ".zip",
			Checksum: h, SHA256: h, Size: 10, Commit: strings.Repeat(fmt.Sprint(i+1), 40), Ref: "refs/heads/feature"})
		req, _ := http.NewRequestWithContext(t.Context(), "POST", srv.URL+"/api/v1/bundles", bytes.NewReader(body))
		now := time.Now()
		req.Header.Set("X-Ferry-Timestamp", fmt.Sprint(now.Unix()))
		req.Header.Set("X-Ferry-Signature-256", relayclient.Sign([]byte("ci"), now, body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("register %s: %d", v, resp.StatusCode)
		}
	}
	// One device failed 1.0.0, for `device`.
	if err := st.RecordStats(t.Context(), "com.example.app", []channel.StatEvent{{Device: "dev-1", Version: "1.0.0", Action: "update_fail"}}); err != nil {
		t.Fatal(err)
	}
	tokenFile = filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv.URL, tokenFile
}

func TestAdminCommand(t *testing.T) {
	t.Parallel()
	relay, tokenFile := adminRelay(t)
	base := []string{"admin", "--relay", relay, "--app", "com.example.app", "--token-file", tokenFile}
	steps := []struct {
		args     []string
		wantCode int
		want     []string // substrings of stdout (or stderr on failure)
	}{
		{[]string{"promote", "production", "1.0.0"}, 0, []string{"production changed: serves 1.0.0"}},
		{[]string{"promote", "production", "1.0.1"}, 0, []string{"production changed: serves 1.0.1, previous 1.0.0"}},
		{[]string{"promote", "production", "1.0.1"}, 0, []string{"production unchanged"}},
		{[]string{"rollout", "production", "1.1.0", "10%"}, 0, []string{"rollout 1.1.0@10%"}},
		{[]string{"rollout", "production", "pause"}, 0, []string{"1.1.0@10% (paused)"}},
		{[]string{"channels"}, 0, []string{"CHANNEL", "production (default)", "1.0.1", "1.1.0@10% (paused)", "beta"}},
		{[]string{"rollout", "production", "complete"}, 0, []string{"serves 1.1.0, previous 1.0.1"}},
		{[]string{"rollback", "production"}, 0, []string{"serves 1.0.1"}},
		{[]string{"rollout", "start", "--plan", "staged", "production", "1.1.0"}, 0, []string{"production changed", "rollout 1.1.0@1%"}},
		{[]string{"rollout", "status", "production"}, 0, []string{"PLAN", "staged (revision", "for 1.1.0", "STEP", "1 of 2", "NEXT DECISION"}},
		{[]string{"rollout", "start", "--plan", "fast", "production", "1.1.0"}, 1, []string{"404 plan_not_found", "configured: staged"}},
		{[]string{"rollout", "start", "--plan", "staged", "production"}, 2, []string{"usage: rollout start --plan NAME <channel> <version>"}},
		{[]string{"rollout", "production", "cancel"}, 0, []string{"production changed"}},
		{[]string{"policy", "beta", `{"public":true}`}, 0, []string{"beta changed", "policy overridden"}},
		{[]string{"policy", "beta", "null"}, 0, []string{"beta changed"}},
		{[]string{"bundles", "2"}, 0, []string{"VERSION", "1.1.0", "333333333333", "refs/heads/feature"}},
		{[]string{"audit", "3"}, 0, []string{"ACTION", "policy", "admin"}},
		{[]string{"stats"}, 0, []string{"VERSION", "DEVICES"}},
		{[]string{"device", "dev-1"}, 0, []string{"FAILED VERSIONS", "dev-1", "1.0.0"}},
		{[]string{"device", "dev-1", "clear-failed"}, 0, []string{"CLEARED", "dev-1", "1.0.0"}},
		{[]string{"device", "dev-1"}, 0, []string{"dev-1  ", "-"}},
		{[]string{"audit", "--action", "clear_failed"}, 0, []string{"clear_failed", "bootstrap"}},
		{[]string{"device", "a b"}, 2, []string{`device "a b" is not a device id`}},
		{[]string{"device", "dev-1", "forget"}, 2, []string{"usage: device <id> [clear-failed]"}},
		{[]string{"promote", "production", "9.9.9"}, 1, []string{"404 bundle_not_found"}},
		{[]string{"rollout", "production", "resume"}, 1, []string{"409 conflict", "no rollout"}},
		{[]string{"promote", "nightly", "1.0.0"}, 1, []string{"404 channel_not_found"}},
		{[]string{"rollout", "production", "1.1.0", "150"}, 2, []string{"percent \"150\""}},
		{[]string{"promote", "production"}, 2, []string{"usage: promote <channel> <version>"}},
		{[]string{"explode"}, 2, []string{`unknown action "explode"`}},
		{[]string{"policy", "beta", "{not json"}, 2, []string{"is not JSON"}},
	}
	for _, s := range steps {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), append(append([]string{}, base...), s.args...), &stdout, &stderr)
		if code != s.wantCode {
			t.Fatalf("ferry admin %v: exit %d, want %d\nstdout: %s\nstderr: %s", s.args, code, s.wantCode, &stdout, &stderr)
		}
		out := stdout.String()
		if code != 0 {
			out = stderr.String()
		}
		for _, w := range s.want {
			if !strings.Contains(out, w) {
				t.Errorf("ferry admin %v: output lacks %q:\n%s", s.args, w, out)
			}
		}
	}
}

func TestAdminCommandJSON(t *testing.T) {
	t.Parallel()
	relay, tokenFile := adminRelay(t)
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"admin", "--relay", relay, "--app", "com.example.app", "--token-file", tokenFile, "--json", "bundles"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, &stderr)
	}
	var got struct {
		Bundles []channel.Bundle `json:"bundles"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil || len(got.Bundles) != 3 {
		t.Errorf("--json bundles = %s (%v)", &stdout, err)
	}
}

func TestAdminCommandRefusals(t *testing.T) {
	t.Parallel()
	relay, _ := adminRelay(t)
	wrong := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrong, []byte("guess"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"wrong token", []string{"--relay", relay, "--app", "com.example.app", "--token-file", wrong, "channels"}, 1, "401 unauthorized"},
		{"empty token file", []string{"--relay", relay, "--app", "com.example.app", "--token-file", empty, "channels"}, 1, "token file is empty"},
		{"unknown app", []string{"--relay", relay, "--app", "com.example.nope", "--token-file", wrong, "channels"}, 1, "401"},
		{"missing flags", []string{"channels"}, 2, "--relay is required; --app is required; --token-file is required"},
		{"no action", []string{"--relay", relay, "--app", "a", "--token-file", wrong}, 2, "an action is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), append([]string{"admin"}, tc.args...), &stdout, &stderr)
			if code != tc.wantCode || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want %d containing %q", code, &stderr, tc.wantCode, tc.want)
			}
		})
	}
}

// `ferry admin tokens` creates a token (printed alone on stdout, once), lists and revokes
// it; the new token works as the credential and `audit` filters by actor.
func TestAdminTokensCommand(t *testing.T) {
	t.Parallel()
	relay, bootFile := adminRelay(t)
	admin := func(tokenFile string, args ...string) (code int, stdout, stderr string) {
		var out, errb bytes.Buffer
		code = run(t.Context(), append([]string{"admin", "--relay", relay, "--token-file", tokenFile}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, errOut := admin(bootFile, "tokens", "create", "--name", "deploy-bot", "--app", "com.example.app", "--role", "deployer", "--expires", "90d")
	if code != 0 {
		t.Fatalf("tokens create: exit %d: %s", code, errOut)
	}
	tok := strings.TrimSpace(out)
	if !strings.HasPrefix(tok, "ferry_") || strings.Count(out, "\n") != 1 {
		t.Fatalf("stdout = %q, want the token alone", out)
	}
	if !strings.Contains(errOut, "shown only this once") || !strings.Contains(errOut, "deploy-bot") || strings.Contains(errOut, tok) {
		t.Errorf("stderr = %q, want the warning and the record without the token", errOut)
	}
	botFile := filepath.Join(t.TempDir(), "bot")
	if err := os.WriteFile(botFile, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := admin(botFile, "--app", "com.example.app", "promote", "production", "1.0.0"); code != 0 || !strings.Contains(out, "serves 1.0.0") {
		t.Errorf("promote with the token: exit %d %s %s", code, out, errOut)
	}
	if code, _, errOut := admin(botFile, "--app", "com.example.app", "policy", "beta", "null"); code != 1 || !strings.Contains(errOut, "403 forbidden") {
		t.Errorf("policy with a deployer token: exit %d %s", code, errOut)
	}
	code, out, _ = admin(bootFile, "--app", "com.example.app", "audit", "--actor", "deploy-bot", "--since", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	if code != 0 || !strings.Contains(out, "ACTOR") || !strings.Contains(out, "token deploy-bot") || strings.Contains(out, "bootstrap") {
		t.Errorf("audit --actor deploy-bot: exit %d\n%s", code, out)
	}
	id, _, _ := strings.Cut(strings.TrimPrefix(tok, "ferry_"), "_")
	if code, out, _ := admin(bootFile, "tokens", "list"); code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "com.example.app:deployer") {
		t.Errorf("tokens list: exit %d\n%s", code, out)
	}
	if code, out, errOut := admin(bootFile, "tokens", "revoke", id); code != 0 || !strings.Contains(out, id) {
		t.Errorf("tokens revoke: exit %d %s %s", code, out, errOut)
	}
	if code, _, errOut := admin(botFile, "--app", "com.example.app", "channels"); code != 1 || !strings.Contains(errOut, "401") {
		t.Errorf("revoked token: exit %d %s", code, errOut)
	}
	for _, args := range [][]string{
		{"tokens"}, {"tokens", "create", "--app", "com.example.app", "--role", "owner", "--name", "x"},
		{"tokens", "create", "--name", "x", "--app", "a", "--role", "viewer", "--expires", "forever"},
		{"tokens", "revoke"}, {"audit", "--since", "yesterday"},
	} {
		if code, _, errOut := admin(bootFile, append([]string{"--app", "com.example.app"}, args...)...); code != 2 {
			t.Errorf("ferry admin %v: exit %d, want 2 (usage): %s", args, code, errOut)
		}
	}
}
