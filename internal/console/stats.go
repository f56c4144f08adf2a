package console

import (
	"context"
	"encoding/csv"
	"html/template"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/channel"
)

// Metrics the charts read (besides channel.MetricCheck): installs are the plugin's "set";
// failures its failed downloads, failed updates (the plugin then rolls back) and failed sets.
const metricInstall = "set"

var failureMetrics = []string{"download_fail", "update_fail", "set_fail"}

// statsRange is one choice of the stats page's time range selector.
type statsRange struct {
	Name string
	Span time.Duration
	// Step is the series resolution read (channel.SeriesFine or channel.SeriesCoarse).
	Step time.Duration
}

var statsRanges = []statsRange{
	{"1h", time.Hour, channel.SeriesFine},
	{"24h", 24 * time.Hour, channel.SeriesFine},
	{"7d", 7 * 24 * time.Hour, channel.SeriesCoarse},
	{"30d", 30 * 24 * time.Hour, channel.SeriesCoarse},
}

// rangeOf returns the named range, or 24h.
func rangeOf(name string) statsRange {
	for _, r := range statsRanges {
		if r.Name == name {
			return r
		}
	}
	return statsRanges[1]
}

// window returns the buckets [from, to) of the range ending with the bucket holding now.
func (r statsRange) window(now time.Time) (from, to time.Time) {
	to = now.UTC().Truncate(r.Step).Add(r.Step)
	return to.Add(-r.Span), to
}

// trend is an app's last 24 hours on the apps page.
type trend struct {
	Checks, Installs, Failures int64
	Spark                      template.HTML
}

// trend reads the app's last 24 hours of checks, installs and failures; nil without a
// series store.
func (c *Console) trend(ctx context.Context, app string, now time.Time) (*trend, error) {
	if c.series == nil {
		return nil, nil
	}
	r := statsRange{"24h", 24 * time.Hour, channel.SeriesCoarse}
	from, to := r.window(now)
	pts, err := c.series.Series(ctx, app, channel.SeriesQuery{From: from, To: to, Step: r.Step})
	if err != nil {
		return nil, storeErr("series", err)
	}
	t := &trend{}
	t.Checks, t.Installs, t.Failures = totals(pts)
	buckets, ss := aggregate(pts, from, to, r.Step, channel.MetricCheck)
	t.Spark = sparkline("update checks per hour, last 24 hours", sum("checks", len(buckets), ss).Values)
	return t, nil
}

// totals sums the points' update checks, installs and failures.
func totals(pts []channel.SeriesPoint) (checks, installs, failures int64) {
	for _, p := range pts {
		switch {
		case p.Metric == channel.MetricCheck:
			checks += p.N
		case p.Metric == metricInstall:
			installs += p.N
		case isFailure(p.Metric):
			failures += p.N
		}
	}
	return checks, installs, failures
}

func isFailure(m string) bool {
	for _, f := range failureMetrics {
		if m == f {
			return true
		}
	}
	return false
}

// statsData is the stats page's.
type statsData struct {
	Ranges   []statsRange
	Range    statsRange
	Channel  string
	Channels []string
	// Available is false when the relay's store keeps no series.
	Available                  bool
	Adoption, Failures, PerMin *chart
	Checks, Installs, Failed   int64
	VersionTotals              []channel.VersionStats
}

// statsPage charts the app's adoption per version, failures per version and checks per
// minute over the chosen range, for one channel or all.
func (c *Console) statsPage(g *gin.Context) {
	app, ok := c.appOf(g, readPerm)
	if !ok {
		return
	}
	ctx := g.Request.Context()
	r := rangeOf(g.Query("range"))
	d := &statsData{Ranges: statsRanges, Range: r, Channels: app.ChannelNames(), Available: c.series != nil}
	if ch := g.Query("channel"); ch != "" {
		if _, ok := app.Channels[ch]; ok {
			d.Channel = ch
		}
	}
	if c.series != nil {
		from, to := r.window(c.now())
		pts, err := c.series.Series(ctx, app.ID, channel.SeriesQuery{From: from, To: to, Step: r.Step, Channel: d.Channel})
		if err != nil {
			c.fail(g, storeErr("series", err))
			return
		}
		buckets, adoption := aggregate(pts, from, to, r.Step, channel.MetricCheck)
		d.Adoption = &chart{Title: "Update checks per version (adoption)", Buckets: buckets, Series: adoption, Stacked: true, Unit: "checks"}
		_, failures := aggregate(pts, from, to, r.Step, failureMetrics...)
		d.Failures = &chart{Title: "Failures per version (failed downloads, updates, sets)", Buckets: buckets, Series: failures, Unit: "failures"}
		total := sum("checks per minute", len(buckets), adoption)
		for i := range total.Values {
			total.Values[i] /= r.Step.Minutes()
		}
		d.PerMin = &chart{Title: "Update checks per minute", Buckets: buckets, Series: []series{total}, Unit: "checks/min"}
		d.Checks, d.Installs, d.Failed = totals(pts)
	}
	vs, err := c.store.Stats(ctx, app.ID)
	if err != nil {
		c.fail(g, storeErr("stats", err))
		return
	}
	d.VersionTotals = vs
	c.render(g, http.StatusOK, "stats", &page{Title: "Stats · " + app.ID, Session: sessionOf(g), App: app, Data: d})
}

// statsCSV exports the range's series points as CSV: start, channel, version, metric, n.
func (c *Console) statsCSV(g *gin.Context) {
	app, ok := c.appOf(g, readPerm)
	if !ok {
		return
	}
	if c.series == nil {
		c.errorPage(g, http.StatusNotFound, "This relay's store keeps no time series.")
		return
	}
	r := rangeOf(g.Query("range"))
	q := channel.SeriesQuery{Step: r.Step}
	q.From, q.To = r.window(c.now())
	if ch := g.Query("channel"); ch != "" {
		if _, ok := app.Channels[ch]; ok {
			q.Channel = ch
		}
	}
	pts, err := c.series.Series(g.Request.Context(), app.ID, q)
	if err != nil {
		c.fail(g, storeErr("series", err))
		return
	}
	g.Header("Content-Type", "text/csv; charset=utf-8")
	g.Header("Content-Disposition", `attachment; filename="ferry-stats-`+r.Name+`.csv"`)
	w := csv.NewWriter(g.Writer)
	_ = w.Write([]string{"start", "channel", "version", "metric", "n"})
	// Points come sorted by start, many to a bucket: format each start once.
	var start time.Time
	var startText string
	for _, p := range pts {
		if startText == "" || !p.Start.Equal(start) {
			start, startText = p.Start, p.Start.UTC().Format(time.RFC3339)
		}
		_ = w.Write([]string{startText, csvSafe(p.Channel), csvSafe(p.Version), csvSafe(p.Metric), strconv.FormatInt(p.N, 10)})
	}
	w.Flush()
}

// csvSafe keeps a spreadsheet from reading an attacker's version as a formula.
func csvSafe(s string) string {
	if s != "" && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t' || s[0] == '\r') {
		return "'" + s
	}
	return s
}
