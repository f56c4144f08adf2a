package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relayclient"
)

// Admin API list limits.
const (
	defaultListLimit = 50
	maxBundleLimit   = 500
	defaultAudit     = 100
	maxAuditLimit    = 1000
)

// builtin is the version that sends devices back to the app's built-in assets.
const builtin = "builtin"

func (a *API) mountAdmin(r gin.IRouter) {
	g := r.Group("/api/v1/apps/:app")
	read, deploy, manage := a.appRoute(access.Read), a.appRoute(access.Deploy), a.appRoute(access.Manage)
	g.GET("/channels", read, a.handle(a.listChannels))
	g.GET("/channels/:channel", read, a.handle(a.getChannel))
	g.GET("/bundles", read, a.handle(a.listBundles))
	g.GET("/bundles/:version", read, a.handle(a.getBundle))
	g.POST("/channels/:channel/promote", deploy, a.handle(a.promoteChannel))
	g.POST("/channels/:channel/rollback", deploy, a.handle(a.rollbackChannel))
	g.PUT("/channels/:channel/rollout", deploy, a.handle(a.setRollout))
	g.POST("/channels/:channel/rollout/:op", deploy, a.handle(a.rolloutOp))
	g.GET("/channels/:channel/plan", read, a.handle(a.getPlan))
	g.POST("/channels/:channel/plan", deploy, a.handle(a.startPlan))
	g.PUT("/channels/:channel/policy", manage, a.handle(a.setPolicy))
	g.GET("/stats", read, a.handle(a.stats))
	g.GET("/audit", read, a.handle(a.audit))
}

const appKey = "ferry.control.app"

func appOf(c *gin.Context) *channel.App { return c.MustGet(appKey).(*channel.App) }

// channelOf resolves :channel against the app's configuration.
func channelOf(c *gin.Context, app *channel.App) (string, error) {
	ch := c.Param("channel")
	if _, ok := app.Channels[ch]; !ok {
		return "", errorf(http.StatusNotFound, "channel_not_found", "app %q has no channel %q (configured: %v)", app.ID, ch, channelNames(app))
	}
	return ch, nil
}

// view is one channel in admin answers: configuration and state together.
func (a *API) view(app *channel.App, st *channel.State) relayclient.ChannelView {
	v := relayclient.ChannelView{Name: st.Channel, Policy: app.Channels[st.Channel], Default: st.Channel == app.DefaultChannel, State: st}
	if st.Policy != nil {
		v.Policy, v.Overridden = *st.Policy, true
	}
	return v
}

func (a *API) listChannels(c *gin.Context) error {
	ctx := c.Request.Context()
	app := appOf(c)
	states, err := a.store.ListStates(ctx, app.ID)
	if err != nil {
		return storeError("list states", err)
	}
	byName := map[string]*channel.State{}
	for _, s := range states {
		byName[s.Channel] = s
	}
	out := []relayclient.ChannelView{}
	for _, name := range channelNames(app) {
		st := byName[name]
		if st == nil {
			st = &channel.State{App: app.ID, Channel: name}
		}
		out = append(out, a.view(app, st))
	}
	c.JSON(http.StatusOK, relayclient.ChannelList{App: app.ID, Channels: out})
	return nil
}

func (a *API) getChannel(c *gin.Context) error {
	app := appOf(c)
	ch, err := channelOf(c, app)
	if err != nil {
		return err
	}
	st, err := a.store.GetState(c.Request.Context(), app.ID, ch)
	if err != nil {
		return storeError("get state", err)
	}
	c.JSON(http.StatusOK, a.view(app, st))
	return nil
}

func (a *API) listBundles(c *gin.Context) error {
	app := appOf(c)
	limit, err := queryLimit(c, defaultListLimit, maxBundleLimit)
	if err != nil {
		return err
	}
	bs, err := a.store.ListBundles(c.Request.Context(), app.ID, limit)
	if err != nil {
		return storeError("list bundles", err)
	}
	if bs == nil {
		bs = []*channel.Bundle{}
	}
	c.JSON(http.StatusOK, relayclient.BundleList{App: app.ID, Bundles: bs})
	return nil
}

func (a *API) getBundle(c *gin.Context) error {
	app := appOf(c)
	b, err := a.bundle(c, app, c.Param("version"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, b)
	return nil
}

// bundle loads a registered bundle; a missing one is a 404.
func (a *API) bundle(c *gin.Context, app *channel.App, version string) (*channel.Bundle, error) {
	b, err := a.store.GetBundle(c.Request.Context(), app.ID, version)
	if errors.Is(err, channel.ErrNotFound) {
		return nil, errorf(http.StatusNotFound, "bundle_not_found", "app %q has no bundle %q", app.ID, version)
	}
	if err != nil {
		return nil, storeError("get bundle", err)
	}
	return b, nil
}

func queryLimit(c *gin.Context, def, max int) (int, error) {
	s := c.Query("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return 0, errorf(http.StatusBadRequest, "bad_request", "limit must be an integer from 1 to %d", max)
	}
	return n, nil
}

// decodeAdmin decodes an admin request body strictly into v.
func decodeAdmin(c *gin.Context, v any) error {
	body, err := readBody(c, MaxAdminBody)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &httpError{Status: http.StatusBadRequest, Code: "bad_request", Msg: "the body is not the expected JSON object: " + jsonErrorText(err), Err: err}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errorf(http.StatusBadRequest, "bad_request", "the body must hold exactly one JSON object")
	}
	return nil
}

// change applies fn to one channel through Store.UpdateState with an audit entry of cause
// (always starting with "admin") naming the request's principal, calls OnChange when the
// state changed, and answers with the channel. fn may fill the entry's Before and After.
func (a *API) change(c *gin.Context, app *channel.App, ch, action, cause string, fn func(s *channel.State, e *channel.AuditEntry) (version, from string, changed bool, err error)) error {
	ctx := c.Request.Context()
	changed := false
	actor := actorOf(c)
	st, err := a.store.UpdateState(ctx, app.ID, ch, func(s *channel.State) (*channel.AuditEntry, error) {
		changed = false
		e := &channel.AuditEntry{Time: a.now().UTC(), App: app.ID, Channel: ch, Action: action, Cause: cause, Actor: actor}
		version, from, ch2, err := fn(s, e)
		if err != nil || !ch2 {
			return nil, err
		}
		changed = true
		e.Version, e.From = version, from
		return e, nil
	})
	if err != nil {
		switch {
		case errors.Is(err, channel.ErrNoHistory), errors.Is(err, channel.ErrNoRollout):
			return &httpError{Status: http.StatusConflict, Code: "conflict", Msg: err.Error(), Err: err}
		case errors.Is(err, channel.ErrInvalidRollout):
			return &httpError{Status: http.StatusBadRequest, Code: "bad_request", Msg: err.Error(), Err: err}
		}
		var he *httpError
		if errors.As(err, &he) {
			return err
		}
		return storeError(action, err)
	}
	if changed {
		if action == "promote" || action == "complete" || action == "rollback" {
			a.metrics.promotions.WithLabelValues("admin").Inc()
		}
		a.onChange(app.ID)
	}
	a.logger(ctx).InfoContext(ctx, "admin change", "app", app.ID, "channel", ch, "action", action, "changed", changed, "version", st.Version, "actor", actor.String())
	c.JSON(http.StatusOK, relayclient.ChangeResult{Changed: changed, Channel: a.view(app, st)})
	return nil
}

func (a *API) promoteChannel(c *gin.Context) error {
	app := appOf(c)
	ch, err := channelOf(c, app)
	if err != nil {
		return err
	}
	var req relayclient.PromoteRequest
	if err := decodeAdmin(c, &req); err != nil {
		return err
	}
	if req.Version == "" {
		return errorf(http.StatusBadRequest, "bad_request", "version is required")
	}
	if req.Version != builtin {
		if _, err := a.bundle(c, app, req.Version); err != nil {
			return err
		}
	}
	return a.change(c, app, ch, "promote", "admin", func(s *channel.State, _ *channel.AuditEntry) (string, string, bool, error) {
		from := s.Version
		return req.Version, from, channel.Promote(s, req.Version), nil
	})
}

func (a *API) rollbackChannel(c *gin.Context) error {
	app := appOf(c)
	ch, err := channelOf(c, app)
	if err != nil {
		return err
	}
	if c.Request.ContentLength > 0 {
		var req struct{}
		if err := decodeAdmin(c, &req); err != nil {
			return err
		}
	}
	return a.change(c, app, ch, "rollback", "admin", func(s *channel.State, _ *channel.AuditEntry) (string, string, bool, error) {
		from := s.Version
		to, err := channel.Rollback(s)
		if err != nil {
			return "", "", false, err
		}
		return to, from, true, nil
	})
}

func (a *API) setRollout(c *gin.Context) error {
	app := appOf(c)
	ch, err := channelOf(c, app)
	if err != nil {
		return err
	}
	var req relayclient.RolloutRequest
	if err := decodeAdmin(c, &req); err != nil {
		return err
	}
	switch {
	case req.Version == "":
		return errorf(http.StatusBadRequest, "bad_request", "version is required")
	case req.Percent == nil:
		return errorf(http.StatusBadRequest, "bad_request", "percent is required (0 to 100)")
	case *req.Percent < 0 || *req.Percent > 100:
		return errorf(http.StatusBadRequest, "bad_request", "percent must be 0 to 100")
	case req.Version == builtin:
		return errorf(http.StatusBadRequest, "bad_request", "builtin cannot be rolled out; promote it")
	}
	if _, err := a.bundle(c, app, req.Version); err != nil {
		return err
	}
	return a.change(c, app, ch, "rollout", fmt.Sprintf("admin (%d%%)", *req.Percent), func(s *channel.State, _ *channel.AuditEntry) (string, string, bool, error) {
		before := s.Rollout
		if err := channel.SetRollout(s, req.Version, *req.Percent); err != nil {
			return "", "", false, err
		}
		changed := before == nil || *before != *s.Rollout
		return req.Version, s.Version, changed, nil
	})
}

func (a *API) rolloutOp(c *gin.Context) error {
	app := appOf(c)
	ch, err := channelOf(c, app)
	if err != nil {
		return err
	}
	op := c.Param("op")
	var apply func(*channel.State) error
	switch op {
	case "pause":
		apply = channel.PauseRollout
	case "resume":
		// Resuming a plan a gate paused restarts its step: only a person does this.
		apply = func(s *channel.State) error { return channel.ResumePlan(s, a.now()) }
	case "complete":
		apply = channel.CompleteRollout
	case "cancel":
		apply = channel.CancelRollout
	default:
		return errorf(http.StatusNotFound, "not_found", "unknown rollout operation %q (pause, resume, complete, cancel)", op)
	}
	return a.change(c, app, ch, op, "admin", func(s *channel.State, _ *channel.AuditEntry) (string, string, bool, error) {
		before := *s
		var r channel.Rollout
		if s.Rollout != nil {
			r = *s.Rollout
		}
		if err := apply(s); err != nil {
			return "", "", false, err
		}
		changed := s.Version != before.Version || (s.Rollout == nil) != (before.Rollout == nil) || (s.Rollout != nil && *s.Rollout != r) ||
			(s.Plan == nil) != (before.Plan == nil)
		return r.Version, before.Version, changed, nil
	})
}

func (a *API) setPolicy(c *gin.Context) error {
	app := appOf(c)
	ch, err := channelOf(c, app)
	if err != nil {
		return err
	}
	var req relayclient.PolicyRequest
	if err := decodeAdmin(c, &req); err != nil {
		return err
	}
	var p *channel.Policy
	if req.Policy != nil {
		in := req.Policy
		var errs []error
		if !slices.Contains([]string{"", "none", "patch", "minor", "major"}, in.DisableAutoUpdate) {
			errs = append(errs, fmt.Errorf("disable_auto_update must be none, patch, minor or major"))
		}
		for _, pl := range in.Platforms {
			if !slices.Contains([]string{"ios", "android", "electron"}, pl) {
				errs = append(errs, fmt.Errorf("platform %q is not ios, android or electron", pl))
			}
		}
		if err := errors.Join(errs...); err != nil {
			return &httpError{Status: http.StatusBadRequest, Code: "bad_request", Msg: joinMessages(err), Err: err}
		}
		p = &channel.Policy{
			Public:             in.Public,
			AllowDeviceSelfSet: in.AllowDeviceSelfSet,
			DenyEmulator:       in.AllowEmulator != nil && !*in.AllowEmulator,
			DenyDev:            in.AllowDev != nil && !*in.AllowDev,
			DisableAutoUpdate:  in.DisableAutoUpdate,
			Platforms:          in.Platforms,
		}
	}
	configured := app.Channels[ch]
	return a.change(c, app, ch, "policy", "admin", func(s *channel.State, e *channel.AuditEntry) (string, string, bool, error) {
		changed := !policyEqual(s.Policy, p)
		var err error
		if e.Before, err = effectivePolicy(s.Policy, configured); err != nil {
			return "", "", false, err
		}
		if e.After, err = effectivePolicy(p, configured); err != nil {
			return "", "", false, err
		}
		s.Policy = p
		return "", "", changed, nil
	})
}

// effectivePolicy is the JSON of the policy a channel applies: its override, or else its
// configured policy. The audit log records it before and after a policy change.
func effectivePolicy(override *channel.Policy, configured channel.Policy) (json.RawMessage, error) {
	p := configured
	if override != nil {
		p = *override
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode policy: %w", err)
	}
	return b, nil
}

func policyEqual(x, y *channel.Policy) bool {
	if x == nil || y == nil {
		return x == y
	}
	return x.Public == y.Public && x.AllowDeviceSelfSet == y.AllowDeviceSelfSet && x.DenyEmulator == y.DenyEmulator &&
		x.DenyDev == y.DenyDev && x.DisableAutoUpdate == y.DisableAutoUpdate && slices.Equal(x.Platforms, y.Platforms)
}

func (a *API) stats(c *gin.Context) error {
	app := appOf(c)
	st, err := a.store.Stats(c.Request.Context(), app.ID)
	if err != nil {
		return storeError("stats", err)
	}
	if st == nil {
		st = []channel.VersionStats{}
	}
	c.JSON(http.StatusOK, relayclient.Stats{App: app.ID, Versions: st, Time: a.now().UTC().Truncate(time.Second)})
	return nil
}

// auditScan is how many entries the audit API reads when it filters: the most a store
// keeps per app (store.DefaultAuditLimit), so a filter sees the whole log.
const auditScan = 10000

// auditFilter selects audit entries (GET …/audit?actor=&action=&since=&until=).
type auditFilter struct {
	actor, action string
	since, until  time.Time
}

func (f *auditFilter) empty() bool {
	return f.actor == "" && f.action == "" && f.since.IsZero() && f.until.IsZero()
}

// match reports whether e passes the filter: actor matches the actor's kind, name, id or
// email case-insensitively; action exactly; since and until bound the time (inclusive).
func (f *auditFilter) match(e *channel.AuditEntry) bool {
	if f.action != "" && e.Action != f.action {
		return false
	}
	if !f.since.IsZero() && e.Time.Before(f.since) {
		return false
	}
	if !f.until.IsZero() && e.Time.After(f.until) {
		return false
	}
	if f.actor == "" {
		return true
	}
	if e.Actor == nil {
		return false
	}
	return slices.ContainsFunc([]string{e.Actor.Kind, e.Actor.Name, e.Actor.ID, e.Actor.Email}, func(v string) bool {
		return v != "" && strings.EqualFold(v, f.actor)
	})
}

func parseAuditFilter(c *gin.Context) (*auditFilter, error) {
	f := &auditFilter{actor: c.Query("actor"), action: c.Query("action")}
	var errs []error
	for _, q := range []struct {
		name string
		to   *time.Time
	}{{"since", &f.since}, {"until", &f.until}} {
		v := c.Query(q.name)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s must be an RFC 3339 time such as 2025-01-31T12:00:00Z", q.name))
			continue
		}
		*q.to = t
	}
	if len(f.actor) > 256 || len(f.action) > 64 {
		errs = append(errs, errors.New("actor and action must be at most 256 and 64 characters"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, &httpError{Status: http.StatusBadRequest, Code: "bad_request", Msg: joinMessages(err), Err: err}
	}
	return f, nil
}

func (a *API) audit(c *gin.Context) error {
	app := appOf(c)
	limit, err := queryLimit(c, defaultAudit, maxAuditLimit)
	if err != nil {
		return err
	}
	f, err := parseAuditFilter(c)
	if err != nil {
		return err
	}
	fetch := limit
	if !f.empty() {
		fetch = auditScan
	}
	es, err := a.store.ListAudit(c.Request.Context(), app.ID, fetch)
	if err != nil {
		return storeError("list audit", err)
	}
	out := make([]channel.AuditEntry, 0, min(len(es), limit))
	for i := range es {
		if len(out) == limit {
			break
		}
		if f.match(&es[i]) {
			out = append(out, es[i])
		}
	}
	c.JSON(http.StatusOK, relayclient.AuditList{App: app.ID, Entries: out})
	return nil
}
