package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferryhq/ferry/internal/channel"
)

// seriesBase returns the start of the hour before the last one: a time whose fine and
// coarse buckets are well within retention and do not move while a check runs.
func seriesBase() time.Time {
	return time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
}

// seriesAll returns every counter of app at resolution step in [from, to).
func seriesAll(t *testing.T, s Store, app string, step time.Duration, from, to time.Time) []channel.SeriesPoint {
	t.Helper()
	got, err := s.Series(t.Context(), app, channel.SeriesQuery{From: from, To: to, Step: step})
	if err != nil {
		t.Fatalf("Series(%s, step %s): %v", app, step, err)
	}
	return got
}

func addSeries(t *testing.T, s Store, app string, points ...channel.SeriesPoint) {
	t.Helper()
	if err := s.AddSeries(t.Context(), app, points); err != nil {
		t.Fatalf("AddSeries(%s): %v", app, err)
	}
}

func testSeries(t *testing.T, s Store) {
	ctx := t.Context()
	app := NewApp(t)
	base := seriesBase()
	pt := func(off time.Duration, ch, v, m string, n int64) channel.SeriesPoint {
		return channel.SeriesPoint{Start: base.Add(off), Channel: ch, Version: v, Metric: m, N: n}
	}
	addSeries(t, s, app,
		pt(time.Minute, "production", "1.0.0", channel.MetricCheck, 3),
		pt(2*time.Minute, "production", "1.0.0", channel.MetricCheck, 2), // same fine bucket
		pt(4*time.Minute, "beta", "1.1.0", channel.MetricOffered, 1),
		pt(7*time.Minute, "production", "1.0.0", channel.MetricCheck, 5),    // next fine bucket
		pt(61*time.Minute, "", "1.1.0", "set", 4),                           // next hour, no channel
		pt(3*time.Minute, "production", "1.0.0", channel.MetricNoUpdate, 0), // N == 0: skipped
	)
	// A second add to an existing counter sums.
	addSeries(t, s, app, pt(0, "beta", "1.1.0", channel.MetricOffered, 10))

	fine := seriesAll(t, s, app, channel.SeriesFine, base.Add(-time.Hour), base.Add(3*time.Hour))
	want := []channel.SeriesPoint{
		pt(0, "beta", "1.1.0", channel.MetricOffered, 11),
		pt(0, "production", "1.0.0", channel.MetricCheck, 5),
		pt(5*time.Minute, "production", "1.0.0", channel.MetricCheck, 5),
		pt(60*time.Minute, "", "1.1.0", "set", 4),
	}
	if diff := cmp.Diff(want, fine); diff != "" {
		t.Errorf("fine series (-want +got):\n%s", diff)
	}
	coarse := seriesAll(t, s, app, channel.SeriesCoarse, base.Add(-time.Hour), base.Add(3*time.Hour))
	want = []channel.SeriesPoint{
		pt(0, "beta", "1.1.0", channel.MetricOffered, 11),
		pt(0, "production", "1.0.0", channel.MetricCheck, 10),
		pt(time.Hour, "", "1.1.0", "set", 4),
	}
	if diff := cmp.Diff(want, coarse); diff != "" {
		t.Errorf("coarse series (-want +got):\n%s", diff)
	}
	for _, p := range fine {
		if p.Start.Location() != time.UTC {
			t.Errorf("Start %v is not UTC", p.Start)
		}
	}

	// [From, To) selects bucket starts: From inside a bucket skips that bucket, To is
	// exclusive.
	got := seriesAll(t, s, app, channel.SeriesFine, base.Add(time.Minute), base.Add(time.Hour))
	want = []channel.SeriesPoint{pt(5*time.Minute, "production", "1.0.0", channel.MetricCheck, 5)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("fine series in [base+1m, base+1h) (-want +got):\n%s", diff)
	}
	if got := seriesAll(t, s, app, channel.SeriesFine, base, base); len(got) != 0 {
		t.Errorf("empty range returned %v", got)
	}

	for _, tc := range []struct {
		q    channel.SeriesQuery
		want []channel.SeriesPoint
	}{
		{channel.SeriesQuery{Channel: "production"}, []channel.SeriesPoint{
			pt(0, "production", "1.0.0", channel.MetricCheck, 5), pt(5*time.Minute, "production", "1.0.0", channel.MetricCheck, 5)}},
		{channel.SeriesQuery{Version: "1.1.0"}, []channel.SeriesPoint{
			pt(0, "beta", "1.1.0", channel.MetricOffered, 11), pt(60*time.Minute, "", "1.1.0", "set", 4)}},
		{channel.SeriesQuery{Metric: "set"}, []channel.SeriesPoint{pt(60*time.Minute, "", "1.1.0", "set", 4)}},
		{channel.SeriesQuery{Channel: "beta", Version: "1.1.0", Metric: channel.MetricOffered}, []channel.SeriesPoint{
			pt(0, "beta", "1.1.0", channel.MetricOffered, 11)}},
		{channel.SeriesQuery{Channel: "beta", Metric: channel.MetricCheck}, []channel.SeriesPoint{}},
	} {
		q := tc.q
		q.From, q.To, q.Step = base, base.Add(2*time.Hour), channel.SeriesFine
		got, err := s.Series(ctx, app, q)
		if err != nil {
			t.Fatalf("Series(%+v): %v", q, err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Series(channel %q, version %q, metric %q) (-want +got):\n%s", q.Channel, q.Version, q.Metric, diff)
		}
	}
	// Another app sees nothing of this one.
	if got := seriesAll(t, s, NewApp(t), channel.SeriesFine, base, base.Add(2*time.Hour)); len(got) != 0 {
		t.Errorf("another app's series = %v, want none", got)
	}
}

func testSeriesRetention(t *testing.T, s Store) {
	app := NewApp(t)
	now := time.Now().UTC()
	week := now.Add(-7 * 24 * time.Hour)     // in both retentions
	nineDays := now.Add(-9 * 24 * time.Hour) // past the fine, within the coarse retention
	longAgo := now.Add(-91 * 24 * time.Hour) // past both
	p := func(at time.Time, v string) channel.SeriesPoint {
		return channel.SeriesPoint{Start: at, Channel: "production", Version: v, Metric: channel.MetricCheck, N: 1}
	}
	addSeries(t, s, app, p(week, "1.0.0"), p(nineDays, "1.0.1"), p(longAgo, "1.0.2"))

	from, to := now.Add(-100*24*time.Hour), now.Add(time.Hour)
	versions := func(ps []channel.SeriesPoint) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Version)
		}
		return out
	}
	if diff := cmp.Diff([]string{"1.0.0"}, versions(seriesAll(t, s, app, channel.SeriesFine, from, to))); diff != "" {
		t.Errorf("fine versions after retention (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"1.0.1", "1.0.0"}, versions(seriesAll(t, s, app, channel.SeriesCoarse, from, to))); diff != "" {
		t.Errorf("coarse versions after retention (-want +got):\n%s", diff)
	}
}

func testSeriesConcurrent(t *testing.T, s Store) {
	app := NewApp(t)
	base := seriesBase()
	const adds = 5
	var wg sync.WaitGroup
	errs := make(chan error, Writers*adds)
	for w := range Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range adds {
				err := s.AddSeries(t.Context(), app, []channel.SeriesPoint{
					{Start: base.Add(time.Duration(i) * time.Minute), Channel: "production", Version: "1.0.0", Metric: channel.MetricCheck, N: 1},
					{Start: base, Channel: "production", Version: "1.0.0", Metric: fmt.Sprint("m", w%3), N: int64(w)},
				})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent AddSeries: %v", err)
	}
	want := map[string]int64{channel.MetricCheck: Writers * adds}
	for w := range Writers {
		want[fmt.Sprint("m", w%3)] += int64(w * adds)
	}
	for _, step := range []time.Duration{channel.SeriesFine, channel.SeriesCoarse} {
		got := map[string]int64{}
		for _, p := range seriesAll(t, s, app, step, base, base.Add(time.Hour)) {
			got[p.Metric] += p.N
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("sums at step %s after %d concurrent writers (-want +got):\n%s", step, Writers, diff)
		}
	}
}

func testSeriesInvalid(t *testing.T, s Store) { SeriesInvalid(t, s, nil) }

// SeriesInvalid checks that AddSeries and Series refuse bad arguments with an error,
// wrapping want if it is not nil, and that a refused AddSeries adds nothing, not even its
// valid points.
func SeriesInvalid(t *testing.T, s Store, want error) {
	t.Helper()
	ctx := t.Context()
	check := func(what string, err error) {
		t.Helper()
		if err == nil || (want != nil && !errors.Is(err, want)) {
			t.Errorf("%s = %v, want an error wrapping %v", what, err, want)
		}
	}
	app := NewApp(t)
	base := seriesBase()
	good := channel.SeriesPoint{Start: base, Channel: "production", Version: "1.0.0", Metric: channel.MetricCheck, N: 1}
	for name, mod := range map[string]func(*channel.SeriesPoint){
		"empty version":       func(p *channel.SeriesPoint) { p.Version = "" },
		"empty metric":        func(p *channel.SeriesPoint) { p.Metric = "" },
		"control in version":  func(p *channel.SeriesPoint) { p.Version = "1.0\x00.0" },
		"control in metric":   func(p *channel.SeriesPoint) { p.Metric = "check\n" },
		"control in channel":  func(p *channel.SeriesPoint) { p.Channel = "prod\x00uction" },
		"negative count":      func(p *channel.SeriesPoint) { p.N = -1 },
		"zero start":          func(p *channel.SeriesPoint) { p.Start = time.Time{} },
		"start far in future": func(p *channel.SeriesPoint) { p.Start = time.Now().Add(48 * time.Hour) },
	} {
		bad := good
		mod(&bad)
		check("AddSeries("+name+")", s.AddSeries(ctx, app, []channel.SeriesPoint{good, bad}))
	}
	for _, a := range []string{"", "a{b}", "a\nb"} {
		check(fmt.Sprintf("AddSeries(app %q)", a), s.AddSeries(ctx, a, []channel.SeriesPoint{good}))
		_, err := s.Series(ctx, a, channel.SeriesQuery{From: base, To: base.Add(time.Hour), Step: channel.SeriesFine})
		check(fmt.Sprintf("Series(app %q)", a), err)
	}
	for _, step := range []time.Duration{channel.SeriesFine, channel.SeriesCoarse} {
		if got := seriesAll(t, s, app, step, base.Add(-time.Hour), base.Add(time.Hour)); len(got) != 0 {
			t.Errorf("refused AddSeries calls stored %v", got)
		}
	}
	for _, q := range []channel.SeriesQuery{
		{From: base, To: base.Add(time.Hour)},                           // no step
		{From: base, To: base.Add(time.Hour), Step: time.Minute},        // unknown step
		{From: base.Add(time.Hour), To: base, Step: channel.SeriesFine}, // reversed
	} {
		_, err := s.Series(ctx, app, q)
		check(fmt.Sprintf("Series(step %s, from %s, to %s)", q.Step, q.From.Format(time.RFC3339), q.To.Format(time.RFC3339)), err)
	}
}
