package rollout

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/internal/channel"
)

// gateStates are the values of the state label of ferry_rollout_gate.
var gateStates = []string{"insufficient", "pass", "fail", "paused"}

// metrics are the controller's Prometheus series. Per-channel series exist only for
// channels with an active plan, set by the instance holding the lease and removed when the
// plan ends or the lease moves.
type metrics struct {
	leader   prometheus.Gauge
	errors   prometheus.Counter
	actions  *prometheus.CounterVec // action
	percent  *prometheus.GaugeVec   // app, channel, version
	step     *prometheus.GaugeVec   // app, channel, version
	gate     *prometheus.GaugeVec   // app, channel, version, state
	ratio    *prometheus.GaugeVec   // app, channel, version
	devices  *prometheus.GaugeVec   // app, channel, version
	failures *prometheus.GaugeVec   // app, channel, version, kind
	mu       sync.Mutex             // guards labels
	// labels holds the (app, channel) → version series currently set, so they can be removed.
	labels map[[2]string]string
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	pc := []string{"app", "channel", "version"}
	m := &metrics{
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ferry_rollout_controller_leader", Help: "1 when this relay instance holds the rollout controller lease.",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_rollout_controller_errors_total", Help: "Controller ticks that failed (lease, store or counters unreachable).",
		}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_rollout_actions_total", Help: "Plan actions applied by this instance (advance, complete, pause, rollback).",
		}, []string{"action"}),
		percent: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ferry_rollout_percent", Help: "Percent of the channel's devices offered the plan's candidate.",
		}, pc),
		step: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ferry_rollout_plan_step", Help: "Current step of the channel's rollout plan, from 1.",
		}, pc),
		gate: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ferry_rollout_gate", Help: "1 for the gate's current state (insufficient, pass, fail, paused), 0 for the others.",
		}, append(pc, "state")),
		ratio: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ferry_rollout_gate_failure_ratio", Help: "Failures / installing devices of the candidate over the gate's window.",
		}, pc),
		devices: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ferry_rollout_gate_devices", Help: "Installing devices (installs plus failures) of the candidate over the gate's window.",
		}, pc),
		failures: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ferry_rollout_gate_failures", Help: "Failures of the candidate over the gate's window, by kind.",
		}, append(pc, "kind")),
		labels: map[[2]string]string{},
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.leader, m.errors, m.actions, m.percent, m.step, m.gate, m.ratio, m.devices, m.failures} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				continue
			}
			return nil, err
		}
	}
	return m, nil
}

// observe sets the series of one channel's plan.
func (m *metrics) observe(s *channel.State, p *channel.PlanState, r Result) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := [2]string{s.App, s.Channel}
	if v, ok := m.labels[key]; ok && v != p.Version {
		m.forget(key)
	}
	m.labels[key] = p.Version
	l := []string{s.App, s.Channel, p.Version}
	m.percent.WithLabelValues(l...).Set(float64(s.Rollout.Percent))
	m.step.WithLabelValues(l...).Set(float64(p.Step + 1))
	state := r.Verdict.String()
	if s.Rollout.Paused {
		state = "paused"
	}
	for _, st := range gateStates {
		v := 0.0
		if st == state {
			v = 1
		}
		m.gate.WithLabelValues(append(l, st)...).Set(v)
	}
	if s.Rollout.Paused {
		return
	}
	m.ratio.WithLabelValues(l...).Set(r.Candidate.Ratio())
	m.devices.WithLabelValues(l...).Set(float64(r.Candidate.Sample()))
	for _, k := range FailureMetrics {
		m.failures.WithLabelValues(append(l, k)...).Set(float64(r.Candidate.ByKind[k]))
	}
}

// forget removes one channel's series; the caller holds mu.
func (m *metrics) forget(key [2]string) {
	v, ok := m.labels[key]
	if !ok {
		return
	}
	match := prometheus.Labels{"app": key[0], "channel": key[1], "version": v}
	for _, g := range []*prometheus.GaugeVec{m.percent, m.step, m.gate, m.ratio, m.devices, m.failures} {
		g.DeletePartialMatch(match)
	}
	delete(m.labels, key)
}

// forgetExcept removes the series of channels not in keep.
func (m *metrics) forgetExcept(keep map[[2]string]bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.labels {
		if !keep[k] {
			m.forget(k)
		}
	}
}

// forgetAll removes every channel's series (the lease moved to another instance).
func (m *metrics) forgetAll() { m.forgetExcept(nil) }
