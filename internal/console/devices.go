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
	// CanClear is set when the store can clear failed versions and the principal may.
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
	_, clearer := c.store.(FailedClearer)
	d.CanClear = clearer && p.Can("manage")
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

// clearFailed forgets a device's failed versions (admin), so it is offered them again.
func (c *Console) clearFailed(g *gin.Context) {
	app, ok := c.appOf(g, managePerm)
	if !ok {
		return
	}
	fc, ok := c.store.(FailedClearer)
	if !ok {
		c.errorPage(g, http.StatusNotImplemented, "This relay's store cannot clear failed versions.")
		return
	}
	dev := strings.TrimSpace(g.PostForm("device"))
	if !channel.ValidDeviceID(dev) {
		c.errorPage(g, http.StatusBadRequest, "That is not a device id the relay accepts.")
		return
	}
	if err := fc.ClearFailedVersions(g.Request.Context(), app.ID, dev); err != nil {
		c.fail(g, storeErr("clear failed versions", err))
		return
	}
	g.Redirect(http.StatusSeeOther, Root+"apps/"+url.PathEscape(app.ID)+"/devices?done=cleared&device="+url.QueryEscape(dev))
}
