package rollout

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ferryhq/ferry/internal/notify/notifytest"
	"github.com/ferryhq/ferry/internal/testpeers"
)

// chaosCtl is the controllers' timing in the chaos test: real time, unlike the plan's.
var chaosCtl = Options{Interval: 100 * time.Millisecond, LeaseTTL: time.Second}

// runController runs r's controller until the returned function is called.
func runController(t *testing.T, r *simRelay) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.ctl.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

// waitLeader waits until r's controller holds the lease and returns how long that took.
func waitLeader(t *testing.T, r *simRelay, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for testutil.ToFloat64(r.ctl.metrics.leader) != 1 {
		if time.Since(start) > within {
			t.Fatalf("%s did not take the controller lease within %s", r.ctl.Holder(), within)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// chaosRounds plays rounds of the fleet, giving the leading controller two of its
// intervals after each to judge, until done says stop or max rounds have passed.
func chaosRounds(t *testing.T, f *fleet, max int, done func() bool) {
	t.Helper()
	for range max {
		f.round()
		time.Sleep(2 * chaosCtl.Interval)
		f.observe(Result{})
		if done() {
			return
		}
		f.clk.Add(simStep)
	}
	t.Fatalf("gave up after %d rounds at %s: %+v", max, f.clk.Now().Sub(f.start), state(t, f.st).Plan)
}

// kill cuts r off the store as a crashed process is (its client closes, so the lease is
// neither renewed nor released), then stops what is left of it.
func kill(t *testing.T, r *simRelay, st interface{ Close() error }, stopCtl func()) time.Time {
	t.Helper()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	stopCtl() // its release fails: the client is closed
	r.stop()
	return at
}

// TestChaosTwoRelays: two relays on one real Redis run the fleet's plan. The relay holding
// the controller lease is killed just as a step is due; the other takes the lease within
// its lifetime and applies the step, once. It later pauses the plan on failing reports;
// that relay is killed too, and a third one that takes over keeps the plan paused, however
// much time passes.
func TestChaosTwoRelays(t *testing.T) {
	t.Parallel()
	srv := testpeers.Redis(t)
	stA, stB, stC, stT := openRedis(t, srv), openRedis(t, srv), openRedis(t, srv), openRedis(t, srv)
	rec := notifytest.New(t, simSecret, false)
	cfg := simConfig(t, rec.URL)
	clk := &clock{t: t0()}
	a := newSimRelay(t, stA, cfg, clk, "relay-a", chaosCtl)
	b := newSimRelay(t, stB, cfg, clk, "relay-b", chaosCtl)
	stopA := runController(t, a)
	waitLeader(t, a, 5*time.Second)
	stopB := runController(t, b)
	f := newFleet(t, stT, []*simRelay{a, b}, clk, fleetDevices, 0.005, 3)

	// Relay A leads through the first step.
	chaosRounds(t, f, 20, func() bool { return state(t, stT).Plan.Step == 1 })
	if testutil.ToFloat64(b.ctl.metrics.leader) != 0 {
		t.Fatal("both relays lead")
	}
	// Up to the end of the second step's bake; A dies, then the step is due.
	chaosRounds(t, f, 30, func() bool { return clk.Now().Sub(f.start) >= 3*time.Hour-simStep })
	killed := kill(t, a, stA, stopA)
	clk.Add(simStep)
	f.relays = []*simRelay{b}
	// The lease was renewed at most one interval before the kill; allow the other relay's
	// next tick after the expiry and some scheduling delay on a busy machine.
	waitLeader(t, b, chaosCtl.LeaseTTL+5*chaosCtl.Interval)
	t.Logf("relay-b took the lease %s after relay-a was killed (lease %s, interval %s)", time.Since(killed).Round(time.Millisecond), chaosCtl.LeaseTTL, chaosCtl.Interval)
	chaosRounds(t, f, 3, func() bool { return state(t, stT).Plan.Step == 2 })

	// The bundle now fails on 30% of the devices that get it: relay B pauses the plan.
	rng := rand.New(rand.NewPCG(4, 4))
	for _, d := range f.devs {
		if !d.offered {
			d.fails = rng.Float64() < 0.3
		}
	}
	chaosRounds(t, f, 12, func() bool { return state(t, stT).Rollout.Paused })

	// B dies; C takes over and the pause holds while the fake clock passes every bake.
	c := newSimRelay(t, stC, cfg, clk, "relay-c", chaosCtl)
	runController(t, c)
	kill(t, b, stB, stopB)
	f.relays = []*simRelay{c}
	waitLeader(t, c, chaosCtl.LeaseTTL+5*chaosCtl.Interval)
	for range 4 {
		clk.Add(3 * time.Hour)
		chaosRounds(t, f, 1, func() bool { return true })
	}
	st := state(t, stT)
	if st.Rollout == nil || !st.Rollout.Paused || st.Plan == nil || st.Plan.Step != 2 {
		t.Fatalf("after the takeover the plan is %+v, rollout %+v; want paused at step 3", st.Plan, st.Rollout)
	}
	steps, pauses := audit(t, stT, "plan_step"), audit(t, stT, "plan_pause")
	if len(steps) != 2 || len(pauses) != 1 || len(audit(t, stT, "plan_complete")) != 0 {
		t.Fatalf("%d plan_step, %d plan_pause entries; want 2 and 1", len(steps), len(pauses))
	}
	// Audit entries come newest first.
	for i, want := range []struct{ step, by string }{{"step 2/4", "relay-b"}, {"step 1/4", "relay-a"}} {
		if e := steps[i]; !strings.Contains(e.Cause, want.step+" baked") || e.Actor.ID != want.by {
			t.Errorf("plan_step entry %d: %q by %s; want %s by %s", i, e.Cause, e.Actor.ID, want.step, want.by)
		}
	}
	if pauses[0].Actor.ID != "relay-b" {
		t.Errorf("the pause was applied by %s; want relay-b", pauses[0].Actor.ID)
	}
	c.stop()
	want := []string{"promoted 1.0.0 -", "rollout_started 1.1.0 1", "rollout_advanced 1.1.0 10", "rollout_advanced 1.1.0 50", "rollout_paused 1.1.0 50"}
	if got := kinds(t, rec); !slices.Equal(got, want) {
		t.Errorf("the receiver got %q from the three relays; want each of %q once", got, want)
	}
	t.Logf("audit: %s by %s; %s by %s; pause by %s: %s", steps[1].Action, steps[1].Actor.ID, steps[0].Action, steps[0].Actor.ID, pauses[0].Actor.ID, pauses[0].Cause)
}
