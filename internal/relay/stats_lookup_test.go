package relay

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/store"
)

// countingStore records the version lookups that reach a real store.
type countingStore struct {
	store.Store
	mu        sync.Mutex
	getBundle int
	lookups   [][]string // GetBundles calls that named a version outside the fixtures
}

func (c *countingStore) GetBundle(ctx context.Context, app, v string) (*channel.Bundle, error) {
	c.mu.Lock()
	c.getBundle++
	c.mu.Unlock()
	return c.Store.GetBundle(ctx, app, v)
}

func (c *countingStore) GetBundles(ctx context.Context, app string, vs []string) (map[string]*channel.Bundle, error) {
	if slices.ContainsFunc(vs, func(v string) bool { return strings.HasPrefix(v, "9.") || v == "1.3.0" }) {
		c.mu.Lock()
		c.lookups = append(c.lookups, slices.Clone(vs))
		c.mu.Unlock()
	}
	return c.Store.GetBundles(ctx, app, vs)
}

// TestStatsLookupBatched posts one batch of 1,000 events naming 1,000 distinct versions
// outside the relay's snapshot: the relay asks the store once (GetBundles) for at most
// maxStatLookups of them, never once per version, and counts the rest as "other".
func TestStatsLookupBatched(t *testing.T) {
	t.Parallel()
	st := &countingStore{Store: openBolt(t)}
	seed(t, st)
	// 1.3.0 and 1.4.0 are registered but on no channel: not in the relay's snapshot.
	for _, v := range []string{"1.3.0", "1.4.0"} {
		if _, _, err := st.PutBundle(context.Background(), &channel.Bundle{AppID: testApp, Version: v, URL: "https://cdn.example.com/" + v + ".zip",
			Checksum: strings.Repeat("f", 64), SHA256: strings.Repeat("f", 64), Commit: "c" + v, Ref: "refs/heads/feature"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	h := newServer(t, st, nil).Handler()
	events := []string{info(map[string]any{"version_name": "1.3.0", "action": "update_fail"})}
	for i := range 997 {
		events = append(events, info(map[string]any{"version_name": fmt.Sprintf("9.%d.0", i), "action": "set"}))
	}
	// A registered version first named after the cap is counted as "other" too; one named
	// before it keeps its label for the whole batch.
	events = append(events, info(map[string]any{"version_name": "1.4.0", "action": "download_fail"}))
	events = append(events, info(map[string]any{"device_id": "a0a0a0a0-0000-4000-8000-000000000000", "version_name": "1.3.0", "action": "set"}))
	if w := do(t, h, http.MethodPost, "/stats", "["+strings.Join(events, ",")+"]"); w.Code != http.StatusOK {
		t.Fatalf("POST /stats = %d %s", w.Code, w.Body)
	}
	st.mu.Lock()
	getBundle, lookups := st.getBundle, st.lookups
	st.mu.Unlock()
	if getBundle != 0 || len(lookups) != 1 || len(lookups[0]) != maxStatLookups {
		t.Errorf("store lookups: %d GetBundle, GetBundles %d calls (versions per call %v); want 0 and one call of %d versions",
			getBundle, len(lookups), lens(lookups), maxStatLookups)
	}
	got, err := st.Stats(context.Background(), testApp)
	if err != nil {
		t.Fatal(err)
	}
	byVersion := map[string]channel.VersionStats{}
	for _, vs := range got {
		byVersion[vs.Version] = vs
	}
	if len(byVersion) != 2 {
		t.Errorf("stats versions = %v, want 1.3.0 and other", got)
	}
	if a := byVersion["1.3.0"].Actions; a["update_fail"] != 1 || a["set"] != 1 || len(a) != 2 {
		t.Errorf("1.3.0 actions = %v, want update_fail 1 and set 1", a)
	}
	if a := byVersion[statOtherVersion].Actions; a["set"] != 997 || a["download_fail"] != 1 {
		t.Errorf("other actions = %v, want set 997 and download_fail 1", a)
	}
}

func lens(vss [][]string) []int {
	var n []int
	for _, vs := range vss {
		n = append(n, len(vs))
	}
	return n
}
