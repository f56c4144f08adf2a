package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/console"
	"github.com/ferryhq/ferry/internal/relay/control"
	"github.com/ferryhq/ferry/internal/store"
)

// BenchmarkConsolePages renders every page on the embedded store holding 2,000 bundles of
// one app with 20 channels (each promoted and in rollout, so the audit log has entries) and
// 30 days of time-bucketed counters (benchSeries), so the apps page draws its 24-hour
// trends and the stats page its 24-hour and 30-day charts from real series.
func BenchmarkConsolePages(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	var cfg strings.Builder
	cfg.WriteString("apps:\n  - id: com.example.app\n    repository: acme/app\n    default_channel: ch00\n    channels:\n")
	for i := range 20 {
		fmt.Fprintf(&cfg, "      ch%02d: {}\n", i)
	}
	conf, err := channel.ParseConfig([]byte(cfg.String()))
	if err != nil {
		b.Fatal(err)
	}
	st, err := store.OpenBolt(filepath.Join(b.TempDir(), "ferry.db"), store.BoltOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	for i := range 2000 {
		v := fmt.Sprintf("1.%d.%d", i/100, i%100)
		bd := &channel.Bundle{AppID: "com.example.app", Version: v, URL: "https://example.com/" + v + ".zip", Checksum: strings.Repeat("a", 64),
			SHA256: strings.Repeat("a", 64), Size: 1 << 20, Commit: fmt.Sprintf("%040x", i), Ref: "refs/tags/v" + v, SignatureURL: "https://example.com/s"}
		if _, _, err := st.PutBundle(ctx, bd, &channel.AuditEntry{Action: "register", Version: v, Cause: "registration"}); err != nil {
			b.Fatal(err)
		}
	}
	api, err := control.New(ctx, control.Options{Config: conf, Store: st})
	if err != nil {
		b.Fatal(err)
	}
	defer api.Close()
	text, tok, _ := access.NewToken()
	tok.Name, tok.Grants, tok.CreatedAt = "bench", []access.Grant{{App: access.AllApps, Role: access.Admin}}, time.Now()
	if err := st.PutToken(ctx, tok); err != nil {
		b.Fatal(err)
	}
	by := control.Caller{Principal: &access.Principal{Kind: access.TokenKind, ID: tok.ID, Name: tok.Name, Grants: tok.Grants}}
	pct := 10
	for i := range 20 {
		ch := fmt.Sprintf("ch%02d", i)
		if _, err := api.Promote(ctx, by, "com.example.app", ch, fmt.Sprintf("1.%d.0", i)); err != nil {
			b.Fatal(err)
		}
		if _, err := api.SetRollout(ctx, by, "com.example.app", ch, fmt.Sprintf("1.%d.1", i), &pct); err != nil {
			b.Fatal(err)
		}
	}
	if err := benchSeries(ctx, st, time.Now()); err != nil {
		b.Fatal(err)
	}
	con, err := console.New(console.Options{API: api, Store: st, Series: st})
	if err != nil {
		b.Fatal(err)
	}
	e := gin.New()
	api.Mount(e)
	con.Mount(e)
	// Sign in once through the form, then reuse the session cookie.
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/console/signin", nil))
	cookies := rec.Result().Cookies()
	csrf := cookies[0].Value
	req := httptest.NewRequest(http.MethodPost, "/console/signin", strings.NewReader(url.Values{"csrf": {csrf}, "token": {text}, "return": {"/console/"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(cookies[0])
	rec = httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	var session *http.Cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == access.SessionCookie {
			session = c
		}
	}
	if session == nil {
		b.Fatalf("sign in: %d", rec.Code)
	}
	base := "/console/apps/com.example.app"
	for _, p := range []string{"/console/", base, base + "/channels/ch05", base + "/channels/ch05/promote?version=1.19.99",
		base + "/bundles/1.5.0", base + "/audit", base + "/audit?action=promote", base + "/devices?device=0b9f0c5e-2b39-4f5e-9d5e-0c1f7c1f2a11",
		base + "/stats?range=24h", base + "/stats?range=30d", base + "/stats.csv?range=30d"} {
		b.Run(strings.TrimPrefix(p, "/console/"), func(b *testing.B) {
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, p, nil)
				req.AddCookie(session)
				rec := httptest.NewRecorder()
				e.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", p, rec.Code, rec.Body.String())
				}
				if strings.Contains(p, "/stats?") && !strings.Contains(rec.Body.String(), "<svg") {
					b.Fatalf("%s draws no chart", p)
				}
			}
		})
	}
}

// benchSeries adds 30 days of traffic on the 20 channels to st, as the relay's counters
// would hold it: per channel its stable version 1.i.0 and its candidate 1.i.1, with update
// checks, installs, failed downloads and failed updates. The last 8 days come as 5-minute
// points (the store rolls them up into hours too); older days as hourly points, which is
// all the store keeps of them (docs/stats.md). One AddSeries per hour of traffic.
func benchSeries(ctx context.Context, st store.Store, now time.Time) error {
	start := now.Add(-30 * 24 * time.Hour).Truncate(channel.SeriesCoarse)
	fineFrom := now.Add(-8 * 24 * time.Hour).Truncate(channel.SeriesCoarse).Add(channel.SeriesCoarse)
	for hour := start; hour.Before(now); hour = hour.Add(channel.SeriesCoarse) {
		step, n := channel.SeriesCoarse, int64(12)
		if !hour.Before(fineFrom) {
			step, n = channel.SeriesFine, 1
		}
		var pts []channel.SeriesPoint
		for at := hour; at.Before(hour.Add(channel.SeriesCoarse)) && !at.After(now); at = at.Add(step) {
			h := int64(at.Hour())
			for i := range 20 {
				ch := fmt.Sprintf("ch%02d", i)
				for j, v := range []string{fmt.Sprintf("1.%d.0", i), fmt.Sprintf("1.%d.1", i)} {
					checks := n * (40 + 3*h + int64(i)) / int64(1+9*j) // the candidate gets a tenth
					for _, m := range []struct {
						metric string
						n      int64
					}{{channel.MetricCheck, checks}, {"set", checks / 25}, {"download_fail", checks/400 + int64(j)}, {"update_fail", checks / 900}} {
						pts = append(pts, channel.SeriesPoint{Start: at, Channel: ch, Version: v, Metric: m.metric, N: m.n})
					}
				}
			}
		}
		if err := st.AddSeries(ctx, "com.example.app", pts); err != nil {
			return fmt.Errorf("add series of %s: %w", hour, err)
		}
	}
	return nil
}
