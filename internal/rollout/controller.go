package rollout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/internal/channel"
)

// Store is what the controller calls on persistence; each method keeps the contract
// documented on internal/store's Store (its Series and Lease parts included).
type Store interface {
	ListStates(ctx context.Context, app string) ([]*channel.State, error)
	UpdateState(ctx context.Context, app, ch string, fn func(s *channel.State) (*channel.AuditEntry, error)) (*channel.State, error)
	Series(ctx context.Context, app string, q channel.SeriesQuery) ([]channel.SeriesPoint, error)
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
}

// Emitter receives the notification of every decision the controller stored: a step
// advanced (channel.EventRolloutAdvanced), the plan completed (EventRolloutCompleted), a
// gate paused the rollout (EventRolloutPaused) or rolled it back (EventRolledBack: the
// channel serves the stable version again). Actor kind "controller", Reason and Figures
// carry the gate's verdict. The start of a plan is the control plane's change, and it
// notifies it (EventRolloutStarted). internal/notify's Notifier implements it. Notify must
// return at once: the controller calls it on its tick.
type Emitter interface {
	Notify(ev channel.Event)
}

// Defaults of [Options].
const (
	// LeaseName is the store lease the controllers of all relay instances compete for.
	LeaseName = "rollout-controller"
	// DefaultInterval is how often the controller ticks.
	DefaultInterval = 15 * time.Second
	// DefaultLeaseTTL is how long the lease outlives a tick: a relay that dies is replaced
	// by another within it.
	DefaultLeaseTTL = 45 * time.Second
)

// Options configures a [Controller]; Config and Store are required.
type Options struct {
	Config *channel.Config
	Store  Store
	// Holder names this instance in the lease; empty means hostname and a random suffix.
	Holder string
	// Interval is the time between ticks of Run; 0 means DefaultInterval.
	Interval time.Duration
	// LeaseTTL is the lease's lifetime, renewed on every tick; 0 means DefaultLeaseTTL. It
	// must be longer than Interval.
	LeaseTTL time.Duration
	// Now is the clock plans are timed by; nil means time.Now.
	Now func() time.Time
	// Logger receives the controller's logs; nil discards them.
	Logger *slog.Logger
	// Events, when set, is notified of every decision after it is stored.
	Events Emitter
	// OnChange is called with the app id after the controller changed a channel; nil
	// means no call. It must not block.
	OnChange func(app string)
	// Registerer, when set, receives the controller's metrics.
	Registerer prometheus.Registerer
}

// Controller advances, pauses and rolls back rollout plans. See the package doc.
type Controller struct {
	opts    Options
	actor   *channel.Actor
	metrics *metrics
}

// New returns a controller; it does nothing until [Controller.Run] or [Controller.Tick].
func New(opts Options) (*Controller, error) {
	if opts.Config == nil || opts.Store == nil {
		return nil, errors.New("rollout controller: Config and Store are required")
	}
	if opts.Interval == 0 {
		opts.Interval = DefaultInterval
	}
	if opts.LeaseTTL == 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	if opts.Interval <= 0 || opts.LeaseTTL <= opts.Interval {
		return nil, fmt.Errorf("rollout controller: lease ttl %s must be longer than the interval %s", opts.LeaseTTL, opts.Interval)
	}
	if opts.Holder == "" {
		host, _ := os.Hostname()
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		opts.Holder = host + "-" + hex.EncodeToString(b)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	return &Controller{opts: opts, metrics: m, actor: &channel.Actor{Kind: "controller", Name: "rollout controller", ID: opts.Holder}}, nil
}

// Holder is the name this controller holds the lease under.
func (c *Controller) Holder() string { return c.opts.Holder }

// Run ticks every Interval until ctx ends, then gives the lease up so another instance
// takes over at once. Errors of a tick are logged; Run returns nil when ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	t := time.NewTicker(c.opts.Interval)
	defer t.Stop()
	for {
		if _, err := c.Tick(ctx); err != nil && ctx.Err() == nil {
			c.opts.Logger.WarnContext(ctx, "rollout controller tick", "error", err)
		}
		select {
		case <-ctx.Done():
			c.release(ctx)
			return nil
		case <-t.C:
		}
	}
}

// release gives the lease up when Run ends.
func (c *Controller) release(ctx context.Context) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := c.opts.Store.ReleaseLease(rctx, LeaseName, c.opts.Holder); err != nil {
		c.opts.Logger.Warn("release rollout controller lease", "error", err)
	}
	c.metrics.leader.Set(0)
}

// Tick takes or renews the lease and, when this instance holds it, decides every active
// plan of every configured app once. It reports whether this instance held the lease.
// Errors of single channels are joined; the other channels are still decided.
func (c *Controller) Tick(ctx context.Context) (leader bool, err error) {
	ok, err := c.opts.Store.AcquireLease(ctx, LeaseName, c.opts.Holder, c.opts.LeaseTTL)
	if err != nil {
		c.metrics.leader.Set(0)
		c.metrics.errors.Inc()
		return false, fmt.Errorf("rollout controller lease: %w", err)
	}
	if !ok {
		c.metrics.leader.Set(0)
		c.metrics.forgetAll()
		return false, nil
	}
	c.metrics.leader.Set(1)
	return true, c.decideAll(ctx)
}

// decideAll decides the plan of every channel of every app.
func (c *Controller) decideAll(ctx context.Context) error {
	var errs []error
	seen := map[[2]string]bool{}
	for _, app := range c.opts.Config.Apps {
		states, err := c.opts.Store.ListStates(ctx, app.ID)
		if err != nil {
			errs = append(errs, fmt.Errorf("app %s: list states: %w", app.ID, err))
			continue
		}
		for _, s := range states {
			if channel.ActivePlan(s) == nil {
				continue
			}
			seen[[2]string{s.App, s.Channel}] = true
			if err := c.decide(ctx, s); err != nil {
				errs = append(errs, fmt.Errorf("app %s channel %s: %w", s.App, s.Channel, err))
			}
		}
	}
	c.metrics.forgetExcept(seen)
	if len(errs) > 0 {
		c.metrics.errors.Inc()
	}
	return errors.Join(errs...)
}

// decide judges one channel's plan and applies the decision.
func (c *Controller) decide(ctx context.Context, s *channel.State) error {
	now := c.opts.Now().UTC()
	p := channel.ActivePlan(s)
	var r Result
	if !s.Rollout.Paused {
		var err error
		if r, err = c.Gate(ctx, s, now); err != nil {
			return err
		}
	}
	act := Decide(p, s.Rollout.Paused, now, r)
	c.metrics.observe(s, p, r)
	if act == Hold {
		return nil
	}
	return c.Apply(ctx, s.App, s.Channel, p.Revision, p.Step, act, r)
}

// Gate reads the counters of the plan's candidate and of the stable version and evaluates
// the plan's gate at now.
func (c *Controller) Gate(ctx context.Context, s *channel.State, now time.Time) (Result, error) {
	p := channel.ActivePlan(s)
	from, to := Window(p, now)
	pts, err := c.opts.Store.Series(ctx, s.App, channel.SeriesQuery{
		From: from.Truncate(channel.SeriesFine), To: to.Add(channel.SeriesFine), Step: channel.SeriesFine, Version: p.Version,
	})
	if err != nil {
		return Result{}, fmt.Errorf("read the candidate's counters: %w", err)
	}
	cand := Count(pts, p.Version)
	var base Tally
	if s.Version != "" && s.Version != "builtin" {
		g := p.Plan.Gate.WithDefaults()
		bpts, err := c.opts.Store.Series(ctx, s.App, channel.SeriesQuery{
			From: now.Add(-g.BaselineWindow).Truncate(channel.SeriesCoarse), To: now.Add(channel.SeriesCoarse), Step: channel.SeriesCoarse, Version: s.Version,
		})
		if err != nil {
			return Result{}, fmt.Errorf("read the stable version's counters: %w", err)
		}
		base = Count(bpts, s.Version)
	}
	return Evaluate(p.Plan.Gate, cand, base), nil
}

// Apply carries out act on the plan of (app, ch) at revision rev and step step, in one
// UpdateState: if the plan is no longer at that revision and step, or its rollout was
// paused meanwhile, nothing is written. So a tick repeated or run concurrently (by this
// instance or one whose lease just expired) applies each step once. It reports the
// change in the audit log (actor: the rollout controller, with the gate's figures), to the
// Emitter and to OnChange.
func (c *Controller) Apply(ctx context.Context, app, ch string, rev int64, step int, act Action, r Result) error {
	now := c.opts.Now().UTC()
	var (
		ev    *channel.Event
		after int // the plan's step after the decision, for the log
	)
	_, err := c.opts.Store.UpdateState(ctx, app, ch, func(s *channel.State) (*channel.AuditEntry, error) {
		ev = nil
		p := channel.ActivePlan(s)
		if p == nil || p.Revision != rev || p.Step != step || s.Rollout.Paused {
			return nil, nil
		}
		e := &channel.AuditEntry{Time: now, App: app, Channel: ch, Version: p.Version, From: s.Version, Actor: c.actor}
		ev = &channel.Event{Time: now, App: app, Channel: ch, Version: p.Version, From: s.Version, Actor: c.actor, Reason: r.Reason, Figures: r.Figures()}
		after = p.Step
		where := fmt.Sprintf("plan %s revision %d step %d/%d", p.Name, rev, step+1, len(p.Plan.Steps))
		switch act {
		case Advance:
			np := *p
			np.Step++
			np.StepStartedAt = now
			np.NextDecisionAt = now.Add(np.Plan.Steps[np.Step].Bake)
			if err := channel.SetRollout(s, p.Version, np.Plan.Steps[np.Step].Percent); err != nil {
				return nil, err
			}
			s.Plan = &np
			e.Action, ev.Kind, after = "plan_step", channel.EventRolloutAdvanced, np.Step
			e.Cause = fmt.Sprintf("rollout controller: %s baked; now %d%%; gate: %s", where, s.Rollout.Percent, r.Reason)
		case Complete:
			if err := channel.CompleteRollout(s); err != nil {
				return nil, err
			}
			e.Action, ev.Kind = "plan_complete", channel.EventRolloutCompleted
			e.Cause = fmt.Sprintf("rollout controller: %s baked; the version is now stable; gate: %s", where, r.Reason)
		case Pause:
			if err := channel.PauseRollout(s); err != nil {
				return nil, err
			}
			np := *p
			np.PausedReason = r.Reason
			s.Plan = &np
			e.Action, ev.Kind = "plan_pause", channel.EventRolloutPaused
			e.Cause = fmt.Sprintf("rollout controller: gate failed at %s; paused until a person resumes it: %s", where, r.Reason)
		case Rollback:
			if err := channel.CancelRollout(s); err != nil {
				return nil, err
			}
			e.Action, ev.Kind = "plan_rollback", channel.EventRolledBack
			// Rolled back: the channel went back from the candidate to the stable version.
			ev.Version, ev.From = s.Version, p.Version
			e.Cause = fmt.Sprintf("rollout controller: gate failed at %s; rollout cancelled, every device is offered %s again: %s", where, s.Version, r.Reason)
		default:
			ev = nil
			return nil, nil
		}
		ev.Cause = e.Cause
		if ev.Kind != channel.EventRolledBack {
			pct := 100
			if s.Rollout != nil {
				pct = s.Rollout.Percent
			}
			ev.Percent = &pct
		}
		return e, nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w", act, err)
	}
	if ev == nil {
		return nil
	}
	c.metrics.actions.WithLabelValues(act.String()).Inc()
	c.opts.Logger.InfoContext(ctx, "rollout plan", "app", app, "channel", ch, "version", ev.Version, "action", act.String(), "step", after, "reason", ev.Reason)
	if c.opts.OnChange != nil {
		c.opts.OnChange(app)
	}
	if c.opts.Events != nil {
		c.opts.Events.Notify(*ev)
	}
	return nil
}
