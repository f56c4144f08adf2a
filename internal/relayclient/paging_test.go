package relayclient_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relayclient"
)

// oldRelay answers bundle listings as relays before paging did: it ignores ?cursor= and
// sends up to limit (at most 500) of its n bundles, newest first, without next_cursor.
func oldRelay(t *testing.T, n int) *relayclient.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := 50
		if n, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil {
			limit = n
		}
		var bs []*channel.Bundle
		for i := n - 1; i >= 0 && len(bs) < min(limit, 500); i-- {
			bs = append(bs, &channel.Bundle{AppID: "com.example.app", Version: fmt.Sprintf("1.0.%d", i)})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"app": "com.example.app", "bundles": bs})
	}))
	t.Cleanup(srv.Close)
	c, err := relayclient.New(srv.URL, relayclient.Options{HTTPClient: srv.Client(), AdminToken: "t"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAllBundlesOlderRelay(t *testing.T) {
	ctx := t.Context()
	c := oldRelay(t, 12)
	if _, _, err := c.ListBundlesPage(ctx, "com.example.app", "", 5); !errors.Is(err, relayclient.ErrNoPaging) {
		t.Errorf("ListBundlesPage from a relay without paging: %v, want ErrNoPaging", err)
	}
	all, err := c.AllBundles(ctx, "com.example.app")
	if err != nil || len(all) != 12 {
		t.Errorf("AllBundles with 12 bundles = %d, %v; want all 12 from the unpaged listing", len(all), err)
	}
	// 500 or more cannot be known complete: refused rather than cut short.
	if all, err := oldRelay(t, 501).AllBundles(ctx, "com.example.app"); !errors.Is(err, relayclient.ErrNoPaging) || all != nil {
		t.Errorf("AllBundles with 501 bundles = %d bundles, %v; want ErrNoPaging and nothing", len(all), err)
	}
}

// TestAllBundlesRepeatedCursor stops a relay that sends the same cursor again instead of
// looping forever.
func TestAllBundlesRepeatedCursor(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprint(w, `{"app":"a","bundles":[{"app_id":"a","version":"1"}],"next_cursor":"r1"}`)
	}))
	t.Cleanup(srv.Close)
	c, err := relayclient.New(srv.URL, relayclient.Options{HTTPClient: srv.Client(), AdminToken: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if all, err := c.AllBundles(t.Context(), "a"); err == nil || all != nil {
		t.Errorf("AllBundles with a repeating cursor = %d, %v; want an error", len(all), err)
	}
}
