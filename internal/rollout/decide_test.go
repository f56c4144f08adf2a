package rollout

import (
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
)

func staged() channel.Plan {
	return channel.Plan{Steps: []channel.PlanStep{{Percent: 1, Bake: time.Hour}, {Percent: 10, Bake: 6 * time.Hour}, {Percent: 50, Bake: 24 * time.Hour}, {Percent: 100}}}
}

func TestDecide(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &channel.PlanState{Plan: staged(), Step: 0, NextDecisionAt: t0.Add(time.Hour)}
	last := &channel.PlanState{Plan: staged(), Step: 3, NextDecisionAt: t0}
	rb := &channel.PlanState{Plan: staged(), NextDecisionAt: t0.Add(time.Hour)}
	rb.Plan.OnFailure = channel.OnFailureRollback
	pass, fail, few := Result{Verdict: Pass}, Result{Verdict: Fail}, Result{Verdict: Insufficient}
	for _, tc := range []struct {
		name   string
		p      *channel.PlanState
		paused bool
		now    time.Time
		r      Result
		want   Action
	}{
		{"baking", p, false, t0, pass, Hold},
		{"baked and passing", p, false, t0.Add(time.Hour), pass, Advance},
		{"baked, too few devices", p, false, t0.Add(2 * time.Hour), few, Hold},
		{"failing mid-bake pauses", p, false, t0, fail, Pause},
		{"failing with rollback", rb, false, t0, fail, Rollback},
		{"paused holds even when passing", p, true, t0.Add(time.Hour), pass, Hold},
		{"paused holds when failing", p, true, t0, fail, Hold},
		{"last step completes", last, false, t0, pass, Complete},
		{"last step waits for evidence", last, false, t0, few, Hold},
	} {
		if got := Decide(tc.p, tc.paused, tc.now, tc.r); got != tc.want {
			t.Errorf("%s: Decide = %s; want %s", tc.name, got, tc.want)
		}
	}
}

func TestWindow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &channel.PlanState{Plan: staged(), GateFrom: t0}
	if from, to := Window(p, t0.Add(time.Hour)); !from.Equal(t0) || !to.Equal(t0.Add(time.Hour)) {
		t.Errorf("Window an hour in = %s..%s; want from the plan's start", from, to)
	}
	if from, _ := Window(p, t0.Add(30*time.Hour)); !from.Equal(t0.Add(6 * time.Hour)) {
		t.Errorf("Window 30h in = from %s; want the default 24h window", from)
	}
	p.Plan.Gate.Window = 2 * time.Hour
	if from, _ := Window(p, t0.Add(3*time.Hour)); !from.Equal(t0.Add(time.Hour)) {
		t.Errorf("Window with a 2h window = from %s", from)
	}
}
