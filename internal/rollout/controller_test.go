package rollout

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/store"
	"github.com/ferryhq/ferry/internal/testpeers"
)

// testStore is a store the tests can also write counters to and read the audit log of.
type testStore interface {
	Store
	AddSeries(ctx context.Context, app string, points []channel.SeriesPoint) error
	GetState(ctx context.Context, app, ch string) (*channel.State, error)
	ListAudit(ctx context.Context, app string, limit int) ([]channel.AuditEntry, error)
	Close() error
}

// stores opens each real store: the embedded one in a temporary directory, and Redis on a
// private redis-server (shared by the calls of one test).
func stores(t *testing.T) map[string]func(t *testing.T) store.Store {
	var (
		once sync.Once
		srv  *testpeers.Process
	)
	return map[string]func(t *testing.T) store.Store{
		"bolt": func(t *testing.T) store.Store {
			b, err := store.OpenBolt(filepath.Join(t.TempDir(), "ferry.db"), store.BoltOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			return b
		},
		"redis": func(t *testing.T) store.Store {
			once.Do(func() { srv = testpeers.Redis(t) })
			return openRedis(t, srv)
		},
	}
}

// openRedis opens a client of the Redis store on srv, closed when t ends.
func openRedis(t *testing.T, srv *testpeers.Process) *store.Redis {
	t.Helper()
	r, err := store.OpenRedis(t.Context(), "redis://"+srv.Addr+"/0", store.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// clock is the controller's injected clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const app = "com.example.app"

func testConfig(t *testing.T) *channel.Config {
	t.Helper()
	c, err := channel.ParseConfig([]byte(`
rollout_plans:
  staged:
    steps: [{percent: 1, bake: 1h}, {percent: 10, bake: 6h}, {percent: 50, bake: 24h}, {percent: 100}]
apps:
  - id: com.example.app
    repository: acme/app
    default_channel: production
    channels: { production: {} }
`))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// start starts plan on production for 1.1.0 against a stable 1.0.0.
func start(t *testing.T, s testStore, plan channel.Plan, now time.Time) *channel.State {
	t.Helper()
	st, err := s.UpdateState(t.Context(), app, "production", func(st *channel.State) (*channel.AuditEntry, error) {
		channel.Promote(st, "1.0.0")
		if err := channel.StartPlan(st, "staged", plan, "1.1.0", now); err != nil {
			return nil, err
		}
		return &channel.AuditEntry{Action: "plan_start", Version: "1.1.0", Cause: "test"}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// report adds counters of version at now.
func report(t *testing.T, s testStore, now time.Time, version string, counts map[string]int64) {
	t.Helper()
	var pts []channel.SeriesPoint
	for m, n := range counts {
		pts = append(pts, channel.SeriesPoint{Start: now, Version: version, Metric: m, N: n})
	}
	if err := s.AddSeries(t.Context(), app, pts); err != nil {
		t.Fatal(err)
	}
}

func newController(t *testing.T, s testStore, clk *clock, reg prometheus.Registerer, holder string) *Controller {
	t.Helper()
	c, err := New(Options{Config: testConfig(t), Store: s, Now: clk.Now, Holder: holder, Registerer: reg, Interval: 50 * time.Millisecond, LeaseTTL: time.Second,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// emitted records the events a controller notifies.
type emitted struct {
	mu  sync.Mutex
	evs []channel.Event
}

func (e *emitted) Notify(ev channel.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evs = append(e.evs, ev)
}

// kinds lists the kinds notified so far, with their percent (-1 for none).
func (e *emitted) kinds() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.evs {
		p := -1
		if ev.Percent != nil {
			p = *ev.Percent
		}
		out = append(out, fmt.Sprintf("%s %s<-%s %d", ev.Kind, ev.Version, ev.From, p))
	}
	return out
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func tick(t *testing.T, c *Controller) {
	t.Helper()
	leader, err := c.Tick(t.Context())
	if err != nil || !leader {
		t.Fatalf("Tick = %v, %v; want leader", leader, err)
	}
}

func state(t *testing.T, s testStore) *channel.State {
	t.Helper()
	st, err := s.GetState(t.Context(), app, "production")
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func audit(t *testing.T, s testStore, action string) []channel.AuditEntry {
	t.Helper()
	all, err := s.ListAudit(t.Context(), app, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []channel.AuditEntry
	for _, e := range all {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

// t0 is where the fake clock starts: far enough in the past for the tests' simulated days
// to stay behind the stores' clock, which refuses counters more than store.SeriesMaxAhead
// ahead of it, and well inside the fine buckets' retention.
func t0() time.Time { return time.Now().UTC().Add(-4 * 24 * time.Hour).Truncate(time.Hour) }

// TestControllerAdvances walks a healthy plan through its steps with a fake clock: each
// step advances only once its bake has passed, a repeated tick changes nothing, and the
// last step makes the version stable.
func TestControllerAdvances(t *testing.T) {
	t.Parallel()
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			clk := &clock{t: t0()}
			reg := prometheus.NewRegistry()
			c := newController(t, s, clk, reg, "relay-a")
			evs := &emitted{}
			c.opts.Events = evs
			plan := testConfig(t).RolloutPlans["staged"]
			start(t, s, plan, clk.Now())
			report(t, s, clk.Now(), "1.0.0", map[string]int64{"set": 2000, "update_fail": 10})
			wantPercent := []int{1, 10, 50, 100}
			for i, step := range plan.Steps {
				report(t, s, clk.Now(), "1.1.0", map[string]int64{"set": 100, "update_fail": 0})
				if step.Bake == 0 {
					break // the last step: its first tick completes the plan
				}
				tick(t, c)
				if st := state(t, s); st.Plan == nil || st.Plan.Step != i || st.Rollout.Percent != wantPercent[i] {
					t.Fatalf("step %d before its bake: %+v %+v", i, st.Rollout, st.Plan)
				}
				if got := testutil.ToFloat64(c.metrics.percent.WithLabelValues(app, "production", "1.1.0")); got != float64(wantPercent[i]) {
					t.Errorf("ferry_rollout_percent = %g; want %d", got, wantPercent[i])
				}
				clk.Add(step.Bake)
				tick(t, c)
				tick(t, c) // a repeated tick applies nothing more
			}
			tick(t, c)
			tick(t, c)
			st := state(t, s)
			if st.Version != "1.1.0" || st.Rollout != nil || st.Plan != nil || st.History[0] != "1.0.0" {
				t.Fatalf("after the plan: %+v", st)
			}
			steps, done := audit(t, s, "plan_step"), audit(t, s, "plan_complete")
			if len(steps) != 3 || len(done) != 1 {
				t.Fatalf("%d plan_step and %d plan_complete entries; want 3 and 1", len(steps), len(done))
			}
			for _, e := range append(steps, done...) {
				if e.Actor == nil || e.Actor.Kind != "controller" || e.Actor.Name != "rollout controller" || !strings.Contains(e.Cause, "gate: 0 failures of") {
					t.Errorf("audit entry %+v lacks the controller actor or the gate's figures", e)
				}
			}
			want := []string{"rollout_advanced 1.1.0<-1.0.0 10", "rollout_advanced 1.1.0<-1.0.0 50", "rollout_advanced 1.1.0<-1.0.0 100", "rollout_completed 1.1.0<-1.0.0 100"}
			if got := evs.kinds(); !slices.Equal(got, want) {
				t.Errorf("notified %q; want %q", got, want)
			}
			if ev := evs.evs[0]; ev.Actor == nil || ev.Actor.Kind != "controller" || ev.Figures["devices"] != 100 || !strings.Contains(ev.Cause, "step 1/4 baked") {
				t.Errorf("advance notification %+v lacks the actor, figures or cause", ev)
			}
			if n := testutil.CollectAndCount(reg, "ferry_rollout_percent"); n != 0 {
				t.Errorf("%d ferry_rollout_percent series after the plan ended; want 0", n)
			}
		})
	}
}

// TestControllerPauses feeds a failing candidate: the first tick pauses the plan mid-bake
// with the figures in the audit log, later ticks hold, devices not on the candidate are no
// longer offered it, and only a person's resume restarts it.
func TestControllerPauses(t *testing.T) {
	t.Parallel()
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			clk := &clock{t: t0()}
			c := newController(t, s, clk, nil, "relay-a")
			evs := &emitted{}
			c.opts.Events = evs
			start(t, s, testConfig(t).RolloutPlans["staged"], clk.Now())
			report(t, s, clk.Now(), "1.1.0", map[string]int64{"set": 70, "update_fail": 30})
			clk.Add(10 * time.Minute)
			tick(t, c)
			st := state(t, s)
			if !st.Rollout.Paused || st.Plan == nil || !strings.Contains(st.Plan.PausedReason, "30 failures of 100 installing devices") {
				t.Fatalf("after a failing gate: rollout %+v plan %+v", st.Rollout, st.Plan)
			}
			p := audit(t, s, "plan_pause")
			if len(p) != 1 || !strings.Contains(p[0].Cause, "30 failures of 100") || p[0].Actor.Name != "rollout controller" {
				t.Fatalf("plan_pause entries %+v", p)
			}
			clk.Add(48 * time.Hour)
			report(t, s, clk.Now(), "1.1.0", map[string]int64{"set": 1000})
			tick(t, c)
			if st := state(t, s); !st.Rollout.Paused || st.Plan.Step != 0 || len(audit(t, s, "plan_pause")) != 1 {
				t.Fatalf("a paused plan moved: %+v %+v", st.Rollout, st.Plan)
			}
			if got := evs.kinds(); !slices.Equal(got, []string{"rollout_paused 1.1.0<-1.0.0 1"}) {
				t.Errorf("notified %q; want one pause", got)
			} else if ev := evs.evs[0]; ev.Figures["failures"] != 30 || ev.Figures["failure_ratio"] != 0.3 || !strings.Contains(ev.Reason, "30 failures of 100") {
				t.Errorf("pause notification %+v lacks the gate's figures", ev)
			}
			// A person resumes: the gate then judges only what comes after.
			if _, err := s.UpdateState(t.Context(), app, "production", func(st *channel.State) (*channel.AuditEntry, error) {
				return &channel.AuditEntry{Action: "resume"}, channel.ResumePlan(st, clk.Now())
			}); err != nil {
				t.Fatal(err)
			}
			clk.Add(time.Hour)
			report(t, s, clk.Now(), "1.1.0", map[string]int64{"set": 60})
			tick(t, c)
			if st := state(t, s); st.Rollout.Paused || st.Plan.Step != 1 || st.Rollout.Percent != 10 {
				t.Fatalf("after a resume and a healthy hour: %+v %+v", st.Rollout, st.Plan)
			}
		})
	}
}

// TestControllerRollback: with on_failure rollback, a failing gate cancels the rollout.
func TestControllerRollback(t *testing.T) {
	t.Parallel()
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			clk := &clock{t: t0()}
			c := newController(t, s, clk, nil, "relay-a")
			evs := &emitted{}
			c.opts.Events = evs
			plan := testConfig(t).RolloutPlans["staged"]
			plan.OnFailure = channel.OnFailureRollback
			start(t, s, plan, clk.Now())
			report(t, s, clk.Now(), "1.1.0", map[string]int64{"set": 40, "download_fail": 10, "checksum_fail": 10})
			tick(t, c)
			st := state(t, s)
			if st.Rollout != nil || st.Plan != nil || st.Version != "1.0.0" {
				t.Fatalf("after a failing gate with rollback: %+v", st)
			}
			e := audit(t, s, "plan_rollback")
			if len(e) != 1 || !strings.Contains(e[0].Cause, "20 failures of 60") || !strings.Contains(e[0].Cause, "checksum_fail:10") {
				t.Fatalf("plan_rollback entries %+v", e)
			}
			if got := evs.kinds(); !slices.Equal(got, []string{"rolled_back 1.0.0<-1.1.0 -1"}) {
				t.Errorf("notified %q; want one roll back to 1.0.0", got)
			}
		})
	}
}

// TestControllerWaitsForEvidence: a step whose bake has passed holds until min_devices
// devices have reported.
func TestControllerWaitsForEvidence(t *testing.T) {
	t.Parallel()
	s := stores(t)["bolt"](t)
	clk := &clock{t: t0()}
	c := newController(t, s, clk, nil, "relay-a")
	start(t, s, testConfig(t).RolloutPlans["staged"], clk.Now())
	report(t, s, clk.Now(), "1.1.0", map[string]int64{"set": 30, "update_fail": 1})
	clk.Add(3 * time.Hour)
	tick(t, c)
	if st := state(t, s); st.Plan.Step != 0 {
		t.Fatalf("advanced on 31 devices: %+v", st.Plan)
	}
	report(t, s, clk.Now(), "1.1.0", map[string]int64{"set": 30})
	tick(t, c)
	if st := state(t, s); st.Plan.Step != 1 {
		t.Fatalf("did not advance on 61 devices: %+v", st.Plan)
	}
}

// TestApplyOnce runs many concurrent applications of one step's decision, as overlapping
// ticks of two instances would: the step is applied exactly once.
func TestApplyOnce(t *testing.T) {
	t.Parallel()
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			clk := &clock{t: t0()}
			st := start(t, s, testConfig(t).RolloutPlans["staged"], clk.Now())
			cs := []*Controller{newController(t, s, clk, nil, "relay-a"), newController(t, s, clk, nil, "relay-b")}
			var wg sync.WaitGroup
			for i := range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := cs[i%2].Apply(t.Context(), app, "production", st.Plan.Revision, 0, Advance, Result{Verdict: Pass}); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if got := state(t, s); got.Plan.Step != 1 || got.Rollout.Percent != 10 {
				t.Fatalf("after 20 concurrent advances of step 0: %+v %+v", got.Rollout, got.Plan)
			}
			if n := len(audit(t, s, "plan_step")); n != 1 {
				t.Errorf("%d plan_step entries; want 1", n)
			}
			// A decision about an earlier revision (the plan was restarted) applies nothing.
			restarted := start(t, s, testConfig(t).RolloutPlans["staged"], clk.Now())
			if err := cs[0].Apply(t.Context(), app, "production", st.Plan.Revision, 0, Pause, Result{Verdict: Fail}); err != nil {
				t.Fatal(err)
			}
			if got := state(t, s); got.Rollout.Paused || got.Plan.Revision != restarted.Plan.Revision {
				t.Errorf("a stale revision's pause was applied: %+v %+v", got.Rollout, got.Plan)
			}
		})
	}
}

// TestLeaseOneLeader: of two controllers on one store only one decides; when it stops
// (Run returns and releases the lease) the other takes over at its next tick.
func TestLeaseOneLeader(t *testing.T) {
	t.Parallel()
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			clk := &clock{t: t0()}
			a, b := newController(t, s, clk, nil, "relay-a"), newController(t, s, clk, nil, "relay-b")
			ctx, stop := context.WithCancel(t.Context())
			done := make(chan error)
			go func() { done <- a.Run(ctx) }()
			deadline := time.Now().Add(5 * time.Second)
			for testutil.ToFloat64(a.metrics.leader) != 1 {
				if time.Now().After(deadline) {
					t.Fatal("relay-a never became the leader")
				}
				time.Sleep(10 * time.Millisecond)
			}
			if leader, err := b.Tick(t.Context()); err != nil || leader {
				t.Fatalf("relay-b Tick while relay-a leads = %v, %v", leader, err)
			}
			stop()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if leader, err := b.Tick(t.Context()); err != nil || !leader {
				t.Fatalf("relay-b Tick after relay-a stopped = %v, %v; want leader", leader, err)
			}
		})
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	s := stores(t)["bolt"](t)
	for _, o := range []Options{{}, {Config: testConfig(t)}, {Config: testConfig(t), Store: s, Interval: time.Minute, LeaseTTL: time.Second}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) = nil error", o)
		}
	}
}
