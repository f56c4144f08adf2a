package relay

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/store"
)

// seriesOf reads every fine counter of the test app around t0, as metric@version/channel.
func seriesOf(t *testing.T, st store.Store, t0 time.Time) map[string]int64 {
	t.Helper()
	ps, err := st.Series(t.Context(), testApp, channel.SeriesQuery{From: t0.Add(-time.Hour), To: t0.Add(time.Hour), Step: channel.SeriesFine})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, p := range ps {
		out[p.Metric+"@"+p.Version+"/"+p.Channel] += p.N
	}
	return out
}

func TestSeriesRecording(t *testing.T) {
	onSeededBackends(t, func(t *testing.T, st store.Store) {
		t0 := time.Now()
		s := newServer(t, st, func(o *Options) { o.Series = st; o.Now = func() time.Time { return t0 } })
		h := s.Handler()
		out1, out2 := deviceIn(t, "1.2.0", 50, false), deviceIn(t, "1.2.0", 50, false)
		for range 3 { // on builtin: offered production's 1.1.0
			if w := do(t, h, http.MethodPost, "/updates", info(map[string]any{"device_id": out1})); w.Code != 200 {
				t.Fatalf("update check = %d %s", w.Code, w.Body)
			}
		}
		for range 2 { // on 1.1.0 already: nothing new
			do(t, h, http.MethodPost, "/updates", info(map[string]any{"device_id": out2, "version_name": "1.1.0"}))
		}
		// A stats flood from one device counts once per (device, version, action).
		for range 50 {
			if w := do(t, h, http.MethodPost, "/stats", info(map[string]any{"device_id": out1, "version_name": "1.1.0", "action": "set"})); w.Code != 200 {
				t.Fatalf("stats = %d %s", w.Code, w.Body)
			}
		}
		do(t, h, http.MethodPost, "/stats", info(map[string]any{"device_id": "1b7f3c9e-2d4a-4c5b-8e6f-0a1b2c3d4e5f", "version_name": "1.1.0", "action": "set"}))
		if got := seriesOf(t, st, t0); len(got) != 0 {
			t.Fatalf("counts reached the store before a flush: %v", got)
		}
		s.series.flush(t.Context())
		want := map[string]int64{
			"check@1.1.0/production":     5,
			"offered@1.1.0/production":   3,
			"no_update@1.1.0/production": 2,
			"set@1.1.0/":                 2,
		}
		got := seriesOf(t, st, t0)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("recorded series (-want +got):\n%s", diff)
		}
		if n := testutil.ToFloat64(s.series.deduped); n != 49 {
			t.Errorf("deduplicated stats events = %v, want 49", n)
		}
		// A second flush with nothing new writes nothing more.
		s.series.flush(t.Context())
		if got2 := seriesOf(t, st, t0); got2["set@1.1.0/"] != 2 {
			t.Errorf("after an empty flush set = %d, want 2", got2["set@1.1.0/"])
		}
	})
}

// downSeries fails AddSeries while down is set, like an unreachable Redis.
type downSeries struct {
	store.Store
	down atomic.Bool
}

func (d *downSeries) AddSeries(ctx context.Context, app string, ps []channel.SeriesPoint) error {
	if d.down.Load() {
		return errDown
	}
	return d.Store.AddSeries(ctx, app, ps)
}

func TestSeriesFlushRetry(t *testing.T) {
	onSeededBackends(t, func(t *testing.T, st store.Store) {
		t0 := time.Now()
		ds := &downSeries{Store: st}
		s := newServer(t, st, func(o *Options) { o.Series = ds; o.Now = func() time.Time { return t0 } })
		h := s.Handler()
		dev := deviceIn(t, "1.2.0", 50, false)
		ds.down.Store(true)
		do(t, h, http.MethodPost, "/updates", info(map[string]any{"device_id": dev, "version_name": "1.1.0"}))
		s.series.flush(t.Context())
		if n := testutil.ToFloat64(s.series.flushErrors); n != 1 {
			t.Errorf("flush errors = %v, want 1", n)
		}
		ds.down.Store(false)
		do(t, h, http.MethodPost, "/updates", info(map[string]any{"device_id": dev, "version_name": "1.1.0"}))
		s.series.flush(t.Context())
		want := map[string]int64{"check@1.1.0/production": 2, "no_update@1.1.0/production": 2}
		if diff := cmp.Diff(want, seriesOf(t, st, t0)); diff != "" {
			t.Errorf("series after a failed and a good flush (-want +got):\n%s", diff)
		}
		if n := testutil.ToFloat64(s.series.dropped); n != 0 {
			t.Errorf("dropped = %v, want 0", n)
		}
	})
}

// TestSeriesDedupeBound checks that the stats dedupe stays within its cap however many
// devices report.
func TestSeriesDedupeBound(t *testing.T) {
	t.Parallel()
	st := openBolt(t)
	s := newServer(t, st, func(o *Options) { o.Series = st })
	devs := make([]string, 1)
	for i := range seriesDedupeCap + 10 {
		devs[0] = fmt.Sprint("device-", i)
		s.series.stats(testApp, []channel.StatEvent{{Version: "1.1.0", Action: "set"}}, devs)
	}
	if c, p := len(s.series.cur), len(s.series.prev); c > seriesDedupeCap || p > seriesDedupeCap || c+p != seriesDedupeCap+10 {
		t.Errorf("dedupe sets hold %d and %d hashes, want each at most %d and all %d kept", c, p, seriesDedupeCap, seriesDedupeCap+10)
	}
}
