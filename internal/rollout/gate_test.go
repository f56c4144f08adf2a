package rollout

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
)

func pts(version string, counts map[string]int64) []channel.SeriesPoint {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var out []channel.SeriesPoint
	for m, n := range counts {
		// Split each count over two buckets and add noise of other versions and metrics.
		out = append(out,
			channel.SeriesPoint{Start: t0, Version: version, Metric: m, N: n / 2},
			channel.SeriesPoint{Start: t0.Add(channel.SeriesFine), Version: version, Metric: m, N: n - n/2},
			channel.SeriesPoint{Start: t0, Version: "other", Metric: m, N: 1000},
		)
	}
	return append(out, channel.SeriesPoint{Start: t0, Version: version, Metric: "download_complete", N: 5000},
		channel.SeriesPoint{Start: t0, Channel: "production", Version: version, Metric: channel.MetricOffered, N: 7000})
}

func TestCount(t *testing.T) {
	got := Count(pts("1.1.0", map[string]int64{"set": 101, "update_fail": 7, "checksum_fail": 2, "decrypt_fail": 1, "download_fail": 3}), "1.1.0")
	if got.Installs != 101 || got.Failures != 13 || got.Sample() != 114 {
		t.Fatalf("Count = %+v; want 101 installs, 13 failures", got)
	}
	if got.ByKind["update_fail"] != 7 || got.ByKind["download_fail"] != 3 || len(got.ByKind) != 4 {
		t.Errorf("ByKind = %v", got.ByKind)
	}
	if r := got.Ratio(); math.Abs(r-13.0/114) > 1e-12 {
		t.Errorf("Ratio = %g", r)
	}
	if (Tally{}).Ratio() != 0 {
		t.Error("the ratio of an empty tally is not 0")
	}
}

func TestWilsonLower(t *testing.T) {
	for _, tc := range []struct {
		k, n   int64
		lo, hi float64
	}{
		{0, 0, 0, 0},
		{0, 100, 0, 0},
		{30, 100, 0.18, 0.19}, // 0.1838 at three standard errors
		{1, 3, 0.03, 0.032},   // 0.0313
		{50, 10000, 0.003, 0.0045},
	} {
		got := wilsonLower(tc.k, tc.n)
		if got < tc.lo || got > tc.hi {
			t.Errorf("wilsonLower(%d, %d) = %.4f; want in [%g, %g]", tc.k, tc.n, got, tc.lo, tc.hi)
		}
		if tc.n > 0 && got > float64(tc.k)/float64(tc.n) {
			t.Errorf("wilsonLower(%d, %d) = %g is above the observed ratio", tc.k, tc.n, got)
		}
	}
}

func TestEvaluate(t *testing.T) {
	g := channel.Gate{}
	baseline := Tally{Installs: 9950, Failures: 50} // 0.5%
	for _, tc := range []struct {
		name     string
		gate     channel.Gate
		cand     Tally
		base     Tally
		want     Verdict
		inReason string
	}{
		{"one of three", g, Tally{Installs: 2, Failures: 1}, baseline, Insufficient, "waiting for min_devices 50"},
		{"all of 49 failing still waits", g, Tally{Failures: 49}, baseline, Insufficient, "49 failures of 49"},
		{"30% failing", g, Tally{Installs: 70, Failures: 30}, baseline, Fail, "above the limit 1.50%"},
		{"0.5% like the baseline", g, Tally{Installs: 995, Failures: 5}, baseline, Pass, "within the limit 1.50%"},
		{"no failures", g, Tally{Installs: 50}, Tally{}, Pass, "max_failure_ratio 5.00%"},
		// Without a baseline only the absolute limit applies: 4% observed on 200 is not
		// shown to exceed 5%.
		{"4% without baseline", g, Tally{Installs: 192, Failures: 8}, Tally{}, Pass, "within the limit 5.00%"},
		{"12% without baseline", g, Tally{Installs: 880, Failures: 120}, Tally{}, Fail, "max_failure_ratio 5.00%"},
		// 3x a 0.5% baseline is 1.5%; 3% of 4000 is clearly above it.
		{"6x the baseline", g, Tally{Installs: 3880, Failures: 120}, baseline, Fail, "3.0× the stable version's 0.50%"},
		// A baseline of zero failures is floored at 1%.
		{"floor", g, Tally{Installs: 990, Failures: 10}, Tally{Installs: 5000}, Pass, "floor 1.00%"},
		{"baseline too small is ignored", g, Tally{Installs: 970, Failures: 30}, Tally{Installs: 10, Failures: 0}, Pass, "max_failure_ratio"},
		{"custom min", channel.Gate{MinDevices: 5}, Tally{Installs: 2, Failures: 4}, Tally{}, Fail, "4 failures of 6"},
		{"custom ratio", channel.Gate{MaxFailureRatio: 0.5}, Tally{Installs: 70, Failures: 30}, Tally{}, Pass, "within the limit 50.00%"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Evaluate(tc.gate, tc.cand, tc.base)
			if r.Verdict != tc.want {
				t.Fatalf("Evaluate = %s (%s); want %s", r.Verdict, r.Reason, tc.want)
			}
			if !strings.Contains(r.Reason, tc.inReason) {
				t.Errorf("reason %q does not contain %q", r.Reason, tc.inReason)
			}
		})
	}
}

// TestEvaluateFalseAlarms draws samples of a bundle failing at a rate just inside the
// limits and counts how often the gate fails it: the 99.87% bound keeps that rare, while the
// observed ratio alone would be above the limit far more often.
func TestEvaluateFalseAlarms(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	baseline := Tally{Installs: 9950, Failures: 50}
	const runs = 2000
	for _, tc := range []struct {
		rate     float64
		n        int
		maxFails int
	}{
		{0.012, 100, 10}, // 80% of the 1.5% limit, the first step's cohort: at most 0.5%
		{0.012, 1000, 2}, // the next step's sample
		{0.04, 100, 10},  // 80% of 5% with no baseline
		{0.005, 5000, 0}, // like the baseline
	} {
		fails, naive := 0, 0
		for range runs {
			var k int64
			for range tc.n {
				if rng.Float64() < tc.rate {
					k++
				}
			}
			cand := Tally{Installs: int64(tc.n) - k, Failures: k}
			base := baseline
			if tc.rate == 0.04 {
				base = Tally{}
			}
			r := Evaluate(channel.Gate{}, cand, base)
			if r.Verdict == Fail {
				fails++
			}
			if cand.Ratio() > r.Limit {
				naive++
			}
		}
		t.Logf("rate %.1f%% n %d: gate failed %d of %d; the observed ratio was above the limit %d times", 100*tc.rate, tc.n, fails, runs, naive)
		if fails > tc.maxFails {
			t.Errorf("rate %.1f%% n %d: %d false alarms in %d; want at most %d", 100*tc.rate, tc.n, fails, runs, tc.maxFails)
		}
	}
	// And a bad bundle is caught on the first step's sample every time.
	for range runs {
		var k int64
		for range 60 {
			if rng.Float64() < 0.3 {
				k++
			}
		}
		if r := Evaluate(channel.Gate{}, Tally{Installs: 60 - k, Failures: k}, baseline); r.Verdict != Fail {
			t.Fatalf("a 30%% failing bundle passed with %d of 60: %s", k, r.Reason)
		}
	}
}
