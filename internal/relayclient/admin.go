package relayclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
)

// The admin API: every method sends Options.AdminToken and is never retried.

// ListChannels returns app's configured channels with their state.
func (c *Client) ListChannels(ctx context.Context, app string) (*ChannelList, error) {
	var out ChannelList
	if err := c.admin(ctx, http.MethodGet, appPath(app, "channels"), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetChannel returns one channel of app.
func (c *Client) GetChannel(ctx context.Context, app, ch string) (*ChannelView, error) {
	var out ChannelView
	if err := c.admin(ctx, http.MethodGet, appPath(app, "channels", ch), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListBundles returns app's registered bundles, newest first: at most limit of them, or
// the relay's default number when limit is 0.
func (c *Client) ListBundles(ctx context.Context, app string, limit int) (*BundleList, error) {
	var out BundleList
	if err := c.admin(ctx, http.MethodGet, appPath(app, "bundles")+limitQuery(limit), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ErrNoPaging means the relay answered a paged bundle listing without a next_cursor: it is
// older than paging (it ignored ?cursor= and sent its newest bundles).
var ErrNoPaging = errors.New("the relay does not page bundle listings (upgrade it)")

// BundlePage is the largest page [Client.AllBundles] asks for, and the most an unpaged
// listing returns (the relay's limit): an older relay's answer shorter than it is complete.
const BundlePage = 500

// ListBundlesPage returns one page of app's bundles, oldest first, starting after cursor
// ("" for the first page), and the cursor of the next page ("" after the last). limit 0
// asks for the relay's default page size. A relay without paging gives an error wrapping
// [ErrNoPaging].
func (c *Client) ListBundlesPage(ctx context.Context, app, cursor string, limit int) ([]*channel.Bundle, string, error) {
	q := url.Values{"cursor": {cursor}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out BundleList
	if err := c.admin(ctx, http.MethodGet, appPath(app, "bundles")+"?"+q.Encode(), nil, &out); err != nil {
		return nil, "", err
	}
	if out.NextCursor == nil {
		return nil, "", fmt.Errorf("list bundles of %s: %w", app, ErrNoPaging)
	}
	return out.Bundles, *out.NextCursor, nil
}

// AllBundles returns every registered bundle of app, oldest first, reading it page by page.
// From a relay without paging it takes the unpaged listing, newest first, when that is
// surely complete (fewer than [BundlePage] bundles) and otherwise fails with an error
// wrapping [ErrNoPaging], never returning a partial list.
func (c *Client) AllBundles(ctx context.Context, app string) ([]*channel.Bundle, error) {
	var all []*channel.Bundle
	cursor := ""
	seen := map[string]bool{}
	for {
		page, next, err := c.ListBundlesPage(ctx, app, cursor, BundlePage)
		if errors.Is(err, ErrNoPaging) && cursor == "" {
			return c.allUnpaged(ctx, app)
		}
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if next == "" {
			return all, nil
		}
		if seen[next] || len(page) == 0 {
			return nil, fmt.Errorf("list bundles of %s: the relay repeated cursor %q", app, next)
		}
		seen[next] = true
		cursor = next
	}
}

// allUnpaged is AllBundles against a relay without paging.
func (c *Client) allUnpaged(ctx context.Context, app string) ([]*channel.Bundle, error) {
	l, err := c.ListBundles(ctx, app, BundlePage)
	if err != nil {
		return nil, err
	}
	if len(l.Bundles) >= BundlePage {
		return nil, fmt.Errorf("list bundles of %s: %w, and it has %d or more bundles, more than one unpaged answer holds", app, ErrNoPaging, BundlePage)
	}
	return l.Bundles, nil
}

// GetBundle returns one registered bundle of app.
func (c *Client) GetBundle(ctx context.Context, app, version string) (*channel.Bundle, error) {
	var out channel.Bundle
	if err := c.admin(ctx, http.MethodGet, appPath(app, "bundles", version), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Promote makes ch serve version ("builtin": the app's own assets).
func (c *Client) Promote(ctx context.Context, app, ch, version string) (*ChangeResult, error) {
	return c.PromoteWith(ctx, app, ch, PromoteRequest{Version: version})
}

// PromoteWith makes ch serve req.Version, with the native-version range req.Native when
// it is set (see [PromoteRequest]).
func (c *Client) PromoteWith(ctx context.Context, app, ch string, req PromoteRequest) (*ChangeResult, error) {
	return c.change(ctx, http.MethodPost, appPath(app, "channels", ch, "promote"), &req)
}

// Rollback makes ch serve its previous version again.
func (c *Client) Rollback(ctx context.Context, app, ch string) (*ChangeResult, error) {
	return c.change(ctx, http.MethodPost, appPath(app, "channels", ch, "rollback"), nil)
}

// SetRollout offers version to percent (0 to 100) of ch's devices.
func (c *Client) SetRollout(ctx context.Context, app, ch, version string, percent int) (*ChangeResult, error) {
	return c.change(ctx, http.MethodPut, appPath(app, "channels", ch, "rollout"), &RolloutRequest{Version: version, Percent: &percent})
}

// ChangeRollout applies op ([RolloutPause], [RolloutResume], [RolloutComplete] or
// [RolloutCancel]) to ch's rollout.
func (c *Client) ChangeRollout(ctx context.Context, app, ch, op string) (*ChangeResult, error) {
	return c.change(ctx, http.MethodPost, appPath(app, "channels", ch, "rollout", op), nil)
}

// StartPlan starts the configured rollout plan on ch for version; the relay's rollout
// controller advances it from then on.
func (c *Client) StartPlan(ctx context.Context, app, ch, plan, version string) (*ChangeResult, error) {
	return c.change(ctx, http.MethodPost, appPath(app, "channels", ch, "plan"), &PlanRequest{Plan: plan, Version: version})
}

// GetPlan returns ch's rollout and the plan driving it.
func (c *Client) GetPlan(ctx context.Context, app, ch string) (*PlanView, error) {
	var out PlanView
	if err := c.admin(ctx, http.MethodGet, appPath(app, "channels", ch, "plan"), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetPolicy overrides ch's configured policy with p; a nil p removes the override.
func (c *Client) SetPolicy(ctx context.Context, app, ch string, p *PolicyOverride) (*ChangeResult, error) {
	return c.change(ctx, http.MethodPut, appPath(app, "channels", ch, "policy"), &PolicyRequest{Policy: p})
}

// Device returns the versions device reported update_fail for (GET …/devices?device=ID).
func (c *Client) Device(ctx context.Context, app, device string) (*DeviceView, error) {
	var out DeviceView
	if err := c.admin(ctx, http.MethodGet, appPath(app, "devices")+"?device="+url.QueryEscape(device), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ClearFailed forgets the versions device reported update_fail for, so the relay offers
// them to it again (admin role).
func (c *Client) ClearFailed(ctx context.Context, app, device string) (*ClearFailedResult, error) {
	var out ClearFailedResult
	if err := c.admin(ctx, http.MethodPost, appPath(app, "devices", "clear-failed"), &ClearFailedRequest{Device: device}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Stats returns app's device statistics per version.
func (c *Client) Stats(ctx context.Context, app string) (*Stats, error) {
	var out Stats
	if err := c.admin(ctx, http.MethodGet, appPath(app, "stats"), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Series returns app's counters selected by q (GET …/series): buckets of q.Step
// (channel.SeriesFine or channel.SeriesCoarse) starting in [q.From, q.To), filtered by
// the non-empty q.Channel, q.Version and q.Metric. A zero q.To means now, a zero q.From a
// day before q.To; the relay refuses ranges of more than 2,000 buckets.
func (c *Client) Series(ctx context.Context, app string, q channel.SeriesQuery) (*Series, error) {
	v := url.Values{}
	switch q.Step {
	case channel.SeriesCoarse:
		v.Set("step", "1h")
	case channel.SeriesFine, 0:
		v.Set("step", "5m")
	default:
		return nil, fmt.Errorf("series step %s: want %s or %s", q.Step, channel.SeriesFine, channel.SeriesCoarse)
	}
	for name, t := range map[string]time.Time{"from": q.From, "to": q.To} {
		if !t.IsZero() {
			v.Set(name, t.UTC().Format(time.RFC3339))
		}
	}
	for name, s := range map[string]string{"channel": q.Channel, "version": q.Version, "metric": q.Metric} {
		if s != "" {
			v.Set(name, s)
		}
	}
	var out Series
	if err := c.admin(ctx, http.MethodGet, appPath(app, "series")+"?"+v.Encode(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Audit returns app's audit log, newest first: at most limit entries, or the relay's
// default number when limit is 0.
func (c *Client) Audit(ctx context.Context, app string, limit int) (*AuditList, error) {
	var out AuditList
	if err := c.admin(ctx, http.MethodGet, appPath(app, "audit")+limitQuery(limit), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Notifications returns the recent deliveries of app's outgoing notifications as the
// answering relay instance logged them, newest first: at most limit, or the relay's default
// number when limit is 0.
func (c *Client) Notifications(ctx context.Context, app string, limit int) (*NotificationList, error) {
	var out NotificationList
	if err := c.admin(ctx, http.MethodGet, appPath(app, "notifications")+limitQuery(limit), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *Client) change(ctx context.Context, method, path string, in any) (*ChangeResult, error) {
	var out ChangeResult
	if err := c.admin(ctx, method, path, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func limitQuery(limit int) string {
	if limit <= 0 {
		return ""
	}
	return fmt.Sprintf("?limit=%d", limit)
}
