package control

import (
	"bytes"
	"context"
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
	maxCursor        = 64
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
	g.GET("/devices", read, a.handle(a.getDevice))
	g.POST("/devices/clear-failed", manage, a.handle(a.clearFailed))
	g.GET("/stats", read, a.handle(a.stats))
	g.GET("/audit", read, a.handle(a.audit))
	g.GET("/series", read, a.handle(a.series))
	g.GET("/notifications", read, a.handle(a.notifications))
}

const appKey = "ferry.control.app"

func appOf(c *gin.Context) *channel.App { return c.MustGet(appKey).(*channel.App) }

// channelOf resolves :channel against the app's configuration.
func channelOf(c *gin.Context, app *channel.App) (string, error) {
	ch := c.Param("channel")
	if _, ok := app.Channels[ch]; !ok {
		return "", errorf(http.StatusNotFound, "channel_not_found", "app %q has no channel %q (configured: %v)", app.ID, ch, app.ChannelNames())
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

// caller is the request's principal and client address, for the actions (actions.go).
func caller(c *gin.Context) Caller {
	return Caller{Principal: principalOf(c), IP: c.ClientIP()}
}

func (a *API) listChannels(c *gin.Context) error {
	app := appOf(c)
	out, err := a.Channels(c.Request.Context(), app)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, relayclient.ChannelList{App: app.ID, Channels: out})
	return nil
}

func (a *API) getChannel(c *gin.Context) error {
	app, st, err := a.requestState(c)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, a.view(app, st))
	return nil
}

// requestState returns the app and the state of the channel a request names.
func (a *API) requestState(c *gin.Context) (*channel.App, *channel.State, error) {
	app := appOf(c)
	ch, err := channelOf(c, app)
	if err != nil {
		return nil, nil, err
	}
	st, err := a.store.GetState(c.Request.Context(), app.ID, ch)
	if err != nil {
		return nil, nil, storeError("get state", err)
	}
	return app, st, nil
}

func (a *API) listBundles(c *gin.Context) error {
	app := appOf(c)
	limit, err := queryLimit(c, defaultListLimit, maxBundleLimit)
	if err != nil {
		return err
	}
	if cursor, paged := c.GetQuery("cursor"); paged {
		return a.pageBundles(c, app, cursor, limit)
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

// pageBundles answers GET /bundles?cursor=…: one page of the app's bundles, oldest first,
// and the cursor of the next page ("" after the last), so a client reads them all in
// bounded answers while bundles are registered.
func (a *API) pageBundles(c *gin.Context, app *channel.App, cursor string, limit int) error {
	if len(cursor) > maxCursor {
		return errorf(http.StatusBadRequest, "bad_cursor", "cursor is longer than %d characters: use the next_cursor of the previous page, or none to start", maxCursor)
	}
	bs, next, err := a.store.PageBundles(c.Request.Context(), app.ID, cursor, limit)
	if errors.Is(err, channel.ErrInvalidCursor) {
		return &httpError{Status: http.StatusBadRequest, Code: "bad_cursor", Msg: fmt.Sprintf("cursor %q is not one this relay returned for %s: start again without a cursor", cursor, app.ID), Err: err}
	}
	if err != nil {
		return storeError("page bundles", err)
	}
	if bs == nil {
		bs = []*channel.Bundle{}
	}
	c.JSON(http.StatusOK, relayclient.BundleList{App: app.ID, Bundles: bs, NextCursor: &next})
	return nil
}

func (a *API) getBundle(c *gin.Context) error {
	b, err := a.Bundle(c.Request.Context(), appOf(c), c.Param("version"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, b)
	return nil
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

// reply writes an action's result, or returns its refusal.
func reply(c *gin.Context, res *relayclient.ChangeResult, err error) error {
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, res)
	return nil
}

func (a *API) promoteChannel(c *gin.Context) error {
	var req relayclient.PromoteRequest
	if err := decodeAdmin(c, &req); err != nil {
		return err
	}
	res, err := a.PromoteWith(c.Request.Context(), caller(c), c.Param("app"), c.Param("channel"), req)
	return reply(c, res, err)
}

func (a *API) rollbackChannel(c *gin.Context) error {
	if c.Request.ContentLength > 0 {
		var req struct{}
		if err := decodeAdmin(c, &req); err != nil {
			return err
		}
	}
	res, err := a.Rollback(c.Request.Context(), caller(c), c.Param("app"), c.Param("channel"))
	return reply(c, res, err)
}

func (a *API) setRollout(c *gin.Context) error {
	var req relayclient.RolloutRequest
	if err := decodeAdmin(c, &req); err != nil {
		return err
	}
	res, err := a.SetRollout(c.Request.Context(), caller(c), c.Param("app"), c.Param("channel"), req.Version, req.Percent)
	return reply(c, res, err)
}

func (a *API) rolloutOp(c *gin.Context) error {
	res, err := a.RolloutOp(c.Request.Context(), caller(c), c.Param("app"), c.Param("channel"), c.Param("op"))
	return reply(c, res, err)
}

func (a *API) setPolicy(c *gin.Context) error {
	var req relayclient.PolicyRequest
	if err := decodeAdmin(c, &req); err != nil {
		return err
	}
	res, err := a.SetPolicy(c.Request.Context(), caller(c), c.Param("app"), c.Param("channel"), req.Policy)
	return reply(c, res, err)
}

func (a *API) getDevice(c *gin.Context) error {
	v, err := a.FailedVersions(c.Request.Context(), caller(c), c.Param("app"), c.Query("device"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, v)
	return nil
}

func (a *API) clearFailed(c *gin.Context) error {
	var req relayclient.ClearFailedRequest
	if err := decodeAdmin(c, &req); err != nil {
		return err
	}
	res, err := a.ClearFailedVersions(c.Request.Context(), caller(c), c.Param("app"), req.Device)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, res)
	return nil
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

// AuditFilter selects audit entries (GET …/audit?actor=&action=&since=&until=, and the
// console's audit page). Zero fields select everything.
type AuditFilter struct {
	// Actor matches the actor's kind, name, id or email, case-insensitively.
	Actor string
	// Action matches exactly.
	Action string
	// Since and Until bound the entry's time, inclusively.
	Since, Until time.Time
}

func (f *AuditFilter) empty() bool {
	return f.Actor == "" && f.Action == "" && f.Since.IsZero() && f.Until.IsZero()
}

// Match reports whether e passes the filter.
func (f *AuditFilter) Match(e *channel.AuditEntry) bool {
	if f.Action != "" && e.Action != f.Action {
		return false
	}
	if !f.Since.IsZero() && e.Time.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && e.Time.After(f.Until) {
		return false
	}
	if f.Actor == "" {
		return true
	}
	if e.Actor == nil {
		return false
	}
	return slices.ContainsFunc([]string{e.Actor.Kind, e.Actor.Name, e.Actor.ID, e.Actor.Email}, func(v string) bool {
		return v != "" && strings.EqualFold(v, f.Actor)
	})
}

// check reports what is wrong with the filter's strings.
func (f *AuditFilter) check() error {
	if len(f.Actor) > 256 || len(f.Action) > 64 {
		return errors.New("actor and action must be at most 256 and 64 characters")
	}
	return nil
}

func parseAuditFilter(c *gin.Context) (*AuditFilter, error) {
	f := &AuditFilter{Actor: c.Query("actor"), Action: c.Query("action")}
	var errs []error
	for _, q := range []struct {
		name string
		to   *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
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
	errs = append(errs, f.check())
	if err := errors.Join(errs...); err != nil {
		return nil, &httpError{Status: http.StatusBadRequest, Code: "bad_request", Msg: joinMessages(err), Err: err}
	}
	return f, nil
}

// Audit returns up to limit audit entries of the app that pass f, newest first.
func (a *API) Audit(ctx context.Context, app *channel.App, f AuditFilter, limit int) ([]channel.AuditEntry, error) {
	if err := f.check(); err != nil {
		return nil, &httpError{Status: http.StatusBadRequest, Code: "bad_request", Msg: err.Error(), Err: err}
	}
	fetch := limit
	if !f.empty() {
		fetch = auditScan
	}
	es, err := a.store.ListAudit(ctx, app.ID, fetch)
	if err != nil {
		return nil, storeError("list audit", err)
	}
	out := make([]channel.AuditEntry, 0, min(len(es), limit))
	for i := range es {
		if len(out) == limit {
			break
		}
		if f.Match(&es[i]) {
			out = append(out, es[i])
		}
	}
	return out, nil
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
	out, err := a.Audit(c.Request.Context(), app, *f, limit)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, relayclient.AuditList{App: app.ID, Entries: out})
	return nil
}
