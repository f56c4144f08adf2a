package control

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relayclient"
)

func adminHeader() http.Header {
	return http.Header{"Authorization": {"Bearer " + adminToken}, "Content-Type": {"application/json"}}
}

// admin sends an authenticated admin request and checks the status.
func (e *env) admin(method, path, body string, want int) *httptest.ResponseRecorder {
	e.t.Helper()
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	w := e.do(method, "/api/v1/apps/"+appID+path, b, adminHeader())
	if w.Code != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, w.Code, want, w.Body)
	}
	return w
}

func decodeChange(t *testing.T, w *httptest.ResponseRecorder) relayclient.ChangeResult {
	t.Helper()
	var r relayclient.ChangeResult
	if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// seeded returns an env with bundles 1.0.0, 1.0.1 and 1.1.0 registered from a branch no
// rule maps, and production serving 1.0.0.
func seeded(t *testing.T) *env {
	t.Helper()
	e := newEnv(t, envOptions{})
	for _, v := range []struct{ version, commit string }{{"1.0.0", commitA}, {"1.0.1", commitB}, {"1.1.0", commitC}} {
		b := testBundle(v.version, v.commit)
		b.Ref = "refs/heads/feature/x"
		e.registerHMAC(b, http.StatusCreated)
	}
	e.admin("POST", "/channels/production/promote", `{"version":"1.0.0"}`, http.StatusOK)
	return e
}

func TestAdminAuth(t *testing.T) {
	t.Parallel()
	paths := []struct{ method, path, body string }{
		{"GET", "/channels", ""},
		{"GET", "/channels/production", ""},
		{"GET", "/bundles", ""},
		{"GET", "/bundles/1.0.0", ""},
		{"POST", "/channels/production/promote", `{"version":"1.0.1"}`},
		{"POST", "/channels/production/rollback", ""},
		{"PUT", "/channels/production/rollout", `{"version":"1.0.1","percent":10}`},
		{"POST", "/channels/production/rollout/pause", ""},
		{"POST", "/channels/production/rollout/resume", ""},
		{"POST", "/channels/production/rollout/complete", ""},
		{"PUT", "/channels/production/policy", `{"policy":{"public":true}}`},
		{"GET", "/stats", ""},
		{"GET", "/audit", ""},
	}
	auths := []struct {
		name    string
		env     envOptions
		header  string
		want    int
		wantErr string
	}{
		{"no token", envOptions{}, "", http.StatusUnauthorized, "unauthorized"},
		{"wrong token", envOptions{}, "Bearer " + adminToken + "x", http.StatusUnauthorized, "unauthorized"},
		{"token prefix", envOptions{}, "Bearer " + adminToken[:5], http.StatusUnauthorized, "unauthorized"},
		{"basic", envOptions{}, "Basic " + adminToken, http.StatusUnauthorized, "unauthorized"},
		// Without FERRY_ADMIN_TOKEN the admin API still serves API tokens and sessions.
		{"bootstrap unset", envOptions{noAdmin: true}, "Bearer " + adminToken, http.StatusUnauthorized, "unauthorized"},
		{"bootstrap unset, empty bearer", envOptions{noAdmin: true}, "Bearer ", http.StatusUnauthorized, "unauthorized"},
	}
	for _, a := range auths {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, a.env)
			b := testBundle("1.0.0", commitA)
			b.Ref = "refs/heads/x"
			e.registerHMAC(b, http.StatusCreated)
			b = testBundle("1.0.1", commitB)
			b.Ref = "refs/tags/v1.0.1"
			e.registerHMAC(b, http.StatusCreated) // production serves 1.0.1, with history
			before := e.snapshot()
			for _, p := range paths {
				h := http.Header{"Content-Type": {"application/json"}}
				if a.header != "" {
					h.Set("Authorization", a.header)
				}
				w := e.do(p.method, "/api/v1/apps/"+appID+p.path, []byte(p.body), h)
				if w.Code != a.want {
					t.Errorf("%s %s: status %d, want %d", p.method, p.path, w.Code, a.want)
					continue
				}
				if code, _ := errorBody(t, w); code != a.wantErr {
					t.Errorf("%s %s: error %q, want %q", p.method, p.path, code, a.wantErr)
				}
			}
			e.unchanged(before)
		})
	}
}

func TestAdminListChannelsAndBundles(t *testing.T) {
	t.Parallel()
	e := seeded(t)
	var ch struct {
		App      string                    `json:"app"`
		Channels []relayclient.ChannelView `json:"channels"`
	}
	if err := json.Unmarshal(e.admin("GET", "/channels", "", 200).Body.Bytes(), &ch); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range ch.Channels {
		names = append(names, c.Name)
		if c.Name == "production" && (c.State.Version != "1.0.0" || !c.Default) {
			t.Errorf("production = %+v", c)
		}
		if c.Name == "beta" && !c.Policy.AllowDeviceSelfSet {
			t.Errorf("beta policy = %+v, want allow_device_self_set from the config", c.Policy)
		}
	}
	if !slices.Equal(names, []string{"beta", "production", "staging"}) {
		t.Errorf("channels = %v", names)
	}

	var bs struct {
		Bundles []*channel.Bundle `json:"bundles"`
	}
	if err := json.Unmarshal(e.admin("GET", "/bundles?limit=2", "", 200).Body.Bytes(), &bs); err != nil {
		t.Fatal(err)
	}
	if len(bs.Bundles) != 2 || bs.Bundles[0].Version != "1.1.0" {
		t.Errorf("bundles = %d, first %q; want 2, newest (1.1.0) first", len(bs.Bundles), bs.Bundles[0].Version)
	}
	var one channel.Bundle
	if err := json.Unmarshal(e.admin("GET", "/bundles/1.0.1", "", 200).Body.Bytes(), &one); err != nil || one.Commit != commitB {
		t.Errorf("bundle 1.0.1 = %+v, %v", one, err)
	}
	e.admin("GET", "/bundles/9.9.9", "", http.StatusNotFound)
	e.admin("GET", "/bundles?limit=0", "", http.StatusBadRequest)
	e.admin("GET", "/bundles?limit=abc", "", http.StatusBadRequest)
	e.admin("GET", "/channels/nightly", "", http.StatusNotFound)
	if w := e.do("GET", "/api/v1/apps/com.example.nope/channels", nil, adminHeader()); w.Code != http.StatusNotFound {
		t.Errorf("unknown app: %d", w.Code)
	} else if code, _ := errorBody(t, w); code != "app_not_found" {
		t.Errorf("unknown app error %q", code)
	}
}

func TestAdminPromoteAndRollback(t *testing.T) {
	t.Parallel()
	e := seeded(t)
	changes := e.changes.count()
	r := decodeChange(t, e.admin("POST", "/channels/production/promote", `{"version":"1.0.1"}`, 200))
	if !r.Changed || r.Channel.State.Version != "1.0.1" || !slices.Equal(r.Channel.State.History, []string{"1.0.0"}) {
		t.Errorf("promote = %+v", r)
	}
	if e.changes.count() != changes+1 {
		t.Error("OnChange not called after promote")
	}
	// Promoting the stable version again changes nothing.
	if r := decodeChange(t, e.admin("POST", "/channels/production/promote", `{"version":"1.0.1"}`, 200)); r.Changed {
		t.Error("promoting the stable version reported a change")
	}
	a := e.audit()[0]
	if a.Action != "promote" || a.Version != "1.0.1" || a.From != "1.0.0" || a.Cause != "admin" || a.Channel != "production" {
		t.Errorf("audit = %+v", a)
	}

	r = decodeChange(t, e.admin("POST", "/channels/production/rollback", "", 200))
	if r.Channel.State.Version != "1.0.0" || len(r.Channel.State.History) != 0 {
		t.Errorf("rollback = %+v", r.Channel.State)
	}
	if a := e.audit()[0]; a.Action != "rollback" || a.Version != "1.0.0" || a.From != "1.0.1" || a.Cause != "admin" {
		t.Errorf("audit = %+v", a)
	}
	// Nothing left to roll back to: 409, nothing changes.
	before := e.snapshot()
	w := e.admin("POST", "/channels/production/rollback", "", http.StatusConflict)
	if code, _ := errorBody(t, w); code != "conflict" {
		t.Errorf("error %q", code)
	}
	e.unchanged(before)

	// builtin sends devices back to the app's own assets.
	if r := decodeChange(t, e.admin("POST", "/channels/production/promote", `{"version":"builtin"}`, 200)); r.Channel.State.Version != "builtin" {
		t.Errorf("promote builtin = %+v", r.Channel.State)
	}
}

func TestAdminRollout(t *testing.T) {
	t.Parallel()
	e := seeded(t)
	r := decodeChange(t, e.admin("PUT", "/channels/production/rollout", `{"version":"1.1.0","percent":10}`, 200))
	if ro := r.Channel.State.Rollout; ro == nil || ro.Version != "1.1.0" || ro.Percent != 10 || ro.Paused {
		t.Fatalf("rollout = %+v", ro)
	}
	if a := e.audit()[0]; a.Action != "rollout" || a.Version != "1.1.0" || a.From != "1.0.0" || a.Cause != "admin (10%)" {
		t.Errorf("audit = %+v", a)
	}
	if r := decodeChange(t, e.admin("POST", "/channels/production/rollout/pause", "", 200)); !r.Changed || !r.Channel.State.Rollout.Paused {
		t.Errorf("pause = %+v", r)
	}
	if r := decodeChange(t, e.admin("POST", "/channels/production/rollout/pause", "", 200)); r.Changed {
		t.Error("pausing a paused rollout reported a change")
	}
	if r := decodeChange(t, e.admin("POST", "/channels/production/rollout/resume", "", 200)); !r.Changed || r.Channel.State.Rollout.Paused {
		t.Errorf("resume = %+v", r)
	}
	r = decodeChange(t, e.admin("PUT", "/channels/production/rollout", `{"version":"1.1.0","percent":50}`, 200))
	if r.Channel.State.Rollout.Percent != 50 {
		t.Errorf("rollout percent = %d", r.Channel.State.Rollout.Percent)
	}
	r = decodeChange(t, e.admin("POST", "/channels/production/rollout/complete", "", 200))
	if st := r.Channel.State; st.Version != "1.1.0" || st.Rollout != nil || !slices.Equal(st.History, []string{"1.0.0"}) {
		t.Errorf("complete = %+v", st)
	}
	if a := e.audit()[0]; a.Action != "complete" || a.Version != "1.1.0" || a.From != "1.0.0" {
		t.Errorf("audit = %+v", a)
	}

	// Cancel: a new rollout, then cancelled.
	e.admin("PUT", "/channels/production/rollout", `{"version":"1.0.1","percent":5}`, 200)
	if r := decodeChange(t, e.admin("POST", "/channels/production/rollout/cancel", "", 200)); r.Channel.State.Rollout != nil || r.Channel.State.Version != "1.1.0" {
		t.Errorf("cancel = %+v", r.Channel.State)
	}

	refusals := []struct {
		name, method, path, body string
		want                     int
		wantErr                  string
	}{
		{"no rollout to pause", "POST", "/channels/production/rollout/pause", "", 409, "conflict"},
		{"no rollout to complete", "POST", "/channels/production/rollout/complete", "", 409, "conflict"},
		{"unknown op", "POST", "/channels/production/rollout/explode", "", 404, "not_found"},
		{"percent over 100", "PUT", "/channels/production/rollout", `{"version":"1.0.1","percent":101}`, 400, "bad_request"},
		{"percent missing", "PUT", "/channels/production/rollout", `{"version":"1.0.1"}`, 400, "bad_request"},
		{"percent as string", "PUT", "/channels/production/rollout", `{"version":"1.0.1","percent":"10"}`, 400, "bad_request"},
		{"stable version", "PUT", "/channels/production/rollout", `{"version":"1.1.0","percent":10}`, 400, "bad_request"},
		{"unregistered version", "PUT", "/channels/production/rollout", `{"version":"7.0.0","percent":10}`, 404, "bundle_not_found"},
		{"channel never promoted", "PUT", "/channels/staging/rollout", `{"version":"1.0.1","percent":10}`, 400, "bad_request"},
		{"unknown field", "PUT", "/channels/production/rollout", `{"version":"1.0.1","percent":10,"force":true}`, 400, "bad_request"},
		{"promote unknown version", "POST", "/channels/production/promote", `{"version":"7.0.0"}`, 404, "bundle_not_found"},
		{"promote without version", "POST", "/channels/production/promote", `{}`, 400, "bad_request"},
		{"promote not JSON", "POST", "/channels/production/promote", `version=1.0.1`, 400, "bad_request"},
		{"promote unknown channel", "POST", "/channels/nightly/promote", `{"version":"1.0.1"}`, 404, "channel_not_found"},
		{"rollback with a body", "POST", "/channels/production/rollback", `{"to":"1.0.0"}`, 400, "bad_request"},
		{"policy bad value", "PUT", "/channels/production/policy", `{"policy":{"disable_auto_update":"always","platforms":["windows"]}}`, 400, "bad_request"},
	}
	for _, tc := range refusals {
		before := e.snapshot()
		changes := e.changes.count()
		w := e.admin(tc.method, tc.path, tc.body, tc.want)
		if code, msg := errorBody(t, w); code != tc.wantErr {
			t.Errorf("%s: error %q (%s), want %q", tc.name, code, msg, tc.wantErr)
		}
		e.unchanged(before)
		if e.changes.count() != changes {
			t.Errorf("%s: OnChange called", tc.name)
		}
	}
}

func TestAdminPolicy(t *testing.T) {
	t.Parallel()
	e := seeded(t)
	r := decodeChange(t, e.admin("PUT", "/channels/production/policy",
		`{"policy":{"public":true,"allow_emulator":false,"disable_auto_update":"major","platforms":["ios"]}}`, 200))
	want := channel.Policy{Public: true, DenyEmulator: true, DisableAutoUpdate: "major", Platforms: []string{"ios"}}
	if !r.Changed || !r.Channel.Overridden || !policyEqual(&r.Channel.Policy, &want) {
		t.Errorf("policy = %+v overridden %v, want %+v", r.Channel.Policy, r.Channel.Overridden, want)
	}
	if a := e.audit()[0]; a.Action != "policy" || a.Cause != "admin" {
		t.Errorf("audit = %+v", a)
	}
	// The entry shows the effective policy before (the configured one) and after.
	var before, after channel.Policy
	a := e.audit()[0]
	if err := json.Unmarshal(a.Before, &before); err != nil || before.Public || before.DenyEmulator || before.DisableAutoUpdate != "" {
		t.Errorf("audit before = %s (%v), want the configured policy", a.Before, err)
	}
	if err := json.Unmarshal(a.After, &after); err != nil || !policyEqual(&after, &want) {
		t.Errorf("audit after = %s (%v), want %+v", a.After, err, want)
	}
	// Clearing the override restores the configured policy.
	r = decodeChange(t, e.admin("PUT", "/channels/production/policy", `{"policy":null}`, 200))
	if !r.Changed || r.Channel.Overridden || r.Channel.State.Policy != nil {
		t.Errorf("cleared policy = %+v", r.Channel)
	}
	if r := decodeChange(t, e.admin("PUT", "/channels/production/policy", `{"policy":null}`, 200)); r.Changed {
		t.Error("clearing twice reported a change")
	}
}

func TestAdminStatsAndAudit(t *testing.T) {
	t.Parallel()
	cfgStore := newBolt(t)
	e := newEnv(t, envOptions{store: cfgStore})
	b := testBundle("1.0.0", commitA)
	e.registerHMAC(b, http.StatusCreated)
	if err := cfgStore.RecordStats(t.Context(), appID, []channel.StatEvent{
		{Device: "d1", Version: "1.0.0", Action: "set"},
		{Device: "d2", Version: "1.0.0", Action: "update_fail"},
	}); err != nil {
		t.Fatal(err)
	}
	var st struct {
		Versions []channel.VersionStats `json:"versions"`
	}
	if err := json.Unmarshal(e.admin("GET", "/stats", "", 200).Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Versions) != 1 || st.Versions[0].Devices != 2 || st.Versions[0].Actions["update_fail"] != 1 {
		t.Errorf("stats = %+v", st.Versions)
	}

	var au struct {
		Entries []channel.AuditEntry `json:"entries"`
	}
	if err := json.Unmarshal(e.admin("GET", "/audit?limit=1", "", 200).Body.Bytes(), &au); err != nil {
		t.Fatal(err)
	}
	if len(au.Entries) != 1 || au.Entries[0].Action != "promote" {
		t.Errorf("audit?limit=1 = %+v", au.Entries)
	}
	if err := json.Unmarshal(e.admin("GET", "/audit", "", 200).Body.Bytes(), &au); err != nil || len(au.Entries) != 2 {
		t.Errorf("audit = %+v, %v", au.Entries, err)
	}
	e.admin("GET", "/audit?limit=100000", "", http.StatusBadRequest)
	if !strings.Contains(e.admin("GET", "/audit", "", 200).Header().Get("Content-Type"), "application/json") {
		t.Error("audit is not JSON")
	}
}

func TestAdminStoreUnavailable(t *testing.T) {
	t.Parallel()
	e := seeded(t)
	e.store.failNext("ListStates", 1)
	w := e.admin("GET", "/channels", "", http.StatusServiceUnavailable)
	if w.Header().Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	before := e.snapshot()
	e.store.failNext("UpdateState", 1)
	e.admin("POST", "/channels/production/promote", `{"version":"1.0.1"}`, http.StatusServiceUnavailable)
	e.unchanged(before)
}

// TestAdminPromoteNative sets a native-range override when promoting, with the bootstrap
// token and with a deployer's API token, for bundles registered over HMAC and over OIDC:
// the override is stored per version, the audit entry records the range before and after,
// the bundle's own range (or "") removes it, and a bad range is a 400 that changes nothing.
func TestAdminPromoteNative(t *testing.T) {
	t.Parallel()
	e := seeded(t) // bundles over HMAC, native ">=1.0.0"; production serves 1.0.0
	claims := e.issuer.claims(time.Now())
	claims["sha"] = "0fd1c0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac"
	if w := e.do("POST", "/api/v1/bundles", mustJSON(t, testBundle("2.0.0", "")), bearerHeader(e.issuer.token(t, claims))); w.Code != http.StatusCreated {
		t.Fatalf("OIDC registration of 2.0.0: %d %s", w.Code, w.Body)
	}
	nativeAudit := func(t *testing.T, version, from, before, after string) {
		t.Helper()
		a := e.audit()[0]
		if a.Action != "promote" || a.Version != version || a.From != from || string(a.Before) != before || string(a.After) != after {
			t.Errorf("audit = %+v (before %s, after %s); want promote %s from %s, before %s, after %s",
				a, a.Before, a.After, version, from, before, after)
		}
	}

	r := decodeChange(t, e.admin("POST", "/channels/production/promote", `{"version":"1.0.1","native":" >=2.0.0 <3 "}`, 200))
	if st := r.Channel.State; !r.Changed || st.Version != "1.0.1" || !maps.Equal(st.Native, map[string]string{"1.0.1": ">=2.0.0 <3"}) {
		t.Errorf("promote with native = %+v", r)
	}
	nativeAudit(t, "1.0.1", "1.0.0", `{"native":"\u003e=1.0.0","source":"bundle"}`, `{"native":"\u003e=2.0.0 \u003c3","source":"promote"}`)
	if r := decodeChange(t, e.admin("POST", "/channels/production/promote", `{"version":"1.0.1","native":">=2.0.0 <3"}`, 200)); r.Changed {
		t.Error("promoting with the same range again reported a change")
	}
	// Without native, a promotion keeps the range that applies.
	if r := decodeChange(t, e.admin("POST", "/channels/production/promote", `{"version":"1.0.1"}`, 200)); r.Changed || r.Channel.State.Native["1.0.1"] != ">=2.0.0 <3" {
		t.Errorf("promote without native = %+v", r)
	}

	// A deployer's token changes the range of the stable version alone.
	dep := e.createToken(adminHeader(), relayclient.TokenRequest{Name: "rel-eng", Grants: grant(appID, access.Deployer)}, http.StatusCreated).Token
	w := e.do("POST", "/api/v1/apps/"+appID+"/channels/production/promote", []byte(`{"version":"1.0.1","native":"^2.1"}`), tokenHeader(dep))
	if r := decodeChange(t, w); w.Code != 200 || !r.Changed || r.Channel.State.Native["1.0.1"] != "^2.1" {
		t.Errorf("deployer native change: %d %+v", w.Code, r)
	}
	nativeAudit(t, "1.0.1", "1.0.1", `{"native":"\u003e=2.0.0 \u003c3","source":"promote"}`, `{"native":"^2.1","source":"promote"}`)
	if a := e.audit()[0].Actor; a == nil || a.Kind != "token" || a.Name != "rel-eng" {
		t.Errorf("audit actor = %+v, want the deployer's token", a)
	}

	// The bundle registered over OIDC, promoted with a range; the override of 1.0.1 stays
	// with it in History.
	r = decodeChange(t, e.admin("POST", "/channels/production/promote", `{"version":"2.0.0","native":"*"}`, 200))
	if want := map[string]string{"1.0.1": "^2.1", "2.0.0": "*"}; !maps.Equal(r.Channel.State.Native, want) {
		t.Errorf("Native = %v, want %v", r.Channel.State.Native, want)
	}
	// The bundle's own range, or "", removes the override.
	r = decodeChange(t, e.admin("POST", "/channels/production/promote", `{"version":"2.0.0","native":">=1.0.0"}`, 200))
	if _, ok := r.Channel.State.NativeFor("2.0.0"); !r.Changed || ok {
		t.Errorf("promote with the bundle's own range = %+v", r.Channel.State)
	}
	nativeAudit(t, "2.0.0", "2.0.0", `{"native":"*","source":"promote"}`, `{"native":"\u003e=1.0.0","source":"bundle"}`)
	r = decodeChange(t, e.admin("POST", "/channels/production/promote", `{"version":"1.0.1","native":""}`, 200))
	if r.Channel.State.Version != "1.0.1" || r.Channel.State.Native != nil {
		t.Errorf("promote with native \"\" = %+v", r.Channel.State)
	}

	before := e.snapshot()
	for _, tc := range []struct{ name, body, wantMsg string }{
		{"range does not parse", `{"version":"1.1.0","native":">=banana"}`, "native"},
		{"empty alternative", `{"version":"1.1.0","native":">=2 ||"}`, "native"},
		{"control character", `{"version":"1.1.0","native":">=2\u0000"}`, "control character"},
		{"too long", `{"version":"1.1.0","native":"` + strings.Repeat("1", 1100) + `"}`, "longer than"},
		{"builtin", `{"version":"builtin","native":">=2"}`, "no native range"},
		{"not a string", `{"version":"1.1.0","native":2}`, "native"},
	} {
		w := e.admin("POST", "/channels/production/promote", tc.body, http.StatusBadRequest)
		if code, msg := errorBody(t, w); code != "bad_request" || !strings.Contains(msg, tc.wantMsg) {
			t.Errorf("%s: %s %q, want bad_request naming %q", tc.name, code, msg, tc.wantMsg)
		}
	}
	e.unchanged(before)
}
