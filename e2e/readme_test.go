package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/testpeers"
)

// readmeBlock is one fenced block of README.md that a `<!-- readme:… -->` marker selects.
type readmeBlock struct {
	kind string // "run", "background" or "file"
	name string // file name, for kind "file"
	text string
	line int
}

// readmeBlocks returns the marked blocks of a Markdown document, in order. A marker line
// `<!-- readme:run -->`, `<!-- readme:run background -->` or `<!-- readme:file NAME -->`
// selects the next fenced block.
func readmeBlocks(doc string) ([]readmeBlock, error) {
	var (
		blocks  []readmeBlock
		pending *readmeBlock
		in      bool
		body    strings.Builder
	)
	sc := bufio.NewScanner(strings.NewReader(doc))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case in && strings.HasPrefix(trimmed, "```"):
			in = false
			if pending != nil {
				pending.text = body.String()
				blocks = append(blocks, *pending)
				pending = nil
			}
		case in:
			body.WriteString(line + "\n")
		case strings.HasPrefix(trimmed, "```"):
			in = true
			body.Reset()
		case strings.HasPrefix(trimmed, "<!-- readme:"):
			fields := strings.Fields(strings.TrimSuffix(strings.TrimPrefix(trimmed, "<!-- readme:"), "-->"))
			if pending != nil {
				return nil, fmt.Errorf("line %d: marker before the block of the marker on line %d", n, pending.line)
			}
			switch {
			case len(fields) == 1 && fields[0] == "run":
				pending = &readmeBlock{kind: "run", line: n}
			case len(fields) == 2 && fields[0] == "run" && fields[1] == "background":
				pending = &readmeBlock{kind: "background", line: n}
			case len(fields) == 2 && fields[0] == "file":
				pending = &readmeBlock{kind: "file", name: fields[1], line: n}
			default:
				return nil, fmt.Errorf("line %d: unknown marker %q", n, trimmed)
			}
		}
	}
	if pending != nil {
		return nil, fmt.Errorf("line %d: marker without a block", pending.line)
	}
	return blocks, sc.Err()
}

// readmePort matches the loopback ports the README's blocks use (8080 for the relay, 8081
// for the bundle directory); the test moves each to a free port.
var readmePort = regexp.MustCompile(`localhost:(80[0-9][0-9])\b`)

// TestReadmeQuickstart runs the README's quickstart blocks marked `readme:run` as written, in
// one shell session in a directory that is a git repository with one commit (a fresh clone),
// with `go run ./cmd/X` replaced by the binary built from this checkout and each loopback
// port 80xx moved to a free one. It then checks what a newcomer would see: the key pair and
// config snippet, a relay that starts on the README's config, a probe that gets "no update"
// from it, their own app published to a local directory that `ferry serve-dir` serves, a
// device that installs and verifies it, and the admin API listing the configured channels.
// The README's workflow file passes actionlint.
func TestReadmeQuickstart(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"curl", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			if testpeers.Required() {
				t.Fatalf("%s is not installed (make peers installs it)", tool)
			}
			t.Skipf("%s is not installed", tool)
		}
	}
	doc, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := readmeBlocks(string(doc))
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	kinds := map[string]int{}
	for _, b := range blocks {
		kinds[b.kind]++
	}
	if kinds["run"] < 5 || kinds["background"] != 2 || kinds["file"] < 2 {
		t.Fatalf("README.md markers: got %v, want at least 5 run blocks, two background blocks (relay, serve-dir) and two files (relay config, workflow)", kinds)
	}

	relayBin, _ := binaries(t)
	ferryBin := ferryBinary(t)
	work := t.TempDir()
	ports := map[string]string{}
	for _, m := range readmePort.FindAllStringSubmatch(string(doc), -1) {
		if ports[m[1]] == "" {
			ports[m[1]] = fmt.Sprint(testpeers.FreePort(t))
		}
	}
	// moved maps a README address localhost:80xx to the free port chosen for it ("" to "").
	moved := func(m string) string {
		if m == "" {
			return ""
		}
		return "localhost:" + ports[strings.TrimPrefix(m, "localhost:")]
	}
	addr := "localhost:" + ports["8080"]
	filesAddr := "localhost:" + ports["8081"]

	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=Newcomer", "-c", "user.email=newcomer@example.com"}, args...)...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "HOME="+work)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q")
	git("commit", "-q", "--allow-empty", "-m", "a fresh clone")

	var script strings.Builder
	script.WriteString("set -euo pipefail\nservers=\ntrap 'kill $servers 2>/dev/null || true' EXIT\n")
	for i, b := range blocks {
		text := strings.ReplaceAll(b.text, "go run ./cmd/ferry", ferryBin)
		text = strings.ReplaceAll(text, "go run ./cmd/relay", relayBin)
		text = readmePort.ReplaceAllStringFunc(text, moved)
		fmt.Fprintf(&script, "echo '=== block %d (README line %d) ==='\n", i, b.line)
		switch b.kind {
		case "file":
			name := filepath.Join(work, filepath.FromSlash(b.name))
			if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		case "run":
			script.WriteString(text)
		case "background":
			// Everything but the last command runs in the shell (exports carry over); the
			// last one is a server, started in the background until its port answers.
			lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
			last := lines[len(lines)-1]
			listen := moved(readmePort.FindString(strings.TrimRight(b.text, "\n")[strings.LastIndex(strings.TrimRight(b.text, "\n"), "\n")+1:]))
			if listen == "" {
				t.Fatalf("README line %d: the background block's last command names no localhost:80xx address", b.line)
			}
			log := fmt.Sprintf("server%d.log", i)
			script.WriteString(strings.Join(lines[:len(lines)-1], "\n") + "\n")
			fmt.Fprintf(&script, "%s > %s 2>&1 &\nservers=\"$servers $!\"\n", last, log)
			fmt.Fprintf(&script, "for i in $(seq 1 200); do curl -s -o /dev/null http://%s/ && break; sleep 0.1; done\n", listen)
			fmt.Fprintf(&script, "curl -s -o /dev/null http://%s/ || { cat %s; exit 1; }\n", listen, log)
		}
		script.WriteString("\n")
	}

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "HOME="+work)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README quickstart: %v\nscript:\n%s\noutput:\n%s", err, script.String(), out)
	}
	for _, f := range []string{"keys/.capgo_key_v2", "keys/.capgo_key_v2.pub", "data/ferry.db",
		"bundles/io.mycorp.tasks/1.0.1/io.mycorp.tasks-1.0.1.zip", "device/bundles/1.0.1/index.html"} {
		if _, err := os.Stat(filepath.Join(work, f)); err != nil {
			t.Errorf("after the quickstart: %v", err)
		}
	}
	for _, want := range []string{
		`"updateUrl": "http://` + addr + `/updates"`, // ferry keys' capacitor.config snippet
		"Decision: no update (no_new_version_available)",
		"registered, channel production now serves it",
		"Decision: update to version 1.0.1 (encrypted",
		"url: http://" + filesAddr + "/io.mycorp.tasks/1.0.1/io.mycorp.tasks-1.0.1.zip",
		"Verdict: a device would install 1.0.1 and it verifies.",
		"<h1>Tasks 1.0.1</h1>", // the device's unpacked index.html
		`"production"`,         // the admin API lists the configured channels
		`"beta"`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("README quickstart output lacks %q:\n%s", want, out)
		}
	}
	logs, _ := filepath.Glob(filepath.Join(work, "server*.log"))
	var served bool
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		served = served || strings.Contains(string(b), "Serving ./bundles at http://"+filesAddr+"/")
	}
	if !served {
		t.Errorf("no server log says `ferry serve-dir` served ./bundles at %s", filesAddr)
	}
	if strings.Contains(string(out), "BEGIN RSA PRIVATE KEY") {
		t.Error("the quickstart printed the private key")
	}

	// The workflow the README tells a newcomer to add is valid.
	lint := testpeers.Path(t, testpeers.Actionlint)
	lintCmd := exec.Command(lint, "-color=false", filepath.Join(".github", "workflows", "ferry.yml"))
	lintCmd.Dir = work
	if lout, err := lintCmd.CombinedOutput(); err != nil {
		t.Errorf("actionlint on the README's workflow: %v\n%s", err, lout)
	}
}

// ferryBinary returns the path of cmd/ferry, built with the relay and the action.
func ferryBinary(t *testing.T) string {
	t.Helper()
	relayBin, _ := binaries(t)
	return filepath.Join(filepath.Dir(relayBin), "ferry")
}
