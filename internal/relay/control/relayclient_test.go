package control

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relayclient"
)

// TestRelayClientRoundTrip drives the control API over HTTP with relayclient's Client, the
// one the action and `ferry admin` use: registration (HMAC, a store outage retried, an
// idempotent re-run, a pending tag promotion applied, a conflict) and every admin call, so a
// field the server sends and the client drops, or the reverse, fails here.
func TestRelayClientRoundTrip(t *testing.T) {
	t.Parallel()
	e, srv, c := newClientEnv(t)
	ctx := t.Context()

	// Registration from main moves beta, even across a store outage (503, Retry-After).
	e.store.failNext("PutBundle", 2)
	reg, err := c.RegisterBundle(ctx, testBundle("1.0.0", commitA))
	if err != nil {
		t.Fatal(err)
	}
	if !reg.Created || reg.Channel != "beta" || !reg.Promoted || reg.Bundle.Version != "1.0.0" || reg.Bundle.CreatedAt.IsZero() {
		t.Errorf("registration = %+v", reg)
	}
	again, err := c.RegisterBundle(ctx, testBundle("1.0.0", commitA))
	if err != nil || again.Created || again.Promoted || again.Reason == "" {
		t.Errorf("re-registration = %+v, %v; want an idempotent success with a reason", again, err)
	}

	// A tag pushed before its commit's bundle registers: the registration applies it.
	e.deliver("push", "d1", tagCreated(t, "channel/staging", commitB), http.StatusOK)
	b := testBundle("1.0.1", commitB)
	b.Ref = "refs/heads/release"
	reg, err = c.RegisterBundle(ctx, b)
	if err != nil || !slices.Equal(reg.PendingApplied, []string{"staging"}) {
		t.Errorf("registration after the tag = %+v, %v; want pending_applied [staging]", reg, err)
	}

	conflicting := testBundle("1.0.0", commitA)
	conflicting.Checksum, conflicting.SHA256 = conflicting.Checksum[:62]+"ff", conflicting.Checksum[:62]+"ff"
	_, err = c.RegisterBundle(ctx, conflicting)
	var re *relayclient.Error
	if !errors.Is(err, &relayclient.Error{StatusCode: http.StatusConflict, Code: "version_conflict"}) || !errors.As(err, &re) ||
		re.Method != "POST" || re.URL != srv.URL+relayclient.BundlesPath || re.Message == "" {
		t.Errorf("conflicting registration = %v", err)
	}

	// The admin API.
	change, err := c.Promote(ctx, appID, "production", "1.0.0")
	if err != nil || !change.Changed || change.Channel.Name != "production" || !change.Channel.Default || change.Channel.State.Version != "1.0.0" {
		t.Errorf("Promote = %+v, %v", change, err)
	}
	if change, err = c.SetRollout(ctx, appID, "production", "1.0.1", 10); err != nil || change.Channel.State.Rollout == nil || change.Channel.State.Rollout.Percent != 10 {
		t.Errorf("SetRollout = %+v, %v", change, err)
	}
	if change, err = c.ChangeRollout(ctx, appID, "production", relayclient.RolloutPause); err != nil || !change.Channel.State.Rollout.Paused {
		t.Errorf("pause = %+v, %v", change, err)
	}
	if change, err = c.ChangeRollout(ctx, appID, "production", relayclient.RolloutComplete); err != nil || change.Channel.State.Version != "1.0.1" {
		t.Errorf("complete = %+v, %v", change, err)
	}
	if change, err = c.Rollback(ctx, appID, "production"); err != nil || change.Channel.State.Version != "1.0.0" {
		t.Errorf("Rollback = %+v, %v", change, err)
	}
	allowDev := false
	if change, err = c.SetPolicy(ctx, appID, "beta", &relayclient.PolicyOverride{Public: true, AllowDev: &allowDev}); err != nil ||
		!change.Channel.Overridden || !change.Channel.Policy.Public || !change.Channel.Policy.DenyDev || change.Channel.Policy.DenyEmulator {
		t.Errorf("SetPolicy = %+v, %v", change, err)
	}
	if change, err = c.SetPolicy(ctx, appID, "beta", nil); err != nil || !change.Changed || change.Channel.Overridden {
		t.Errorf("SetPolicy(nil) = %+v, %v", change, err)
	}

	list, err := c.ListChannels(ctx, appID)
	if err != nil || list.App != appID || len(list.Channels) != 3 {
		t.Fatalf("ListChannels = %+v, %v", list, err)
	}
	one, err := c.GetChannel(ctx, appID, "production")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&list.Channels[1], one); diff != "" {
		t.Errorf("GetChannel differs from ListChannels' entry (-list +get):\n%s", diff)
	}
	bundles, err := c.ListBundles(ctx, appID, 1)
	if err != nil || len(bundles.Bundles) != 1 || bundles.Bundles[0].Version != "1.0.1" {
		t.Errorf("ListBundles(1) = %+v, %v", bundles, err)
	}
	got, err := c.GetBundle(ctx, appID, "1.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(bundles.Bundles[0], got); diff != "" {
		t.Errorf("GetBundle differs from ListBundles' entry (-list +get):\n%s", diff)
	}
	stats, err := c.Stats(ctx, appID)
	if err != nil || stats.App != appID || stats.Time.IsZero() || stats.Time.Nanosecond() != 0 || stats.Versions == nil {
		t.Errorf("Stats = %+v, %v", stats, err)
	}
	audit, err := c.Audit(ctx, appID, 2)
	if err != nil || len(audit.Entries) != 2 || audit.Entries[0].Action != "policy" {
		t.Errorf("Audit(2) = %+v, %v", audit, err)
	}

	// Refusals.
	if _, err := c.GetBundle(ctx, appID, "9.9.9"); !errors.Is(err, &relayclient.Error{StatusCode: http.StatusNotFound, Code: "bundle_not_found"}) {
		t.Errorf("GetBundle(9.9.9) = %v", err)
	}
	if _, err := c.Rollback(ctx, appID, "staging"); !errors.Is(err, &relayclient.Error{StatusCode: http.StatusConflict, Code: "conflict"}) {
		t.Errorf("Rollback without history = %v", err)
	}
	wrong, err := relayclient.New(srv.URL, relayclient.Options{HTTPClient: srv.Client(), AdminToken: "guess"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wrong.ListChannels(ctx, appID); !errors.Is(err, &relayclient.Error{StatusCode: http.StatusUnauthorized, Code: "unauthorized"}) {
		t.Errorf("ListChannels with a wrong token = %v", err)
	}
}

// TestRelayClientTokens drives the token API and the audit filters through relayclient.
func TestRelayClientTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	srv := httptest.NewServer(e.engine)
	t.Cleanup(srv.Close)
	ctx := t.Context()
	boot, err := relayclient.New(srv.URL, relayclient.Options{HTTPClient: srv.Client(), AdminToken: adminToken})
	if err != nil {
		t.Fatal(err)
	}
	created, err := boot.CreateToken(ctx, &relayclient.TokenRequest{Name: "deploy-bot", Grants: grant(appID, access.Deployer), ExpiresIn: "30d"})
	if err != nil {
		t.Fatal(err)
	}
	if created.Record.ExpiresAt.Sub(created.Record.CreatedAt) != 30*24*time.Hour || created.Record.CreatedBy != "bootstrap" {
		t.Errorf("record = %+v", created.Record)
	}
	bot, err := relayclient.New(srv.URL, relayclient.Options{HTTPClient: srv.Client(), AdminToken: created.Token})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bot.ListChannels(ctx, appID); err != nil {
		t.Errorf("the new token cannot read: %v", err)
	}
	_, err = bot.SetPolicy(ctx, appID, "production", nil)
	if !errors.Is(err, &relayclient.Error{StatusCode: http.StatusForbidden, Code: "forbidden"}) {
		t.Errorf("deployer sets a policy: %v, want 403 forbidden", err)
	}
	list, err := boot.ListTokens(ctx)
	if err != nil || len(list.Tokens) != 1 || list.Tokens[0].ID != created.Record.ID {
		t.Errorf("list = %+v, %v", list, err)
	}
	rec, err := boot.RevokeToken(ctx, created.Record.ID)
	if err != nil || rec.RevokedAt.IsZero() {
		t.Errorf("revoke = %+v, %v", rec, err)
	}
	if _, err := bot.ListChannels(ctx, appID); !errors.Is(err, &relayclient.Error{StatusCode: http.StatusUnauthorized}) {
		t.Errorf("revoked token reads: %v, want 401", err)
	}
	got, err := boot.QueryAudit(ctx, appID, relayclient.AuditQuery{Actor: "bootstrap", Action: "token_revoke", Since: time.Now().Add(-time.Hour), Limit: 5})
	if err != nil || len(got.Entries) != 1 || got.Entries[0].Actor.Kind != "bootstrap" {
		t.Errorf("audit query = %+v, %v", got, err)
	}
}

// TestRegisterSignatureRoundTrip sends a bundle's signature facts through relayclient and
// reads them back unchanged; bad facts are refused with every problem named and nothing
// stored.
func TestRegisterSignatureRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	srv := httptest.NewServer(e.engine)
	t.Cleanup(srv.Close)
	ctx := t.Context()
	c, err := relayclient.New(srv.URL, relayclient.Options{HTTPClient: srv.Client(), HMACSecret: []byte(hmacSecret), AdminToken: adminToken})
	if err != nil {
		t.Fatal(err)
	}
	idx := int64(42)
	sig := &channel.Signature{Mode: "keyless", Identity: "https://github.com/acme/mobile-app/.github/workflows/release.yml@refs/heads/main",
		Issuer: "https://token.actions.githubusercontent.com", Workflow: ".github/workflows/release.yml", LogIndex: &idx,
		IntegratedTime: time.Date(2026, 11, 30, 9, 15, 0, 0, time.UTC), Verified: true}
	b := testBundle("1.0.0", commitA)
	b.Signature = sig
	if _, err := c.RegisterBundle(ctx, b); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetBundle(ctx, appID, "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sig, got.Signature); diff != "" {
		t.Errorf("signature after the round trip (-want +got):\n%s", diff)
	}
	neg := int64(-1)
	bad := testBundle("1.0.1", commitB)
	bad.Signature = &channel.Signature{Mode: "ssh", Identity: "a\x01b", LogIndex: &neg}
	_, err = c.RegisterBundle(ctx, bad)
	var re *relayclient.Error
	if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest {
		t.Fatalf("registration with bad signature facts = %v, want 400", err)
	}
	for _, want := range []string{"signature.mode", "signature.identity", "signature.log_index"} {
		if !strings.Contains(re.Message, want) {
			t.Errorf("refusal %q does not name %s", re.Message, want)
		}
	}
	if _, err := c.GetBundle(ctx, appID, "1.0.1"); !errors.Is(err, &relayclient.Error{StatusCode: http.StatusNotFound, Code: "bundle_not_found"}) {
		t.Errorf("the refused bundle was stored: %v", err)
	}
}

// newClientEnv is an env served over HTTP, with a relayclient that signs registrations
// with its HMAC secret, calls the admin API with the bootstrap token and retries quickly.
func newClientEnv(t *testing.T) (*env, *httptest.Server, *relayclient.Client) {
	t.Helper()
	e := newEnv(t, envOptions{})
	srv := httptest.NewServer(e.engine)
	t.Cleanup(srv.Close)
	c, err := relayclient.New(srv.URL, relayclient.Options{HTTPClient: srv.Client(), HMACSecret: []byte(hmacSecret), AdminToken: adminToken,
		RetryBackoff: time.Millisecond, RetryMaxWait: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return e, srv, c
}
