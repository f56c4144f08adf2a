package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relayclient"
)

// The token API (docs/access.md, "API tokens"): who may manage a token is who has Manage on
// every app it grants (for a "*" grant, Manage on every app). Managing an app is the most
// one can hold on it, so such a caller may grant any role there, publisher included, and
// never more than it has.

func (a *API) mountTokens(r gin.IRouter) {
	r.POST(relayclient.TokensPath, a.authed, a.handle(a.createToken))
	r.GET(relayclient.TokensPath, a.authed, a.handle(a.listTokens))
	r.DELETE(relayclient.TokensPath+"/:id", a.authed, a.handle(a.revokeToken))
}

// mayManage reports whether p may manage a token with grants.
func mayManage(p *access.Principal, grants []access.Grant) bool {
	for _, g := range grants {
		if !p.Can(g.App, access.Manage) {
			return false
		}
	}
	return len(grants) > 0
}

// auditApps are the apps whose audit log records a change to a token with grants: the apps
// it names, or every configured app for a "*" grant (the log is kept per app, and such a
// token acts on each of them).
func (a *API) auditApps(grants []access.Grant) []string {
	var apps []string
	for _, g := range grants {
		if g.App == access.AllApps {
			apps = apps[:0]
			for i := range a.cfg.Apps {
				apps = append(apps, a.cfg.Apps[i].ID)
			}
			break
		}
		if !slices.Contains(apps, g.App) {
			apps = append(apps, g.App)
		}
	}
	slices.Sort(apps)
	return apps
}

func (a *API) createToken(c *gin.Context) error {
	ctx := c.Request.Context()
	p := principalOf(c)
	var req relayclient.TokenRequest
	if err := decodeAdmin(c, &req); err != nil {
		return err
	}
	if err := req.Check(); err != nil {
		return &httpError{Status: http.StatusBadRequest, Code: "bad_request", Msg: joinMessages(err), Err: err}
	}
	for _, g := range req.Grants {
		if !p.Can(g.App, access.Manage) {
			return errorf(http.StatusForbidden, "forbidden", "this credential may not grant roles on %s: that needs the admin role on it", appLabel(g.App))
		}
		if g.App != access.AllApps && a.apps[g.App] == nil {
			return errorf(http.StatusBadRequest, "bad_request", "grant %s names app %q, which is not configured on this relay", g, g.App)
		}
	}
	text, t, err := access.NewToken()
	if err != nil {
		return err
	}
	now := a.now().UTC()
	actor := actorOf(c)
	t.Name, t.Grants, t.CreatedBy, t.CreatedAt = req.Name, req.Grants, actor.String(), now
	if req.ExpiresIn != "" {
		d, _ := relayclient.ParseLifetime(req.ExpiresIn) // checked above
		t.ExpiresAt = now.Add(d)
	}
	if err := a.store.PutToken(ctx, t); err != nil {
		return storeError("put token", err)
	}
	info := relayclient.NewTokenInfo(t)
	if err := a.auditToken(ctx, "token_create", info, nil, actor); err != nil {
		// A token nobody's audit log mentions must not work: revoke it.
		if _, rerr := a.store.RevokeToken(context.WithoutCancel(ctx), t.ID, now); rerr != nil {
			a.logger(ctx).ErrorContext(ctx, "revoke the token whose creation could not be audited", "token", t.ID, "error", rerr)
		}
		return err
	}
	a.logger(ctx).InfoContext(ctx, "API token created", "token", t.ID, "name", t.Name, "grants", grantsString(t.Grants), "actor", actor.String())
	c.JSON(http.StatusCreated, relayclient.CreatedToken{Token: text, Record: info})
	return nil
}

func (a *API) listTokens(c *gin.Context) error {
	p := principalOf(c)
	ts, err := a.store.ListTokens(c.Request.Context())
	if err != nil {
		return storeError("list tokens", err)
	}
	out := relayclient.TokenList{Tokens: []relayclient.TokenInfo{}}
	for _, t := range ts {
		if mayManage(p, t.Grants) {
			out.Tokens = append(out.Tokens, relayclient.NewTokenInfo(t))
		}
	}
	c.JSON(http.StatusOK, out)
	return nil
}

func (a *API) revokeToken(c *gin.Context) error {
	ctx := c.Request.Context()
	p := principalOf(c)
	id := c.Param("id")
	// A token the caller may not manage is answered like an unknown one, and both like a
	// forbidden request unless the caller manages every app.
	notFound := func() error {
		if p.Can(access.AllApps, access.Manage) {
			return errorf(http.StatusNotFound, "token_not_found", "there is no API token %q", id)
		}
		return errorf(http.StatusForbidden, "forbidden", "this credential may not revoke an API token %q: that needs the admin role on every app the token grants", id)
	}
	if len(id) > 64 || !printable(id) {
		return notFound()
	}
	t, err := a.store.GetToken(ctx, id)
	if errors.Is(err, channel.ErrNotFound) {
		return notFound()
	}
	if err != nil {
		return storeError("get token", err)
	}
	if !mayManage(p, t.Grants) {
		return notFound()
	}
	wasRevoked := !t.RevokedAt.IsZero()
	before := relayclient.NewTokenInfo(t)
	t, err = a.store.RevokeToken(ctx, id, a.now().UTC())
	if err != nil {
		return storeError("revoke token", err)
	}
	a.tokens.forget(id)
	info := relayclient.NewTokenInfo(t)
	actor := actorOf(c)
	if !wasRevoked {
		if err := a.auditToken(ctx, "token_revoke", info, &before, actor); err != nil {
			return err
		}
		a.logger(ctx).InfoContext(ctx, "API token revoked", "token", t.ID, "name", t.Name, "actor", actor.String())
	}
	c.JSON(http.StatusOK, info)
	return nil
}

// auditToken records a token's creation or revocation in the log of every app it grants.
func (a *API) auditToken(ctx context.Context, action string, after relayclient.TokenInfo, before *relayclient.TokenInfo, actor *channel.Actor) error {
	afterJSON, err := json.Marshal(after)
	if err != nil {
		return fmt.Errorf("encode token: %w", err)
	}
	var beforeJSON json.RawMessage
	if before != nil {
		if beforeJSON, err = json.Marshal(before); err != nil {
			return fmt.Errorf("encode token: %w", err)
		}
	}
	cause := fmt.Sprintf("admin: API token %s (%s) with %s", after.Name, after.ID, grantsString(after.Grants))
	for _, app := range a.auditApps(after.Grants) {
		e := channel.AuditEntry{Time: a.now().UTC(), App: app, Action: action, Cause: cause, Actor: actor, Before: beforeJSON, After: afterJSON}
		if err := a.store.AppendAudit(ctx, e); err != nil {
			return storeError("append audit", err)
		}
	}
	return nil
}

func grantsString(gs []access.Grant) string {
	parts := make([]string, len(gs))
	for i, g := range gs {
		parts[i] = g.String()
	}
	return strings.Join(parts, ", ")
}

func appLabel(app string) string {
	if app == access.AllApps {
		return "every app (\"*\")"
	}
	return fmt.Sprintf("app %q", app)
}
