package console

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relay/control"
	"github.com/ferryhq/ferry/internal/relayclient"
)

// historyLimit is how many audit entries the channel page shows.
const historyLimit = 50

// channelData is the channel page's.
type channelData struct {
	channelRow
	// History is the channel's audit entries, newest first.
	History []channel.AuditEntry
	// Bundles are the app's recent bundles, for the promote and rollout forms.
	Bundles []*channel.Bundle
	// Previous is the version a rollback goes back to ("" when there is none).
	Previous string
	Now      time.Time
}

// channelPage shows a channel: what it serves, its history, and the forms the principal
// may use (promote, rollback, rollout, policy).
func (c *Console) channelPage(g *gin.Context) {
	app, ok := c.appOf(g, readPerm)
	if !ok {
		return
	}
	ctx := g.Request.Context()
	name := g.Param("channel")
	row, ok := c.channelRow(g, app, name)
	if !ok {
		return
	}
	d := &channelData{channelRow: *row, Now: c.now()}
	var err error
	if d.History, err = c.api.Audit(ctx, app, control.AuditFilter{}, lastScan); err != nil {
		c.fail(g, err)
		return
	}
	d.History = slices.DeleteFunc(d.History, func(e channel.AuditEntry) bool { return e.Channel != name })
	if len(d.History) > historyLimit {
		d.History = d.History[:historyLimit]
	}
	if h := d.State.History; len(h) > 0 {
		d.Previous = h[0]
	}
	if d.Bundles, err = c.store.ListBundles(ctx, app.ID, bundleLimit); err != nil {
		c.fail(g, storeErr("list bundles", err))
		return
	}
	c.render(g, http.StatusOK, "channel", &page{Title: name + " · " + app.ID, Session: sessionOf(g), App: app,
		Notice: notice(g.Query("done")), Data: d})
}

// channelRow returns the named channel of the app, or renders the refusal.
func (c *Console) channelRow(g *gin.Context, app *channel.App, name string) (*channelRow, bool) {
	rows, err := c.channelRows(g.Request.Context(), app)
	if err != nil {
		c.fail(g, err)
		return nil, false
	}
	i := slices.IndexFunc(rows, func(r channelRow) bool { return r.Name == name })
	if i < 0 {
		c.errorPage(g, http.StatusNotFound, "App "+app.ID+" has no channel "+name+".")
		return nil, false
	}
	return &rows[i], true
}

// notice is the message shown after an action redirected back (?done=…): fixed texts only,
// so a link cannot make the console say something else.
func notice(done string) string {
	switch done {
	case "promote":
		return "Promoted."
	case "rollback":
		return "Rolled back."
	case "rollout":
		return "Rollout updated."
	case relayclient.RolloutPause, relayclient.RolloutResume, relayclient.RolloutComplete, relayclient.RolloutCancel:
		return "Rollout " + done + "d."
	case "policy":
		return "Policy saved."
	case "unchanged":
		return "Nothing changed: the channel was already in that state."
	case "cleared":
		return "Failed versions cleared: the relay offers them to the device again."
	case "none_cleared":
		return "Nothing to clear: the device had no failed versions."
	}
	return ""
}

// promoteData is the promote confirmation page's.
type promoteData struct {
	Channel string
	From    string
	// FromBundle is the bundle served now (nil for none or builtin).
	FromBundle *channel.Bundle
	To         string
	// ToBundle is the bundle to promote (nil for builtin).
	ToBundle *channel.Bundle
	// FromNative and ToNative are the native ranges that apply to the two versions on
	// this channel: the one set when the version was promoted here, else the bundle's
	// own; the Set flags say which. ToNative is what the form's native field starts with.
	FromNative, ToNative       string
	FromNativeSet, ToNativeSet bool
}

// promoteConfirm shows what a promotion changes (from → to, commit, size, native range,
// signature) before the person confirms it.
func (c *Console) promoteConfirm(g *gin.Context) {
	app, ok := c.appOf(g, deployPerm)
	if !ok {
		return
	}
	ctx := g.Request.Context()
	name := g.Param("channel")
	version := strings.TrimSpace(g.Query("version"))
	if version == "" {
		c.errorPage(g, http.StatusBadRequest, "Choose a version to promote.")
		return
	}
	row, ok := c.channelRow(g, app, name)
	if !ok {
		return
	}
	st := row.State
	d := &promoteData{Channel: name, From: st.Version, FromBundle: row.Bundle, To: version,
		FromNative: row.Native, FromNativeSet: row.NativeSet}
	if version != "builtin" {
		var err error
		if d.ToBundle, err = c.api.Bundle(ctx, app, version); err != nil {
			c.fail(g, err)
			return
		}
		d.ToNative = st.NativeRange(d.ToBundle)
		_, d.ToNativeSet = st.NativeFor(version)
	}
	c.render(g, http.StatusOK, "promote", &page{Title: "Promote · " + name, Session: sessionOf(g), App: app, Data: d})
}

// done redirects back to the channel page after an action, or renders its refusal.
func (c *Console) done(g *gin.Context, res *relayclient.ChangeResult, err error, what string) {
	if err != nil {
		c.fail(g, err)
		return
	}
	if !res.Changed {
		what = "unchanged"
	}
	g.Redirect(http.StatusSeeOther, Root+"apps/"+url.PathEscape(g.Param("app"))+"/channels/"+url.PathEscape(g.Param("channel"))+"?done="+what)
}

// promote promotes the form's version; when the form has a native field (the
// confirmation page's), its range too: empty restores the bundle's own range.
func (c *Console) promote(g *gin.Context) {
	req := relayclient.PromoteRequest{Version: strings.TrimSpace(g.PostForm("version"))}
	if native, ok := g.GetPostForm("native"); ok {
		req.Native = &native
	}
	res, err := c.api.PromoteWith(g.Request.Context(), caller(g), g.Param("app"), g.Param("channel"), req)
	c.done(g, res, err, "promote")
}

func (c *Console) rollback(g *gin.Context) {
	res, err := c.api.Rollback(g.Request.Context(), caller(g), g.Param("app"), g.Param("channel"))
	c.done(g, res, err, "rollback")
}

func (c *Console) setRollout(g *gin.Context) {
	var pct *int
	if s := strings.TrimSuffix(strings.TrimSpace(g.PostForm("percent")), "%"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			c.errorPage(g, http.StatusBadRequest, "The percentage must be a whole number from 0 to 100.")
			return
		}
		pct = &n
	}
	res, err := c.api.SetRollout(g.Request.Context(), caller(g), g.Param("app"), g.Param("channel"), strings.TrimSpace(g.PostForm("version")), pct)
	c.done(g, res, err, "rollout")
}

func (c *Console) rolloutOp(g *gin.Context) {
	op := g.Param("op")
	res, err := c.api.RolloutOp(g.Request.Context(), caller(g), g.Param("app"), g.Param("channel"), op)
	c.done(g, res, err, op)
}

// setPolicy saves the policy form as the channel's override, or removes the override
// (the form's "reset" button).
func (c *Console) setPolicy(g *gin.Context) {
	var in *relayclient.PolicyOverride
	if g.PostForm("reset") == "" {
		allowEmu, allowDev := g.PostForm("allow_emulator") != "", g.PostForm("allow_dev") != ""
		in = &relayclient.PolicyOverride{
			Public:             g.PostForm("public") != "",
			AllowDeviceSelfSet: g.PostForm("allow_device_self_set") != "",
			AllowEmulator:      &allowEmu,
			AllowDev:           &allowDev,
			DisableAutoUpdate:  g.PostForm("disable_auto_update"),
			Platforms:          g.PostFormArray("platform"),
		}
	}
	res, err := c.api.SetPolicy(g.Request.Context(), caller(g), g.Param("app"), g.Param("channel"), in)
	c.done(g, res, err, "policy")
}
