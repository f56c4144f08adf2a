package rollout

import (
	"fmt"
	"math"

	"github.com/ferryhq/ferry/internal/channel"
)

// Metrics the gate reads: a device that installed the version reports "set"; one that
// failed to download, decrypt, verify or start it reports one of FailureMetrics (a bundle
// that does not start in time is rolled back by the plugin and reported as update_fail).
var (
	FailureMetrics = []string{"update_fail", "download_fail", "decrypt_fail", "checksum_fail"}
	InstallMetric  = "set"
)

// z is the normal quantile of the confidence bound the gate uses: three standard errors, a
// 99.87% one-sided bound. The controller judges the same growing sample on every tick, so
// the bound must be strict for a bundle just inside a limit not to be paused by chance on
// one of many looks; a broken bundle still fails on the first step's 50 devices.
const z = 3.0

// Verdict is what a gate concludes.
type Verdict int

const (
	// Insufficient: fewer installing devices than the gate's minimum; nothing is decided.
	Insufficient Verdict = iota
	// Pass: the candidate is not shown to fail more than the thresholds allow.
	Pass
	// Fail: the candidate fails more than a threshold allows, with 99.87% confidence.
	Fail
)

// String names the verdict as metrics and audit entries show it.
func (v Verdict) String() string {
	switch v {
	case Pass:
		return "pass"
	case Fail:
		return "fail"
	case Insufficient:
	}
	return "insufficient"
}

// Tally is the counts of one version over a window.
type Tally struct {
	Installs int64            `json:"installs"`
	Failures int64            `json:"failures"`
	ByKind   map[string]int64 `json:"by_kind,omitempty"` // failures per metric
}

// Sample is installs plus failures: the devices that tried the version.
func (t Tally) Sample() int64 { return t.Installs + t.Failures }

// Ratio is failures / sample, 0 for an empty sample.
func (t Tally) Ratio() float64 {
	if t.Sample() == 0 {
		return 0
	}
	return float64(t.Failures) / float64(t.Sample())
}

// Count tallies the points of version (any channel: device reports name none).
func Count(points []channel.SeriesPoint, version string) Tally {
	t := Tally{}
	for _, p := range points {
		if p.Version != version {
			continue
		}
		switch {
		case p.Metric == InstallMetric:
			t.Installs += p.N
		case isFailure(p.Metric):
			t.Failures += p.N
			if t.ByKind == nil {
				t.ByKind = map[string]int64{}
			}
			t.ByKind[p.Metric] += p.N
		}
	}
	return t
}

func isFailure(m string) bool {
	for _, f := range FailureMetrics {
		if m == f {
			return true
		}
	}
	return false
}

// Result is a gate's verdict with the figures behind it.
type Result struct {
	Verdict   Verdict `json:"verdict"`
	Candidate Tally   `json:"candidate"`
	Baseline  Tally   `json:"baseline"`
	// Lower is the lower 99.87% confidence bound of the candidate's failure ratio.
	Lower float64 `json:"lower"`
	// Limit is the failure ratio the candidate was held to: MaxFailureRatio, or the
	// baseline's ratio times MaxBaselineRatio (not below BaselineFloor) when that is
	// tighter and the baseline has enough devices.
	Limit float64 `json:"limit"`
	// Reason explains the verdict with the figures, for the audit log.
	Reason string `json:"reason"`
}

// Figures are the numbers behind the verdict, as notifications carry them
// (channel.Event.Figures): the candidate's installing devices, failures, failure ratio and
// its lower bound, the limit, and the stable version's devices and ratio.
func (r Result) Figures() map[string]float64 {
	return map[string]float64{
		"devices":          float64(r.Candidate.Sample()),
		"failures":         float64(r.Candidate.Failures),
		"failure_ratio":    r.Candidate.Ratio(),
		"lower_bound":      r.Lower,
		"limit":            r.Limit,
		"baseline_devices": float64(r.Baseline.Sample()),
		"baseline_ratio":   r.Baseline.Ratio(),
	}
}

// Evaluate judges a candidate's tally against the gate g (zero fields take their
// defaults) and the stable version's baseline tally. With fewer than MinDevices installing
// devices it is Insufficient. Otherwise it fails when the lower 99.87% bound of the
// candidate's failure ratio exceeds the limit: MaxFailureRatio, or, when the baseline has
// MinDevices devices too, max(baseline ratio × MaxBaselineRatio, BaselineFloor) if that is
// lower. Judging the bound rather than the observed ratio keeps a small sample that is
// unlucky by chance from pausing a rollout, and lets a clearly broken bundle fail fast.
func Evaluate(g channel.Gate, candidate, baseline Tally) Result {
	g = g.WithDefaults()
	r := Result{Candidate: candidate, Baseline: baseline, Limit: g.MaxFailureRatio}
	limitWhy := fmt.Sprintf("max_failure_ratio %.2f%%", 100*g.MaxFailureRatio)
	if baseline.Sample() >= int64(g.MinDevices) {
		if b := max(baseline.Ratio()*g.MaxBaselineRatio, g.BaselineFloor); b < r.Limit {
			r.Limit = b
			limitWhy = fmt.Sprintf("%.1f× the stable version's %.2f%% (%d of %d devices), floor %.2f%%",
				g.MaxBaselineRatio, 100*baseline.Ratio(), baseline.Failures, baseline.Sample(), 100*g.BaselineFloor)
		}
	}
	n := candidate.Sample()
	figures := fmt.Sprintf("%d failures of %d installing devices (%.2f%%)", candidate.Failures, n, 100*candidate.Ratio())
	if n < int64(g.MinDevices) {
		r.Verdict = Insufficient
		r.Reason = fmt.Sprintf("%s; waiting for min_devices %d", figures, g.MinDevices)
		return r
	}
	r.Lower = wilsonLower(candidate.Failures, n)
	if r.Lower > r.Limit {
		r.Verdict = Fail
		r.Reason = fmt.Sprintf("%s: at least %.2f%% with 99.87%% confidence, above the limit %.2f%% (%s)", figures, 100*r.Lower, 100*r.Limit, limitWhy)
		if len(candidate.ByKind) > 0 {
			r.Reason += fmt.Sprintf("; failures by kind %v", candidate.ByKind)
		}
		return r
	}
	r.Verdict = Pass
	r.Reason = fmt.Sprintf("%s: within the limit %.2f%% (%s)", figures, 100*r.Limit, limitWhy)
	return r
}

// wilsonLower is the lower bound of the Wilson score interval for k successes in n trials.
func wilsonLower(k, n int64) float64 {
	if n == 0 {
		return 0
	}
	p := float64(k) / float64(n)
	fn := float64(n)
	den := 1 + z*z/fn
	center := p + z*z/(2*fn)
	margin := z * math.Sqrt(p*(1-p)/fn+z*z/(4*fn*fn))
	return max(0, (center-margin)/den)
}
