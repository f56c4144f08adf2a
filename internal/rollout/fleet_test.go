package rollout

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/notify"
	"github.com/ferryhq/ferry/internal/notify/notifytest"
	"github.com/ferryhq/ferry/internal/relay"
	"github.com/ferryhq/ferry/internal/relay/control"
	"github.com/ferryhq/ferry/internal/store"
)

// The fleet simulation: simulated devices speak the device protocol (POST /updates, POST
// /stats) to the real relay handler with the control plane mounted, on a real store; the
// relay records their reports into the store's series, and the controller, on a fake
// clock, judges and moves the plan. Every step of the simulation is simStep of fake time.

const (
	simStep       = 5 * time.Minute // the fake time between two rounds of checks and ticks
	simCheckEvery = time.Hour       // each device checks for an update once an hour
	simAdminToken = "fleet-admin-token"
	simSecret     = "fleet-notify-secret"
	simStable     = "1.0.0"
	simCandidate  = "1.1.0"
)

// simPlan is the plan the simulation runs: 1% → 10% → 50% → 100%, with bakes short enough
// for every device to check in several times per step (a device checks once an hour).
const simPlan = `{percent: 1, bake: 1h}, {percent: 10, bake: 2h}, {percent: 50, bake: 4h}, {percent: 100}`

// simConfig is the relay configuration of the simulation: one app whose production
// channel runs simPlan, notifying a loopback receiver.
func simConfig(t *testing.T, receiver string) *channel.Config {
	t.Helper()
	c, err := channel.ParseConfig([]byte(`
rollout_plans:
  staged:
    steps: [` + simPlan + `]
apps:
  - id: ` + app + `
    repository: acme/app
    default_channel: production
    channels: { production: {} }
    notifications:
      - { url: "` + receiver + `", secret_env: FLEET_NOTIFY_SECRET }
`))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// kinds lists the kinds rcv received, with the version and the percent ("-" for none),
// and fails t for deliveries that did not verify.
func kinds(t *testing.T, rcv *notifytest.Receiver) []string {
	t.Helper()
	evs, bad := rcv.Events()
	if len(bad) > 0 {
		t.Errorf("deliveries that failed verification: %v", bad)
	}
	out := make([]string, 0, len(evs))
	for _, ev := range evs {
		p := "-"
		if ev.Percent != nil {
			p = fmt.Sprint(*ev.Percent)
		}
		out = append(out, fmt.Sprintf("%s %s %s", ev.Kind, ev.Version, p))
	}
	return out
}

// simRelay is one relay instance as cmd/relay wires it: the relay serving on loopback (so
// its series recorder flushes and it follows the store's change notifications), the
// control plane mounted on it, the notifier and the rollout controller.
type simRelay struct {
	srv      *relay.Server
	handler  http.Handler
	ctl      *Controller
	notifier *notify.Notifier
	stopOnce sync.Once
	stopFn   func()
}

// newSimRelay starts a relay on st; the controller uses ctlStore (st itself, or another
// client of the same store) and ctl's Interval and LeaseTTL.
func newSimRelay(t *testing.T, st store.Store, cfg *channel.Config, clk *clock, holder string, ctlOpts Options) *simRelay {
	t.Helper()
	srv, err := relay.New(relay.Options{Config: cfg, Store: st, Now: clk.Now, Series: st, SeriesFlush: 10 * time.Millisecond,
		RateLimit: -1, DeviceRateLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	n, err := notify.New(notify.Options{Config: cfg, Getenv: func(string) string { return simSecret }, Registerer: srv.Registry(),
		BaseDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	api, err := control.New(ctx, control.Options{Config: cfg, Store: st, AdminToken: simAdminToken, Now: clk.Now,
		OnChange: srv.Invalidate, Registerer: srv.Registry(), Notifier: n})
	if err != nil {
		t.Fatal(err)
	}
	srv.Mount(api)
	ctlOpts.Config, ctlOpts.Holder, ctlOpts.Now = cfg, holder, clk.Now
	ctlOpts.Events, ctlOpts.OnChange, ctlOpts.Registerer = n, srv.Invalidate, srv.Registry()
	if ctlOpts.Store == nil {
		ctlOpts.Store = st
	}
	ctl, err := New(ctlOpts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	r := &simRelay{srv: srv, handler: srv.Handler(), ctl: ctl, notifier: n}
	r.stopFn = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relay %s: %v", holder, err)
		}
		api.Close()
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer dcancel()
		if err := n.Close(dctx); err != nil {
			t.Errorf("notifier of %s: %v", holder, err)
		}
	}
	t.Cleanup(r.stop)
	return r
}

// stop stops serving and drains the notifier (once).
func (r *simRelay) stop() { r.stopOnce.Do(r.stopFn) }

// call sends one request to the relay's handler and returns the status and body.
func (r *simRelay) call(t *testing.T, method, path string, body []byte, token string) (int, []byte) {
	req, err := http.NewRequestWithContext(context.Background(), method, path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.RemoteAddr = "192.0.2.1:1234"
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	r.handler.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// admin calls the admin API of app and fails the test unless it answers 200.
func (r *simRelay) admin(t *testing.T, method, path, body string) {
	t.Helper()
	if code, out := r.call(t, method, "/api/v1/apps/"+app+path, []byte(body), simAdminToken); code != http.StatusOK {
		t.Fatalf("%s %s = %d %s", method, path, code, out)
	}
}

// simDevice is one simulated device.
type simDevice struct {
	id      string
	version string // the bundle it runs
	slot    int    // the simStep of the hour it checks in
	fails   bool   // the candidate fails on it (it reports set, then update_fail, and stays)
	offered bool   // it was ever offered the candidate
}

// stat is one /stats event: the info object with the bundle it is about (VersionName) and
// the action (docs/protocol.md §2).
type stat struct {
	channel.DeviceInfo
	Action     string `json:"action"`
	OldVersion string `json:"old_version_name"`
}

// info is the device's info object (docs/protocol.md §1.2).
func (d *simDevice) info() channel.DeviceInfo {
	return channel.DeviceInfo{Platform: "android", DeviceID: d.id, AppID: app, VersionBuild: "1.0.0", VersionCode: "1", VersionOS: "14",
		VersionName: d.version, PluginVersion: "8.51.23", IsProd: true}
}

// fleet is a simulation run.
type fleet struct {
	t      *testing.T
	clk    *clock
	st     store.Store
	relays []*simRelay
	devs   []*simDevice
	start  time.Time // the plan's start

	mu sync.Mutex
	// sent counts the candidate's stats the devices sent, by action, for waitFlushed.
	sent map[string]int64
	// offeredAfterPause counts offers of the candidate, after the pause was stored, to
	// devices not running it; outsideCohort offers to devices outside the 1% cohort while
	// the plan was at its first step.
	offeredAfterPause, outsideCohort int
	paused                           bool
	percent                          int
	// closest is the gate result whose lower bound came closest to its limit.
	closest Result
	// samples holds a row per tick, for the chart.
	samples []row
}

// simDeviceID is a UUID-shaped id drawn from rng.
func simDeviceID(rng *rand.Rand) string {
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", rng.Uint32(), rng.Uint32()&0xffff, rng.Uint32()&0xfff, rng.Uint32()&0xfff, rng.Uint64()&0xffffffffffff)
}

// newFleet registers the stable and the candidate bundle, promotes the stable one, posts
// the fleet's history (every device installed the stable version a day before; 0.5% of
// them failed it and still run the builtin bundle: the baseline), and starts the plan
// through the admin API. failRate is the share of devices the candidate fails on.
func newFleet(t *testing.T, st store.Store, relays []*simRelay, clk *clock, devices int, failRate float64, seed uint64) *fleet {
	t.Helper()
	f := &fleet{t: t, clk: clk, st: st, relays: relays, sent: map[string]int64{}}
	rng := rand.New(rand.NewPCG(seed, 1))
	for _, v := range []string{simStable, simCandidate} {
		sum := strings.Repeat(fmt.Sprintf("%02x", v[2]), 32)
		if _, _, err := st.PutBundle(t.Context(), &channel.Bundle{AppID: app, Version: v, URL: "https://cdn.example.com/" + v + ".zip",
			Checksum: sum, SHA256: sum, Size: 1000, Commit: strings.Repeat(string(v[2]), 40), Ref: "refs/tags/v" + v}, nil); err != nil {
			t.Fatal(err)
		}
	}
	relays[0].admin(t, "POST", "/channels/production/promote", `{"version":"`+simStable+`"}`)
	var history []stat
	baseFailed := rng.Perm(devices)[:devices/200] // exactly 0.5% failed the stable version
	for i := range devices {
		d := &simDevice{id: simDeviceID(rng), version: simStable, slot: rng.IntN(int(simCheckEvery / simStep)), fails: rng.Float64() < failRate}
		s := stat{DeviceInfo: d.info(), Action: "set", OldVersion: "builtin"}
		history = append(history, s)
		if slices.Contains(baseFailed, i) {
			d.version = "builtin"
			s.Action = "update_fail"
			history = append(history, s)
		}
		f.devs = append(f.devs, d)
	}
	clk.Add(-24 * time.Hour)
	f.postStats(history)
	clk.Add(24 * time.Hour)
	f.start = clk.Now()
	relays[0].admin(t, "POST", "/channels/production/plan", `{"plan":"staged","version":"`+simCandidate+`"}`)
	f.percent = 1
	return f
}

// postStats sends events to /stats in batches of at most relay.MaxStatsEvents (a light
// simulator: a real device sends only its own events).
func (f *fleet) postStats(events []stat) {
	for len(events) > 0 {
		n := min(len(events), relay.MaxStatsEvents)
		body, err := json.Marshal(events[:n])
		if err != nil {
			f.t.Fatal(err)
		}
		if code, out := f.relays[0].call(f.t, "POST", "/stats", body, ""); code != http.StatusOK {
			f.t.Fatalf("POST /stats = %d %s", code, out)
		}
		events = events[n:]
	}
}

// round lets the devices whose slot it is check for an update (spread over the relays),
// install what they are offered and report it, and waits until the relays have flushed
// the reports into the store.
func (f *fleet) round() {
	slot := int(f.clk.Now().Sub(f.start) / simStep % (simCheckEvery / simStep))
	var due []*simDevice
	for _, d := range f.devs {
		if d.slot == slot {
			due = append(due, d)
		}
	}
	const workers = 4
	stats := make([][]stat, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(due); i += workers {
				if s := f.check(due[i], f.relays[i%len(f.relays)]); s != nil {
					stats[w] = append(stats[w], s...)
				}
			}
		})
	}
	wg.Wait()
	f.postStats(slices.Concat(stats...))
	f.waitFlushed()
}

// check is one device's update check and what follows it.
func (f *fleet) check(d *simDevice, r *simRelay) []stat {
	body, err := json.Marshal(d.info())
	if err != nil {
		f.t.Error(err)
		return nil
	}
	code, out := r.call(f.t, "POST", "/updates", body, "")
	var ans struct {
		Version string `json:"version"`
		URL     string `json:"url"`
	}
	if code != http.StatusOK || json.Unmarshal(out, &ans) != nil {
		f.t.Errorf("POST /updates = %d %s", code, out)
		return nil
	}
	if ans.Version != simCandidate || ans.URL == "" {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d.offered = true
	if f.paused {
		f.offeredAfterPause++
	}
	if f.percent == 1 && !channel.InCohort(d.id, simCandidate, 1) {
		f.outsideCohort++
	}
	set := stat{DeviceInfo: d.info(), Action: "set", OldVersion: d.version}
	set.VersionName = simCandidate
	f.sent["set"]++
	if !d.fails {
		d.version = simCandidate
		return []stat{set}
	}
	fail := set
	fail.Action, fail.OldVersion = "update_fail", ""
	f.sent["update_fail"]++
	return []stat{set, fail}
}

// waitFlushed waits until the store's series hold every candidate report sent so far.
func (f *fleet) waitFlushed() {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pts, err := f.st.Series(f.t.Context(), app, channel.SeriesQuery{From: f.start.Truncate(channel.SeriesFine),
			To: f.clk.Now().Add(channel.SeriesFine), Step: channel.SeriesFine, Version: simCandidate})
		if err != nil {
			f.t.Fatal(err)
		}
		got := map[string]int64{}
		for _, p := range pts {
			got[p.Metric] += p.N
		}
		if got["set"] == f.sent["set"] && got["update_fail"] == f.sent["update_fail"] {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("series hold set %d update_fail %d; sent %v", got["set"], got["update_fail"], f.sent)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// row is one line of the simulation's timeline.
type row struct {
	At                       time.Duration // since the plan's start
	Percent                  int
	Paused                   bool
	Offered, Running, Failed int    // devices ever offered the candidate, running it, failed it
	Verdict                  string // the gate's, while the plan runs
	Phase                    string // the plan's step, "paused" or "completed"
}

// observe reads the channel's state after a tick and returns the timeline's row.
func (f *fleet) observe(r Result) row {
	st, err := f.st.GetState(f.t.Context(), app, "production")
	if err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case st.Rollout != nil:
		f.percent, f.paused = st.Rollout.Percent, st.Rollout.Paused
	case st.Version == simCandidate:
		f.percent = 100
	}
	w := row{At: f.clk.Now().Sub(f.start), Percent: f.percent, Paused: f.paused}
	switch p := channel.ActivePlan(st); {
	case p == nil && st.Version == simCandidate:
		w.Phase = "completed"
	case p == nil:
		w.Phase = "ended"
	case st.Rollout.Paused:
		w.Phase = fmt.Sprintf("paused at step %d/%d", p.Step+1, len(p.Plan.Steps))
	default:
		w.Phase, w.Verdict = fmt.Sprintf("step %d/%d", p.Step+1, len(p.Plan.Steps)), r.Verdict.String()
	}
	for _, d := range f.devs {
		if d.offered {
			w.Offered++
			if d.fails {
				w.Failed++
			}
		}
		if d.version == simCandidate {
			w.Running++
		}
	}
	return w
}

// run plays rounds and controller ticks until the plan has ended (completed or paused)
// and settle has passed since, or until the fake time since the start passes until. It returns the timeline: a row per
// fake hour and per change of percent or pause.
func (f *fleet) run(c *Controller, until, settle time.Duration) []row {
	f.t.Helper()
	var rows []row
	last := row{Percent: -1}
	ended := time.Duration(-1)
	for at := f.clk.Now().Sub(f.start); at <= until && (ended < 0 || at-ended <= settle); at = f.clk.Now().Sub(f.start) {
		f.round()
		tick(f.t, c)
		var r Result
		st, err := f.st.GetState(f.t.Context(), app, "production")
		if err != nil {
			f.t.Fatal(err)
		}
		if channel.ActivePlan(st) != nil && !st.Rollout.Paused {
			if r, err = c.Gate(f.t.Context(), st, f.clk.Now()); err != nil {
				f.t.Fatal(err)
			}
			if r.Verdict != Insufficient && (f.closest.Limit == 0 || r.Lower-r.Limit > f.closest.Lower-f.closest.Limit) {
				f.closest = r
			}
		}
		w := f.observe(r)
		f.samples = append(f.samples, w)
		if w.Phase != last.Phase || w.At%time.Hour == 0 {
			rows = append(rows, w)
		}
		if ended < 0 && (w.Paused || channel.ActivePlan(st) == nil) {
			ended = at
		}
		last = w
		f.clk.Add(simStep)
	}
	return rows
}

// cohort counts the devices in the candidate's cohort at percent.
func (f *fleet) cohort(percent int) int {
	n := 0
	for _, d := range f.devs {
		if channel.InCohort(d.id, simCandidate, percent) {
			n++
		}
	}
	return n
}
