package rollout

import (
	"time"

	"github.com/ferryhq/ferry/internal/channel"
)

// Action is what the controller does with a plan on one tick.
type Action int

const (
	// Hold changes nothing: the step is baking, waiting for evidence, or paused.
	Hold Action = iota
	// Advance moves the plan to its next step's percent.
	Advance
	// Complete makes the candidate the channel's stable version and ends the plan.
	Complete
	// Pause stops offering the candidate to devices not on it yet; a person resumes it.
	Pause
	// Rollback cancels the rollout: every device is offered the stable version again.
	Rollback
)

// String names the action as metrics, logs and audit entries show it.
func (a Action) String() string {
	return [...]string{"hold", "advance", "complete", "pause", "rollback"}[a]
}

// Decide is the controller's decision for plan p on a channel whose rollout is paused or
// not, at now, given the gate's result for the current step. A paused rollout (by a gate
// or a person) is held: only a person resumes it. A failing gate pauses or rolls back at
// once, even mid-bake. Otherwise the step advances (or, at the last step, completes) once
// its bake has passed and the gate passes; until then, and while the sample is too small,
// it holds.
func Decide(p *channel.PlanState, paused bool, now time.Time, r Result) Action {
	switch {
	case paused:
		return Hold
	case r.Verdict == Fail:
		if p.Plan.OnFailure == channel.OnFailureRollback {
			return Rollback
		}
		return Pause
	case now.Before(p.NextDecisionAt), r.Verdict != Pass:
		return Hold
	case p.Step+1 >= len(p.Plan.Steps):
		return Complete
	}
	return Advance
}

// Window is the time range the gate reads for p at now: from GateFrom (the plan's start or
// its last resume), at most the gate's window back, to now.
func Window(p *channel.PlanState, now time.Time) (from, to time.Time) {
	g := p.Plan.Gate.WithDefaults()
	from = p.GateFrom
	if w := now.Add(-g.Window); w.After(from) {
		from = w
	}
	return from, now
}
