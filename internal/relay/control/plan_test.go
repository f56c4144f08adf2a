package control

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/relayclient"
)

// planConfigY is testConfigY with a plan that tags v* to production start.
var planConfigY = strings.Replace(testConfigY, `      - { ref: "refs/tags/v*", channel: production }
      - { ref: "refs/tags/channel/*", channel: "$1" }`, `      - { ref: "refs/tags/v*", channel: production, plan: staged }
      - { ref: "refs/tags/channel/*", channel: "$1" }`, 1) + `rollout_plans:
  staged:
    steps: [{percent: 1, bake: 1h}, {percent: 10, bake: 6h}, {percent: 100}]
`

func TestAdminPlan(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{config: planConfigY})
	for _, v := range []struct{ version, commit string }{{"1.0.0", commitA}, {"1.1.0", commitC}} {
		b := testBundle(v.version, v.commit)
		b.Ref = "refs/heads/feature/x"
		e.registerHMAC(b, http.StatusCreated)
	}
	e.admin("POST", "/channels/production/plan", `{"plan":"staged","version":"1.1.0"}`, http.StatusBadRequest) // no stable version yet
	e.admin("POST", "/channels/production/promote", `{"version":"1.0.0"}`, http.StatusOK)
	e.admin("POST", "/channels/production/plan", `{"plan":"fast","version":"1.1.0"}`, http.StatusNotFound)
	e.admin("POST", "/channels/production/plan", `{"plan":"staged","version":"9.9.9"}`, http.StatusNotFound)
	e.admin("POST", "/channels/production/plan", `{"plan":"staged"}`, http.StatusBadRequest)
	e.admin("POST", "/channels/nope/plan", `{"plan":"staged","version":"1.1.0"}`, http.StatusNotFound)
	r := decodeChange(t, e.admin("POST", "/channels/production/plan", `{"plan":"staged","version":"1.1.0"}`, http.StatusOK))
	if !r.Changed || r.Channel.State.Rollout == nil || r.Channel.State.Rollout.Percent != 1 || r.Channel.State.Plan == nil || r.Channel.State.Plan.Name != "staged" {
		t.Fatalf("start plan = %+v", r.Channel.State)
	}
	if r := decodeChange(t, e.admin("POST", "/channels/production/plan", `{"plan":"staged","version":"1.1.0"}`, http.StatusOK)); r.Changed {
		t.Error("starting the running plan again changed the channel")
	}
	var v relayclient.PlanView
	if err := json.Unmarshal(e.admin("GET", "/channels/production/plan", "", http.StatusOK).Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if v.Plan == nil || v.Plan.Step != 0 || v.Version != "1.0.0" || v.Plan.NextDecisionAt.IsZero() {
		t.Fatalf("plan view = %+v", v)
	}
	// A person's pause and resume keep the plan; setting a percent by hand ends it.
	e.admin("POST", "/channels/production/rollout/pause", "", http.StatusOK)
	r = decodeChange(t, e.admin("POST", "/channels/production/rollout/resume", "", http.StatusOK))
	if r.Channel.State.Plan == nil || r.Channel.State.Rollout.Paused {
		t.Fatalf("after pause and resume: %+v", r.Channel.State)
	}
	r = decodeChange(t, e.admin("PUT", "/channels/production/rollout", `{"version":"1.1.0","percent":20}`, http.StatusOK))
	if r.Channel.State.Plan != nil {
		t.Errorf("a manual percent kept the plan: %+v", r.Channel.State.Plan)
	}
}

// TestRulePlan: a registration whose ref's rule names a plan starts the plan on a channel
// that serves a version, and promotes a channel that serves none.
func TestRulePlan(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{config: planConfigY})
	b := testBundle("1.0.0", commitA)
	b.Ref = "refs/tags/v1.0.0"
	e.registerHMAC(b, http.StatusCreated)
	b = testBundle("1.1.0", commitC)
	b.Ref = "refs/tags/v1.1.0"
	e.registerHMAC(b, http.StatusCreated)
	var v relayclient.PlanView
	if err := json.Unmarshal(e.admin("GET", "/channels/production/plan", "", http.StatusOK).Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if v.Version != "1.0.0" || v.Plan == nil || v.Plan.Version != "1.1.0" || v.Rollout.Percent != 1 {
		t.Fatalf("after v1.0.0 then v1.1.0: %+v rollout %+v plan %+v", v, v.Rollout, v.Plan)
	}
}
