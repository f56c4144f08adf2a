package channel

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Defaults of a plan's health gate (docs/rollouts.md explains each choice). A zero field of
// [Gate] means its default.
const (
	// DefaultMaxFailureRatio pauses a step whose failures are, with 95% confidence, more
	// than 5% of its installs: well above the background of flaky networks and full disks
	// (under 1% for a healthy bundle), well below a broken one (tens of percent).
	DefaultMaxFailureRatio = 0.05
	// DefaultMinDevices is the sample below which a gate decides nothing: 1 failure out of
	// 3 installs is not evidence. With 50 installs, a bundle failing 30% of the time is
	// caught with certainty and a 0.5% one passes with certainty.
	DefaultMinDevices = 50
	// DefaultMaxBaselineRatio pauses a step whose failure ratio is, with 95% confidence,
	// more than 3 times the stable version's over the baseline window.
	DefaultMaxBaselineRatio = 3.0
	// DefaultBaselineFloor is the failure ratio below which the baseline comparison is not
	// applied: 0.6% against 0.2% is 3 times but not worth stopping a rollout for.
	DefaultBaselineFloor = 0.01
	// DefaultGateWindow is how far back a gate looks at most: a step's evidence is what
	// devices reported since the step (or the plan) started, bounded by this window.
	DefaultGateWindow = 24 * time.Hour
	// DefaultBaselineWindow is how far back the stable version's failure ratio is read.
	DefaultBaselineWindow = 7 * 24 * time.Hour
	// MaxPlanSteps bounds the steps of a plan.
	MaxPlanSteps = 20
)

// Actions a plan may take when a gate fails.
const (
	OnFailurePause    = "pause"
	OnFailureRollback = "rollback"
)

// Plan is a staged rollout: a sequence of steps, each offering the candidate to Percent
// percent of the channel's devices for at least Bake, advanced only while the health Gate
// holds. It is named under rollout_plans in the relay configuration.
type Plan struct {
	Steps []PlanStep `yaml:"steps" json:"steps"`
	Gate  Gate       `yaml:"gate" json:"gate"`
	// OnFailure is what a failing gate does: "pause" (the default) stops offering the
	// candidate to devices that do not run it yet; "rollback" cancels the rollout, so every
	// device is offered the stable version again.
	OnFailure string `yaml:"on_failure" json:"on_failure,omitempty"`
}

// PlanStep is one step of a [Plan]: Percent (1 to 100) of the devices for at least Bake.
// The last step is 100; when its bake has passed with the gate holding, the candidate
// becomes the channel's stable version.
type PlanStep struct {
	Percent int           `yaml:"percent" json:"percent"`
	Bake    time.Duration `yaml:"bake" json:"bake"`
}

// Gate holds a plan's health thresholds; zero fields take the Default* constants.
type Gate struct {
	// MaxFailureRatio is the failures / (failures + installs) above which the step fails.
	MaxFailureRatio float64 `yaml:"max_failure_ratio" json:"max_failure_ratio,omitempty"`
	// MinDevices is the number of installing devices (installs plus failures) a step needs
	// before the gate decides anything.
	MinDevices int `yaml:"min_devices" json:"min_devices,omitempty"`
	// MaxBaselineRatio is how many times the stable version's failure ratio the candidate's
	// may reach.
	MaxBaselineRatio float64 `yaml:"max_baseline_ratio" json:"max_baseline_ratio,omitempty"`
	// BaselineFloor is the failure ratio below which the baseline comparison is skipped.
	BaselineFloor float64 `yaml:"baseline_floor" json:"baseline_floor,omitempty"`
	// Window bounds how far back the candidate's reports are read.
	Window time.Duration `yaml:"window" json:"window,omitempty"`
	// BaselineWindow is how far back the stable version's reports are read.
	BaselineWindow time.Duration `yaml:"baseline_window" json:"baseline_window,omitempty"`
}

// WithDefaults returns g with every zero field set to its default.
func (g Gate) WithDefaults() Gate {
	if g.MaxFailureRatio == 0 {
		g.MaxFailureRatio = DefaultMaxFailureRatio
	}
	if g.MinDevices == 0 {
		g.MinDevices = DefaultMinDevices
	}
	if g.MaxBaselineRatio == 0 {
		g.MaxBaselineRatio = DefaultMaxBaselineRatio
	}
	if g.BaselineFloor == 0 {
		g.BaselineFloor = DefaultBaselineFloor
	}
	if g.Window == 0 {
		g.Window = DefaultGateWindow
	}
	if g.BaselineWindow == 0 {
		g.BaselineWindow = DefaultBaselineWindow
	}
	return g
}

// Validate reports every problem of the plan at once: 1 to MaxPlanSteps steps with
// percents strictly increasing from 1 to a last step of 100, a positive bake on every step
// but the last, thresholds in range, and on_failure pause or rollback.
func (p *Plan) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch {
	case len(p.Steps) == 0:
		add("no steps")
	case len(p.Steps) > MaxPlanSteps:
		add("%d steps; at most %d", len(p.Steps), MaxPlanSteps)
	}
	for i, s := range p.Steps {
		if s.Percent < 1 || s.Percent > 100 {
			add("step %d: percent %d must be 1 to 100", i, s.Percent)
		} else if i > 0 && s.Percent <= p.Steps[i-1].Percent {
			add("step %d: percent %d must be larger than the previous step's %d", i, s.Percent, p.Steps[i-1].Percent)
		}
		if s.Bake < 0 || (s.Bake == 0 && i < len(p.Steps)-1) {
			add("step %d: bake %s must be positive (only the last step may have none)", i, s.Bake)
		}
	}
	if n := len(p.Steps); n > 0 && n <= MaxPlanSteps && p.Steps[n-1].Percent != 100 {
		add("the last step is %d%%; it must be 100%% (the plan then makes the version stable)", p.Steps[n-1].Percent)
	}
	g := p.Gate
	if g.MaxFailureRatio < 0 || g.MaxFailureRatio >= 1 {
		add("gate: max_failure_ratio %g must be between 0 and 1 (0: the default %g)", g.MaxFailureRatio, DefaultMaxFailureRatio)
	}
	if g.MinDevices < 0 {
		add("gate: min_devices %d must not be negative (0: the default %d)", g.MinDevices, DefaultMinDevices)
	}
	if g.MaxBaselineRatio != 0 && g.MaxBaselineRatio < 1 {
		add("gate: max_baseline_ratio %g must be at least 1 (0: the default %g)", g.MaxBaselineRatio, DefaultMaxBaselineRatio)
	}
	if g.BaselineFloor < 0 || g.BaselineFloor >= 1 {
		add("gate: baseline_floor %g must be between 0 and 1 (0: the default %g)", g.BaselineFloor, DefaultBaselineFloor)
	}
	if g.Window < 0 || g.BaselineWindow < 0 {
		add("gate: window and baseline_window must not be negative")
	}
	if p.OnFailure != "" && p.OnFailure != OnFailurePause && p.OnFailure != OnFailureRollback {
		add("on_failure %q must be pause or rollback", p.OnFailure)
	}
	return errors.Join(errs...)
}

// validatePlans checks the configuration's plans and the plans its rules name.
func (c *Config) validatePlans() []error {
	var errs []error
	names := make([]string, 0, len(c.RolloutPlans))
	for n := range c.RolloutPlans {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		p := c.RolloutPlans[name]
		if !validChannelName(name) {
			errs = append(errs, fmt.Errorf("rollout plan %q: name must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", name))
		}
		if err := p.Validate(); err != nil {
			for _, e := range flatten(err) {
				errs = append(errs, fmt.Errorf("rollout plan %q: %w", name, e))
			}
		}
	}
	for i, a := range c.Apps {
		for k, r := range a.Rules {
			if r.Plan == "" {
				continue
			}
			if _, ok := c.RolloutPlans[r.Plan]; !ok {
				errs = append(errs, fmt.Errorf("app %d (%q) rule %d (%q): plan %q is not defined under rollout_plans (defined: %s)",
					i, a.ID, k, r.Ref, r.Plan, strings.Join(names, ", ")))
			}
		}
	}
	return errs
}

// flatten returns the errors an errors.Join holds, or err alone.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// RulePlan returns the plan named by the first rule of a matching ref (the rule MatchRef
// uses), or "" when that rule names none or no rule matches.
func (a *App) RulePlan(ref string) string {
	ch, ok := a.MatchRef(ref)
	if !ok {
		return ""
	}
	for _, r := range a.Rules {
		g := lookupGlob(r.Ref)
		if g == nil || checkTemplate(r.Channel, g.captures) != nil {
			continue
		}
		if m := g.re.FindStringSubmatch(ref); m != nil && expand(r.Channel, m) == ch {
			return r.Plan
		}
	}
	return ""
}

// PlanState is a rollout plan in progress on a channel, kept with the channel's state.
// Plan is a copy of the plan's definition taken when it started, so a configuration change
// does not move a plan already running. While a PlanState is set, the channel's Rollout is
// the plan's candidate; every change that replaces or ends that rollout ends the plan.
type PlanState struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Revision identifies this run of the plan (the channel's Rev when it started): the
	// controller applies each step of a revision at most once.
	Revision int64 `json:"revision"`
	Plan     Plan  `json:"plan"`
	// Step indexes Plan.Steps: the step being baked.
	Step          int       `json:"step"`
	StepStartedAt time.Time `json:"step_started_at"`
	// GateFrom is where the gate's evidence starts: the plan's start, or when a person last
	// resumed it.
	GateFrom time.Time `json:"gate_from"`
	// NextDecisionAt is when the step's bake ends and the controller may advance it.
	NextDecisionAt time.Time `json:"next_decision_at"`
	// PausedReason, when set, is why a gate paused the plan, with the figures; only a
	// person resumes it.
	PausedReason string `json:"paused_reason,omitempty"`
}

// StartPlan starts plan name on s for version: the rollout of version at the first step's
// percent, and a new [PlanState] at step 0 from now. It replaces a rollout or plan in
// progress. It returns an error wrapping [ErrInvalidRollout], and leaves s unchanged, when
// the plan is invalid or the rollout cannot start (see [SetRollout]).
func StartPlan(s *State, name string, plan Plan, version string, now time.Time) error {
	if err := plan.Validate(); err != nil {
		return fmt.Errorf("plan %q: %w: %w", name, ErrInvalidRollout, err)
	}
	if err := SetRollout(s, version, plan.Steps[0].Percent); err != nil {
		return err
	}
	now = now.UTC()
	s.Plan = &PlanState{
		Name: name, Version: version, Revision: s.Rev + 1, Plan: plan,
		StepStartedAt: now, GateFrom: now, NextDecisionAt: now.Add(plan.Steps[0].Bake),
	}
	return nil
}

// ActivePlan returns the plan of s when it is consistent with the rollout (same version),
// else nil.
func ActivePlan(s *State) *PlanState {
	if s.Plan == nil || s.Rollout == nil || s.Rollout.Version != s.Plan.Version {
		return nil
	}
	return s.Plan
}

// ResumePlan resumes a paused rollout as [ResumeRollout] does and, when a plan runs it,
// clears the gate's pause and restarts the current step at now with the gate's evidence
// starting afresh: the person resuming has judged what was seen so far.
func ResumePlan(s *State, now time.Time) error {
	wasPaused := s.Rollout != nil && s.Rollout.Paused
	if err := ResumeRollout(s); err != nil {
		return err
	}
	if p := ActivePlan(s); p != nil && wasPaused {
		np := *p
		now = now.UTC()
		np.PausedReason = ""
		np.StepStartedAt, np.GateFrom = now, now
		np.NextDecisionAt = now.Add(np.Plan.Steps[np.Step].Bake)
		s.Plan = &np
	}
	return nil
}

// endPlanWithRollout drops the plan when the rollout it drives was replaced or ended.
func endPlanWithRollout(s *State) {
	if s.Plan != nil && (s.Rollout == nil || s.Rollout.Version != s.Plan.Version) {
		s.Plan = nil
	}
}
