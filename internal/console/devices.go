package console

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/channel"
)

// devicesData is the devices page's.
type devicesData struct {
	Device string
	// Looked is set once a device id was looked up.
	Looked bool
	Failed []string
	// CanClear is set when the principal may clear failed versions (admin).
	CanClear bool
	Error    string
}

// devicesPage looks a device id up: the versions it reported failing (which the relay no
// longer offers it).
func (c *Console) devicesPage(g *gin.Context) {
	app, ok := c.appOf(g, readPerm)
	if !ok {
		return
	}
	p := &page{Title: "Devices · " + app.ID, Session: sessionOf(g), App: app, Notice: notice(g.Query("done"))}
	d := &devicesData{Device: strings.TrimSpace(g.Query("device"))}
	d.CanClear = p.Can("manage")
	p.Data = d
	status := http.StatusOK
	if d.Device != "" {
		if !channel.ValidDeviceID(d.Device) {
			status, d.Error = http.StatusBadRequest, "That is not a device id the relay accepts."
		} else {
			var err error
			if d.Failed, err = c.store.FailedVersions(g.Request.Context(), app.ID, d.Device); err != nil {
				c.fail(g, storeErr("failed versions", err))
				return
			}
			d.Looked = true
		}
	}
	c.render(g, status, "devices", p)
}

// clearFailed forgets a device's failed versions (admin), so it is offered them again,
// through the control plane's action (which checks the role and writes the audit entry).
func (c *Console) clearFailed(g *gin.Context) {
	dev := strings.TrimSpace(g.PostForm("device"))
	res, err := c.api.ClearFailedVersions(g.Request.Context(), caller(g), g.Param("app"), dev)
	if err != nil {
		c.fail(g, err)
		return
	}
	done := "cleared"
	if !res.Changed {
		done = "none_cleared"
	}
	g.Redirect(http.StatusSeeOther, Root+"apps/"+url.PathEscape(res.App)+"/devices?done="+done+"&device="+url.QueryEscape(res.Device))
}
