package testpeers

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Browser peers: Debian's Chromium, and axe-core's axe.min.js that [Axe] runs inside it.
const (
	Chromium = "FERRY_CHROMIUM"
	AxeJS    = "FERRY_AXE_JS"
)

// Viewport sizes for [Screenshot]: a laptop and a phone (CSS pixels, device scale factor 1).
const (
	DesktopWidth, DesktopHeight = 1280, 800
	MobileWidth, MobileHeight   = 390, 844
)

// browserTimeout bounds one helper's talk with the browser, so a hung page fails the test
// instead of waiting for go test's own timeout.
const browserTimeout = 30 * time.Second

// Browser starts a fresh headless Chromium (FERRY_CHROMIUM) with a new temporary profile and
// returns a chromedp context on its first tab; run actions on it with chromedp.Do and
// chromedp.Run. Chromium runs without its sandbox when the test runs as root (chromedp's
// default there), with no background networking, and is killed, and its profile removed, by
// t.Cleanup. When the peer is missing the test is skipped, or fails when peers are required.
func Browser(t testing.TB) context.Context {
	t.Helper()
	bin := Path(t, Chromium)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.DisableGPU,
		// This machine's network is closed: no update checks, no QUIC, no lookups at start.
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-pings", true),
		chromedp.WindowSize(DesktopWidth, DesktopHeight),
	)
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		allocCancel() // kills Chromium, waits for it and removes its profile directory
	})
	// The first run starts the browser, which lives as long as the context of that run: so it
	// must be ctx itself, bounded by a timer rather than a derived deadline.
	slow := time.AfterFunc(browserTimeout, cancel)
	err := chromedp.Do(ctx)
	if !slow.Stop() {
		err = fmt.Errorf("%w after %s", err, browserTimeout)
	}
	if err != nil {
		t.Fatalf("start chromium %s: %v", bin, err)
	}
	return ctx
}

// AxeViolation is one axe-core rule that failed on the page, with the elements it failed on.
type AxeViolation struct {
	ID      string   `json:"id"`     // rule id, e.g. "image-alt"
	Impact  string   `json:"impact"` // "minor", "moderate", "serious" or "critical"
	Help    string   `json:"help"`
	HelpURL string   `json:"helpUrl"`
	Targets []string `json:"targets"` // CSS selectors of the failing elements
}

// Blocking reports whether the violation's impact is serious or critical, the ones [Axe]
// fails a test on.
func (v AxeViolation) Blocking() bool { return v.Impact == "serious" || v.Impact == "critical" }

// String is the violation on one line: rule id, impact, help and the failing elements.
func (v AxeViolation) String() string {
	return fmt.Sprintf("%s (%s): %s [%s]", v.ID, v.Impact, v.Help, strings.Join(v.Targets, ", "))
}

// axeRun runs axe over the whole document and returns its violations as JSON. A target of an
// element inside a shadow root or frame is a list of selectors; it is joined with " >>> ".
const axeRun = `axe.run(document, {resultTypes: ["violations"]}).then(r => JSON.stringify(r.violations.map(v => ({
	id: v.id, impact: v.impact || "", help: v.help, helpUrl: v.helpUrl,
	targets: v.nodes.map(n => n.target.map(s => Array.isArray(s) ? s.join(" >>> ") : String(s)).join(" >>> ")),
}))))`

// AxeViolations injects axe-core (FERRY_AXE_JS) into the current page of ctx, runs every rule
// axe runs by default, and returns all violations, whatever their impact. It fails the test
// only when axe cannot run. Most tests want [Axe].
func AxeViolations(t testing.TB, ctx context.Context) []AxeViolation {
	t.Helper()
	src, err := os.ReadFile(Path(t, AxeJS))
	if err != nil {
		t.Fatalf("read axe-core: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, browserTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](string(src))); err != nil {
		t.Fatalf("inject axe-core: %v", err)
	}
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](axeRun, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("run axe-core: %v", err)
	}
	var vs []AxeViolation
	if err := json.Unmarshal([]byte(out), &vs); err != nil {
		t.Fatalf("decode axe-core results: %v", err)
	}
	return vs
}

// Axe runs axe-core in the current page of ctx (see [AxeViolations]) and fails the test with
// every serious or critical violation: rule id, impact, help and the failing elements'
// selectors. Minor and moderate ones are logged.
func Axe(t testing.TB, ctx context.Context) {
	t.Helper()
	var blocking []string
	for _, v := range AxeViolations(t, ctx) {
		if v.Blocking() {
			blocking = append(blocking, v.String())
		} else {
			t.Logf("axe (not failing): %s", v)
		}
	}
	if len(blocking) > 0 {
		t.Errorf("axe-core found %d serious or critical accessibility violations on %s:\n\t%s",
			len(blocking), location(ctx), strings.Join(blocking, "\n\t"))
	}
}

func location(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, browserTimeout)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "the page"
	}
	return loc
}

// Screenshot sets the viewport of ctx's tab to width×height CSS pixels at scale 1 (it stays so
// afterwards) and saves a full-page PNG of the current page to path, creating its directory.
// A page that fits the width gives a PNG exactly width pixels wide and at least height tall;
// use [DesktopWidth]/[DesktopHeight] and [MobileWidth]/[MobileHeight].
func Screenshot(t testing.TB, ctx context.Context, path string, width, height int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, browserTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(int64(width), int64(height))); err != nil {
		t.Fatalf("set viewport %dx%d: %v", width, height, err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100 means PNG
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("write screenshot: %v", err)
	}
}

// ConsoleLog collects what a tab reports as an error: console.error calls, uncaught
// exceptions and unhandled rejections, and browser log entries of level error, which is
// where Chromium reports Content-Security-Policy violations (source "security") and failed
// loads (source "network"). Make one with [ConsoleErrors].
type ConsoleLog struct {
	ctx    context.Context
	mu     sync.Mutex
	errors []string
	marks  map[string]chan struct{}
	n      int
}

// markPrefix starts the console.debug lines [ConsoleLog.Errors] writes to know it has read
// everything before them.
const markPrefix = "ferry-console-mark-"

// ConsoleErrors starts collecting the errors of ctx's tab (see [ConsoleLog]) until the test
// ends. Call it before navigating: what the page reported earlier is not seen.
func ConsoleErrors(t testing.TB, ctx context.Context) *ConsoleLog {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	l := &ConsoleLog{ctx: ctx, marks: map[string]chan struct{}{}}
	messages := chromedp.Console(ctx) // subscribed from here on, before the goroutine ranges
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			l.add(m)
		}
	}()
	return l
}

func (l *ConsoleLog) add(m chromedp.ConsoleMessage) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if m.Type == chromedp.ConsoleDebug && strings.HasPrefix(m.Text, markPrefix) {
		if c, ok := l.marks[m.Text]; ok {
			close(c)
			delete(l.marks, m.Text)
		}
		return
	}
	if m.Type != chromedp.ConsoleError && m.Type != chromedp.ConsoleException {
		return
	}
	msg := m.String()
	if m.Source != "" {
		msg = m.Source + " " + msg
	}
	if m.URL != "" {
		msg += fmt.Sprintf(" (%s:%d)", m.URL, m.Line+1)
	}
	l.errors = append(l.errors, msg)
}

// Errors returns every error the tab reported so far, oldest first, each as
// "[source ]type: text (url:line)". It first writes a marker to the console and waits until
// it comes back, so nothing the page reported before the call is missed.
func (l *ConsoleLog) Errors(t testing.TB) []string {
	t.Helper()
	l.mu.Lock()
	l.n++
	mark := fmt.Sprintf("%s%d", markPrefix, l.n)
	seen := make(chan struct{})
	l.marks[mark] = seen
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(l.ctx, browserTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](fmt.Sprintf("console.debug(%q)", mark))); err != nil {
		t.Fatalf("console mark: %v", err)
	}
	select {
	case <-seen:
	case <-ctx.Done():
		t.Fatalf("console mark %s never came back: %v", mark, ctx.Err())
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.errors...)
}

// None fails the test when the tab reported any error (see [ConsoleLog.Errors]).
func (l *ConsoleLog) None(t testing.TB) {
	t.Helper()
	if errs := l.Errors(t); len(errs) > 0 {
		t.Errorf("the page reported %d console errors:\n\t%s", len(errs), strings.Join(errs, "\n\t"))
	}
}
