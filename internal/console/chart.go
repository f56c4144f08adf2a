package console

import (
	"cmp"
	"html/template"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
)

// Charts are inline SVG written here, on the server: no script draws them, so they show
// with JavaScript disabled, and the Content-Security-Policy needs no exception. Colours
// come from the stylesheet through classes (s0 … s7, other), never inline styles. Every
// text (versions are attacker-influenced) is HTML-escaped; numbers are formatted here.

// series is one line or band of a chart: a name (a version) and one value per bucket.
type series struct {
	Name   string
	Class  string
	Values []float64
	Total  float64
}

// chart is a time chart over buckets.
type chart struct {
	// Title names the chart for screen readers (aria-label) and in its <title>.
	Title   string
	Buckets []time.Time
	Series  []series
	// Stacked draws the series as stacked areas; otherwise as lines.
	Stacked bool
	// Unit follows the maximum on the y axis ("checks/min").
	Unit string
}

// Chart geometry, in SVG user units (the SVG scales to its container).
const (
	chartW, chartH         = 720, 240
	padL, padR, padT, padB = 56, 8, 8, 24
	sparkW, sparkH         = 120, 28
	// maxSeries is how many versions a chart shows; the rest are summed as "other".
	maxSeries = 8
)

// aggregate sums points whose metric is in metrics into one series per version over the
// buckets [from, to) of width step, keeping the maxSeries versions with the largest totals
// (sorted by version) and summing the others into "other".
func aggregate(points []channel.SeriesPoint, from, to time.Time, step time.Duration, metrics ...string) ([]time.Time, []series) {
	n := int(to.Sub(from) / step)
	if n <= 0 {
		return nil, nil
	}
	buckets := make([]time.Time, n)
	for i := range buckets {
		buckets[i] = from.Add(time.Duration(i) * step)
	}
	byVersion := map[string]*series{}
	for _, p := range points {
		if !slices.Contains(metrics, p.Metric) || p.Start.Before(from) || !p.Start.Before(to) {
			continue
		}
		s := byVersion[p.Version]
		if s == nil {
			s = &series{Name: p.Version, Values: make([]float64, n)}
			byVersion[p.Version] = s
		}
		i := int(p.Start.Sub(from) / step)
		s.Values[i] += float64(p.N)
		s.Total += float64(p.N)
	}
	all := make([]*series, 0, len(byVersion))
	for _, s := range byVersion {
		all = append(all, s)
	}
	slices.SortFunc(all, func(a, b *series) int {
		if c := cmp.Compare(b.Total, a.Total); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	var out []series
	var other *series
	for i, s := range all {
		if i < maxSeries {
			out = append(out, *s)
			continue
		}
		if other == nil {
			other = &series{Name: "other", Values: make([]float64, n)}
		}
		for j, v := range s.Values {
			other.Values[j] += v
		}
		other.Total += s.Total
	}
	slices.SortFunc(out, func(a, b series) int { return channel.CompareVersions(a.Name, b.Name) })
	for i := range out {
		out[i].Class = "s" + strconv.Itoa(i)
	}
	if other != nil {
		other.Class = "other"
		out = append(out, *other)
	}
	return buckets, out
}

// sum adds the series bucket by bucket into one.
func sum(name string, n int, ss []series) series {
	out := series{Name: name, Class: "s0", Values: make([]float64, n)}
	for _, s := range ss {
		for i, v := range s.Values {
			out.Values[i] += v
		}
		out.Total += s.Total
	}
	return out
}

// num formats a coordinate or value compactly.
func num(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// SVG renders the chart.
func (ch *chart) SVG() template.HTML {
	var b strings.Builder
	title := template.HTMLEscapeString(ch.Title)
	b.WriteString(`<svg class="chart" viewBox="0 0 ` + num(chartW) + ` ` + num(chartH) + `" role="img" aria-label="` + title + `"><title>` + title + `</title>`)
	n := len(ch.Buckets)
	if n == 0 || len(ch.Series) == 0 {
		b.WriteString(`<text class="empty" x="` + num(chartW/2) + `" y="` + num(chartH/2) + `" text-anchor="middle">no data in this range</text></svg>`)
		return template.HTML(b.String()) //nolint:gosec // built from escaped text and numbers only
	}
	// The top of each series: its values, stacked on the ones before when Stacked.
	tops := make([][]float64, len(ch.Series))
	maxV := 0.0
	for i, s := range ch.Series {
		tops[i] = make([]float64, n)
		for j := range n {
			v := s.Values[j]
			if ch.Stacked && i > 0 {
				v += tops[i-1][j]
			}
			tops[i][j] = v
			maxV = max(maxV, v)
		}
	}
	if maxV == 0 {
		maxV = 1
	}
	plotW, plotH := float64(chartW-padL-padR), float64(chartH-padT-padB)
	x := func(j int) float64 {
		if n == 1 {
			return padL + plotW/2
		}
		return padL + plotW*float64(j)/float64(n-1)
	}
	y := func(v float64) float64 { return padT + plotH - plotH*v/maxV }
	pt := func(b *strings.Builder, j int, v float64) {
		b.WriteString(num(math.Round(x(j)*10) / 10))
		b.WriteByte(',')
		b.WriteString(num(math.Round(y(v)*10) / 10))
		b.WriteByte(' ')
	}
	// Axes and labels.
	b.WriteString(`<g class="axis"><line x1="` + num(padL) + `" y1="` + num(padT) + `" x2="` + num(padL) + `" y2="` + num(chartH-padB) + `"/>`)
	b.WriteString(`<line x1="` + num(padL) + `" y1="` + num(chartH-padB) + `" x2="` + num(chartW-padR) + `" y2="` + num(chartH-padB) + `"/>`)
	b.WriteString(`<text x="` + num(padL-4) + `" y="` + num(padT+10) + `" text-anchor="end">` + num(maxV) + `</text>`)
	b.WriteString(`<text x="` + num(padL-4) + `" y="` + num(chartH-padB) + `" text-anchor="end">0</text>`)
	if ch.Unit != "" {
		b.WriteString(`<text x="` + num(padL+4) + `" y="` + num(padT+10) + `">` + template.HTMLEscapeString(ch.Unit) + `</text>`)
	}
	b.WriteString(`<text x="` + num(padL) + `" y="` + num(chartH-6) + `">` + ch.Buckets[0].UTC().Format("Jan 2 15:04") + `</text>`)
	b.WriteString(`<text x="` + num(chartW-padR) + `" y="` + num(chartH-6) + `" text-anchor="end">` + ch.Buckets[n-1].UTC().Format("Jan 2 15:04") + ` UTC</text></g>`)
	for i, s := range ch.Series {
		cls := template.HTMLEscapeString(s.Class)
		name := template.HTMLEscapeString(s.Name)
		tag := "polyline"
		if ch.Stacked {
			tag = "polygon"
			b.WriteString(`<polygon class="area ` + cls + `" points="`)
			for j := range n {
				pt(&b, j, tops[i][j])
			}
			for j := n - 1; j >= 0; j-- {
				base := 0.0
				if i > 0 {
					base = tops[i-1][j]
				}
				pt(&b, j, base)
			}
		} else {
			b.WriteString(`<polyline class="line ` + cls + `" points="`)
			for j := range n {
				pt(&b, j, tops[i][j])
			}
		}
		b.WriteString(`"><title>` + name + `</title></` + tag + `>`)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built from escaped text and numbers only
}

// sparkline renders values as a small line with no axes (the apps page's trends).
func sparkline(label string, values []float64) template.HTML {
	var b strings.Builder
	l := template.HTMLEscapeString(label)
	b.WriteString(`<svg class="spark" viewBox="0 0 ` + num(sparkW) + ` ` + num(sparkH) + `" role="img" aria-label="` + l + `"><title>` + l + `</title>`)
	maxV := 0.0
	for _, v := range values {
		maxV = max(maxV, v)
	}
	if len(values) > 1 {
		if maxV == 0 {
			maxV = 1
		}
		b.WriteString(`<polyline class="line s0" points="`)
		for j, v := range values {
			x := float64(sparkW) * float64(j) / float64(len(values)-1)
			y := 2 + float64(sparkH-4)*(1-v/maxV)
			b.WriteString(num(math.Round(x*10)/10) + "," + num(math.Round(y*10)/10) + " ")
		}
		b.WriteString(`"/>`)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built from escaped text and numbers only
}
