package relay

import (
	"context"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/internal/channel"
)

// SeriesStore is what the relay's series recorder writes to: [Options].Series. Its
// contract is [github.com/ferryhq/ferry/internal/store.Series].AddSeries.
type SeriesStore interface {
	AddSeries(ctx context.Context, app string, points []channel.SeriesPoint) error
}

// Defaults and bounds of the series recorder.
const (
	// DefaultSeriesFlush is how often the recorder writes its counts to the store.
	DefaultSeriesFlush = 5 * time.Second
	// seriesShards is the number of independently locked counter maps.
	seriesShards = 16
	// maxSeriesPending bounds the points kept for a retry after a failed flush; points
	// beyond it are dropped and counted in ferry_series_dropped_total.
	maxSeriesPending = 100_000
	// seriesDedupeCap bounds each of the two sets of stats hashes (8 bytes plus map
	// overhead each, a few MiB at most); a full set rotates early.
	seriesDedupeCap = 1 << 17
	// seriesDedupeWindow is how long a (device, version, action) is counted once.
	seriesDedupeWindow = time.Hour
)

// seriesKey identifies one counter in memory: the fine bucket (unix seconds) it belongs to
// and its app, channel, version and metric. It is comparable, so looking it up allocates
// nothing.
type seriesKey struct {
	bucket                   int64
	app, ch, version, metric string
}

// shard picks k's shard from a few of its bytes rather than a hash of the whole key (which
// the map lookup computes again): shards only spread the lock traffic of the few keys
// counted at a time, which differ in their version, channel or metric.
func (k *seriesKey) shard() int {
	h := uint(len(k.version))*131 + uint(len(k.ch))*31 + uint(len(k.metric))
	if n := len(k.version); n > 0 {
		h = h*31 + uint(k.version[n-1])
	}
	if n := len(k.ch); n > 0 {
		h = h*31 + uint(k.ch[0])
	}
	return int(h % seriesShards)
}

// seriesShard is one lock-protected part of the counters. Increments hold the read lock
// (they only add to an existing atomic counter); inserting a counter and flushing take the
// write lock, so a flush never misses an increment in flight.
type seriesShard struct {
	mu sync.RWMutex
	m  map[seriesKey]*atomic.Int64
}

// seriesRecorder counts update checks and stats events per fine bucket in memory and
// writes them to the store every flush interval (see docs/stats.md).
type seriesRecorder struct {
	store    SeriesStore
	interval time.Duration
	timeout  time.Duration
	now      func() time.Time
	seed     maphash.Seed
	shards   [seriesShards]seriesShard

	// dedupe: hashes of (app, device, version, action) counted in the current and the
	// previous window.
	dedupeMu      sync.Mutex
	cur, prev     map[uint64]struct{}
	windowStarted time.Time

	// flushMu serialises flushes; pending holds points of failed flushes, by app.
	flushMu  sync.Mutex
	pending  map[string][]channel.SeriesPoint
	npending int

	dropped     prometheus.Counter
	flushErrors prometheus.Counter
	deduped     prometheus.Counter
}

func newSeriesRecorder(st SeriesStore, interval, timeout time.Duration, now func() time.Time, reg prometheus.Registerer) (*seriesRecorder, error) {
	r := &seriesRecorder{
		store: st, interval: interval, timeout: timeout, now: now, seed: maphash.MakeSeed(),
		cur: map[uint64]struct{}{}, prev: map[uint64]struct{}{}, pending: map[string][]channel.SeriesPoint{},
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_series_dropped_total", Help: "Series points dropped because the store refused them for longer than the retry buffer holds.",
		}),
		flushErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_series_flush_errors_total", Help: "Series flushes (one per app) the store refused; their points are retried.",
		}),
		deduped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_series_stats_deduplicated_total", Help: "Stats events not counted in the series: the device reported the same version and action within the hour.",
		}),
	}
	for i := range r.shards {
		r.shards[i].m = map[seriesKey]*atomic.Int64{}
	}
	for _, c := range []prometheus.Collector{r.dropped, r.flushErrors, r.deduped} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// add adds n to the counter of k.
func (r *seriesRecorder) add(k seriesKey, n int64) {
	sh := &r.shards[k.shard()]
	sh.mu.RLock()
	if c := sh.m[k]; c != nil {
		c.Add(n)
		sh.mu.RUnlock()
		return
	}
	sh.mu.RUnlock()
	sh.mu.Lock()
	c := sh.m[k]
	if c == nil {
		c = new(atomic.Int64)
		// The strings may be slices of a request's body (parseObject): a key kept until the
		// next flush must not keep the body alive.
		k.app, k.ch, k.version, k.metric = strings.Clone(k.app), strings.Clone(k.ch), strings.Clone(k.version), strings.Clone(k.metric)
		sh.m[k] = c
	}
	c.Add(n)
	sh.mu.Unlock()
}

// bucket is the fine bucket (unix seconds) of now.
func (r *seriesRecorder) bucket() int64 {
	return r.now().Unix() / int64(channel.SeriesFine/time.Second) * int64(channel.SeriesFine/time.Second)
}

// check counts one answered update check: MetricCheck, and MetricOffered with the offered
// version or MetricNoUpdate with the device's version. Channels and versions are the
// snapshot's (a channel with a state, a registered version, "builtin"), anything else
// ("other" for a version, "" for a channel), so devices cannot create counters.
func (r *seriesRecorder) check(snap *channel.Snapshot, d *channel.Decision, info *channel.DeviceInfo) {
	ch := d.Channel
	if _, ok := snap.States[ch]; !ok {
		ch = ""
	}
	metric, version := channel.MetricNoUpdate, ""
	switch {
	case d.Bundle != nil:
		metric, version = channel.MetricOffered, d.Bundle.Version
	case d.Outcome == channel.OutcomeBuiltin:
		metric, version = channel.MetricOffered, "builtin"
	default:
		v, known := statVersion(snap, "", info.VersionName)
		if v == "" || !known {
			v = statOtherVersion
		}
		version = v
	}
	b := r.bucket()
	r.add(seriesKey{bucket: b, app: snap.App.ID, ch: ch, version: version, metric: channel.MetricCheck}, 1)
	r.add(seriesKey{bucket: b, app: snap.App.ID, ch: ch, version: version, metric: metric}, 1)
}

// stats counts stored stats events (metric = action, no channel), each (device, version,
// action) at most once per seriesDedupeWindow on this relay. devices[i] is events[i]'s
// device id.
func (r *seriesRecorder) stats(app string, events []channel.StatEvent, devices []string) {
	t := r.now()
	b := r.bucket()
	r.dedupeMu.Lock()
	defer r.dedupeMu.Unlock()
	for i, e := range events {
		if e.Version == "" || e.Action == "" {
			continue
		}
		var h maphash.Hash
		h.SetSeed(r.seed)
		for _, s := range [...]string{app, devices[i], e.Version, e.Action} {
			h.WriteString(s)
			h.WriteByte(0)
		}
		sum := h.Sum64()
		if t.Sub(r.windowStarted) >= seriesDedupeWindow || len(r.cur) >= seriesDedupeCap {
			r.prev, r.cur, r.windowStarted = r.cur, make(map[uint64]struct{}, len(r.cur)), t
		}
		_, inCur := r.cur[sum]
		_, inPrev := r.prev[sum]
		if inCur || inPrev {
			r.deduped.Inc()
			continue
		}
		r.cur[sum] = struct{}{}
		r.add(seriesKey{bucket: b, app: app, version: e.Version, metric: e.Action}, 1)
	}
}

// run flushes every interval until ctx ends.
func (r *seriesRecorder) run(ctx context.Context) {
	tick := time.NewTicker(r.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			r.flush(ctx)
		}
	}
}

// flush writes the counts gathered since the last flush, and the points of failed
// flushes, with one AddSeries per app. Points the store refuses are kept for the next
// flush, up to maxSeriesPending.
func (r *seriesRecorder) flush(ctx context.Context) {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	byApp := r.pending
	r.pending, r.npending = map[string][]channel.SeriesPoint{}, 0
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		for k, c := range sh.m {
			n := c.Swap(0)
			if n == 0 {
				delete(sh.m, k) // idle for a whole interval
				continue
			}
			byApp[k.app] = append(byApp[k.app], channel.SeriesPoint{
				Start: time.Unix(k.bucket, 0).UTC(), Channel: k.ch, Version: k.version, Metric: k.metric, N: n,
			})
		}
		sh.mu.Unlock()
	}
	for app, points := range byApp {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
		err := r.store.AddSeries(cctx, app, points)
		cancel()
		if err == nil {
			continue
		}
		r.flushErrors.Inc()
		keep := min(len(points), maxSeriesPending-r.npending)
		r.dropped.Add(float64(len(points) - keep))
		r.pending[app] = points[:keep]
		r.npending += keep
	}
}
