package console

import (
	"context"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relay/control"
	"github.com/ferryhq/ferry/internal/relayclient"
)

// channelRow is one channel on the apps and app pages.
type channelRow struct {
	relayclient.ChannelView
	// Bundle is the bundle the channel serves (nil for none, builtin, or one deleted).
	Bundle *channel.Bundle
	// Last is the channel's newest audit entry (nil when the log has none).
	Last *channel.AuditEntry
	// Native is the native range that applies to Bundle on this channel; NativeSet says it
	// was set when the version was promoted here rather than being the bundle's own.
	Native    string
	NativeSet bool
}

// appSummary is one app on the apps page.
type appSummary struct {
	App      *channel.App
	Channels []channelRow
	Trend    *trend
}

// lastScan is how many audit entries the apps page reads per app to find each channel's
// last change.
const lastScan = 200

// channelRows returns the app's channels with the bundles they serve and their last
// change, in three store round trips.
func (c *Console) channelRows(ctx context.Context, app *channel.App) ([]channelRow, error) {
	views, err := c.api.Channels(ctx, app)
	if err != nil {
		return nil, err
	}
	var versions []string
	for _, v := range views {
		if v.State.Version != "" {
			versions = append(versions, v.State.Version)
		}
	}
	bundles, err := c.bundles(ctx, app.ID, versions)
	if err != nil {
		return nil, err
	}
	entries, err := c.api.Audit(ctx, app, control.AuditFilter{}, lastScan)
	if err != nil {
		return nil, err
	}
	last := map[string]*channel.AuditEntry{}
	for i := range entries {
		e := &entries[i]
		if e.Channel != "" && last[e.Channel] == nil {
			last[e.Channel] = e
		}
	}
	rows := make([]channelRow, len(views))
	for i, v := range views {
		rows[i] = channelRow{ChannelView: v, Bundle: bundles[v.State.Version], Last: last[v.Name]}
		if b := rows[i].Bundle; b != nil {
			rows[i].Native = v.State.NativeRange(b)
			_, rows[i].NativeSet = v.State.NativeFor(b.Version)
		}
	}
	return rows, nil
}

// bundles looks several bundles up in one round trip.
func (c *Console) bundles(ctx context.Context, app string, versions []string) (map[string]*channel.Bundle, error) {
	if len(versions) == 0 {
		return map[string]*channel.Bundle{}, nil
	}
	return c.store.GetBundles(ctx, app, versions)
}

// appsPage lists every app the principal may read, with its channels and 24 hours' trend.
func (c *Console) appsPage(g *gin.Context) {
	ctx := g.Request.Context()
	s := sessionOf(g)
	var out []appSummary
	now := c.now()
	for _, app := range c.api.Apps(s.Principal()) {
		rows, err := c.channelRows(ctx, app)
		if err != nil {
			c.fail(g, err)
			return
		}
		tr, err := c.trend(ctx, app.ID, now)
		if err != nil {
			c.fail(g, err)
			return
		}
		out = append(out, appSummary{App: app, Channels: rows, Trend: tr})
	}
	c.render(g, 200, "apps", &page{Title: "Apps", Session: s, Data: struct {
		Apps []appSummary
		Now  time.Time
	}{out, now}})
}

// appData is the app page's.
type appData struct {
	Channels []channelRow
	Bundles  []*channel.Bundle
	Now      time.Time
}

// appPage shows one app: its channels and its most recent bundles.
func (c *Console) appPage(g *gin.Context) {
	app, ok := c.appOf(g, readPerm)
	if !ok {
		return
	}
	ctx := g.Request.Context()
	rows, err := c.channelRows(ctx, app)
	if err != nil {
		c.fail(g, err)
		return
	}
	bs, err := c.store.ListBundles(ctx, app.ID, bundleLimit)
	if err != nil {
		c.fail(g, storeErr("list bundles", err))
		return
	}
	c.render(g, 200, "app", &page{Title: app.ID, Session: sessionOf(g), App: app,
		Data: &appData{Channels: rows, Bundles: bs, Now: c.now()}})
}
