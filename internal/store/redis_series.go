package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/internal/channel"
)

// seriesKeyRedis is the hash of one bucket: ferry:{<app>}:series:<resolution>:<unix start>,
// fields <channel>\x00<version>\x00<metric>, values counts. It shares the app's hash tag,
// so one AddSeries is one MULTI/EXEC in one Cluster slot.
func seriesKeyRedis(app string, r seriesRes, start time.Time) string {
	return appKey(app, "series:"+r.name+":"+strconv.FormatInt(start.Unix(), 10))
}

// AddSeries adds the points to app's fine and coarse buckets in one MULTI/EXEC (HINCRBY
// per counter, PEXPIREAT per bucket at its start plus retention, so Redis deletes buckets
// as they leave retention); see the [Series] contract.
func (r *Redis) AddSeries(ctx context.Context, app string, points []channel.SeriesPoint) error {
	adds, err := seriesAdds(app, points, r.clock())
	if err != nil {
		return fmt.Errorf("add series: %w", err)
	}
	if len(adds) == 0 {
		return nil
	}
	cmds, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		var last string
		for _, a := range adds {
			key := seriesKeyRedis(app, a.res, a.start)
			p.HIncrBy(ctx, key, a.field, a.n)
			if key != last {
				p.PExpireAt(ctx, key, a.start.Add(a.res.keep))
				last = key
			}
		}
		return nil
	})
	if err != nil {
		return r.fail(ctx, "add series of "+app, queuedError(cmds, err))
	}
	return nil
}

// Series returns app's counters selected by q in one pipeline of HGETALLs, one per bucket
// in the range (bounded by the retention: at most 2,305 fine or 2,161 coarse buckets); see
// the [Series] contract.
func (r *Redis) Series(ctx context.Context, app string, q channel.SeriesQuery) ([]channel.SeriesPoint, error) {
	res, from, to, err := seriesRange(app, q, r.clock())
	if err != nil {
		return nil, fmt.Errorf("series: %w", err)
	}
	out := []channel.SeriesPoint{}
	if !from.Before(to) {
		return out, nil
	}
	var starts []time.Time
	var gets []*redis.MapStringStringCmd
	_, err = r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for s := from; s.Before(to); s = s.Add(res.step) {
			starts = append(starts, s)
			gets = append(gets, p.HGetAll(ctx, seriesKeyRedis(app, res, s)))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, r.fail(ctx, "series of "+app, err)
	}
	n := 0
	for _, g := range gets {
		n += len(g.Val())
	}
	out = make([]channel.SeriesPoint, 0, n)
	fields := newSeriesFields(q)
	for i, g := range gets {
		for field, v := range g.Val() {
			f, ok := fields.get([]byte(field))
			if !ok {
				return nil, fmt.Errorf("series of %s: malformed field %q", app, field)
			}
			if !f.match {
				continue
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("series of %s: count %q: %w", app, v, err)
			}
			out = append(out, channel.SeriesPoint{Start: starts[i], Channel: f.ch, Version: f.version, Metric: f.metric, N: n})
		}
	}
	sortSeries(out)
	return out, nil
}
