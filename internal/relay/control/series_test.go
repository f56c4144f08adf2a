package control

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/relayclient"
)

// TestAdminSeries reads the series through the real handler and a real store: a viewer
// may, another app's token may not; filters, steps and the range bound apply.
func TestAdminSeries(t *testing.T) {
	t.Parallel()
	st := newBolt(t)
	e := newEnv(t, envOptions{store: st})
	base := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	pts := []channel.SeriesPoint{
		{Start: base.Add(time.Minute), Channel: "production", Version: "1.0.0", Metric: channel.MetricCheck, N: 4},
		{Start: base.Add(6 * time.Minute), Channel: "production", Version: "1.0.0", Metric: channel.MetricOffered, N: 1},
		{Start: base.Add(7 * time.Minute), Version: "1.0.0", Metric: "set", N: 2},
	}
	if err := st.AddSeries(t.Context(), appID, pts); err != nil {
		t.Fatal(err)
	}
	viewer := e.createToken(adminHeader(), relayclient.TokenRequest{Name: "viewer", Grants: grant(appID, access.Viewer)}, http.StatusCreated).Token
	other := e.createToken(adminHeader(), relayclient.TokenRequest{Name: "other", Grants: grant(otherApp, access.Admin)}, http.StatusCreated).Token
	from, to := base.Format(time.RFC3339), base.Add(time.Hour).Format(time.RFC3339)
	path := "/api/v1/apps/" + appID + "/series?from=" + from + "&to=" + to
	get := func(q, token string, want int) *relayclient.Series {
		t.Helper()
		w := e.do("GET", path+q, nil, tokenHeader(token))
		if w.Code != want {
			t.Fatalf("GET series%s = %d %s, want %d", q, w.Code, w.Body, want)
		}
		var out relayclient.Series
		if want == http.StatusOK {
			if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
				t.Fatal(err)
			}
		}
		return &out
	}
	got := get("", viewer, 200)
	want := []channel.SeriesPoint{
		{Start: base, Channel: "production", Version: "1.0.0", Metric: channel.MetricCheck, N: 4},
		{Start: base.Add(5 * time.Minute), Version: "1.0.0", Metric: "set", N: 2},
		{Start: base.Add(5 * time.Minute), Channel: "production", Version: "1.0.0", Metric: channel.MetricOffered, N: 1},
	}
	if diff := cmp.Diff(want, got.Points); diff != "" || got.Step != "5m" || got.App != appID {
		t.Errorf("series = app %q step %q, points (-want +got):\n%s", got.App, got.Step, diff)
	}
	if got := get("&metric=check&channel=production", viewer, 200); len(got.Points) != 1 || got.Points[0].N != 4 {
		t.Errorf("filtered series = %+v", got.Points)
	}
	if got := get("&step=1h", viewer, 200); len(got.Points) != 3 || !got.Points[0].Start.Equal(base) || got.Points[1].N != 4 {
		t.Errorf("hourly series = %+v", got.Points)
	}
	get("", other, http.StatusForbidden)
	for q, msg := range map[string]string{
		"?step=1m":        "step must be 5m or 1h",
		"?from=yesterday": "RFC 3339",
		"?from=" + from + "&to=" + base.Add(-time.Hour).Format(time.RFC3339): "before",
	} {
		w := e.do("GET", "/api/v1/apps/"+appID+"/series"+q, nil, tokenHeader(viewer))
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), msg) {
			t.Errorf("GET series%s = %d %s, want 400 mentioning %q", q, w.Code, w.Body, msg)
		}
	}
	long := "/api/v1/apps/" + appID + "/series?from=" + base.Add(-8*24*time.Hour).Format(time.RFC3339) + "&to=" + to
	if w := e.do("GET", long, nil, tokenHeader(viewer)); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "more than 2000 buckets") {
		t.Errorf("GET 8 days of 5m buckets = %d %s, want 400 naming the bound", w.Code, w.Body)
	}
	if w := e.do("GET", long+"&step=1h", nil, tokenHeader(viewer)); w.Code != http.StatusOK {
		t.Errorf("GET 8 days of 1h buckets = %d %s, want 200", w.Code, w.Body)
	}

	// The client sends the same query and reads the same answer.
	srv := httptest.NewServer(e.engine)
	t.Cleanup(srv.Close)
	c, err := relayclient.New(srv.URL, relayclient.Options{HTTPClient: srv.Client(), AdminToken: viewer})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := c.Series(t.Context(), appID, channel.SeriesQuery{From: base, To: base.Add(time.Hour), Step: channel.SeriesFine, Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, cs.Points); diff != "" {
		t.Errorf("client series (-want +got):\n%s", diff)
	}
}
