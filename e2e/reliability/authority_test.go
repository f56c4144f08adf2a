package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relay/relaytest"
	"github.com/ferryhq/ferry/internal/testpeers"
)

// The attacks of issue 15 on who may change what (classes 1, 4, 5, 8 and 10), against the
// built relay. Each test would have passed for the attacker on the relay before the fix.

// authorityConfig gives two apps a webhook secret of their own and pins the first one's
// repository id; a third app uses the relay-wide secret.
const authorityConfig = `apps:
  - id: com.example.rel
    repository: acme/rel-app
    repository_id: 500001
    webhook_secret_env: FERRY_WEBHOOK_SECRET_REL
    default_channel: production
    channels:
      production: { public: true, allow_refs: ["refs/heads/release/*"] }
      beta: {}
    rules:
      - { ref: refs/heads/main, channel: beta }
      - { ref: "refs/tags/v*", channel: production }
  - id: com.example.other
    repository: acme/other-app
    webhook_secret_env: FERRY_WEBHOOK_SECRET_OTHER
    default_channel: production
    channels:
      production: {}
    rules:
      - { ref: "refs/tags/v*", channel: production }
  - id: com.example.legacy
    repository: acme/legacy-app
    default_channel: production
    channels:
      production: {}
    rules:
      - { ref: "refs/tags/v*", channel: production }
`

const (
	relHookSecret   = "rel-app-webhook-secret"
	otherHookSecret = "other-app-webhook-secret"
	legacyApp       = "com.example.legacy"
)

// authorityArgs are the flags of a relay on authorityConfig with OIDC from issuer.
func authorityArgs(t *testing.T, issuer string) []string {
	return []string{"--config", relaytest.WriteConfig(t, authorityConfig), "--rate-limit", "0", "--log-format", "text", "--log-level", "warn",
		"--data-dir", t.TempDir(), "--oidc-issuer", issuer, "--oidc-audience", oidcAudience}
}

func authorityEnv(extra ...string) []string {
	return append(append(os.Environ(), "FERRY_ADMIN_TOKEN="+adminToken, "FERRY_WEBHOOK_SECRET="+webhookSecret, "FERRY_HMAC_SECRET="+hmacSecret), extra...)
}

// pushPayload is webhookPayload with the fields GitHub always sends and signs: the push's
// time (repository.pushed_at, unix seconds) and, when repoID is set, the repository's id.
func pushPayload(t testing.TB, repo string, repoID int64, ref, before, commit string, pushedAt int64) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(webhookPayload(repo, ref, before, commit), &m); err != nil {
		t.Fatal(err)
	}
	r := m["repository"].(map[string]any)
	r["pushed_at"] = pushedAt
	if repoID != 0 {
		r["id"] = repoID
	}
	return mustJSON(t, m)
}

// registerOIDC registers b with a GitHub Actions token of o.
func (r *relayProc) registerOIDC(ctx context.Context, t *testing.T, iss *issuer, o tokenOpts, b channel.Bundle) (reply, error) {
	return do(ctx, http.MethodPost, r.URL+"/api/v1/bundles", mustJSON(t, b),
		map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + iss.token(t, o)})
}

// Class 1: a workflow run on any branch held a token the relay accepted for the app, and
// an explicit "channel":"production" in the body moved production.
func TestBranchCannotNameProduction(t *testing.T) {
	iss := newIssuer(t)
	r := startRelay(t, relayOpts{OIDCIssuer: iss.srv.URL})
	ctx := t.Context()
	for i, tc := range []struct {
		ref, event, channel string
		promoted            bool
	}{
		{"refs/heads/feature-x", "push", "production", false},
		{"refs/heads/feature-x", "workflow_dispatch", "production", false},
		{"refs/heads/feature-x", "workflow_dispatch", "staging", false},
		{"refs/heads/main", "push", "production", false},
		{"refs/heads/main", "push", "beta", true},
		{"refs/tags/v7.0.0", "push", "production", true},
	} {
		b := bundleFor(appID, fmt.Sprintf("7.0.%d", i), tc.ref)
		b.Channel = tc.channel
		before := r.stateOf(t, appID)[tc.channel]
		rep, err := r.registerOIDC(ctx, t, iss, tokenOpts{Ref: tc.ref, SHA: b.Commit, Event: tc.event}, b)
		if err != nil || rep.Status != http.StatusCreated {
			t.Fatalf("%s (%s) naming %s: %v %s; want 201", tc.ref, tc.event, tc.channel, err, rep)
		}
		var ans struct {
			Promoted bool   `json:"promoted"`
			Reason   string `json:"reason"`
		}
		if err := json.Unmarshal(rep.Body, &ans); err != nil {
			t.Fatal(err)
		}
		after := r.stateOf(t, appID)[tc.channel]
		if ans.Promoted != tc.promoted || (after.Version == b.Version) != tc.promoted {
			t.Errorf("%s (%s) naming %s: promoted %v, channel %q -> %q; want promoted %v", tc.ref, tc.event, tc.channel, ans.Promoted, before.Version, after.Version, tc.promoted)
		}
		if !tc.promoted && (after.Rev != before.Rev || ans.Reason == "") {
			t.Errorf("%s naming %s: channel changed (rev %d -> %d) or no reason given (%q)", tc.ref, tc.channel, before.Rev, after.Rev, ans.Reason)
		}
	}
}

// Class 4: GitHub signs the body only; a logged tag push resent under a new
// X-GitHub-Delivery rolled production back.
func TestWebhookReplayUnderNewDeliveryID(t *testing.T) {
	t.Run("bolt", func(t *testing.T) { replayUnderNewID(t, startRelay(t, relayOpts{})) })
	t.Run("redis", func(t *testing.T) {
		rdb := testpeers.Redis(t)
		replayUnderNewID(t, startRelay(t, relayOpts{RedisURL: "redis://" + rdb.Addr}))
	})
}

func replayUnderNewID(t *testing.T, r *relayProc) {
	ctx := t.Context()
	for _, v := range []string{"4.0.0", "4.1.0"} {
		if rep, err := r.register(ctx, mustJSON(t, bundleFor(appID, v, "refs/heads/feature"))); err != nil || rep.Status != http.StatusCreated {
			t.Fatalf("register %s: %v %s", v, err, rep)
		}
	}
	t0 := time.Now().Add(-time.Hour).Unix()
	c400, c410 := relaytest.Commit(appID+"@4.0.0"), relaytest.Commit(appID+"@4.1.0")
	old := pushPayload(t, repository, 0, "refs/tags/v4.0.0", "", c400, t0)
	for i, body := range [][]byte{old, pushPayload(t, repository, 0, "refs/tags/v4.1.0", "", c410, t0+60)} {
		if rep, err := r.webhook(ctx, fmt.Sprintf("real-%d", i), body); err != nil || rep.Status != http.StatusOK {
			t.Fatalf("push %d: %v %s", i, err, rep)
		}
	}
	if v := r.stateOf(t, appID)["production"].Version; v != "4.1.0" {
		t.Fatalf("production = %q, want 4.1.0", v)
	}
	before := r.snapshot(t)
	for i := range 5 {
		rep, err := r.webhook(ctx, fmt.Sprintf("attacker-%d", i), old)
		if err != nil || rep.Status != http.StatusOK {
			t.Fatalf("replay %d: %v %s", i, err, rep)
		}
	}
	// A crash and restart do not forget what was applied.
	_ = r.Stop(syscall.SIGKILL) // a killed relay's exit status is an error by design
	r.Start()
	if rep, err := r.webhook(ctx, "attacker-after-restart", old); err != nil || rep.Status != http.StatusOK {
		t.Fatalf("replay after restart: %v %s", err, rep)
	}
	if after := r.snapshot(t); after != before {
		t.Errorf("replays of a signed old push changed the relay:\nbefore %s\nafter  %s", before, after)
	}
	// Moving a tag is a new push: a deliberate rollback by tag still works.
	back := pushPayload(t, repository, 0, "refs/tags/v4.1.0", c410, c400, t0+120)
	if rep, err := r.webhook(ctx, "rollback-by-tag", back); err != nil || rep.Status != http.StatusOK {
		t.Fatalf("moving the tag back: %v %s", err, rep)
	}
	if v := r.stateOf(t, appID)["production"].Version; v != "4.0.0" {
		t.Errorf("production = %q after moving v4.1.0 back to 4.0.0's commit, want 4.0.0", v)
	}
}

// Class 5: one secret covered every repository, so a push signed for one app moved
// another's production. With a secret per app, it is refused and changes nothing; an app
// naming an unset variable stops the relay at start-up.
func TestWebhookSecretPerApp(t *testing.T) {
	iss := newIssuer(t)
	r := &relayProc{relaytest.Start(t, relaytest.Build(t, "cmd/relay")[0], relaytest.Options{
		Args:     authorityArgs(t, iss.srv.URL),
		Env:      authorityEnv("FERRY_WEBHOOK_SECRET_REL="+relHookSecret, "FERRY_WEBHOOK_SECRET_OTHER="+otherHookSecret),
		LogLimit: 4 << 20, LogTail: 4000,
	})}
	ctx := t.Context()
	for _, app := range []string{otherApp, legacyApp} {
		if rep, err := r.register(ctx, mustJSON(t, bundleFor(app, "2.0.0", "refs/heads/feature"))); err != nil || rep.Status != http.StatusCreated {
			t.Fatalf("register %s: %v %s", app, err, rep)
		}
	}
	hook := func(secret, delivery string, body []byte) reply {
		t.Helper()
		rep, err := do(ctx, http.MethodPost, r.URL+"/webhooks/github", body, relaytest.WebhookHeaders(secret, "push", delivery, body))
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	now := time.Now().Unix()
	otherPush := pushPayload(t, otherRepo, 0, "refs/tags/v2.0.0", "", relaytest.Commit(otherApp+"@2.0.0"), now)
	before := r.snapshot(t)
	for _, secret := range []string{relHookSecret, webhookSecret} {
		if rep := hook(secret, "forged-"+secret, otherPush); rep.Status != http.StatusUnauthorized || rep.errCode() != "bad_signature" {
			t.Errorf("%s's push signed with another secret: %s, want 401 bad_signature", otherRepo, rep)
		}
	}
	if after := r.snapshot(t); after != before {
		t.Errorf("a push signed with another app's secret changed the relay:\nbefore %s\nafter  %s", before, after)
	}
	if rep := hook(otherHookSecret, "genuine", otherPush); rep.Status != http.StatusOK {
		t.Fatalf("push with the app's own secret: %s", rep)
	}
	if v := r.stateOf(t, otherApp)["production"].Version; v != "2.0.0" {
		t.Errorf("%s production = %q, want 2.0.0", otherApp, v)
	}
	legacyPush := pushPayload(t, "acme/legacy-app", 0, "refs/tags/v2.0.0", "", relaytest.Commit(legacyApp+"@2.0.0"), now)
	if rep := hook(webhookSecret, "legacy", legacyPush); rep.Status != http.StatusOK {
		t.Fatalf("push with the relay-wide fallback secret: %s", rep)
	}
	if v := r.stateOf(t, legacyApp)["production"].Version; v != "2.0.0" {
		t.Errorf("%s production = %q, want 2.0.0 (relay-wide secret as fallback)", legacyApp, v)
	}

	t.Run("unset variable stops the relay", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, relaytest.Build(t, "cmd/relay")[0], append([]string{"--addr", "127.0.0.1:0"}, authorityArgs(t, iss.srv.URL)...)...)
		cmd.Env = authorityEnv("FERRY_WEBHOOK_SECRET_REL=" + relHookSecret) // FERRY_WEBHOOK_SECRET_OTHER unset
		out, err := cmd.CombinedOutput()
		if err == nil || ctx.Err() != nil {
			t.Fatalf("relay with an unset webhook_secret_env: err %v (ctx %v), want a start-up failure:\n%s", err, ctx.Err(), out)
		}
		if !strings.Contains(string(out), "FERRY_WEBHOOK_SECRET_OTHER") || !strings.Contains(string(out), otherApp) {
			t.Errorf("start-up error does not name the app and the variable:\n%s", out)
		}
	})
}

// Class 10: the repository was matched by name only; a repository deleted and re-created
// under the same name (a new id) could publish and promote.
func TestRepositoryIDPinned(t *testing.T) {
	iss := newIssuer(t)
	r := &relayProc{relaytest.Start(t, relaytest.Build(t, "cmd/relay")[0], relaytest.Options{
		Args:     authorityArgs(t, iss.srv.URL),
		Env:      authorityEnv("FERRY_WEBHOOK_SECRET_REL="+relHookSecret, "FERRY_WEBHOOK_SECRET_OTHER="+otherHookSecret),
		LogLimit: 4 << 20, LogTail: 4000,
	})}
	ctx := t.Context()
	b := bundleFor(appID, "3.0.0", "refs/heads/main")
	before := r.snapshot(t)
	rep, err := r.registerOIDC(ctx, t, iss, tokenOpts{Ref: b.Ref, SHA: b.Commit, RepositoryID: "500002"}, b)
	if err != nil || rep.Status != http.StatusForbidden || rep.errCode() != "repository_not_allowed" {
		t.Fatalf("token of a re-created repository: %v %s, want 403 repository_not_allowed", err, rep)
	}
	body := pushPayload(t, repository, 500002, "refs/tags/v3.0.0", "", b.Commit, time.Now().Unix())
	if rep, err := do(ctx, http.MethodPost, r.URL+"/webhooks/github", body, relaytest.WebhookHeaders(relHookSecret, "push", "recreated", body)); err != nil || rep.Status != http.StatusOK {
		t.Fatalf("push from a re-created repository: %v %s", err, rep)
	}
	if after := r.snapshot(t); after != before {
		t.Errorf("a re-created repository changed the relay:\nbefore %s\nafter  %s", before, after)
	}
	if rep, err := r.registerOIDC(ctx, t, iss, tokenOpts{Ref: b.Ref, SHA: b.Commit, RepositoryID: "500001"}, b); err != nil || rep.Status != http.StatusCreated {
		t.Fatalf("token of the pinned repository: %v %s, want 201", err, rep)
	}
}

// Class 8: every forged token made the relay fetch the issuer's keys. Tokens whose claims
// no signature could make acceptable cost no request at all; forged signatures under the
// issuer's key id cost none once the keys are cached.
func TestForgedTokensCostNoKeyFetches(t *testing.T) {
	iss := newIssuer(t)
	r := startRelay(t, relayOpts{OIDCIssuer: iss.srv.URL})
	ctx := t.Context()
	b := bundleFor(appID, "8.0.0", "refs/heads/main")
	post := func(o tokenOpts) reply {
		t.Helper()
		o.Ref, o.SHA = b.Ref, b.Commit
		rep, err := r.registerOIDC(ctx, t, iss, o, b)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	for i := range 100 {
		if rep := post(tokenOpts{Audience: fmt.Sprintf("https://other-%d.example", i)}); rep.Status != http.StatusUnauthorized {
			t.Fatalf("wrong audience: %s, want 401", rep)
		}
	}
	if d, k := iss.discoveries.Load(), iss.keyFetches.Load(); d != 0 || k != 0 {
		t.Fatalf("100 tokens with a wrong audience: %d discovery and %d key fetches, want none", d, k)
	}
	forger := rsaKey(t)
	for range 100 {
		if rep := post(tokenOpts{Key: forger}); rep.Status != http.StatusUnauthorized {
			t.Fatalf("forged signature: %s, want 401", rep)
		}
	}
	if k := iss.keyFetches.Load(); k != 1 {
		t.Fatalf("100 forged signatures under the issuer's key id: %d key fetches, want 1 (the first, to fill the cache)", k)
	}
	if rep := post(tokenOpts{}); rep.Status != http.StatusCreated {
		t.Fatalf("a genuine token after the flood: %s, want 201", rep)
	}
}
