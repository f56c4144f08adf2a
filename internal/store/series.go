package store

import (
	"context"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
)

// Series is the part of the store contract that keeps time-bucketed counters per app,
// channel, version and metric: what the console charts and the rollout controller's health
// gates read. Counters live in two resolutions: [channel.SeriesFine] buckets kept for
// [channel.SeriesFineRetention], and [channel.SeriesCoarse] buckets kept for
// [channel.SeriesCoarseRetention]; older buckets are deleted by the store, so the size per
// app is bounded by the number of (channel, version, metric) keys active per bucket.
type Series interface {
	// AddSeries adds each point's N to the counter of (Channel, Version, Metric) in the
	// fine and the coarse bucket that contain point.Start, in one atomic step. Points older
	// than the fine retention are added to the coarse bucket only; points older than the
	// coarse retention are dropped. Empty Version or Metric is an error wrapping ErrInvalid
	// and nothing is added.
	AddSeries(ctx context.Context, app string, points []channel.SeriesPoint) error
	// Series returns the counters of app whose bucket starts in [q.From, q.To), at
	// resolution q.Step (channel.SeriesFine or channel.SeriesCoarse), filtered by
	// q.Channel, q.Version and q.Metric where those are not empty, sorted by Start, then
	// Channel, Version and Metric. Each point's Start is its bucket's start.
	Series(ctx context.Context, app string, q channel.SeriesQuery) ([]channel.SeriesPoint, error)
}

// seriesBucket returns the start of the bucket of width step that contains t.
func seriesBucket(t time.Time, step time.Duration) time.Time {
	return t.UTC().Truncate(step)
}
