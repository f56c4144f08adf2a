package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/ferryhq/ferry/internal/channel"
)

// Series is the part of the store contract that keeps time-bucketed counters per app,
// channel, version and metric: what the console charts and the rollout controller's health
// gates read. Counters live in two resolutions: [channel.SeriesFine] buckets kept for
// [channel.SeriesFineRetention], and [channel.SeriesCoarse] buckets kept for
// [channel.SeriesCoarseRetention]; older buckets are deleted by the store, so the size per
// app is bounded by the number of (channel, version, metric) keys active per bucket.
//
// A bucket that starts at s is kept while s is not older than its resolution's retention
// (s >= now - retention); reads ignore older buckets even where the store has not deleted
// them yet.
type Series interface {
	// AddSeries adds each point's N to the counter of (Channel, Version, Metric) in the
	// fine and the coarse bucket that contain point.Start, in one atomic step. Points older
	// than the fine retention are added to the coarse bucket only; points older than the
	// coarse retention are dropped; points with N == 0 are skipped. An invalid point
	// (empty Version or Metric, control characters in Channel, Version or Metric, a
	// negative N, a zero Start or one more than [SeriesMaxAhead] ahead of the store's
	// clock) or app is an error wrapping ErrInvalid and nothing is added.
	AddSeries(ctx context.Context, app string, points []channel.SeriesPoint) error
	// Series returns the counters of app whose bucket starts in [q.From, q.To), at
	// resolution q.Step (channel.SeriesFine or channel.SeriesCoarse), filtered by
	// q.Channel, q.Version and q.Metric where those are not empty, sorted by Start, then
	// Channel, Version and Metric. Each point's Start is its bucket's start (UTC). Another
	// Step, or To before From, is an error wrapping ErrInvalid. The stores bound the work
	// of one call by the retention: buckets outside it are not read.
	Series(ctx context.Context, app string, q channel.SeriesQuery) ([]channel.SeriesPoint, error)
}

// SeriesMaxAhead is how far past the store's clock a point's Start may lie (clock skew
// between relay instances); later points are refused, so no bucket outlives its retention
// by much.
const SeriesMaxAhead = channel.SeriesCoarse

// seriesRes is one resolution of the series: its bucket width, retention and the name its
// buckets (Bolt) or keys (Redis) carry.
type seriesRes struct {
	step, keep time.Duration
	name       string
}

// seriesResolutions are the resolutions every point is added to.
var seriesResolutions = [...]seriesRes{
	{channel.SeriesFine, channel.SeriesFineRetention, "5m"},
	{channel.SeriesCoarse, channel.SeriesCoarseRetention, "1h"},
}

// seriesResolution returns the resolution of bucket width step.
func seriesResolution(step time.Duration) (seriesRes, error) {
	for _, r := range seriesResolutions {
		if r.step == step {
			return r, nil
		}
	}
	return seriesRes{}, fmt.Errorf("series step %s: want %s or %s: %w", step, channel.SeriesFine, channel.SeriesCoarse, ErrInvalid)
}

// oldest returns the start of the oldest bucket of r still kept at t.
func (r seriesRes) oldest(t time.Time) time.Time {
	return seriesBucket(t.Add(-r.keep).Add(r.step-1), r.step)
}

// seriesBucket returns the start of the bucket of width step that contains t.
func seriesBucket(t time.Time, step time.Duration) time.Time {
	return t.UTC().Truncate(step)
}

// seriesAdd is one counter increment a store applies: n added to field in the bucket of
// resolution res that starts at start.
type seriesAdd struct {
	res   seriesRes
	start time.Time
	field string
	n     int64
}

// seriesField is the key of a counter within its bucket: channel\x00version\x00metric.
func seriesField(ch, version, metric string) string {
	return ch + "\x00" + version + "\x00" + metric
}

// parseSeriesField splits a key written by seriesField.
func parseSeriesField(f string) (ch, version, metric string, ok bool) {
	ch, rest, ok1 := strings.Cut(f, "\x00")
	version, metric, ok2 := strings.Cut(rest, "\x00")
	return ch, version, metric, ok1 && ok2
}

// checkSeriesPoint validates one point of AddSeries.
func checkSeriesPoint(p channel.SeriesPoint, t time.Time) error {
	if err := checkKey("version", p.Version); err != nil {
		return err
	}
	if err := checkKey("metric", p.Metric); err != nil {
		return err
	}
	if strings.ContainsFunc(p.Channel, unicode.IsControl) {
		return fmt.Errorf("channel %q: control characters are not allowed: %w", p.Channel, ErrInvalid)
	}
	if p.N < 0 {
		return fmt.Errorf("negative count %d: %w", p.N, ErrInvalid)
	}
	if p.Start.IsZero() {
		return fmt.Errorf("point without a start time: %w", ErrInvalid)
	}
	if p.Start.After(t.Add(SeriesMaxAhead)) {
		return fmt.Errorf("point at %s is more than %s ahead of the store's clock: %w", p.Start.UTC().Format(time.RFC3339), SeriesMaxAhead, ErrInvalid)
	}
	return nil
}

// seriesAdds validates AddSeries' arguments and sums the points per bucket and counter, at
// store time t, dropping what is past retention. Both stores share it.
func seriesAdds(app string, points []channel.SeriesPoint, t time.Time) ([]seriesAdd, error) {
	if err := checkApp(app); err != nil {
		return nil, err
	}
	type key struct {
		res   int
		start int64
		field string
	}
	sums := map[key]int64{}
	for _, p := range points {
		if err := checkSeriesPoint(p, t); err != nil {
			return nil, err
		}
		if p.N == 0 {
			continue
		}
		for i, r := range seriesResolutions {
			start := seriesBucket(p.Start, r.step)
			if start.Before(r.oldest(t)) {
				continue
			}
			sums[key{i, start.Unix(), seriesField(p.Channel, p.Version, p.Metric)}] += p.N
		}
	}
	out := make([]seriesAdd, 0, len(sums))
	for k, n := range sums {
		out = append(out, seriesAdd{res: seriesResolutions[k.res], start: time.Unix(k.start, 0).UTC(), field: k.field, n: n})
	}
	// A stable order keeps the stores' writes (and Bolt's page splits) deterministic.
	slices.SortFunc(out, func(a, b seriesAdd) int {
		return cmp.Or(cmp.Compare(a.res.step, b.res.step), a.start.Compare(b.start), strings.Compare(a.field, b.field))
	})
	return out, nil
}

// seriesRange validates a query at store time t and returns its resolution and the bucket
// starts to read, [from, to), clamped to the retention (from) and to the latest bucket a
// point may be added to (to). from >= to means nothing to read.
func seriesRange(app string, q channel.SeriesQuery, t time.Time) (r seriesRes, from, to time.Time, err error) {
	if err := checkApp(app); err != nil {
		return r, from, to, err
	}
	if r, err = seriesResolution(q.Step); err != nil {
		return r, from, to, err
	}
	if q.To.Before(q.From) {
		return r, from, to, fmt.Errorf("series range ends (%s) before it starts (%s): %w", q.To.UTC().Format(time.RFC3339), q.From.UTC().Format(time.RFC3339), ErrInvalid)
	}
	// Bucket starts in [q.From, q.To): round From up to a bucket boundary.
	from = seriesBucket(q.From.Add(r.step-1), r.step)
	if o := r.oldest(t); from.Before(o) {
		from = o
	}
	to = q.To.UTC()
	if last := seriesBucket(t.Add(SeriesMaxAhead), r.step).Add(r.step); to.After(last) {
		to = last
	}
	return r, from, to, nil
}

// seriesMatch reports whether a counter passes q's filters.
func seriesMatch(q channel.SeriesQuery, ch, version, metric string) bool {
	return (q.Channel == "" || q.Channel == ch) && (q.Version == "" || q.Version == version) && (q.Metric == "" || q.Metric == metric)
}

// seriesFields parses the counter fields one Series call reads, once per distinct field: a
// query over many buckets meets the same few (channel, version, metric) fields in each, so
// the points share one copy of each string and the filter runs once per field.
type seriesFields struct {
	q      channel.SeriesQuery
	parsed map[string]seriesFieldOf
}

// seriesFieldOf is one parsed field and whether it passes the query's filters.
type seriesFieldOf struct {
	ch, version, metric string
	match               bool
}

func newSeriesFields(q channel.SeriesQuery) *seriesFields {
	return &seriesFields{q: q, parsed: map[string]seriesFieldOf{}}
}

// get returns field parsed; ok is false for a field seriesField did not write.
func (s *seriesFields) get(field []byte) (f seriesFieldOf, ok bool) {
	if f, ok := s.parsed[string(field)]; ok {
		return f, true
	}
	key := string(field)
	ch, version, metric, ok := parseSeriesField(key)
	if !ok {
		return f, false
	}
	f = seriesFieldOf{ch: ch, version: version, metric: metric, match: seriesMatch(s.q, ch, version, metric)}
	s.parsed[key] = f
	return f, true
}

// sortSeries orders points as Series returns them.
func sortSeries(ps []channel.SeriesPoint) {
	slices.SortFunc(ps, func(a, b channel.SeriesPoint) int {
		return cmp.Or(a.Start.Compare(b.Start), strings.Compare(a.Channel, b.Channel),
			strings.Compare(a.Version, b.Version), strings.Compare(a.Metric, b.Metric))
	})
}
