package console

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
)

// page is what every template gets: the layout's fields, and the page's own in Data.
type page struct {
	Title string
	// Session is the signed-in session (nil on the sign-in and some error pages).
	Session *access.Session
	// App is the app the page is about, for the navigation; nil on the apps page.
	App *channel.App
	// Notice is a one-line message shown above the content (after an action).
	Notice string
	Data   any
}

// Who is how the layout names the signed-in holder.
func (p *page) Who() string {
	s := p.Session
	switch {
	case s == nil:
		return ""
	case s.Kind == access.Bootstrap:
		return "bootstrap token"
	case s.Kind == access.TokenKind:
		return "token " + s.Name
	case s.Email != "":
		return s.Email
	case s.Name != "":
		return s.Name
	}
	return s.Subject
}

// CSRF is the session's CSRF token, for the layout's sign-out form.
func (p *page) CSRF() string {
	if p.Session == nil {
		return ""
	}
	return p.Session.CSRF
}

// Can reports whether the signed-in principal has the permission ("read", "deploy",
// "manage") on the page's app: the templates render an action's form only when it does.
func (p *page) Can(perm string) bool {
	if p.Session == nil || p.App == nil {
		return false
	}
	var pm access.Permission
	switch perm {
	case "read":
		pm = access.Read
	case "deploy":
		pm = access.Deploy
	case "manage":
		pm = access.Manage
	default:
		return false
	}
	return p.Session.Principal().Can(p.App.ID, pm)
}

var funcs = template.FuncMap{
	// seg escapes one path segment of a console URL (versions may hold '+', '#', '?').
	"seg": url.PathEscape,
	// deref shows the value of an optional number.
	"deref": func(p *int64) int64 { return *p },
	// query escapes a query value.
	"query": url.QueryEscape,
	"when":  when,
	"ago":   ago,
	"bytes": humanBytes,
	"root":  func() string { return Root },
	"short": func(s string, n int) string {
		if len(s) <= n {
			return s
		}
		return s[:n]
	},
	"actor": func(a *channel.Actor) string { return a.String() },
	"add":   func(a, b int) int { return a + b },
	"list3": func(a, b, c *chart) []*chart { return []*chart{a, b, c} },
	"list":  func(v ...string) []string { return v },
	"has":   func(s []string, v string) bool { return slices.Contains(s, v) },
	// ops are the rollout operations that apply to a rollout.
	"ops": func(paused bool) []string {
		if paused {
			return []string{"resume", "complete", "cancel"}
		}
		return []string{"pause", "complete", "cancel"}
	},
	// dict builds a map from key, value pairs, to pass several values to a partial.
	"dict": func(kv ...any) map[string]any {
		m := make(map[string]any, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			k, _ := kv[i].(string)
			m[k] = kv[i+1]
		}
		return m
	},
}

// parsePages parses every page template with the layout.
func parsePages() (map[string]*template.Template, error) {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/_*.html")
	if err != nil {
		return nil, fmt.Errorf("console: parse layout: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		base := path.Base(n)
		if base == "layout.html" || strings.HasPrefix(base, "_") {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, fmt.Errorf("console: parse %s: %w", base, err)
		}
		pages[strings.TrimSuffix(base, ".html")] = t
	}
	return pages, nil
}

// render writes the page name with status. It renders into a buffer first, so a template
// failure is a clean 500 rather than half a page.
func (c *Console) render(g *gin.Context, status int, name string, p *page) {
	t := c.pages[name]
	var buf bytes.Buffer
	if t == nil {
		c.log.Error("console: no such page template", "page", name)
		g.String(http.StatusInternalServerError, "internal error")
		return
	}
	if err := t.ExecuteTemplate(&buf, "layout.html", p); err != nil {
		ctx := g.Request.Context()
		c.logger(ctx).ErrorContext(ctx, "console: render", "page", name, "error", err)
		g.String(http.StatusInternalServerError, "internal error")
		return
	}
	g.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

// errorPage renders msg with status.
func (c *Console) errorPage(g *gin.Context, status int, msg string) {
	p := &page{Title: http.StatusText(status), Data: msg}
	if s, ok := g.Get(sessionKey); ok {
		p.Session = s.(*access.Session)
	}
	c.render(g, status, "error", p)
}

// when formats a time for people: UTC, to the minute.
func when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// ago formats the time since t roughly ("3 h ago").
func ago(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%d days ago", int(d/(24*time.Hour)))
}

// humanBytes formats a size in bytes with a binary unit.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
