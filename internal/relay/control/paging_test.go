package control

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/ferryhq/ferry/internal/relayclient"
)

// TestBundlePaging reads an app's bundles page by page over HTTP with relayclient: pages
// come oldest first and cover every bundle once, the unpaged listing keeps its shape
// (newest first, no next_cursor), and bad cursors and limits are refused with 400.
func TestBundlePaging(t *testing.T) {
	t.Parallel()
	_, srv, c := newClientEnv(t)
	ctx := t.Context()
	var want []string
	for i := range 7 {
		v := fmt.Sprintf("1.0.%d", i)
		if _, err := c.RegisterBundle(ctx, testBundle(v, commitA)); err != nil {
			t.Fatal(err)
		}
		want = append(want, v)
	}

	var got []string
	cursor, pages := "", 0
	for {
		page, next, err := c.ListBundlesPage(ctx, appID, cursor, 3)
		if err != nil {
			t.Fatalf("ListBundlesPage(%q): %v", cursor, err)
		}
		pages++
		for _, b := range page {
			got = append(got, b.Version)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || pages != 3 {
		t.Errorf("pages of 3 = %v in %d pages, want %v in 3", got, pages, want)
	}
	all, err := c.AllBundles(ctx, appID)
	if err != nil || len(all) != 7 || all[0].Version != "1.0.0" || all[6].Version != "1.0.6" {
		t.Errorf("AllBundles = %d bundles, %v; want 7 oldest first", len(all), err)
	}
	old, err := c.ListBundles(ctx, appID, 2)
	if err != nil || len(old.Bundles) != 2 || old.Bundles[0].Version != "1.0.6" || old.NextCursor != nil {
		t.Errorf("unpaged ListBundles(2) = %+v, %v; want the 2 newest and no next_cursor", old, err)
	}
	for _, bad := range []string{"x", "r0", "r8", "r99", "1", string(make([]byte, 100))} {
		_, _, err := c.ListBundlesPage(ctx, appID, bad, 3)
		if !errors.Is(err, &relayclient.Error{StatusCode: http.StatusBadRequest, Code: "bad_cursor"}) {
			t.Errorf("cursor %q: %v, want 400 bad_cursor", bad, err)
		}
	}
	for _, limit := range []int{-1, 501} {
		q := fmt.Sprintf("%s/api/v1/apps/%s/bundles?cursor=&limit=%d", srv.URL, appID, limit)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, q, nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("limit %d: status %d, want 400", limit, resp.StatusCode)
		}
	}
	if all, err := c.AllBundles(ctx, appID); err != nil || len(all) != 7 {
		t.Errorf("after refused requests AllBundles = %d, %v; want 7", len(all), err)
	}
}
