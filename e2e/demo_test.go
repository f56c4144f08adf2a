package e2e

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMakeDemo runs scripts/demo.sh, the recipe of `make demo` and the README's first
// command, in a temporary work directory, and checks that each step a newcomer reads
// happened: the action registered 1.0.0 on production, the signature verified, the device
// installed and verified 1.0.0, 1.1.0 landed on beta and a tag push promoted it. While the
// demo keeps its relay up (FERRY_DEMO_WAIT=1), it signs in to the console it printed with
// the token it printed, as a newcomer would, and sees the promotion there.
func TestMakeDemo(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is not installed")
	}
	work := t.TempDir()
	// Generous: the demo builds the binaries while the rest of the suite loads the machine.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join("scripts", "demo.sh"))
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "FERRY_DEMO_DIR="+filepath.Join(work, "demo"), "FERRY_DEMO_BIN="+filepath.Join(work, "bin"),
		"GOTOOLCHAIN=local", "FERRY_DEMO_WAIT=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Read the output as it comes; "press Enter" means the relay waits for the console.
	var (
		mu      sync.Mutex
		out     strings.Builder
		waiting = make(chan struct{})
		done    = make(chan struct{})
	)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			mu.Lock()
			out.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if strings.Contains(sc.Text(), "press Enter to stop it") {
				once.Do(func() { close(waiting) })
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	output := func() string {
		mu.Lock()
		defer mu.Unlock()
		return out.String()
	}
	select {
	case <-waiting:
		checkDemoConsole(t, output())
	case <-done:
	}
	stdin.Close() // Enter: the demo stops its relay and exits
	<-done
	if err := cmd.Wait(); err != nil {
		t.Fatalf("scripts/demo.sh: %v\n%s", err, output())
	}
	got := output()
	for _, want := range []string{
		`registered, channel production now serves it`,
		`Verified com.example.ferrydemo-1.0.0.zip`,
		`Decision: update to version 1.0.0 (encrypted`,
		`Verdict: a device would install 1.0.0 and it verifies.`,
		`registered, channel beta now serves it`,
		`"result":"promoted","version":"1.1.0"`,
		`Verdict: a device would install 1.1.0 and it verifies.`,
		`The new index.html says: Hello again: this is version 1.1.0`,
		`press Enter to stop it`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if strings.Contains(got, "BEGIN RSA PRIVATE KEY") || strings.Contains(got, "::add-mask::") {
		t.Error("demo output shows private key material")
	}
	if t.Failed() {
		t.Logf("demo output:\n%s", got)
	}
}

var (
	demoConsole = regexp.MustCompile(`Console: (http://127\.0\.0\.1:[0-9]+/console/)`)
	demoToken   = regexp.MustCompile(`(?m)^\s+(demo-[0-9a-f]{32})$`)
	csrfField   = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
)

// checkDemoConsole signs in to the console the demo printed with the token it printed,
// through the console's sign-in form, and checks the channel page shows what the tag push
// promoted and the audit log names the webhook.
func checkDemoConsole(t *testing.T, out string) {
	t.Helper()
	cm, tm := demoConsole.FindStringSubmatch(out), demoToken.FindStringSubmatch(out)
	if cm == nil || tm == nil {
		t.Fatalf("the demo printed no console URL or no token:\n%s", out)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	get := func(u string) string {
		t.Helper()
		res, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", u, res.Status)
		}
		return string(b)
	}
	signin := get(cm[1] + "signin")
	csrf := csrfField.FindStringSubmatch(signin)
	if csrf == nil {
		t.Fatalf("no sign-in form at %ssignin", cm[1])
	}
	const channelPath = "/console/apps/com.example.ferrydemo/channels/production"
	res, err := c.PostForm(cm[1]+"signin", url.Values{"csrf": {csrf[1]}, "token": {tm[1]}, "return": {channelPath}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Request.URL.Path != channelPath {
		t.Fatalf("sign in with the demo's token: %s at %s\n%s", res.Status, res.Request.URL, page)
	}
	for _, want := range []string{"Signed in as bootstrap token", `>1.1.0</a>`, "webhook"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("the demo's production channel page lacks %q:\n%s", want, page)
		}
	}
}
