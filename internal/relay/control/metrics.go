package control

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the control plane's counters. They are always counted; they are exported
// only when Options.Registerer is set.
type metrics struct {
	registrations *prometheus.CounterVec // by result
	webhooks      *prometheus.CounterVec // by event, result
	promotions    *prometheus.CounterVec // by source: registration, webhook, admin
	refused       *prometheus.CounterVec // by reason (see newMetrics)
	authFailures  *prometheus.CounterVec // by reason: the kind of credential that failed
	authThrottled prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_registrations_total",
			Help: "Bundle registrations by result (created, existing, refused code).",
		}, []string{"result"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_webhook_deliveries_total",
			Help: "GitHub webhook deliveries by event and result.",
		}, []string{"event", "result"}),
		promotions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_promotions_total",
			Help: "Channel promotions that changed a channel, by source.",
		}, []string{"source"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_authority_refusals_total",
			Help: "Authenticated requests that asked for more than their credentials or their content allow and were not carried out, by reason: explicit_channel (a registration naming a channel its ref may not move), webhook_secret (a push signed with another app's secret), replayed_push (a push already applied) and stale_push (a push older than one already applied).",
		}, []string{"reason"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_auth_failures_total",
			Help: "Admin API and token registration requests whose credential did not authenticate, by reason: malformed (not a bearer token), token (unknown or wrong API token), expired, revoked, session (unknown or expired session) and bootstrap (wrong or disabled bootstrap token).",
		}, []string{"reason"}),
		authThrottled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_auth_throttled_total",
			Help: "Requests answered 429 because their client address failed to authenticate too often lately.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.registrations, m.webhooks, m.promotions, m.refused, m.authFailures, m.authThrottled} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, fmt.Errorf("register metric: %w", err))
		}
	}
	return m, errors.Join(errs...)
}
