package rollout

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fleetDevices is the simulated fleet's size.
const fleetDevices = 10_000

// fleetDocEnv, set to 1, makes TestFleet write its timelines into docs/rollouts.md (between
// the fleet markers): go test -run 'TestFleet$/bolt' ./internal/rollout/ with it set.
const fleetDocEnv = "FERRY_FLEET_DOC"

// simulate runs one plan on a fresh relay over st with a fleet whose candidate fails on
// failRate of the devices, for at most until of fake time; it returns the fleet, the
// timeline and the notifications received (after the relay stopped and drained them).
func simulate(t *testing.T, storeName string, failRate float64, seed uint64, until, settle time.Duration) (*fleet, []row, []string) {
	t.Helper()
	s := stores(t)[storeName](t) // a store of its own: the controller lease is per store
	rec := newReceiver(t)
	clk := &clock{t: t0()}
	r := newSimRelay(t, s, simConfig(t, rec.srv.URL), clk, "relay-a", Options{})
	f := newFleet(t, s, []*simRelay{r}, clk, fleetDevices, failRate, seed)
	rows := f.run(r.ctl, until, settle)
	r.stop()
	return f, rows, rec.kinds(t)
}

// TestFleet is the fleet simulation on both stores: 10,000 devices, the plan 1% → 10% →
// 50% → 100%. A good bundle (0.5% of devices fail it, like the stable version) reaches
// 100% exactly on schedule; a bad one (30%) is paused at the first step, offered to no
// device outside the first step's cohort and to none at all once paused.
func TestFleet(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		docs = map[string][]row{}
	)
	for _, name := range []string{"bolt", "redis"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			t.Run("good", func(t *testing.T) {
				f, rows, evs := simulate(t, name, 0.005, 1, 12*time.Hour, 0)
				logRows(t, rows)
				// Steps advance at the first tick after their bake: 1h, then 2h, then 4h;
				// the last step completes at the tick after.
				want := []time.Duration{time.Hour, 3 * time.Hour, 7 * time.Hour, 7*time.Hour + simStep}
				var got []time.Duration
				for _, e := range append(audit(t, f.st, "plan_step"), audit(t, f.st, "plan_complete")...) {
					got = append(got, e.Time.Sub(f.start))
				}
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Errorf("plan steps and completion at %v after the start; want %v", got, want)
				}
				if st := state(t, f.st); st.Version != simCandidate || st.Plan != nil {
					t.Errorf("after the plan: version %s plan %+v", st.Version, st.Plan)
				}
				wantEvs := []string{"promoted 1.0.0 -", "rollout_started 1.1.0 1", "rollout_advanced 1.1.0 10",
					"rollout_advanced 1.1.0 50", "rollout_advanced 1.1.0 100", "rollout_completed 1.1.0 100"}
				if !slices.Equal(evs, wantEvs) {
					t.Errorf("the receiver got %q; want each of %q once", evs, wantEvs)
				}
				mu.Lock()
				docs[name+" good"] = rows
				mu.Unlock()
			})
			t.Run("bad", func(t *testing.T) {
				f, rows, evs := simulate(t, name, 0.30, 2, 4*time.Hour, 2*time.Hour)
				logRows(t, rows)
				st := state(t, f.st)
				if st.Rollout == nil || !st.Rollout.Paused || st.Plan == nil || st.Plan.Step != 0 || st.Rollout.Percent != 1 {
					t.Fatalf("bad bundle not paused at the first step: rollout %+v plan %+v", st.Rollout, st.Plan)
				}
				pauses := audit(t, f.st, "plan_pause")
				if len(pauses) != 1 || len(audit(t, f.st, "plan_step")) != 0 {
					t.Fatalf("%d plan_pause entries (want 1) and %d plan_step (want 0)", len(pauses), len(audit(t, f.st, "plan_step")))
				}
				last := rows[len(rows)-1]
				cohort := f.cohort(1)
				t.Logf("bad bundle on %s: paused %s after the start; %d devices ever received it (%d failed it), the 1%% cohort is %d devices; offers outside the cohort: %d, offers after the pause: %d",
					name, pauses[0].Time.Sub(f.start), last.Offered, last.Failed, cohort, f.outsideCohort, f.offeredAfterPause)
				if last.Offered > cohort || f.outsideCohort != 0 || f.offeredAfterPause != 0 {
					t.Errorf("the bad bundle reached %d devices (cohort %d), %d outside the cohort, %d after the pause", last.Offered, cohort, f.outsideCohort, f.offeredAfterPause)
				}
				if want := []string{"promoted 1.0.0 -", "rollout_started 1.1.0 1", "rollout_paused 1.1.0 1"}; !slices.Equal(evs, want) {
					t.Errorf("the receiver got %q; want %q", evs, want)
				}
				mu.Lock()
				docs[name+" bad"] = rows
				mu.Unlock()
			})
		})
	}
	t.Cleanup(func() {
		if os.Getenv(fleetDocEnv) == "1" && !t.Failed() {
			writeFleetDoc(t, docs["bolt good"], docs["bolt bad"])
		}
	})
}

func logRows(t *testing.T, rows []row) {
	t.Helper()
	for _, w := range rows {
		t.Logf("%8s %-20s %3d%% offered %5d running %5d failed %4d gate %s", w.At, w.Phase, w.Percent, w.Offered, w.Running, w.Failed, w.Verdict)
	}
}

// table renders a timeline as a markdown table.
func table(rows []row) string {
	var b strings.Builder
	b.WriteString("| fake time | plan | offered to | devices ever offered | running it | failed it | gate |\n|---|---|---|---|---|---|---|\n")
	for _, w := range rows {
		fmt.Fprintf(&b, "| %s | %s | %d%% | %d | %d | %d | %s |\n", fmtAt(w.At), w.Phase, w.Percent, w.Offered, w.Running, w.Failed, w.Verdict)
	}
	return b.String()
}

func fmtAt(d time.Duration) string {
	return fmt.Sprintf("%d:%02d", int(d.Hours()), int(d.Minutes())%60)
}

// writeFleetDoc replaces the part of docs/rollouts.md between the fleet markers with the
// simulation's timelines.
func writeFleetDoc(t *testing.T, good, bad []row) {
	const path, begin, end = "../../docs/rollouts.md", "<!-- fleet:begin -->\n", "<!-- fleet:end -->"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i, j := strings.Index(string(doc), begin), strings.Index(string(doc), end)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the fleet markers", path)
	}
	body := "Good bundle (0.5% of devices fail it):\n\n" + table(good) + "\nBad bundle (30% of devices fail it):\n\n" + table(bad)
	out := string(doc[:i+len(begin)]) + body + string(doc[j:])
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote the simulation's timelines into %s", path)
}
