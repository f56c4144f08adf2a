package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/relay/relaytest"
	"github.com/ferryhq/ferry/internal/testpeers"
)

// TestSoak runs a bounded mixed load against one relay on Redis for FERRY_SOAK (default
// 30 s; `FERRY_SOAK=10m` for the long run): update checks from many devices, stats batches,
// registrations and webhook promotions. It requires zero 5xx answers and compares the
// relay's resident memory and goroutines (its own /metrics) between the start and the end
// of the load.
func TestSoak(t *testing.T) {
	dur := envDuration(t, "FERRY_SOAK", 30*time.Second)
	rdb := testpeers.Redis(t)
	relay := startRelay(t, relayOpts{RedisURL: "redis://" + rdb.Addr})
	ctx := t.Context()
	if rep, err := relay.register(ctx, mustJSON(t, bundleFor(appID, "1.0.0", "refs/tags/v1.0.0"))); err != nil || rep.Status != http.StatusCreated {
		t.Fatalf("register: %v %s", err, rep)
	}

	var (
		counts  sync.Map // "kind status" → *atomic.Int64
		fivexx  atomic.Int64
		errs    atomic.Int64
		lastErr atomic.Value
	)
	count := func(kind string, rep reply, err error) {
		key := kind + " error"
		if err == nil {
			key = fmt.Sprintf("%s %d", kind, rep.Status)
			if rep.Status >= 500 {
				fivexx.Add(1)
				lastErr.Store(kind + ": " + rep.String())
			}
		} else {
			errs.Add(1)
			lastErr.Store(kind + ": " + err.Error())
		}
		v, _ := counts.LoadOrStore(key, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var wg sync.WaitGroup
	every := func(period time.Duration, f func(n int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(period)
			defer tick.Stop()
			for n := 0; ; n++ {
				select {
				case <-loadCtx.Done():
					return
				case <-tick.C:
				}
				f(n)
			}
		}()
	}
	// A fixed fleet (8,000 devices checking, 4,000 sending stats) revisits the relay, as
	// real installs do, so memory reaches a steady state: the per-device rate limiter keeps
	// a bucket per recently seen device.
	channels := []string{"production", "beta", "staging"}
	for w := range 4 { // update checks, ~4 × 500/s
		every(2*time.Millisecond, func(n int) {
			rep, err := do(loadCtx, http.MethodPost, relay.URL+"/updates",
				deviceBody(appID, deviceID(w*1_000_000+n%2000), channels[n%3], "builtin"), map[string]string{"Content-Type": "application/json"})
			if loadCtx.Err() == nil {
				count("updates", rep, err)
			}
		})
	}
	every(20*time.Millisecond, func(n int) { // stats batches of 20 events
		var evs []string
		for i := range 20 {
			d := strings.TrimSuffix(string(deviceBody(appID, deviceID((n*20+i)%4000), "production", "1.0.0")), "}")
			evs = append(evs, d+`,"action":"`+[]string{"set", "download_complete", "app_moved_to_foreground"}[i%3]+`","old_version_name":"builtin"}`)
		}
		rep, err := do(loadCtx, http.MethodPost, relay.URL+"/stats", []byte("["+strings.Join(evs, ",")+"]"), map[string]string{"Content-Type": "application/json"})
		if loadCtx.Err() == nil {
			count("stats", rep, err)
		}
	})
	var registered []string
	var regMu sync.Mutex
	every(250*time.Millisecond, func(n int) { // registrations on main → beta
		v := fmt.Sprintf("1.1.%d", n)
		rep, err := relay.register(loadCtx, mustJSON(t, bundleFor(appID, v, "refs/heads/main")))
		if loadCtx.Err() == nil {
			count("register", rep, err)
		}
		if err == nil && rep.Status == http.StatusCreated {
			regMu.Lock()
			registered = append(registered, v)
			regMu.Unlock()
		}
	})
	every(400*time.Millisecond, func(n int) { // tag pushes moving channel/staging
		regMu.Lock()
		v := "1.0.0"
		if len(registered) > 0 {
			v = registered[n%len(registered)]
		}
		regMu.Unlock()
		body := webhookPayload(repository, "refs/tags/channel/staging", "", relaytest.Commit(appID+"@"+v))
		rep, err := relay.webhook(loadCtx, fmt.Sprintf("soak-%d", n), body)
		if loadCtx.Err() == nil {
			count("webhook", rep, err)
		}
	})

	warm := min(5*time.Second, dur/4)
	time.Sleep(warm)
	start := relay.metrics(t)
	time.Sleep(dur - warm)
	end := relay.metrics(t)
	stopLoad()
	wg.Wait()

	var summary []string
	counts.Range(func(k, v any) bool {
		summary = append(summary, fmt.Sprintf("%s=%d", k, v.(*atomic.Int64).Load()))
		return true
	})
	if fivexx.Load() != 0 || errs.Load() != 0 {
		t.Errorf("%d 5xx answers and %d transport errors, last: %v", fivexx.Load(), errs.Load(), lastErr.Load())
	}
	for series, v := range end {
		if strings.HasPrefix(series, "ferry_http_requests_total{") && strings.Contains(series, `code="5`) && v > 0 {
			t.Errorf("relay counted %v × %s", v, series)
		}
	}
	rss0, rss1 := start["process_resident_memory_bytes"], end["process_resident_memory_bytes"]
	g0, g1 := start["go_goroutines"], end["go_goroutines"]
	heap0, heap1 := start["go_memstats_heap_inuse_bytes"], end["go_memstats_heap_inuse_bytes"]
	if rss0 == 0 || g0 == 0 {
		t.Fatalf("relay metrics lack process_resident_memory_bytes or go_goroutines")
	}
	// Tolerances: goroutines may differ by the client connections in flight; memory may
	// grow by GC pacing and the bounded caches filling, not with the length of the run.
	if g1 > g0+40 {
		t.Errorf("goroutines grew from %v to %v", g0, g1)
	}
	if rss1 > rss0*1.5+16<<20 {
		t.Errorf("RSS grew from %.1f MiB to %.1f MiB", rss0/(1<<20), rss1/(1<<20))
	}
	var audit struct {
		Entries []json.RawMessage `json:"entries"`
	}
	relay.mustAdmin(t, http.MethodGet, appID+"/audit?limit=5", nil, &audit)
	t.Logf("FIGURE soak duration=%s warmup=%s rss_start_mib=%.1f rss_end_mib=%.1f heap_start_mib=%.1f heap_end_mib=%.1f goroutines_start=%v goroutines_end=%v 5xx=%d transport_errors=%d %s",
		dur, warm, rss0/(1<<20), rss1/(1<<20), heap0/(1<<20), heap1/(1<<20), g0, g1, fivexx.Load(), errs.Load(), strings.Join(summary, " "))
}
