package console

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relay/control"
)

// auditLimit is how many entries the audit page shows.
const auditLimit = 200

// auditData is the audit page's.
type auditData struct {
	Actor, Action, Since, Until string
	Entries                     []channel.AuditEntry
	Error                       string
}

// auditPage lists the app's audit entries, filtered by actor, action and time (dates or
// RFC 3339 times); every entry links to the channel or bundle it changed.
func (c *Console) auditPage(g *gin.Context) {
	app, ok := c.appOf(g, readPerm)
	if !ok {
		return
	}
	d := &auditData{Actor: strings.TrimSpace(g.Query("actor")), Action: strings.TrimSpace(g.Query("action")),
		Since: strings.TrimSpace(g.Query("since")), Until: strings.TrimSpace(g.Query("until"))}
	f := control.AuditFilter{Actor: d.Actor, Action: d.Action}
	var bad []string
	for _, t := range []struct {
		v   string
		to  *time.Time
		end bool
	}{{d.Since, &f.Since, false}, {d.Until, &f.Until, true}} {
		if t.v == "" {
			continue
		}
		v, err := parseWhen(t.v, t.end)
		if err != nil {
			bad = append(bad, t.v)
			continue
		}
		*t.to = v
	}
	status := http.StatusOK
	if len(bad) > 0 {
		status = http.StatusBadRequest
		d.Error = "Times must be dates (2025-01-31) or RFC 3339 times (2025-01-31T12:00:00Z); not understood: " + strings.Join(bad, ", ")
	} else {
		var err error
		if d.Entries, err = c.api.Audit(g.Request.Context(), app, f, auditLimit); err != nil {
			c.fail(g, err)
			return
		}
	}
	c.render(g, status, "audit", &page{Title: "Audit · " + app.ID, Session: sessionOf(g), App: app, Data: d})
}

// parseWhen reads a date (the start of the day, or its end when end is set) or an RFC 3339 time.
func parseWhen(s string, end bool) (time.Time, error) {
	if t, err := time.Parse("2006-01-02", s); err == nil {
		if end {
			t = t.Add(24*time.Hour - time.Nanosecond)
		}
		return t, nil
	}
	return time.Parse(time.RFC3339, s)
}

func itoa(n int) string { return strconv.Itoa(n) }
