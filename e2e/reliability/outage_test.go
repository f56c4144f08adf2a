package reliability

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/relay/relaytest"
	"github.com/ferryhq/ferry/internal/testpeers"
)

// TestRedisOutageUnderLoad stops redis-server for FERRY_OUTAGE (10 s) while wrk drives update
// checks, and proves: no update check fails or changes its answer, registrations made during
// the outage are refused with 503 and Retry-After and all land once Redis is back, /readyz
// reports the outage and recovers, and /metrics counts the store errors.
func TestRedisOutageUnderLoad(t *testing.T) {
	wrk := testpeers.Path(t, testpeers.Wrk)
	outage := envDuration(t, "FERRY_OUTAGE", 10*time.Second)
	rdb := testpeers.Redis(t, "--appendonly", "yes", "--appendfsync", "always")
	relay := startRelay(t, relayOpts{RedisURL: "redis://" + rdb.Addr})
	ctx := t.Context()

	for _, b := range [][]byte{
		mustJSON(t, bundleFor(appID, "1.0.0", "refs/tags/v1.0.0")),
		mustJSON(t, bundleFor(appID, "0.9.0", "refs/heads/main")),
	} {
		if rep, err := relay.register(ctx, b); err != nil || rep.Status != http.StatusCreated {
			t.Fatalf("register: %v %s", err, rep)
		}
	}
	want := map[string]string{"production": "1.0.0", "beta": "0.9.0"}
	for ch, v := range want {
		if u, _, err := relay.check(ctx, appID, ch, 1); err != nil || u.Version != v {
			t.Fatalf("%s before the outage: %v %+v, want %s", ch, err, u, v)
		}
	}

	// wrk runs across the whole outage: 3 s before, the outage, 8 s after.
	load := 3*time.Second + outage + 8*time.Second
	wrkCmd := exec.CommandContext(ctx, wrk, "-t2", "-c16", "-d"+fmt.Sprint(int(load.Seconds()))+"s", "--timeout", "5s",
		"-s", filepath.Join("testdata", "updates.lua"), relay.URL, "--", appID, "production", "beta")
	var wrkOut strings.Builder
	wrkCmd.Stdout, wrkCmd.Stderr = &wrkOut, &wrkOut
	if err := wrkCmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)

	// Go sampler: a device per channel checks every 50 ms during the whole run.
	var samples, wrongSamples atomic.Int64
	var sampleErr atomic.Value
	stopSampler := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		n := 0
		for {
			select {
			case <-stopSampler:
				return
			case <-time.After(50 * time.Millisecond):
			}
			for ch, v := range want {
				n++
				u, rep, err := relay.check(ctx, appID, ch, 1000+n)
				samples.Add(1)
				if err == nil {
					err = consistent(appID, u)
				}
				if err == nil && u.Version != v {
					err = fmt.Errorf("%s offered %q, want %s (%s)", ch, u.Version, v, rep)
				}
				if err != nil {
					wrongSamples.Add(1)
					sampleErr.Store(err.Error())
				}
			}
		}
	}()

	before := relay.metrics(t)
	rdb.Stop()
	outageStart := time.Now()
	t.Logf("redis stopped")

	// Readiness must report the outage.
	relaytest.WaitFor(t, 5*time.Second, "/readyz to report the outage", func() bool {
		rep, err := do(ctx, http.MethodGet, relay.URL+"/readyz", nil, nil)
		return err == nil && rep.Status == http.StatusServiceUnavailable
	})

	// Registrations during the outage: each registrar honours Retry-After until acknowledged.
	const registrars = 12
	type result struct {
		version     string
		first       reply
		unavailable int
		final       reply
		err         error
	}
	results := make([]result, registrars)
	var rwg sync.WaitGroup
	for i := range registrars {
		v := fmt.Sprintf("2.0.%d", i)
		body := mustJSON(t, bundleFor(appID, v, "refs/heads/feature"))
		results[i].version = v
		first, err := relay.register(ctx, body)
		if err != nil {
			t.Fatalf("register %s during the outage: %v", v, err)
		}
		results[i].first = first
		rwg.Add(1)
		go func(r *result) {
			defer rwg.Done()
			rctx, cancel := context.WithTimeout(ctx, outage+60*time.Second)
			defer cancel()
			r.final, r.unavailable, r.err = registerRetrying(rctx, relay.URL, body)
		}(&results[i])
	}
	for _, r := range results {
		if r.first.Status != http.StatusServiceUnavailable || r.first.Header.Get("Retry-After") == "" || r.first.errCode() != "store_unavailable" {
			t.Errorf("register %s during the outage: %s Retry-After %q, want 503 store_unavailable with Retry-After",
				r.version, r.first, r.first.Header.Get("Retry-After"))
		}
	}

	time.Sleep(time.Until(outageStart.Add(outage)))
	if err := rdb.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("redis started again after %s", time.Since(outageStart).Round(time.Millisecond))
	relaytest.WaitFor(t, 15*time.Second, "/readyz to recover", func() bool {
		rep, err := do(ctx, http.MethodGet, relay.URL+"/readyz", nil, nil)
		return err == nil && rep.Status == http.StatusOK
	})
	rwg.Wait()
	landed, retried := 0, 0
	for _, r := range results {
		if r.err != nil || (r.final.Status != http.StatusCreated && r.final.Status != http.StatusOK) {
			t.Errorf("register %s: %v %s", r.version, r.err, r.final)
			continue
		}
		landed++
		retried += r.unavailable
	}
	if err := wrkCmd.Wait(); err != nil {
		t.Fatalf("wrk: %v\n%s", err, wrkOut.String())
	}
	close(stopSampler)
	wg.Wait()

	// Nothing lost: every registration is stored, and the channels are as before.
	bundles := relay.bundlesOf(t, appID)
	for _, r := range results {
		if b, ok := bundles[r.version]; !ok || b.Checksum != bundleChecksum(appID, r.version) {
			t.Errorf("bundle %s missing after recovery", r.version)
		}
	}
	states := relay.stateOf(t, appID)
	for ch, v := range want {
		if states[ch].Version != v {
			t.Errorf("channel %s = %q after the outage, want %s", ch, states[ch].Version, v)
		}
	}

	after := relay.metrics(t)
	storeErrs := after["ferry_store_errors_total"] - before["ferry_store_errors_total"]
	if storeErrs <= 0 {
		t.Errorf("ferry_store_errors_total did not grow during the outage (%v → %v)", before["ferry_store_errors_total"], after["ferry_store_errors_total"])
	}

	out := wrkOut.String()
	requests := wrkInt(t, out, `(\d+) requests in`)
	checked := wrkInt(t, out, `checked=(\d+)`)
	bad := wrkInt(t, out, `bad_answers=(\d+)`)
	if strings.Contains(out, "Non-2xx") || strings.Contains(out, "Socket errors") || bad != 0 || requests == 0 {
		t.Errorf("wrk saw failures:\n%s", out)
	}
	if wrongSamples.Load() != 0 {
		t.Errorf("%d of %d sampled checks were wrong, last: %v", wrongSamples.Load(), samples.Load(), sampleErr.Load())
	}
	t.Logf("FIGURE outage=%s wrk_requests=%d wrk_checked=%d wrk_bad=%d rps=%s sampled=%d sampled_wrong=%d registrations=%d landed=%d lost=%d first_503=%d retried_503=%d store_errors=%v stale_served=%v",
		outage, requests, checked, bad, wrkField(out, `Requests/sec:\s+([\d.]+)`), samples.Load(), wrongSamples.Load(),
		registrars, landed, registrars-landed, registrars, retried, storeErrs,
		after["ferry_snapshot_stale_served_total"]-before["ferry_snapshot_stale_served_total"])
	t.Logf("wrk:\n%s", out)
}

func wrkField(out, re string) string {
	m := regexp.MustCompile(re).FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	return m[1]
}

func wrkInt(t *testing.T, out, re string) int {
	t.Helper()
	s := wrkField(out, re)
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("wrk output lacks %s:\n%s", re, out)
	}
	return n
}
