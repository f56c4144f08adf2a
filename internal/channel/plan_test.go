package channel

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// plansConfig is the configuration of docs/rollouts.md.
const plansConfig = `
rollout_plans:
  staged:
    steps:
      - { percent: 1, bake: 1h }
      - { percent: 10, bake: 6h }
      - { percent: 50, bake: 24h }
      - { percent: 100 }
    gate: { max_failure_ratio: 0.05, min_devices: 50 }
  careful:
    steps: [{ percent: 5, bake: 2h }, { percent: 100, bake: 2h }]
    on_failure: rollback
apps:
  - id: com.example.app
    repository: acme/mobile-app
    default_channel: production
    channels:
      production: {}
      beta: {}
    rules:
      - { ref: refs/heads/main, channel: beta }
      - { ref: "refs/tags/v*", channel: production, plan: staged }
`

func TestParseConfigPlans(t *testing.T) {
	t.Parallel()
	c, err := ParseConfig([]byte(plansConfig))
	if err != nil {
		t.Fatalf("ParseConfig = %v", err)
	}
	want := Plan{
		Steps: []PlanStep{{1, time.Hour}, {10, 6 * time.Hour}, {50, 24 * time.Hour}, {100, 0}},
		Gate:  Gate{MaxFailureRatio: 0.05, MinDevices: 50},
	}
	if diff := cmp.Diff(want, c.RolloutPlans["staged"]); diff != "" {
		t.Errorf("plan staged (-want +got):\n%s", diff)
	}
	if got := c.RolloutPlans["careful"].OnFailure; got != OnFailureRollback {
		t.Errorf("careful on_failure = %q", got)
	}
	a := c.App("com.example.app")
	if got := a.RulePlan("refs/tags/v1.2.0"); got != "staged" {
		t.Errorf("RulePlan(v1.2.0) = %q; want staged", got)
	}
	for _, ref := range []string{"refs/heads/main", "refs/heads/other", ""} {
		if got := a.RulePlan(ref); got != "" {
			t.Errorf("RulePlan(%q) = %q; want none", ref, got)
		}
	}
}

func TestParseConfigPlanErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, from, to string
		want           []string
	}{
		{"unknown plan", "plan: staged", "plan: fast", []string{`plan "fast" is not defined under rollout_plans (defined: careful, staged)`}},
		{"last not 100", "- { percent: 100 }", "- { percent: 90 }", []string{`rollout plan "staged": the last step is 90%`}},
		{"not increasing", "percent: 10, bake: 6h", "percent: 1, bake: 6h", []string{"step 1: percent 1 must be larger than the previous step's 1"}},
		{"no bake", "percent: 10, bake: 6h", "percent: 10", []string{"step 1: bake 0s must be positive"}},
		{"bad duration", "bake: 6h", "bake: six hours", []string{"parse config"}},
		{"bad ratio", "max_failure_ratio: 0.05", "max_failure_ratio: 5", []string{"max_failure_ratio 5 must be between 0 and 1"}},
		{"bad action", "on_failure: rollback", "on_failure: panic", []string{`on_failure "panic" must be pause or rollback`}},
		{"unknown key", "min_devices: 50", "min_device: 50", []string{"field min_device not found"}},
		{"percent over 100", "- { percent: 100 }", "- { percent: 101 }", []string{"step 3: percent 101 must be 1 to 100"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			y := strings.Replace(plansConfig, tc.from, tc.to, 1)
			if y == plansConfig {
				t.Fatalf("%q not in the config", tc.from)
			}
			_, err := ParseConfig([]byte(y))
			if err == nil {
				t.Fatal("ParseConfig = nil; want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	p := Plan{}
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "no steps") {
		t.Errorf("Validate(no steps) = %v", err)
	}
}

func TestGateDefaults(t *testing.T) {
	g := Gate{}.WithDefaults()
	if g.MaxFailureRatio != DefaultMaxFailureRatio || g.MinDevices != DefaultMinDevices || g.MaxBaselineRatio != DefaultMaxBaselineRatio ||
		g.BaselineFloor != DefaultBaselineFloor || g.Window != DefaultGateWindow || g.BaselineWindow != DefaultBaselineWindow {
		t.Errorf("Gate{}.WithDefaults() = %+v", g)
	}
	if g := (Gate{MinDevices: 7}).WithDefaults(); g.MinDevices != 7 {
		t.Errorf("a set field was replaced: %+v", g)
	}
}

func TestStartPlan(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	c, err := ParseConfig([]byte(plansConfig))
	if err != nil {
		t.Fatal(err)
	}
	plan := c.RolloutPlans["staged"]
	s := &State{Channel: "production", Version: "1.0.0", Rev: 41}
	if err := StartPlan(s, "staged", plan, "1.1.0", t0); err != nil {
		t.Fatal(err)
	}
	if s.Rollout == nil || *s.Rollout != (Rollout{Version: "1.1.0", Percent: 1}) {
		t.Errorf("rollout = %+v", s.Rollout)
	}
	p := ActivePlan(s)
	if p == nil || p.Revision != 42 || p.Step != 0 || !p.NextDecisionAt.Equal(t0.Add(time.Hour)) || !p.GateFrom.Equal(t0) {
		t.Fatalf("plan = %+v", p)
	}

	// A gate pause, then a person's resume restarts the step from then.
	s.Rollout.Paused, s.Plan.PausedReason = true, "30 failures of 100"
	t1 := t0.Add(5 * time.Hour)
	if err := ResumePlan(s, t1); err != nil {
		t.Fatal(err)
	}
	if s.Rollout.Paused || s.Plan.PausedReason != "" || !s.Plan.GateFrom.Equal(t1) || !s.Plan.NextDecisionAt.Equal(t1.Add(time.Hour)) {
		t.Errorf("after resume: rollout %+v plan %+v", s.Rollout, s.Plan)
	}
	// Resuming a running plan changes nothing.
	before := *s.Plan
	if err := ResumePlan(s, t1.Add(time.Hour)); err != nil || !cmp.Equal(*s.Plan, before) {
		t.Errorf("resume of a running plan changed it: %v %+v", err, s.Plan)
	}

	// Bad input changes nothing.
	s2 := &State{Channel: "production", Version: "1.0.0"}
	if err := StartPlan(s2, "staged", plan, "1.0.0", t0); !errors.Is(err, ErrInvalidRollout) || s2.Plan != nil || s2.Rollout != nil {
		t.Errorf("StartPlan of the stable version = %v, state %+v", err, s2)
	}
	if err := StartPlan(s2, "bad", Plan{}, "1.1.0", t0); !errors.Is(err, ErrInvalidRollout) || s2.Plan != nil {
		t.Errorf("StartPlan of an invalid plan = %v", err)
	}
}

// TestPlanEndsWithItsRollout checks that every change replacing or ending the plan's
// rollout ends the plan, and that others keep it.
func TestPlanEndsWithItsRollout(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	plan := Plan{Steps: []PlanStep{{Percent: 10, Bake: time.Hour}, {Percent: 100}}}
	start := func() *State {
		s := &State{Channel: "production", Version: "1.0.0", History: []string{"0.9.0"}}
		if err := StartPlan(s, "p", plan, "1.1.0", t0); err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tc := range []struct {
		name string
		fn   func(s *State) error
		kept bool
	}{
		{"set rollout", func(s *State) error { return SetRollout(s, "1.1.0", 20) }, false},
		{"cancel", CancelRollout, false},
		{"complete", CompleteRollout, false},
		{"promote the candidate", func(s *State) error { Promote(s, "1.1.0"); return nil }, false},
		{"promote another version", func(s *State) error { Promote(s, "1.0.1"); return nil }, true},
		{"rollback", func(s *State) error { _, err := Rollback(s); return err }, true},
		{"pause", PauseRollout, true},
	} {
		s := start()
		if err := tc.fn(s); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if kept := s.Plan != nil; kept != tc.kept {
			t.Errorf("%s: plan kept = %v; want %v", tc.name, kept, tc.kept)
		}
		if s.Plan != nil && ActivePlan(s) == nil {
			t.Errorf("%s: a plan left without its rollout", tc.name)
		}
	}
}
