package control

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/notify"
	"github.com/ferryhq/ferry/internal/notify/notifytest"
	"github.com/ferryhq/ferry/internal/relayclient"
)

const notifySecret = "notify-secret"

// notifyEnv is an env whose app sends notifications to url, through a real notify.Notifier.
func notifyEnv(t *testing.T, url string) (*env, *notify.Notifier) {
	t.Helper()
	yml := strings.Replace(testConfigY, "      - { ref: \"refs/tags/channel/*\", channel: \"$1\" }\n",
		"      - { ref: \"refs/tags/channel/*\", channel: \"$1\" }\n    notifications:\n      - {url: \""+url+"\", secret_env: NOTIFY_SECRET}\n", 1)
	cfg, err := channel.ParseConfig([]byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string {
		if k == "NOTIFY_SECRET" {
			return notifySecret
		}
		return ""
	}
	n, err := notify.New(notify.Options{Config: cfg, Getenv: getenv, BaseDelay: 10 * time.Millisecond, AttemptTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{config: yml, notifier: n})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_ = n.Close(ctx)
	})
	return e, n
}

// Every stored promotion, rollback and rollout change notifies exactly once, whatever path
// made it (registration by HMAC and OIDC, tag push, pending promotion applied, admin API);
// changes that move nothing (a policy, a replayed delivery, a no-op promotion) do not.
func TestNotificationsEveryPathOnce(t *testing.T) {
	t.Parallel()
	rcv := notifytest.New(t, notifySecret, false)
	e, _ := notifyEnv(t, rcv.URL)

	e.registerHMAC(testBundle("1.0.0", commitA), http.StatusCreated) // main → beta
	e.deliver("push", "d1", tagCreated(t, "v1.0.0", commitA), http.StatusOK)
	e.deliver("push", "d1", tagCreated(t, "v1.0.0", commitA), http.StatusOK) // replayed: nothing
	b := testBundle("1.0.1", commitB)
	if w := e.do("POST", "/api/v1/bundles", mustJSON(t, b), bearerHeader(e.issuer.token(t, e.issuer.claims(time.Now())))); w.Code != http.StatusCreated {
		t.Fatalf("OIDC registration: %d %s", w.Code, w.Body)
	}
	e.deliver("push", "d2", tagCreated(t, "channel/staging", commitC), http.StatusOK) // pending
	pb := testBundle("1.0.2", commitC)
	pb.Ref = "refs/heads/feature/x"
	e.registerHMAC(pb, http.StatusCreated) // applies the pending promotion
	e.admin("PUT", "/channels/beta/policy", `{"policy":{"public":true}}`, http.StatusOK)
	e.admin("POST", "/channels/production/promote", `{"version":"1.0.2"}`, http.StatusOK)
	e.admin("POST", "/channels/production/promote", `{"version":"1.0.2"}`, http.StatusOK) // no change
	e.admin("POST", "/channels/production/rollback", "", http.StatusOK)
	e.admin("PUT", "/channels/production/rollout", `{"version":"1.0.2","percent":10}`, http.StatusOK)
	e.admin("PUT", "/channels/production/rollout", `{"version":"1.0.2","percent":50}`, http.StatusOK)
	e.admin("POST", "/channels/production/rollout/pause", "", http.StatusOK)
	e.admin("POST", "/channels/production/rollout/resume", "", http.StatusOK)
	e.admin("POST", "/channels/production/rollout/complete", "", http.StatusOK)
	e.admin("PUT", "/channels/beta/rollout", `{"version":"1.0.2","percent":20}`, http.StatusOK)
	e.admin("POST", "/channels/beta/rollout/cancel", "", http.StatusOK)

	type ev struct {
		kind             channel.EventKind
		channel, version string
		percent          int // -1: none
		actor            string
	}
	want := []ev{
		{channel.EventPromoted, "beta", "1.0.0", -1, "ci"},
		{channel.EventPromoted, "production", "1.0.0", -1, "webhook"},
		{channel.EventPromoted, "beta", "1.0.1", -1, "ci"},
		{channel.EventPromoted, "staging", "1.0.2", -1, "ci"},
		{channel.EventPromoted, "production", "1.0.2", -1, "bootstrap"},
		{channel.EventRolledBack, "production", "1.0.0", -1, "bootstrap"},
		{channel.EventRolloutStarted, "production", "1.0.2", 10, "bootstrap"},
		{channel.EventRolloutAdvanced, "production", "1.0.2", 50, "bootstrap"},
		{channel.EventRolloutPaused, "production", "1.0.2", 50, "bootstrap"},
		{channel.EventRolloutResumed, "production", "1.0.2", 50, "bootstrap"},
		{channel.EventRolloutCompleted, "production", "1.0.2", 100, "bootstrap"},
		{channel.EventRolloutStarted, "beta", "1.0.2", 20, "bootstrap"},
		{channel.EventRolloutCancelled, "beta", "1.0.2", 20, "bootstrap"},
	}
	deadline := time.Now().Add(20 * time.Second)
	var got []channel.Event
	var bad []error
	for got, bad = rcv.Events(); len(got)+len(bad) < len(want) && time.Now().Before(deadline); got, bad = rcv.Events() {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // a duplicate would arrive now
	if got, bad = rcv.Events(); len(bad) > 0 {
		t.Fatalf("deliveries failing verification: %v", bad)
	}
	if len(got) != len(want) {
		t.Errorf("received %d events, want %d", len(got), len(want))
	}
	ids := map[string]bool{}
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		p := -1
		if g.Percent != nil {
			p = *g.Percent
		}
		actor := ""
		if g.Actor != nil {
			actor = g.Actor.Kind
		}
		if g.Kind != w.kind || g.Channel != w.channel || g.Version != w.version || p != w.percent || actor != w.actor || g.App != appID {
			t.Errorf("event %d = %s %s %s %d%% by %s, want %+v", i, g.Kind, g.Channel, g.Version, p, actor, w)
		}
		if ids[g.ID] {
			t.Errorf("event %d: id %s repeated", i, g.ID)
		}
		ids[g.ID] = true
	}
	if got[5].From != "1.0.2" {
		t.Errorf("rollback from = %q, want 1.0.2", got[5].From)
	}

	// The delivery log, through the admin API.
	var list relayclient.NotificationList
	if err := json.Unmarshal(e.admin("GET", "/notifications?limit=3", "", http.StatusOK).Body.Bytes(), &list); err != nil {
		t.Fatal(err)
	}
	if list.App != appID || len(list.Deliveries) != 3 || list.Deliveries[0].Kind != channel.EventRolloutCancelled ||
		list.Deliveries[0].Status != relayclient.DeliveryDelivered || len(list.Deliveries[0].Attempts) != 1 {
		t.Errorf("GET notifications = %+v", list)
	}
	e.admin("GET", "/notifications?limit=0", "", http.StatusBadRequest)
}

// A receiver that never answers does not slow a promotion down.
func TestNotificationsHangingReceiverDoesNotDelayPromotion(t *testing.T) {
	t.Parallel()
	rcv := notifytest.New(t, notifySecret, true)
	e, n := notifyEnv(t, rcv.URL)
	e.registerHMAC(testBundle("1.0.0", commitA), http.StatusCreated)
	for _, v := range []string{"1.0.0", "builtin", "1.0.0"} {
		start := time.Now()
		e.admin("POST", "/channels/production/promote", `{"version":"`+v+`"}`, http.StatusOK)
		if d := time.Since(start); d > time.Second {
			t.Errorf("promotion to %s took %v while the receiver hangs", v, d)
		}
		if got := e.state("production").Version; got != v {
			t.Errorf("production = %q, want %q", got, v)
		}
	}
	ds := n.Deliveries(appID, 0)
	if len(ds) != 4 { // beta by registration, then three on production
		t.Fatalf("deliveries = %+v", ds)
	}
	for _, d := range ds {
		if d.Status != relayclient.DeliveryPending {
			t.Errorf("delivery %+v: want pending while the receiver hangs", d)
		}
	}
}

// Without a notifier the log is empty, and the route needs read permission like the audit.
func TestNotificationsRouteWithoutNotifier(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	var list relayclient.NotificationList
	if err := json.Unmarshal(e.admin("GET", "/notifications", "", http.StatusOK).Body.Bytes(), &list); err != nil {
		t.Fatal(err)
	}
	if list.App != appID || list.Deliveries == nil || len(list.Deliveries) != 0 {
		t.Errorf("list = %+v, want an empty list", list)
	}
	if w := e.do("GET", "/api/v1/apps/"+appID+"/notifications", nil, nil); w.Code != http.StatusUnauthorized {
		t.Errorf("without a credential: %d", w.Code)
	}
}
