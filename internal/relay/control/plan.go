package control

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relayclient"
)

// startPlan answers POST …/channels/{channel}/plan (see StartPlan).
func (a *API) startPlan(c *gin.Context) error {
	var req relayclient.PlanRequest
	if err := decodeAdmin(c, &req); err != nil {
		return err
	}
	res, err := a.StartPlan(c.Request.Context(), caller(c), c.Param("app"), c.Param("channel"), req)
	return reply(c, res, err)
}

// StartPlan starts a configured rollout plan on a channel for a registered version: the
// rollout controller then advances it. It needs the deploy permission; starting the plan
// that already runs for the version changes nothing.
func (a *API) StartPlan(ctx context.Context, by Caller, appID, ch string, req relayclient.PlanRequest) (*relayclient.ChangeResult, error) {
	app, err := a.target(by, appID, ch, access.Deploy)
	if err != nil {
		return nil, err
	}
	switch {
	case req.Plan == "":
		return nil, errorf(http.StatusBadRequest, "bad_request", "plan is required (configured: %s)", a.planNames())
	case req.Version == "":
		return nil, errorf(http.StatusBadRequest, "bad_request", "version is required")
	case req.Version == builtin:
		return nil, errorf(http.StatusBadRequest, "bad_request", "builtin cannot be rolled out; promote it")
	}
	plan, ok := a.cfg.RolloutPlans[req.Plan]
	if !ok {
		return nil, errorf(http.StatusNotFound, "plan_not_found", "no rollout plan %q (configured: %s)", req.Plan, a.planNames())
	}
	if _, err := a.Bundle(ctx, app, req.Version); err != nil {
		return nil, err
	}
	return a.change(ctx, by, app, ch, "plan_start", fmt.Sprintf("admin (plan %s)", req.Plan), func(s *channel.State, _ *channel.AuditEntry) (string, string, bool, error) {
		if p := channel.ActivePlan(s); p != nil && p.Name == req.Plan && p.Version == req.Version && !s.Rollout.Paused {
			return req.Version, s.Version, false, nil // already running: a retry changes nothing
		}
		if err := channel.StartPlan(s, req.Plan, plan, req.Version, a.now()); err != nil {
			return "", "", false, err
		}
		return req.Version, s.Version, true, nil
	})
}

// getPlan answers the channel's rollout and the plan driving it, if any
// (GET …/channels/{channel}/plan).
func (a *API) getPlan(c *gin.Context) error {
	app, st, err := a.requestState(c)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, relayclient.PlanView{App: app.ID, Channel: st.Channel, Version: st.Version, Rollout: st.Rollout, Plan: channel.ActivePlan(st)})
	return nil
}

func (a *API) planNames() string {
	names := make([]string, 0, len(a.cfg.RolloutPlans))
	for n := range a.cfg.RolloutPlans {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "none; add rollout_plans to the relay configuration"
	}
	return strings.Join(names, ", ")
}

// deploy makes version the stable version of s (as channel.Promote) or, when the rule
// mapping ref to ch names a rollout plan and the channel already serves another version,
// starts that plan for version instead. It returns whether s changed and the audit action
// ("promote" or "plan_start"). A channel with no stable version yet is promoted: a plan
// needs a version to fall back to.
func (a *API) deploy(s *channel.State, app *channel.App, ref, ch, version string) (changed bool, action string) {
	name := ""
	if m, ok := app.MatchRef(ref); ok && m == ch {
		name = app.RulePlan(ref)
	}
	plan, ok := a.cfg.RolloutPlans[name]
	if !ok || s.Version == "" || s.Version == version || version == builtin {
		return channel.Promote(s, version), "promote"
	}
	if p := channel.ActivePlan(s); p != nil && p.Version == version {
		return false, "plan_start" // already running for this version
	}
	if err := channel.StartPlan(s, name, plan, version, a.now()); err != nil {
		// The configuration was validated and the version differs from the stable one,
		// so this does not happen; promoting keeps the old behaviour if it ever does.
		return channel.Promote(s, version), "promote"
	}
	return true, "plan_start"
}
