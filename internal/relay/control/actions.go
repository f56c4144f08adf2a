package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relayclient"
)

// The admin actions, one implementation each. The admin API's handlers (admin.go) decode a
// request and call them; the console (package console) calls them from its forms. Each
// checks the caller's permission on the app itself, so no surface can forget to, writes one
// audit entry naming the caller through Store.UpdateState, and returns the channel as
// stored afterwards. A refused action returns an error that [Refusal] describes.

// Caller is who asks for an action: the principal the request authenticated as, and the
// client address the audit log records with it.
type Caller struct {
	Principal *access.Principal
	IP        string
}

// actor is the audit log's name for the caller.
func (by Caller) actor() *channel.Actor {
	p := by.Principal
	return &channel.Actor{Kind: string(p.Kind), ID: p.ID, Name: p.Name, Email: p.Email, Issuer: p.Issuer, IP: by.IP}
}

// Refusal describes an error returned by an action or a lookup of the API: the HTTP status
// and the public message the admin API would answer with. An error that is not a refusal
// (an internal failure, whose cause must not be shown) reports 500 and "internal error".
func Refusal(err error) (status int, message string) {
	var he *httpError
	if errors.As(err, &he) {
		return he.Status, he.Msg
	}
	return http.StatusInternalServerError, "internal error"
}

// App returns the configured app id if the principal has perm on it. An app that is not
// configured is refused like one the principal may not use (403), unless the principal may
// read every app (then 404): app ids do not leak to narrow credentials.
func (a *API) App(p *access.Principal, id string, perm access.Permission) (*channel.App, error) {
	app := a.apps[id]
	if app == nil {
		if _, all := p.Apps(); all {
			return nil, errorf(http.StatusNotFound, "app_not_found", "app %q is not configured on this relay", id)
		}
		return nil, forbidden(perm, id)
	}
	if !p.Can(app.ID, perm) {
		return nil, forbidden(perm, app.ID)
	}
	return app, nil
}

// Apps returns the configured apps the principal may read, in configuration order.
func (a *API) Apps(p *access.Principal) []*channel.App {
	var out []*channel.App
	for i := range a.cfg.Apps {
		if p.Can(a.cfg.Apps[i].ID, access.Read) {
			out = append(out, &a.cfg.Apps[i])
		}
	}
	return out
}

// target resolves the app and channel of an action and checks the caller's permission.
func (a *API) target(by Caller, appID, ch string, perm access.Permission) (*channel.App, error) {
	app, err := a.App(by.Principal, appID, perm)
	if err != nil {
		return nil, err
	}
	if _, ok := app.Channels[ch]; !ok {
		return nil, errorf(http.StatusNotFound, "channel_not_found", "app %q has no channel %q (configured: %v)", app.ID, ch, app.ChannelNames())
	}
	return app, nil
}

// Channels returns every configured channel of the app with its state, sorted by name.
func (a *API) Channels(ctx context.Context, app *channel.App) ([]relayclient.ChannelView, error) {
	states, err := a.store.ListStates(ctx, app.ID)
	if err != nil {
		return nil, storeError("list states", err)
	}
	byName := map[string]*channel.State{}
	for _, s := range states {
		byName[s.Channel] = s
	}
	out := []relayclient.ChannelView{}
	for _, name := range app.ChannelNames() {
		st := byName[name]
		if st == nil {
			st = &channel.State{App: app.ID, Channel: name}
		}
		out = append(out, a.view(app, st))
	}
	return out, nil
}

// Bundle loads a registered bundle of the app; a missing one is a 404.
func (a *API) Bundle(ctx context.Context, app *channel.App, version string) (*channel.Bundle, error) {
	b, err := a.store.GetBundle(ctx, app.ID, version)
	if errors.Is(err, channel.ErrNotFound) {
		return nil, errorf(http.StatusNotFound, "bundle_not_found", "app %q has no bundle %q", app.ID, version)
	}
	if err != nil {
		return nil, storeError("get bundle", err)
	}
	return b, nil
}

// change applies fn to one channel through Store.UpdateState with an audit entry of cause
// (always starting with "admin") naming the caller, calls OnChange when the state changed,
// and returns the channel. fn may fill the entry's Before and After.
func (a *API) change(ctx context.Context, by Caller, app *channel.App, ch, action, cause string, fn func(s *channel.State, e *channel.AuditEntry) (version, from string, changed bool, err error)) (*relayclient.ChangeResult, error) {
	changed := false
	actor := by.actor()
	st, err := a.updateState(ctx, app.ID, ch, func(s *channel.State) (*channel.AuditEntry, error) {
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
			return nil, &httpError{Status: http.StatusConflict, Code: "conflict", Msg: err.Error(), Err: err}
		case errors.Is(err, channel.ErrInvalidRollout), errors.Is(err, channel.ErrInvalidRange), errors.Is(err, channel.ErrNotInChannel):
			return nil, &httpError{Status: http.StatusBadRequest, Code: "bad_request", Msg: err.Error(), Err: err}
		}
		var he *httpError
		if errors.As(err, &he) {
			return nil, err
		}
		return nil, storeError(action, err)
	}
	if changed {
		if action == "promote" || action == "complete" || action == "rollback" {
			a.metrics.promotions.WithLabelValues("admin").Inc()
		}
		a.onChange(app.ID)
	}
	a.logger(ctx).InfoContext(ctx, "admin change", "app", app.ID, "channel", ch, "action", action, "changed", changed, "version", st.Version, "actor", actor.String())
	return &relayclient.ChangeResult{Changed: changed, Channel: a.view(app, st)}, nil
}

// Promote makes version (a registered bundle, or "builtin") the channel's stable version.
// It needs the deploy permission.
func (a *API) Promote(ctx context.Context, by Caller, appID, ch, version string) (*relayclient.ChangeResult, error) {
	return a.PromoteWith(ctx, by, appID, ch, relayclient.PromoteRequest{Version: version})
}

// PromoteWith makes req.Version the channel's stable version, as [API.Promote] does, and
// when req.Native is set also the native-version range devices must run to be offered it
// on this channel (channel.SetNative): "" or the bundle's own range removes an override.
// A range that does not parse, or one given with "builtin", is a 400 and changes nothing.
// The audit entry records the range that applied before and after when it changes.
func (a *API) PromoteWith(ctx context.Context, by Caller, appID, ch string, req relayclient.PromoteRequest) (*relayclient.ChangeResult, error) {
	app, err := a.target(by, appID, ch, access.Deploy)
	if err != nil {
		return nil, err
	}
	version := req.Version
	if version == "" {
		return nil, errorf(http.StatusBadRequest, "bad_request", "version is required")
	}
	b := &channel.Bundle{Version: version}
	if version != builtin {
		if b, err = a.Bundle(ctx, app, version); err != nil {
			return nil, err
		}
	}
	native, err := overrideOf(req, b)
	if err != nil {
		return nil, err
	}
	return a.change(ctx, by, app, ch, "promote", "admin", func(s *channel.State, e *channel.AuditEntry) (string, string, bool, error) {
		from := s.Version
		before := nativeView(s, b)
		changed := channel.Promote(s, version)
		if req.Native != nil {
			nc, err := channel.SetNative(s, version, native)
			if err != nil {
				return "", "", false, err
			}
			if after := nativeView(s, b); nc && after != before {
				if e.Before, err = json.Marshal(before); err == nil {
					e.After, err = json.Marshal(after)
				}
				if err != nil {
					return "", "", false, fmt.Errorf("encode native range: %w", err)
				}
			}
			changed = changed || nc
		}
		return version, from, changed, nil
	})
}

// overrideOf checks the native range a promotion asks for and returns the override to
// store: "" when it asks for none or for the bundle's own range.
func overrideOf(req relayclient.PromoteRequest, b *channel.Bundle) (string, error) {
	if req.Native == nil {
		return "", nil
	}
	native := strings.TrimSpace(*req.Native)
	if err := channel.CheckNativeOverride(req.Version, native); err != nil {
		hint := ` (npm semver range syntax, e.g. ">=2.0.0 <3.0.0"; "*" admits every native version)`
		if req.Version == builtin {
			hint = "; leave native out"
		}
		return "", &httpError{Status: http.StatusBadRequest, Code: "bad_request", Msg: "native: " + err.Error() + hint, Err: err}
	}
	if native == b.Native {
		native = ""
	}
	return native, nil
}

// nativeRange is how the audit log shows the native range that applies to a version on a
// channel: the range and whether it was set at promotion ("promote") or is the bundle's
// own ("bundle"). An empty range admits every native version.
type nativeRange struct {
	Native string `json:"native"`
	Source string `json:"source"`
}

func nativeView(s *channel.State, b *channel.Bundle) nativeRange {
	if r, ok := s.NativeFor(b.Version); ok {
		return nativeRange{Native: r, Source: "promote"}
	}
	return nativeRange{Native: b.Native, Source: "bundle"}
}

// Rollback sends the channel back to the version it served before. It needs the deploy
// permission; a channel without history is a 409.
func (a *API) Rollback(ctx context.Context, by Caller, appID, ch string) (*relayclient.ChangeResult, error) {
	app, err := a.target(by, appID, ch, access.Deploy)
	if err != nil {
		return nil, err
	}
	return a.change(ctx, by, app, ch, "rollback", "admin", func(s *channel.State, _ *channel.AuditEntry) (string, string, bool, error) {
		from := s.Version
		to, err := channel.Rollback(s)
		if err != nil {
			return "", "", false, err
		}
		return to, from, true, nil
	})
}

// SetRollout offers version (a registered bundle) to percent (0 to 100, required) of the
// channel's devices. It needs the deploy permission.
func (a *API) SetRollout(ctx context.Context, by Caller, appID, ch, version string, percent *int) (*relayclient.ChangeResult, error) {
	app, err := a.target(by, appID, ch, access.Deploy)
	if err != nil {
		return nil, err
	}
	switch {
	case version == "":
		return nil, errorf(http.StatusBadRequest, "bad_request", "version is required")
	case percent == nil:
		return nil, errorf(http.StatusBadRequest, "bad_request", "percent is required (0 to 100)")
	case *percent < 0 || *percent > 100:
		return nil, errorf(http.StatusBadRequest, "bad_request", "percent must be 0 to 100")
	case version == builtin:
		return nil, errorf(http.StatusBadRequest, "bad_request", "builtin cannot be rolled out; promote it")
	}
	if _, err := a.Bundle(ctx, app, version); err != nil {
		return nil, err
	}
	pct := *percent
	return a.change(ctx, by, app, ch, "rollout", fmt.Sprintf("admin (%d%%)", pct), func(s *channel.State, _ *channel.AuditEntry) (string, string, bool, error) {
		before := s.Rollout
		if err := channel.SetRollout(s, version, pct); err != nil {
			return "", "", false, err
		}
		changed := before == nil || *before != *s.Rollout
		return version, s.Version, changed, nil
	})
}

// RolloutOps are the operations [API.RolloutOp] takes.
var RolloutOps = []string{relayclient.RolloutPause, relayclient.RolloutResume, relayclient.RolloutComplete, relayclient.RolloutCancel}

// RolloutOp pauses, resumes, completes or cancels the channel's rollout. It needs the
// deploy permission; an unknown op is a 404 and a channel without a rollout a 409.
func (a *API) RolloutOp(ctx context.Context, by Caller, appID, ch, op string) (*relayclient.ChangeResult, error) {
	app, err := a.target(by, appID, ch, access.Deploy)
	if err != nil {
		return nil, err
	}
	var apply func(*channel.State) error
	switch op {
	case relayclient.RolloutPause:
		apply = channel.PauseRollout
	case relayclient.RolloutResume:
		// Resuming a plan a gate paused restarts its step: only a person does this.
		apply = func(s *channel.State) error { return channel.ResumePlan(s, a.now()) }
	case relayclient.RolloutComplete:
		apply = channel.CompleteRollout
	case relayclient.RolloutCancel:
		apply = channel.CancelRollout
	default:
		return nil, errorf(http.StatusNotFound, "not_found", "unknown rollout operation %q (pause, resume, complete, cancel)", op)
	}
	return a.change(ctx, by, app, ch, op, "admin", func(s *channel.State, _ *channel.AuditEntry) (string, string, bool, error) {
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

// SetPolicy overrides the channel's configured policy with in, or removes the override
// when in is nil; the audit entry records the effective policy before and after. It needs
// the manage permission.
func (a *API) SetPolicy(ctx context.Context, by Caller, appID, ch string, in *relayclient.PolicyOverride) (*relayclient.ChangeResult, error) {
	app, err := a.target(by, appID, ch, access.Manage)
	if err != nil {
		return nil, err
	}
	var p *channel.Policy
	if in != nil {
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
			return nil, &httpError{Status: http.StatusBadRequest, Code: "bad_request", Msg: joinMessages(err), Err: err}
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
	return a.change(ctx, by, app, ch, "policy", "admin", func(s *channel.State, e *channel.AuditEntry) (string, string, bool, error) {
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

// device checks a device id an action names.
func checkDevice(device string) error {
	if !channel.ValidDeviceID(device) {
		return errorf(http.StatusBadRequest, "bad_request",
			"device %q is not a device id the relay accepts (1 to 128 printable ASCII characters, no space); copy it from the device's logs or stats", device)
	}
	return nil
}

// FailedVersions returns the versions a device of the app reported update_fail for (the
// relay does not offer them to it again). It needs the read permission.
func (a *API) FailedVersions(ctx context.Context, by Caller, appID, device string) (*relayclient.DeviceView, error) {
	app, err := a.App(by.Principal, appID, access.Read)
	if err != nil {
		return nil, err
	}
	if err := checkDevice(device); err != nil {
		return nil, err
	}
	failed, err := a.store.FailedVersions(ctx, app.ID, device)
	if err != nil {
		return nil, storeError("failed versions", err)
	}
	if failed == nil {
		failed = []string{}
	}
	return &relayclient.DeviceView{App: app.ID, Device: device, Failed: failed}, nil
}

// ClearFailedVersions forgets the versions a device reported update_fail for, so every
// relay instance offers them to it again (the device path reads them from the store on
// each update check that would offer a bundle; nothing caches them). The store appends
// an audit entry (clear_failed, naming the caller and the versions) in the same step,
// only when there was something to forget. It needs the manage permission.
func (a *API) ClearFailedVersions(ctx context.Context, by Caller, appID, device string) (*relayclient.ClearFailedResult, error) {
	app, err := a.App(by.Principal, appID, access.Manage)
	if err != nil {
		return nil, err
	}
	if err := checkDevice(device); err != nil {
		return nil, err
	}
	actor := by.actor()
	e := &channel.AuditEntry{Time: a.now().UTC(), App: app.ID, Action: "clear_failed", Cause: "admin", Actor: actor}
	cleared, err := a.store.ClearFailedVersions(ctx, app.ID, device, e)
	if err != nil {
		return nil, storeError("clear failed versions", err)
	}
	if cleared == nil {
		cleared = []string{}
	}
	a.logger(ctx).InfoContext(ctx, "admin change", "app", app.ID, "device", device, "action", "clear_failed",
		"cleared", len(cleared), "actor", actor.String())
	return &relayclient.ClearFailedResult{App: app.ID, Device: device, Cleared: cleared, Changed: len(cleared) > 0}, nil
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
