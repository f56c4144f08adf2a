package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/store"
	"github.com/ferryhq/ferry/internal/testpeers"
)

// Anonymous stats must not grow the store without bound (docs/security.md, threat model).
// TestStatsGrowthBounded posts what an outside attacker did, through the handler and within
// one client's rate limit: 40,000 update_fail events with made-up device ids (of every
// length the body allows) and made-up versions, 10,000 made-up action names, and 40,000
// update_fail events of a registered version from made-up devices. The store (its bbolt
// file, or Redis's used_memory) must grow by less than 1 MiB, and the stats answer must
// stay small. Before the fix each made-up device kept a failed-version record for 90 days:
// 40,000 events grew bbolt by 172 MiB and Redis by 48.5 MiB, and 10,000 action names grew
// the stats answer from 2 KB to 692 KB.
func TestStatsGrowthBounded(t *testing.T) {
	t.Parallel()
	// The store's per-app bound on devices with failed versions, lowered from its default
	// so the registered-version flood reaches it.
	const maxFailed = 1000
	for _, tc := range []struct {
		name string
		open func(t *testing.T) (store.Store, func() int64)
	}{
		{"bolt", func(t *testing.T) (store.Store, func() int64) {
			path := filepath.Join(t.TempDir(), "ferry.db")
			b, err := store.OpenBolt(path, store.BoltOptions{MaxFailedDevices: maxFailed})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			return b, func() int64 {
				fi, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				return fi.Size()
			}
		}},
		{"redis", func(t *testing.T) (store.Store, func() int64) {
			srv := testpeers.Redis(t)
			r, err := store.OpenRedis(context.Background(), "redis://"+srv.Addr, store.RedisOptions{MaxFailedDevices: maxFailed})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			return r, func() int64 { return redisUsedMemory(t, r) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, size := tc.open(t)
			seed(t, st)
			s := newServer(t, st, func(o *Options) { o.RateLimit = -1 })
			h := s.Handler()
			post := func(events []string) {
				t.Helper()
				if w := do(t, h, http.MethodPost, "/stats", "["+strings.Join(events, ",")+"]"); w.Code != http.StatusOK {
					t.Fatalf("POST /stats = %d %s", w.Code, w.Body)
				}
			}
			// Batches of 200 events, the plugin's largest.
			flood := func(n int, event func(i int) string) {
				t.Helper()
				var batch []string
				for i := range n {
					batch = append(batch, event(i))
					if len(batch) == 200 {
						post(batch)
						batch = batch[:0]
					}
				}
				if len(batch) > 0 {
					post(batch)
				}
			}
			// Warm up: the buckets and keys a real app has anyway.
			flood(200, func(i int) string {
				return info(map[string]any{"device_id": fmt.Sprintf("00000000-0000-4000-8000-%012d", i), "version_name": "1.1.0", "action": "set"})
			})
			before := size()

			flood(40000, func(i int) string {
				var dev string
				switch i % 4 {
				case 0: // a UUID
					dev = fmt.Sprintf("%08x-dead-4bee-8f00-%012d", i, i)
				case 1: // the longest id the update check accepts
					dev = fmt.Sprintf("%0128d", i)
				default: // what the body allows: 1,024 bytes
					dev = fmt.Sprintf("%01024d", i)
				}
				return info(map[string]any{"device_id": dev, "version_name": fmt.Sprintf("%d.%d.%d-made-up", i, i, i), "action": "update_fail"})
			})
			flood(10000, func(i int) string {
				return info(map[string]any{"version_name": "1.1.0", "action": fmt.Sprintf("made_up_action_%05d", i)})
			})
			flood(40000, func(i int) string {
				return info(map[string]any{"device_id": fmt.Sprintf("%08x-feed-4bee-8f00-%012d", i, i), "version_name": "1.1.0", "action": "update_fail"})
			})

			grown := size() - before
			t.Logf("store grew by %d bytes", grown)
			if grown >= 1<<20 {
				t.Errorf("store grew by %.1f MiB after 90,000 anonymous stat events, want < 1 MiB", float64(grown)/(1<<20))
			}

			stats, err := st.Stats(context.Background(), testApp)
			if err != nil {
				t.Fatal(err)
			}
			answer, err := json.Marshal(stats)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("stats answer is %d bytes", len(answer))
			if len(answer) > 8<<10 {
				t.Errorf("stats answer is %d bytes after 10,000 made-up actions, want <= 8 KiB", len(answer))
			}
			for _, vs := range stats {
				if len(vs.Actions) > len(pluginActions)+1 {
					t.Errorf("version %s counts %d actions, more than the plugin's %d and other", vs.Version, len(vs.Actions), len(pluginActions))
				}
				if vs.Version != "1.1.0" && vs.Version != statOtherVersion {
					t.Errorf("stats of version %q, want only 1.1.0 and other", vs.Version)
				}
			}
			byVersion := map[string]channel.VersionStats{}
			for _, vs := range stats {
				byVersion[vs.Version] = vs
			}
			if got := byVersion[statOtherVersion].Actions["update_fail"]; got != 20000 {
				t.Errorf("update_fail counted under other = %d, want the 20,000 with valid device ids", got)
			}
			if got := byVersion["1.1.0"].Actions[statOtherAction]; got != 10000 {
				t.Errorf("made-up actions counted under other = %d, want 10,000", got)
			}
			for _, dev := range []string{fmt.Sprintf("%08x-dead-4bee-8f00-%012d", 4, 4), fmt.Sprintf("%0128d", 5)} {
				if f, err := st.FailedVersions(context.Background(), testApp, dev); err != nil || len(f) != 0 {
					t.Errorf("failed versions of made-up device %s = %v, %v; want none (its versions are not registered)", dev, f, err)
				}
			}
			last := fmt.Sprintf("%08x-feed-4bee-8f00-%012d", 39999, 39999)
			if f, err := st.FailedVersions(context.Background(), testApp, last); err != nil || len(f) != 1 || f[0] != "1.1.0" {
				t.Errorf("failed versions of the latest device = %v, %v; want [1.1.0]", f, err)
			}

			dropped := func(reason string) float64 { return counterValue(t, s, "ferry_stats_dropped_total", "reason", reason) }
			if got := dropped(dropInvalidDevice); got != 20000 {
				t.Errorf("ferry_stats_dropped_total{reason=%q} = %v, want 20,000", dropInvalidDevice, got)
			}
			if got := dropped(dropUnknownAction); got != 10000 {
				t.Errorf("ferry_stats_dropped_total{reason=%q} = %v, want 10,000", dropUnknownAction, got)
			}
			// Each batch looks up maxStatLookups versions; the rest are past the limit.
			if got, lim := dropped(dropUnregistered), dropped(dropVersionLimit); got != 200*maxStatLookups || got+lim != 20000 {
				t.Errorf("ferry_stats_dropped_total unregistered_version %v + version_limit %v, want %d + the rest of 20,000", got, lim, 200*maxStatLookups)
			}
		})
	}
}

// TestStatsDeviceIDRules: /stats applies the update check's device id rule, so an event
// with a device id /updates refuses is dropped (and still answered 200: the plugin would
// drop a 4xx batch whole).
func TestStatsDeviceIDRules(t *testing.T) {
	t.Parallel()
	st := openBolt(t)
	seed(t, st)
	s := newServer(t, st, nil)
	h := s.Handler()
	for _, dev := range []string{strings.Repeat("a", 129), "has space", "ünïcode"} {
		ev := info(map[string]any{"device_id": dev, "version_name": "1.1.0", "action": "update_fail"})
		if w := do(t, h, http.MethodPost, "/stats", ev); w.Code != http.StatusOK {
			t.Errorf("POST /stats with device_id %q = %d %s, want 200", dev, w.Code, w.Body)
		}
		if w := do(t, h, http.MethodPost, "/updates", info(map[string]any{"device_id": dev})); !strings.Contains(w.Body.String(), `"error"`) {
			t.Errorf("the update check accepts device_id %q (%s); the stats rule must match it", dev, w.Body)
		}
	}
	stats, err := st.Stats(context.Background(), testApp)
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 0 {
		t.Errorf("stats recorded for invalid device ids: %+v", stats)
	}
}

// TestStatsBuiltinFailNoRecord: update_fail of "builtin" (never offered) is counted but
// keeps no failed-version record for the device.
func TestStatsBuiltinFailNoRecord(t *testing.T) {
	t.Parallel()
	st := openBolt(t)
	seed(t, st)
	h := newServer(t, st, nil).Handler()
	dev := "0f0f0f0f-0000-4000-8000-000000000001"
	if w := do(t, h, http.MethodPost, "/stats", info(map[string]any{"device_id": dev, "version_name": "builtin", "action": "update_fail"})); w.Code != http.StatusOK {
		t.Fatalf("POST /stats = %d %s", w.Code, w.Body)
	}
	if f, err := st.FailedVersions(context.Background(), testApp, dev); err != nil || len(f) != 0 {
		t.Errorf("failed versions after update_fail of builtin = %v, %v; want none", f, err)
	}
	stats, err := st.Stats(context.Background(), testApp)
	if err != nil || len(stats) != 1 || stats[0].Version != "builtin" || stats[0].Actions["update_fail"] != 1 {
		t.Errorf("stats = %+v, %v; want update_fail 1 under builtin", stats, err)
	}
}

// TestStatsStoreFullAnswers503: a Redis at its maxmemory with noeviction refuses the write
// (OOM); /stats answers 503 with Retry-After, so the plugin keeps the batch, instead of
// 200 for events that were not stored.
func TestStatsStoreFullAnswers503(t *testing.T) {
	t.Parallel()
	srv := testpeers.Redis(t, "--maxmemory", "10mb", "--maxmemory-policy", "noeviction")
	r, err := store.OpenRedis(context.Background(), "redis://"+srv.Addr, store.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	seed(t, r)
	h := newServer(t, r, nil).Handler()
	dev := "0f0f0f0f-0000-4000-8000-000000000002"
	fillRedis(t, r)
	w := do(t, h, http.MethodPost, "/stats", `[`+info(map[string]any{"device_id": dev, "version_name": "1.1.0", "action": "update_fail"})+`]`)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("POST /stats on a full Redis = %d (Retry-After %q) %s, want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	if f, err := r.FailedVersions(context.Background(), testApp, dev); err != nil || len(f) != 0 {
		t.Errorf("failed versions after the refused write = %v, %v", f, err)
	}
}

// TestStatsLookupFailureAnswers503: when the store cannot say whether a version is
// registered, the events are not stored under a version nobody checked: 503, retried.
func TestStatsLookupFailureAnswers503(t *testing.T) {
	t.Parallel()
	f := &flaky{Store: openBolt(t)}
	seed(t, f.Store)
	h := newServer(t, f, nil).Handler()
	// Load the snapshot while the store is up; then only the lookup can fail.
	if w := do(t, h, http.MethodPost, "/updates", info(nil)); w.Code != http.StatusOK {
		t.Fatalf("POST /updates = %d", w.Code)
	}
	f.down.Store(true)
	w := do(t, h, http.MethodPost, "/stats", info(map[string]any{"version_name": "7.7.7", "action": "set"}))
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("POST /stats while the version lookup fails = %d %s, want 503", w.Code, w.Body)
	}
}

// TestReadyzDegraded: a relay started with an accepted risk says so in /readyz.
func TestReadyzDegraded(t *testing.T) {
	t.Parallel()
	h := newServer(t, openBolt(t), func(o *Options) { o.Degraded = "Redis may evict keys" }).Handler()
	w := do(t, h, http.MethodGet, "/readyz", "")
	if w.Code != http.StatusOK || w.Body.String() != `{"status":"degraded","message":"Redis may evict keys"}` {
		t.Errorf("GET /readyz = %d %s", w.Code, w.Body)
	}
}

// redisUsedMemory reads used_memory from INFO memory.
func redisUsedMemory(t *testing.T, r *store.Redis) int64 {
	t.Helper()
	out, err := r.Client().Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(out) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("INFO memory has no used_memory:\n%s", out)
	return 0
}

// fillRedis writes values, large and then small ones, until Redis refuses even a small one
// with OOM (a large write also counts its own query buffer), then keeps it refusing.
func fillRedis(t *testing.T, r *store.Redis) {
	t.Helper()
	i := 0
	for _, size := range []int{512 << 10, 16 << 10, 256} {
		v := strings.Repeat("x", size)
		for ; ; i++ {
			if i > 100000 {
				t.Fatal("Redis never refused a write with OOM")
			}
			err := r.Client().Set(context.Background(), fmt.Sprint("filler:", i), v, 0).Err()
			if err != nil && strings.HasPrefix(err.Error(), "OOM") {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	// Once refused, Redis shrinks the client's query buffer (grown by the large values) in
	// its cron, which can make room for a small write again. Pinning maxmemory below what the
	// data uses keeps it full, as a Redis its data really filled stays.
	limit := redisUsedMemory(t, r) / 2
	if err := r.Client().ConfigSet(context.Background(), "maxmemory", strconv.FormatInt(limit, 10)).Err(); err != nil {
		t.Fatal(err)
	}
}

// counterValue reads one labelled counter from the server's registry.
func counterValue(t *testing.T, s *Server, name, label, value string) float64 {
	t.Helper()
	mfs, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
