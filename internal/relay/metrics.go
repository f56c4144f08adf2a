package relay

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the relay's Prometheus series. Label values are bounded: routes are templates
// (c.FullPath, "unmatched" for 404s), outcomes are decision labels from a fixed set of codes.
type metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec   // method, route, code
	latency      *prometheus.HistogramVec // method, route
	decisions    *prometheus.CounterVec   // outcome
	storeErrors  *prometheus.CounterVec   // op
	staleServed  prometheus.Counter
	fills        *prometheus.CounterVec // result
	statsEvents  prometheus.Counter
	statsDropped *prometheus.CounterVec // reason
	rateLimited  prometheus.Counter
	// bodyBudgetRefused counts requests refused with 503 because the body budget was full.
	bodyBudgetRefused prometheus.Counter

	// routes caches the series of each (method, route) so the hot path does not hash label
	// values on every request: routeKey → *routeSeries.
	routes sync.Map
	// outcomes caches the decisions counter of each outcome: string → prometheus.Counter.
	outcomes sync.Map
}

type routeKey struct{ method, route string }

// routeSeries holds one route's latency observer and its request counter per status code.
type routeSeries struct {
	latency prometheus.Observer
	codes   sync.Map // int → prometheus.Counter
}

func newMetrics(reg *prometheus.Registry) (*metrics, error) {
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_http_requests_total", Help: "HTTP requests by method, route template and status code.",
		}, []string{"method", "route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ferry_http_request_duration_seconds",
			Help:    "HTTP request latency by method and route template.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"method", "route"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_update_decisions_total", Help: "Update-check answers by outcome (offered, builtin, up_to_date, or the error code).",
		}, []string{"outcome"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_store_errors_total", Help: "Failed store calls made by the device-facing relay, by operation.",
		}, []string{"op"}),
		staleServed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_snapshot_stale_served_total", Help: "Update checks answered from an expired snapshot because the store could not be reached.",
		}),
		fills: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_snapshot_fills_total", Help: "Snapshot loads from the store, by result (ok, error).",
		}, []string{"result"}),
		statsEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_stats_events_total", Help: "Device stat events accepted.",
		}),
		statsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_stats_dropped_total",
			Help: "Device stat events dropped (unknown_app, missing_action, missing_version, invalid_device_id) or counted under \"other\" (unknown_action, unregistered_version, version_limit), by reason.",
		}, []string{"reason"}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_rate_limited_total", Help: "Requests refused with 429 by the per-IP rate limit.",
		}),
		bodyBudgetRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_body_budget_refused_total", Help: "Requests refused with 503 because the process-wide request-body budget was exhausted.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.decisions, m.storeErrors, m.staleServed, m.fills, m.statsEvents, m.statsDropped, m.rateLimited, m.bodyBudgetRefused} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	for _, r := range dropReasons {
		m.statsDropped.WithLabelValues(r) // exported at 0 from the start
	}
	return m, nil
}

// bodyBudgetInUse exports the bytes b holds and its size. Registration errors are ignored:
// they only happen when two servers share a registry, and the first server's gauges stay.
func (m *metrics) bodyBudgetInUse(b *bodyBudget) {
	_ = m.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ferry_body_budget_bytes_in_use", Help: "Request-body bytes currently reserved against the body budget.",
	}, func() float64 { return float64(b.used.Load()) }))
	_ = m.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ferry_body_budget_bytes", Help: "Size of the process-wide request-body budget (--body-budget).",
	}, func() float64 { return float64(b.max) }))
}

// middleware measures every request of the Gin engine by route template.
func (m *metrics) middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		m.observe(c.Request.Method, route, c.Writer.Status(), time.Since(start))
	}
}

// observe counts one request to route with its status code and latency.
func (m *metrics) observe(method, route string, code int, d time.Duration) {
	method = metricMethod(method)
	key := routeKey{method, route}
	v, ok := m.routes.Load(key)
	if !ok {
		v, _ = m.routes.LoadOrStore(key, &routeSeries{latency: m.latency.WithLabelValues(method, route)})
	}
	rs := v.(*routeSeries)
	rs.latency.Observe(d.Seconds())
	cv, ok := rs.codes.Load(code)
	if !ok {
		cv, _ = rs.codes.LoadOrStore(code, m.requests.WithLabelValues(method, route, strconv.Itoa(code)))
	}
	cv.(prometheus.Counter).Inc()
}

// decided counts one update-check answer with outcome.
func (m *metrics) decided(outcome string) {
	c, ok := m.outcomes.Load(outcome)
	if !ok {
		c, _ = m.outcomes.LoadOrStore(outcome, m.decisions.WithLabelValues(outcome))
	}
	c.(prometheus.Counter).Inc()
}

func (m *metrics) handler() gin.HandlerFunc {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
	return gin.WrapH(h)
}

// metricMethod bounds the method label: anything but the standard methods is "OTHER".
func metricMethod(m string) string {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
		return m
	}
	return "OTHER"
}
