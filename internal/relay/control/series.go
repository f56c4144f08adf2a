package control

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relayclient"
)

// Bounds of GET …/series.
const (
	// maxSeriesBuckets is the most buckets one series request may span.
	maxSeriesBuckets = 2000
	// defaultSeriesSpan is the range when from is not given: the last day.
	defaultSeriesSpan = 24 * time.Hour
)

// parseSeriesQuery reads ?from=&to=&step=5m|1h&channel=&version=&metric=. to defaults to
// now, from to a day before to, step to 5m; the range may span at most maxSeriesBuckets.
func (a *API) parseSeriesQuery(c *gin.Context) (channel.SeriesQuery, error) {
	q := channel.SeriesQuery{To: a.now().UTC(), Channel: c.Query("channel"), Version: c.Query("version"), Metric: c.Query("metric")}
	var errs []error
	switch s := c.DefaultQuery("step", "5m"); s {
	case "5m":
		q.Step = channel.SeriesFine
	case "1h":
		q.Step = channel.SeriesCoarse
	default:
		errs = append(errs, fmt.Errorf("step must be 5m or 1h, not %q", s))
	}
	for _, p := range []struct {
		name string
		to   *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		v := c.Query(p.name)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s must be an RFC 3339 time such as 2025-01-31T12:00:00Z", p.name))
			continue
		}
		*p.to = t.UTC()
	}
	if c.Query("from") == "" {
		q.From = q.To.Add(-defaultSeriesSpan)
	}
	if len(q.Channel) > 256 || len(q.Version) > 256 || len(q.Metric) > 64 {
		errs = append(errs, errors.New("channel and version must be at most 256 characters, metric at most 64"))
	}
	if err := errors.Join(errs...); err == nil && q.Step > 0 {
		switch {
		case q.To.Before(q.From):
			errs = append(errs, errors.New("to must not be before from"))
		case q.To.Sub(q.From)/q.Step > maxSeriesBuckets:
			errs = append(errs, fmt.Errorf("the range from %s to %s spans more than %d buckets of %s; ask for a shorter range or step=1h",
				q.From.Format(time.RFC3339), q.To.Format(time.RFC3339), maxSeriesBuckets, c.DefaultQuery("step", "5m")))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return q, &httpError{Status: http.StatusBadRequest, Code: "bad_request", Msg: joinMessages(err), Err: err}
	}
	return q, nil
}

// series answers GET /api/v1/apps/:app/series: the app's time-bucketed counters
// (docs/stats.md).
func (a *API) series(c *gin.Context) error {
	app := appOf(c)
	q, err := a.parseSeriesQuery(c)
	if err != nil {
		return err
	}
	ps, err := a.store.Series(c.Request.Context(), app.ID, q)
	if err != nil {
		return storeError("series", err)
	}
	if ps == nil {
		ps = []channel.SeriesPoint{}
	}
	step := "5m"
	if q.Step == channel.SeriesCoarse {
		step = "1h"
	}
	c.JSON(http.StatusOK, relayclient.Series{App: app.ID, Step: step, From: q.From, To: q.To, Points: ps})
	return nil
}
