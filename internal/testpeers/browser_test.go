package testpeers_test

import (
	"bytes"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/ferryhq/ferry/internal/testpeers"
)

// The pages the browser helpers are proven on. Every page has the strict policy the console
// will send: scripts and styles from its own origin only, nothing inline.
const (
	csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'"

	goodPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Channels · Ferry</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/site.css"><script src="/app.js" defer></script></head>
<body><header><nav aria-label="Main"><a href="/good">Apps</a></nav></header>
<main><h1>Channels</h1>
<p><img src="/dot.svg" alt="Healthy" width="16" height="16"> production serves 1.4.2.</p>
<form method="post" action="/good"><label for="percent">Rollout percent</label>
<input id="percent" name="percent" type="number" min="0" max="100" value="25">
<button type="submit">Set rollout</button></form>
<p id="status">waiting for script</p></main></body></html>`

	// Two serious accessibility faults: an image without alt text and an unlabelled input.
	badPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Broken · Ferry</title><link rel="icon" href="data:,"></head>
<body><main><h1>Broken</h1>
<img src="/dot.svg" width="16" height="16">
<form method="post" action="/bad"><input id="version" name="version" type="text"><button type="submit">Promote</button></form>
</main></body></html>`

	// An inline script, which the policy forbids: the browser must block and report it.
	inlinePage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Inline · Ferry</title><link rel="icon" href="data:,"></head>
<body><main><h1>Inline</h1><p id="status">inline script blocked</p>
<script>document.getElementById("status").textContent = "inline script ran";</script>
</main></body></html>`

	// An allowed script that throws: an uncaught exception is a console error too.
	throwPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Throw · Ferry</title><link rel="icon" href="data:,"><script src="/throw.js"></script></head>
<body><main><h1>Throw</h1></main></body></html>`
)

func pages() *httptest.Server {
	mux := http.NewServeMux()
	serve := func(path, typ, body string) {
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Security-Policy", csp)
			w.Header().Set("Content-Type", typ)
			_, _ = w.Write([]byte(body))
		})
	}
	html := "text/html; charset=utf-8"
	serve("/good", html, goodPage)
	serve("/bad", html, badPage)
	serve("/inline", html, inlinePage)
	serve("/throw", html, throwPage)
	serve("/site.css", "text/css", "body{font:16px/1.5 sans-serif;margin:0 auto;max-width:60rem;padding:1rem;color:#111;background:#fff}"+
		"main{display:grid;gap:1rem}input,button{font:inherit}")
	serve("/app.js", "text/javascript", `document.getElementById("status").textContent = "script ran";`)
	serve("/throw.js", "text/javascript", `throw new Error("boom from throw.js");`)
	serve("/dot.svg", "image/svg+xml", `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"><circle cx="8" cy="8" r="7" fill="#1a7f37"/></svg>`)
	return httptest.NewServer(mux)
}

func TestBrowserHarness(t *testing.T) {
	srv := pages()
	defer srv.Close()
	ctx := testpeers.Browser(t)
	open := func(t *testing.T, path string) *testpeers.ConsoleLog {
		t.Helper()
		console := testpeers.ConsoleErrors(t, ctx)
		if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+path)); err != nil {
			t.Fatalf("navigate %s: %v", path, err)
		}
		return console
	}
	text := func(t *testing.T, sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("text %s: %v", sel, err)
		}
		return s
	}

	t.Run("accessible page passes axe with no console errors", func(t *testing.T) {
		console := open(t, "/good")
		if got := text(t, "#status"); got != "script ran" {
			t.Fatalf("#status = %q: the page's own script did not run under its policy", got)
		}
		testpeers.Axe(t, ctx)
		console.None(t)
	})

	t.Run("axe reports an image without alt and an unlabelled input", func(t *testing.T) {
		open(t, "/bad")
		vs := testpeers.AxeViolations(t, ctx)
		byID := map[string]testpeers.AxeViolation{}
		for _, v := range vs {
			byID[v.ID] = v
		}
		for id, target := range map[string]string{"image-alt": "img", "label": "#version"} {
			v, ok := byID[id]
			if !ok {
				t.Errorf("axe did not report %s; it reported %v", id, vs)
				continue
			}
			if !v.Blocking() {
				t.Errorf("%s has impact %q, want serious or critical", id, v.Impact)
			}
			if !slices.Contains(v.Targets, target) {
				t.Errorf("%s targets %v, want %q among them", id, v.Targets, target)
			}
			if v.Help == "" || !strings.HasPrefix(v.HelpURL, "https://") {
				t.Errorf("%s lacks help: %+v", id, v)
			}
			if s := v.String(); !strings.Contains(s, id) || !strings.Contains(s, target) {
				t.Errorf("String() = %q, want the rule id and the target", s)
			}
		}
	})

	t.Run("a CSP-blocked inline script is reported", func(t *testing.T) {
		console := open(t, "/inline")
		if got := text(t, "#status"); got != "inline script blocked" {
			t.Fatalf("#status = %q: the inline script ran despite the policy", got)
		}
		errs := console.Errors(t)
		if len(errs) != 1 || !strings.Contains(errs[0], "Content Security Policy") || !strings.Contains(errs[0], "script-src") {
			t.Fatalf("console errors = %q, want exactly the Content Security Policy report on script-src", errs)
		}
		t.Logf("reported: %s", errs[0])
	})

	t.Run("an uncaught exception is reported", func(t *testing.T) {
		console := open(t, "/throw")
		errs := console.Errors(t)
		if len(errs) != 1 || !strings.Contains(errs[0], "boom from throw.js") || !strings.Contains(errs[0], "exception") {
			t.Fatalf("console errors = %q, want the uncaught exception from throw.js", errs)
		}
	})

	t.Run("screenshots at desktop and mobile widths", func(t *testing.T) {
		open(t, "/good")
		dir := t.TempDir()
		for _, size := range []struct {
			name          string
			width, height int
		}{
			{"desktop", testpeers.DesktopWidth, testpeers.DesktopHeight},
			{"mobile", testpeers.MobileWidth, testpeers.MobileHeight},
		} {
			path := filepath.Join(dir, "shots", "channels-"+size.name+".png")
			testpeers.Screenshot(t, ctx, path, size.width, size.height)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("%s is not a PNG: %v", path, err)
			}
			b := img.Bounds()
			if b.Dx() != size.width || b.Dy() < size.height {
				t.Errorf("%s is %dx%d, want %d wide and at least %d tall", size.name, b.Dx(), b.Dy(), size.width, size.height)
			}
			if uniform(img) {
				t.Errorf("%s screenshot is one colour: nothing was rendered", size.name)
			}
		}
	})
}

// uniform reports whether every pixel of img has the same colour.
func uniform(img image.Image) bool {
	b := img.Bounds()
	first := img.At(b.Min.X, b.Min.Y)
	r0, g0, b0, a0 := first.RGBA()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if r, g, bl, a := img.At(x, y).RGBA(); r != r0 || g != g0 || bl != b0 || a != a0 {
				return false
			}
		}
	}
	return true
}
