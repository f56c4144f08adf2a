package console_test

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/console"
	"github.com/ferryhq/ferry/internal/device"
	"github.com/ferryhq/ferry/internal/relay"
	"github.com/ferryhq/ferry/internal/relay/control"
	"github.com/ferryhq/ferry/internal/relay/relaytest"
	"github.com/ferryhq/ferry/internal/store"
	"github.com/ferryhq/ferry/internal/testpeers"
)

// browserApp is the app of the browser tests.
const browserApp = "com.example.app"

// The browser tests' attacker-influenced strings: each sets a window flag (and opens a
// dialog) if the page ever runs it.
const (
	xssBrowserVersion = `9.9.9<img src=x onerror="window.ferryXSS=1;alert(1)">`
	xssBrowserRef     = `refs/tags/"><script>window.ferryXSS=2;alert(2)</script>`
)

// browserRelay is the relay with its control plane and console, on a real listener.
type browserRelay struct {
	url   string
	api   *control.API
	store store.Store
}

// startBrowserRelay runs the relay as cmd/relay wires it (relay, control plane, console)
// on st, with single sign-on through a fresh test OpenID Provider (relaytest.SSOConfig),
// and seeds the app:
// three bundles (one with XSS payloads for version and ref), 1.0.0 on production, and a
// deployer and a viewer token. It returns the relay and the tokens by role.
func startBrowserRelay(t *testing.T, st store.Store) (*browserRelay, map[access.Role]string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	t.Cleanup(srv.Close)
	r := &browserRelay{url: "http://" + srv.Listener.Addr().String(), store: st}
	// Single sign-on: Ana is an admin, Dev a viewer of the app.
	op := testpeers.OpenIDProvider(t, testpeers.OPOptions{RedirectURIs: []string{r.url + "/auth/callback"}, Users: relaytest.SSOUsers})
	cfg, err := channel.ParseConfig([]byte(testConfig + relaytest.SSOConfig(op.Issuer, r.url, testpeers.OPWebClientID)))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	rs, err := relay.New(relay.Options{Config: cfg, Store: st, Logger: logger, RateLimit: -1, DeviceRateLimit: -1,
		Series: st, SeriesFlush: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r.api, err = control.New(t.Context(), control.Options{Config: cfg, Store: st, Logger: logger, AdminToken: "console-bootstrap",
		OnChange: rs.Invalidate,
		Getenv: func(k string) string {
			if k == relaytest.SSOSecretEnv {
				return testpeers.OPWebClientSecret
			}
			return ""
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.api.Close)
	con, err := console.New(console.Options{API: r.api, Store: st, Series: st, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	rs.Mount(r.api)
	rs.Mount(con)
	srv.Config.Handler = rs.Handler()
	srv.Start()

	ctx := t.Context()
	tokens := map[access.Role]string{}
	for role, name := range map[access.Role]string{access.Deployer: "rel-eng", access.Viewer: "support-desk"} {
		text, tok, err := access.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		tok.Name, tok.Grants, tok.CreatedAt = name, []access.Grant{{App: browserApp, Role: role}}, time.Now()
		if err := st.PutToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		tokens[role] = text
	}
	// Oldest first: the hostile bundle is the oldest, so that the lists open on 1.1.0.
	for i, v := range []string{xssBrowserVersion, "1.0.0", "1.1.0"} {
		ref := "refs/tags/v" + v
		if v == xssBrowserVersion {
			ref = xssBrowserRef
		}
		file := fmt.Sprintf("https://cdn.example.com/%s/%d/%s-%d.zip", browserApp, i, browserApp, i)
		sum := relaytest.Hex("bundle "+v, 32)
		b := &channel.Bundle{AppID: browserApp, Version: v, URL: file, Checksum: sum, SHA256: sum, Size: int64(180_000 + 1000*i),
			Commit: relaytest.Commit(v), Ref: ref, Repository: "acme/app", SignatureURL: file + ".sigstore.json"}
		if v == "1.1.0" { // what the pipeline reports after verifying a keyless signature
			idx := int64(153062894)
			b.Signature = &channel.Signature{Mode: "keyless", Identity: "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.1.0",
				Issuer: "https://token.actions.githubusercontent.com", Workflow: ".github/workflows/release.yml", LogIndex: &idx,
				IntegratedTime: time.Now().Add(-time.Hour).UTC().Truncate(time.Second), Verified: true}
		}
		if _, _, err := st.PutBundle(ctx, b, &channel.AuditEntry{Action: "register", Version: v, Cause: "registration",
			Actor: &channel.Actor{Kind: "ci", ID: strconv.Itoa(7100 + i), Name: "acme/app", Workflow: ".github/workflows/release.yml"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.AddSeries(ctx, browserApp, demoSeries(time.Now())); err != nil {
		t.Fatal(err)
	}
	if _, err := r.api.Promote(ctx, control.Caller{Principal: bootstrap}, browserApp, "production", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	return r, tokens
}

// demoSeries is a day of production traffic for the stats screen: 1.0.0 everywhere, then
// 1.1.0 installed by more and more devices over the last twelve hours, with a few failed
// downloads of it.
func demoSeries(now time.Time) []channel.SeriesPoint {
	var pts []channel.SeriesPoint
	start := now.Add(-24 * time.Hour).Truncate(channel.SeriesFine)
	for i := range 288 {
		at := start.Add(time.Duration(i) * channel.SeriesFine)
		checks := int64(300 + 120*((i/12)%5)) // a daily rhythm, coarsely
		var adopted int64
		if i >= 144 {
			adopted = checks * int64(i-144) / 144
		}
		add := func(v, m string, n int64) {
			pts = append(pts, channel.SeriesPoint{Start: at, Channel: "production", Version: v, Metric: m, N: n})
		}
		add("1.0.0", channel.MetricCheck, checks-adopted)
		add("1.1.0", channel.MetricCheck, adopted)
		if i >= 144 {
			add("1.1.0", "set", checks/20)
			add("1.1.0", "download_fail", int64(1+(i/24)%3))
		}
	}
	return pts
}

// check asks the relay for an update as a device on production running builtin, and
// returns the version it is offered.
func (r *browserRelay) check(t *testing.T) string {
	t.Helper()
	d := &device.Client{UpdateURL: r.url + "/updates", StatsURL: r.url + "/stats", ChannelURL: r.url + "/channel_self",
		Info: channel.DeviceInfo{Platform: "android", DeviceID: browserDevice, AppID: browserApp, VersionBuild: "1.0.0",
			VersionCode: "7", VersionOS: "14", IsProd: true}, Dir: t.TempDir()}
	resp, err := d.Check(t.Context())
	if err != nil {
		t.Fatalf("device check: %v", err)
	}
	return resp.Version
}

const browserDevice = "7239a82f-4ea8-4e33-9085-f4ad974d3fc4"

// docScreens are the screens whose screenshots docs/console.md shows.
var docScreens = []string{"signin", "apps", "channel", "promote", "bundle", "audit", "devices", "stats"}

// compactPNG rewrites the PNG at path with a palette of its 256 most frequent colours (the
// nearest one for the rest, which is anti-aliased text) at best compression, so that the
// screenshots kept in the repository stay small.
func compactPNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	bounds := img.Bounds()
	counts := map[color.RGBA]int{}
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			counts[color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)]++
		}
	}
	byCount := slices.SortedFunc(maps.Keys(counts), func(a, b color.RGBA) int {
		if d := counts[b] - counts[a]; d != 0 {
			return d
		}
		return int(a.R)<<16 | int(a.G)<<8 | int(a.B) - (int(b.R)<<16 | int(b.G)<<8 | int(b.B))
	})
	pal := make(color.Palette, 0, 256)
	for _, c := range byCount[:min(256, len(byCount))] {
		pal = append(pal, c)
	}
	out := image.NewPaletted(bounds, pal)
	index := map[color.RGBA]uint8{}
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			i, ok := index[c]
			if !ok {
				i = uint8(pal.Index(c))
				index[c] = i
			}
			out.SetColorIndex(x, y, i)
		}
	}
	w, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(w, out); err != nil {
		t.Fatalf("encode %s: %v", path, err)
	}
}

// tab is one browser tab on the console, failing its test on any console error.
type tab struct {
	t       *testing.T
	ctx     context.Context
	base    string
	console *testpeers.ConsoleLog
	dialogs *atomic.Int32
	// shots, when set, is where screenshots go (docs/img when FERRY_SCREENSHOTS=1).
	shots string
}

func newTab(t *testing.T, base, shots string) *tab {
	t.Helper()
	ctx := testpeers.Browser(t)
	tb := &tab{t: t, ctx: ctx, base: base, dialogs: &atomic.Int32{}, shots: shots}
	tb.console = testpeers.ConsoleErrors(t, ctx)
	// A dialog would be a payload running; count it and dismiss it so the page goes on.
	if err := chromedp.Listen(ctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			tb.dialogs.Add(1)
			go func() { _, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{}) }()
		}
	}); err != nil {
		t.Fatal(err)
	}
	return tb
}

// do runs actions on the tab, failing the test on error.
func (b *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// navigate runs actions that load a page (a click, a key, a navigation) and returns the
// HTTP status of the page that loaded.
func (b *tab) navigate(what string, actions ...chromedp.Action[chromedp.Void]) int {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, actions...)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return int(resp.Status)
}

// open loads a console path and requires 200.
func (b *tab) open(path string) {
	b.t.Helper()
	if st := b.navigate("open "+path, chromedp.Navigate(b.base+path)); st != http.StatusOK {
		b.t.Fatalf("open %s: status %d", path, st)
	}
}

// eval evaluates a JavaScript expression in the page (awaiting it when it is a promise).
func eval[T any](b *tab, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (b *tab) path() string { return eval[string](b, "location.pathname + location.search") }

func (b *tab) text() string { return eval[string](b, "document.body.innerText") }

// screen checks the current page as a screen of the console: axe-core finds no serious or
// critical violation at desktop and at mobile width, nothing was reported on the console,
// and screenshots are saved as name-desktop.png and name-mobile.png.
func (b *tab) screen(name string) {
	b.t.Helper()
	dir := b.shots
	if dir == "" || !slices.Contains(docScreens, name) {
		dir = b.t.TempDir()
	}
	for _, size := range []struct {
		name string
		w, h int
	}{{"mobile", testpeers.MobileWidth, testpeers.MobileHeight}, {"desktop", testpeers.DesktopWidth, testpeers.DesktopHeight}} {
		path := filepath.Join(dir, name+"-"+size.name+".png")
		testpeers.Screenshot(b.t, b.ctx, path, size.w, size.h)
		if dir == b.shots {
			compactPNG(b.t, path)
		}
		testpeers.Axe(b.t, b.ctx)
	}
	b.console.None(b.t)
}

// expectedErrors checks that the page reported n console errors, as a request the test
// expects refused does (Chromium logs every 4xx), and starts a new log.
func (b *tab) expectedErrors(n int) {
	b.t.Helper()
	if errs := b.console.Errors(b.t); len(errs) != n {
		b.t.Errorf("expected %d console errors, got:\n\t%s", n, strings.Join(errs, "\n\t"))
	}
	b.console = testpeers.ConsoleErrors(b.t, b.ctx)
}

// tabTo presses Tab until the focused element matches the CSS selector.
func (b *tab) tabTo(sel string) {
	b.t.Helper()
	for range 60 {
		b.do("press Tab", chromedp.KeyEvent(kb.Tab))
		if eval[bool](b, fmt.Sprintf("document.activeElement !== null && document.activeElement.matches(%q)", sel)) {
			return
		}
	}
	b.t.Fatalf("Tab never reached %s on %s", sel, b.path())
}

// TestConsoleInBrowser drives the console in headless Chromium on the embedded store and on
// Redis: token and single sign-on sign-in, every screen through axe-core at desktop and
// mobile width, a keyboard-only promotion a device then gets, a rollout paused, the audit
// entries naming who did it, a viewer without deploy actions, forged POSTs refused, and XSS
// payloads rendered inert.
func TestConsoleInBrowser(t *testing.T) {
	testpeers.Path(t, testpeers.Chromium)
	testpeers.Path(t, testpeers.TestOP)
	for _, kind := range []string{"bolt", "redis"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			var st store.Store
			if kind == "bolt" {
				b, err := store.OpenBolt(filepath.Join(t.TempDir(), "ferry.db"), store.BoltOptions{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { b.Close() })
				st = b
			} else {
				rdb := testpeers.Redis(t)
				r, err := store.OpenRedis(t.Context(), "redis://"+rdb.Addr+"/0", store.RedisOptions{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { r.Close() })
				st = r
			}
			shots := ""
			if kind == "bolt" && os.Getenv("FERRY_SCREENSHOTS") == "1" {
				shots = filepath.Join("..", "..", "docs", "img")
			}
			testConsoleInBrowser(t, st, shots)
		})
	}
}

func testConsoleInBrowser(t *testing.T, st store.Store, shots string) {
	r, tokens := startBrowserRelay(t, st)
	b := newTab(t, r.url, shots)
	app := "/console/apps/" + browserApp
	channelPath := app + "/channels/production"

	// Signed out, the console sends the browser to sign in, and comes back afterwards.
	b.open(channelPath)
	if p := b.path(); !strings.HasPrefix(p, "/console/signin?return=") {
		t.Fatalf("signed out, %s ended at %s", channelPath, p)
	}
	b.screen("signin")
	b.do("type the token", chromedp.SendKeys(chromedp.ID("token"), tokens[access.Deployer]))
	if st := b.navigate("sign in with a token", chromedp.Click(chromedp.CSS(`form[action="/console/signin"] button[type=submit]`))); st != http.StatusOK {
		t.Fatalf("token sign-in: status %d", st)
	}
	if p := b.path(); p != channelPath {
		t.Fatalf("after signing in: at %s, want %s", p, channelPath)
	}
	if txt := b.text(); !strings.Contains(txt, "Signed in as token rel-eng") {
		t.Fatalf("channel page does not name the token:\n%s", txt)
	}

	// Every read-only screen passes axe-core, with nothing on the console.
	for _, s := range []struct{ name, path, want string }{
		{"apps", "/console/", browserApp},
		{"app", app, "1.1.0"},
		{"channel", channelPath, "Promote"},
		{"bundle", app + "/bundles/1.1.0", "did not re-verify"},
		{"stats", app + "/stats?range=24h", "Totals per version"},
	} {
		b.open(s.path)
		if txt := b.text(); !strings.Contains(txt, s.want) {
			t.Errorf("%s page lacks %q:\n%s", s.name, s.want, txt)
		}
		b.screen(s.name)
	}

	// A forged POST without the CSRF token, from the signed-in browser of a deployer who
	// may promote, is refused and changes nothing.
	forged := eval[int](b, fmt.Sprintf(`(async () => (await fetch(%q, {method: "POST", credentials: "same-origin",
		body: new URLSearchParams({version: "1.1.0"})})).status)()`, channelPath+"/promote"))
	if forged != http.StatusForbidden {
		t.Errorf("promote without csrf: status %d, want 403", forged)
	}
	b.expectedErrors(1) // the browser reports the refusal
	if v := r.check(t); v != "1.0.0" {
		t.Fatalf("after the forged promote a device is offered %q, want 1.0.0 still", v)
	}

	// Keyboard only: choose 1.1.0 on the channel page, review, confirm.
	b.open(channelPath)
	b.tabTo("#promote-version")
	for range 5 {
		if eval[string](b, "document.activeElement.value") == "1.1.0" {
			break
		}
		b.do("arrow down", chromedp.KeyEvent(kb.ArrowDown))
	}
	if v := eval[string](b, "document.activeElement.value"); v != "1.1.0" {
		t.Fatalf("keyboard could not choose 1.1.0 in the promote list (at %q)", v)
	}
	b.tabTo(`form[action$="/promote"] button[type=submit]`)
	if st := b.navigate("Enter on Review promotion", chromedp.KeyEvent(kb.Enter)); st != http.StatusOK {
		t.Fatalf("promote confirmation: status %d", st)
	}
	if txt := b.text(); !strings.Contains(txt, "Promote to production?") || !strings.Contains(txt, "1.0.0") || !strings.Contains(txt, "1.1.0") {
		t.Fatalf("confirmation does not show from → to:\n%s", txt)
	}
	b.screen("promote")
	b.tabTo(`form[method=post][action$="/promote"] button[type=submit]`)
	if st := b.navigate("Enter on Promote", chromedp.KeyEvent(kb.Enter)); st != http.StatusOK {
		t.Fatalf("promote: status %d", st)
	}
	if v := r.check(t); v != "1.1.0" {
		t.Fatalf("after promoting 1.1.0 in the console a device is offered %q", v)
	}

	// A rollout of the XSS-named bundle to 20 %, then paused from its button.
	b.open(channelPath)
	b.do("set rollout", chromedp.SetValue(chromedp.ID("rollout-version"), xssBrowserVersion),
		chromedp.SetValue(chromedp.ID("rollout-percent"), "20"))
	b.navigate("set rollout", chromedp.Click(chromedp.CSS(`form[action$="/rollout"] button[type=submit]`)))
	b.navigate("pause", chromedp.Click(chromedp.CSS(`form[action$="/rollout/pause"] button[type=submit]`)))
	if txt := b.text(); !strings.Contains(txt, "20% of devices, paused") {
		t.Errorf("channel page after pausing:\n%s", txt)
	}
	views, err := r.api.Channels(t.Context(), mustApp(t, r.api))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range views {
		if v.Name == "production" && (v.State == nil || v.State.Rollout == nil || !v.State.Rollout.Paused || v.State.Rollout.Percent != 20) {
			t.Errorf("production state after pausing in the console: %+v", v.State)
		}
	}
	b.screen("channel-rollout")
	assertInert(t, b, xssBrowserVersion)

	// The audit log names who did each thing.
	b.open(app + "/audit")
	txt := b.text()
	for _, want := range []string{"promote", "pause", "token rel-eng"} {
		if !strings.Contains(txt, want) {
			t.Errorf("audit page lacks %q:\n%s", want, txt)
		}
	}
	b.screen("audit")

	// The bundle with XSS payloads as version and ref renders them as text.
	b.open(app + "/bundles/" + url.PathEscape(xssBrowserVersion))
	assertInert(t, b, xssBrowserRef)
	b.screen("bundle-hostile")

	// The device that checked, looked up: a deployer sees no clear button.
	b.open(app + "/devices?device=" + browserDevice)
	if n := eval[int](b, `document.querySelectorAll('form[action$="/clear-failed"]').length`); n != 0 {
		t.Errorf("a deployer sees %d clear-failed forms", n)
	}
	b.screen("devices-deployer")

	// Sign out; sign in as Dev, a viewer, through single sign-on.
	b.navigate("sign out", chromedp.Click(chromedp.CSS(`form.signout button`)))
	b.ssoSignIn(channelPath, "dev", "dev-pass")
	if txt := b.text(); !strings.Contains(txt, "Signed in as dev@example.com") {
		t.Fatalf("channel page does not name the person:\n%s", txt)
	}
	// A viewer sees no deploy action: the only form that posts is signing out.
	if n := eval[int](b, `document.querySelectorAll('form[method=post]:not(.signout), form[action$="/promote"]').length`); n != 0 {
		t.Errorf("a viewer sees %d deploy forms", n)
	}
	b.screen("channel-viewer")
	// With the session's CSRF token, the server still refuses the viewer's promote.
	refused := eval[int](b, fmt.Sprintf(`(async () => (await fetch(%q, {method: "POST", credentials: "same-origin",
		body: new URLSearchParams({version: "1.0.0", csrf: document.querySelector("form.signout input[name=csrf]").value})})).status)()`, channelPath+"/promote"))
	if refused != http.StatusForbidden {
		t.Errorf("viewer promote: status %d, want 403", refused)
	}
	b.expectedErrors(1)
	if v := r.check(t); v != "1.1.0" {
		t.Errorf("after the viewer's refused promote a device is offered %q, want 1.1.0", v)
	}

	// Ana, an admin, signs in through single sign-on and resumes the rollout: the audit log
	// names her.
	b.navigate("sign out", chromedp.Click(chromedp.CSS(`form.signout button`)))
	b.ssoSignIn(channelPath, "ana", "ana-pass")
	b.navigate("resume", chromedp.Click(chromedp.CSS(`form[action$="/rollout/resume"] button[type=submit]`)))
	if txt := b.text(); !strings.Contains(txt, "20% of devices") || strings.Contains(txt, "20% of devices, paused") {
		t.Errorf("channel page after resuming:\n%s", txt)
	}
	b.open(app + "/audit?action=resume")
	if txt := b.text(); !strings.Contains(txt, "person ana@example.com") {
		t.Errorf("the audit log does not name Ana for the resume:\n%s", txt)
	}

	// The device fails the version it is offered; Ana clears its failed versions on the
	// devices page, and the relay offers that version to it again.
	ctx := t.Context()
	offered := r.check(t)
	if offered == "" {
		t.Fatal("the device is offered nothing before failing")
	}
	if err := r.store.RecordStats(ctx, browserApp, []channel.StatEvent{{Device: browserDevice, Version: offered, Action: "update_fail"}}); err != nil {
		t.Fatal(err)
	}
	if v := r.check(t); v == offered {
		t.Fatalf("after failing %q the device is still offered it", offered)
	}
	b.open(app + "/devices?device=" + url.QueryEscape(browserDevice))
	if txt := b.text(); !strings.Contains(txt, offered) {
		t.Errorf("devices page does not list the failed version %q:\n%s", offered, txt)
	}
	b.screen("devices")
	b.navigate("clear failed versions", chromedp.Click(chromedp.CSS(`form[action$="/devices/clear-failed"] button[type=submit]`)))
	if txt := b.text(); !strings.Contains(txt, "Failed versions cleared") {
		t.Errorf("devices page after clearing:\n%s", txt)
	}
	if failed, err := r.store.FailedVersions(ctx, browserApp, browserDevice); err != nil || len(failed) != 0 {
		t.Errorf("failed versions in the store after clearing in the console = %v, %v; want none", failed, err)
	}
	if v := r.check(t); v != offered {
		t.Errorf("after clearing, the device is offered %q, want %q again", v, offered)
	}
	if e := lastAudit(t, r.store, "clear_failed"); e.Device != browserDevice || e.Actor == nil || e.Actor.Email != "ana@example.com" {
		t.Errorf("clear_failed audit entry = %+v (actor %+v); want the device and Ana", e, e.Actor)
	}
	b.open(app + "/audit?action=clear_failed")
	if txt := b.text(); !strings.Contains(txt, "person ana@example.com") || !strings.Contains(txt, browserDevice) {
		t.Errorf("the audit log does not name Ana and the device for the clear:\n%s", txt)
	}

	// Ana edits production's policy: devices may choose it, development builds may not.
	b.open(channelPath)
	b.do("edit the policy", chromedp.Click(chromedp.CSS(`input[name=allow_device_self_set]`)),
		chromedp.Click(chromedp.CSS(`input[name=allow_dev]`)))
	if st := b.navigate("save the policy", chromedp.Click(chromedp.CSS(`form[action$="/policy"] button[type=submit]:not([name=reset])`))); st != http.StatusOK {
		t.Fatalf("save the policy: status %d", st)
	}
	if txt := b.text(); !strings.Contains(txt, "Policy saved.") || !strings.Contains(txt, "device self-set allowed") {
		t.Errorf("channel page after saving the policy:\n%s", txt)
	}
	views, err = r.api.Channels(ctx, mustApp(t, r.api))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range views {
		if v.Name == "production" && (!v.Overridden || !v.Policy.AllowDeviceSelfSet || !v.Policy.DenyDev || v.Policy.DenyEmulator) {
			t.Errorf("production after saving the policy in the console: overridden %v, %+v", v.Overridden, v.Policy)
		}
	}
	if e := lastAudit(t, r.store, "policy"); e.Channel != "production" || e.Actor == nil || e.Actor.Email != "ana@example.com" ||
		!strings.Contains(string(e.After), `"allow_device_self_set":true`) {
		t.Errorf("policy audit entry = %+v (actor %+v, after %s); want production, Ana, self-set allowed", e, e.Actor, e.After)
	}
	b.open(app + "/audit?action=policy")
	if txt := b.text(); !strings.Contains(txt, "person ana@example.com") {
		t.Errorf("the audit log does not name Ana for the policy:\n%s", txt)
	}
	b.console.None(t)
	if n := b.dialogs.Load(); n != 0 {
		t.Errorf("%d JavaScript dialogs opened", n)
	}
}

// ssoSignIn opens path signed out, follows the sign-in page's single sign-on link, fills
// the provider's login form as user, and checks the browser comes back to path.
func (b *tab) ssoSignIn(path, user, pass string) {
	b.t.Helper()
	b.open(path)
	b.navigate("follow single sign-on", chromedp.Click(chromedp.CSS(`a[href^="/auth/login"]`)))
	b.do("fill the provider's form", chromedp.SendKeys(chromedp.CSS(`input[name=username]`), user),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), pass))
	if st := b.navigate("submit the provider's form", chromedp.Submit(chromedp.CSS(`input[name=password]`))); st != http.StatusOK {
		b.t.Fatalf("single sign-on as %s: status %d", user, st)
	}
	if p := b.path(); p != path {
		b.t.Fatalf("after single sign-on as %s: at %s, want %s", user, p, path)
	}
	// What the provider's own pages reported (its favicon) is not the console's.
	b.console = testpeers.ConsoleErrors(b.t, b.ctx)
}

// bootstrap is the principal of the bootstrap token, as the control plane makes it.
var bootstrap = &access.Principal{Kind: access.Bootstrap, Grants: []access.Grant{{App: access.AllApps, Role: access.Admin}}}

func mustApp(t *testing.T, api *control.API) *channel.App {
	t.Helper()
	app, err := api.App(bootstrap, browserApp, access.Read)
	if err != nil {
		t.Fatal(err)
	}
	return app
}

// lastAudit returns the newest audit entry of the app with action, failing the test if
// there is none.
func lastAudit(t *testing.T, st store.Store, action string) channel.AuditEntry {
	t.Helper()
	all, err := st.ListAudit(t.Context(), browserApp, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range all {
		if e.Action == action {
			return e
		}
	}
	t.Fatalf("no %s audit entry", action)
	return channel.AuditEntry{}
}

// assertInert checks that payload appears on the page as text and that nothing of it ran:
// no element it would have created, no window flag, no dialog.
func assertInert(t *testing.T, b *tab, payload string) {
	t.Helper()
	if txt := eval[string](b, "document.body.textContent"); !strings.Contains(txt, payload) {
		t.Errorf("%s: payload %q not shown as text", b.path(), payload)
	}
	if n := eval[int](b, `document.querySelectorAll('img[src="x"], script:not([src])').length`); n != 0 {
		t.Errorf("%s: payload became %d elements", b.path(), n)
	}
	if ran := eval[bool](b, "window.ferryXSS !== undefined"); ran {
		t.Errorf("%s: payload ran", b.path())
	}
	if n := b.dialogs.Load(); n != 0 {
		t.Errorf("%s: %d dialogs opened", b.path(), n)
	}
}
