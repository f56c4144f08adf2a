package console

import (
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
)

func TestAggregateTopVersionsAndOther(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	step := time.Hour
	var pts []channel.SeriesPoint
	for v := range 10 {
		pts = append(pts, channel.SeriesPoint{Start: from.Add(time.Duration(v%3) * step), Version: "1." + string(rune('0'+v)) + ".0", Metric: channel.MetricCheck, N: int64(v + 1)})
	}
	pts = append(pts, channel.SeriesPoint{Start: from, Version: "1.9.0", Metric: "update_fail", N: 100})                     // another metric: not counted
	pts = append(pts, channel.SeriesPoint{Start: from.Add(3 * step), Version: "1.9.0", Metric: channel.MetricCheck, N: 100}) // outside [from, to)
	buckets, ss := aggregate(pts, from, from.Add(3*step), step, channel.MetricCheck)
	if len(buckets) != 3 {
		t.Fatalf("%d buckets, want 3", len(buckets))
	}
	if len(ss) != maxSeries+1 || ss[len(ss)-1].Name != "other" {
		t.Fatalf("series %v: want the %d largest and other", ss, maxSeries)
	}
	// 1.0.0 (1) and 1.1.0 (2) are the smallest: summed as other.
	if o := ss[len(ss)-1]; o.Total != 3 {
		t.Errorf("other total %v, want 3", o.Total)
	}
	if ss[0].Name != "1.2.0" || ss[0].Class != "s0" {
		t.Errorf("first series %s %s, want 1.2.0 s0 (sorted by version)", ss[0].Name, ss[0].Class)
	}
	total := 0.0
	for _, s := range ss {
		total += s.Total
	}
	if total != 55 {
		t.Errorf("total %v, want 55 (1+…+10)", total)
	}
}

func TestChartSVGEscapesNames(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ch := &chart{Title: `adoption "<b>`, Buckets: []time.Time{from, from.Add(time.Hour)}, Stacked: true,
		Series: []series{{Name: `<img src=x onerror=alert(1)>`, Class: "s0", Values: []float64{1, 2}, Total: 3}, {Name: "2.0.0", Class: "s1", Values: []float64{3, 0}, Total: 3}}}
	svg := string(ch.SVG())
	if strings.Contains(svg, "<img") || strings.Contains(svg, `"<b>`) {
		t.Fatalf("unescaped text in %s", svg)
	}
	if !strings.Contains(svg, "&lt;img src=x onerror=alert(1)&gt;") || strings.Count(svg, "<polygon") != 2 {
		t.Errorf("svg lacks the escaped name or the two areas: %s", svg)
	}
	if strings.Contains(svg, "style=") {
		t.Error("svg uses an inline style, which the Content-Security-Policy forbids")
	}
	// The second band is stacked on the first: its top at bucket 0 is 1+3 = 4, the maximum.
	if !strings.Contains(svg, `>4</text>`) {
		t.Errorf("y axis maximum is not the stacked total 4: %s", svg)
	}
	empty := string((&chart{Title: "x"}).SVG())
	if !strings.Contains(empty, "no data") {
		t.Errorf("empty chart: %s", empty)
	}
}

func TestSparkline(t *testing.T) {
	s := string(sparkline(`<x>`, []float64{0, 5, 10}))
	if strings.Contains(s, "<x>") || !strings.Contains(s, "<polyline") || !strings.Contains(s, "0,26 60,14 120,2") {
		t.Errorf("sparkline: %s", s)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"refs/tags/v1.2.3":  "refs/tags/v1.2.3",
		"":                  "''",
		"a b":               "'a b'",
		"$(rm -rf ~)":       "'$(rm -rf ~)'",
		"it's":              `'it'\''s'`,
		"https://x/y?a=1&b": "'https://x/y?a=1&b'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
