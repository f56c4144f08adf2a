package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relayclient"
)

// preflight serves POST /api/v1/bundles/preflight: the checks a registration of the bundle
// will meet that do not need its files (credentials, app, repository, channel, ref rules,
// an existing version with another checksum), so a publisher can stop before uploading
// anything. It reads the store and changes nothing. Refusals use the registration's codes,
// plus 422 no_matching_rule for a ref that would ship nothing.
func (a *API) preflight(c *gin.Context) error {
	ctx := c.Request.Context()
	who, body, err := a.authenticateRegistration(c, MaxAdminBody)
	if err != nil {
		return err
	}
	req, err := parsePreflight(body)
	if err != nil {
		return err
	}
	if who.Method == "token" && !who.token.Can(req.AppID, access.Publish) {
		return forbidden(access.Publish, req.AppID)
	}
	app := a.apps[req.AppID]
	if app == nil {
		return errorf(http.StatusNotFound, "app_not_found", "app %q is not configured on this relay", req.AppID)
	}
	b := &channel.Bundle{AppID: req.AppID, Version: req.Version, Checksum: req.Checksum, Commit: req.Commit, Ref: req.Ref,
		Repository: req.Repository, Channel: req.Channel, Native: req.Native}
	if err := a.bindIdentity(ctx, app, who, b); err != nil {
		return err
	}
	if err := checkAgainstApp(app, b); err != nil {
		return err
	}
	resp := relayclient.Preflight{App: app.ID, Version: b.Version, Ref: b.Ref, Commit: b.Commit}
	switch old, err := a.store.GetBundle(ctx, app.ID, b.Version); {
	case errors.Is(err, channel.ErrNotFound):
	case err != nil:
		return storeError("get bundle", err)
	case old.Checksum != b.Checksum:
		return errorf(http.StatusConflict, "version_conflict",
			"version %q of app %q is already registered with another checksum; bundles are immutable, register a new version", b.Version, app.ID)
	default:
		resp.Registered = true
	}

	ch := b.Channel
	if ch == "" && b.Ref != "" {
		ch, _ = app.MatchRef(b.Ref)
	}
	_, configured := app.Channels[ch]
	fromPR := who.fromPullRequest(b.Ref)
	switch {
	case ch == "" || !configured:
		reason := "no rule of the app matches the ref " + quoteOrEmpty(b.Ref) + "; " + describeRules(app.Rules)
		if ch != "" {
			reason = fmt.Sprintf("the ref %s maps to channel %q, which is not configured (configured: %s)", quoteOrEmpty(b.Ref), ch, strings.Join(app.ChannelNames(), ", "))
		}
		if !req.RegisterOnly && !fromPR {
			return errorf(http.StatusUnprocessableEntity, "no_matching_rule",
				"%s: the bundle would be registered but no channel would serve it; add a rule for the ref (rules match full refs such as refs/heads/main), name a channel, or opt into register-only if a tag push promotes this build later", reason)
		}
		resp.Reason = reason
	case fromPR:
		resp.Channel = ch
		resp.Reason = "bundles built for pull requests are registered but never move a channel"
	case b.Channel != "" && !who.mayNameChannel(app, b.Ref, b.Channel):
		resp.Channel = ch
		resp.Reason = fmt.Sprintf("the ref %s may not name channel %q: no rule of the app maps it there and the channel's allow_refs do not list it; the bundle would be registered but move no channel",
			quoteOrEmpty(b.Ref), b.Channel)
	default:
		resp.Channel = ch
	}
	a.logger(ctx).InfoContext(ctx, "preflight passed", "app", app.ID, "version", b.Version, "method", who.Method,
		"ref", b.Ref, "channel", resp.Channel, "registered", resp.Registered)
	c.JSON(http.StatusOK, resp)
	return nil
}

// parsePreflight decodes a preflight body strictly and validates its fields as a
// registration's, reporting every problem at once.
func parsePreflight(body []byte) (*relayclient.PreflightRequest, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var r relayclient.PreflightRequest
	if err := dec.Decode(&r); err != nil {
		return nil, &httpError{Status: http.StatusBadRequest, Code: "invalid_json", Msg: "the body is not a preflight JSON object: " + jsonErrorText(err), Err: err}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errorf(http.StatusBadRequest, "invalid_json", "the body must hold exactly one JSON object")
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if r.AppID == "" {
		bad("app_id is required")
	} else if len(r.AppID) > 255 || !printable(r.AppID) {
		bad("app_id must be at most 255 printable characters")
	}
	if err := validVersion(r.Version); err != nil {
		bad("version: %w", err)
	}
	if !isHex(r.Checksum, 64) && !isHex(r.Checksum, 512) {
		bad("checksum must be the bundle's checksum: 64 (plain) or 512 (encrypted, V3) lowercase hex characters")
	}
	if r.Commit != "" && !isHex(r.Commit, 40) && !isHex(r.Commit, 64) {
		bad("commit must be a full lowercase hex commit id (40 or 64 characters)")
	}
	if r.Ref != "" && (!strings.HasPrefix(r.Ref, "refs/") || len(r.Ref) > maxRefLen || !printable(r.Ref) || strings.ContainsAny(r.Ref, " \\")) {
		bad("ref must be a full git ref such as refs/heads/main or refs/tags/v1.2.0")
	}
	if r.Channel != "" && (len(r.Channel) > 128 || !printable(r.Channel) || strings.ContainsAny(r.Channel, " /\\")) {
		bad("channel must be a channel name (at most 128 characters, no spaces or slashes)")
	}
	if r.Native != "" {
		if err := channel.ParseRange(r.Native); err != nil {
			bad("native: %w", err)
		}
	}
	if r.Repository != "" && !validRepository(r.Repository) {
		bad("repository must be \"owner/name\"")
	}
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(x, y error) int { return strings.Compare(x.Error(), y.Error()) })
		err := errors.Join(errs...)
		return nil, &httpError{Status: http.StatusBadRequest, Code: "invalid_preflight", Msg: joinMessages(err), Err: err}
	}
	return &r, nil
}
