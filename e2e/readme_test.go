package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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

// TestReadmeQuickstart runs the README's quickstart blocks marked `readme:run` as written, in
// one shell session in an empty directory, with `go run ./cmd/X` replaced by the binary
// built from this checkout and the relay's port 8080 moved to a free one. It then checks
// what a newcomer would see: the key pair and config snippet, a relay that starts on the
// README's config, a probe that gets "no update" from it, and the admin API listing the
// configured channels.
func TestReadmeQuickstart(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("curl"); err != nil {
		if testpeers.Required() {
			t.Fatal("curl is not installed (make peers installs it)")
		}
		t.Skip("curl is not installed")
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
	if kinds["run"] < 3 || kinds["background"] != 1 || kinds["file"] < 1 {
		t.Fatalf("README.md markers: got %v, want at least 3 run blocks, one background block and a file", kinds)
	}

	relayBin, _ := binaries(t)
	ferryBin := ferryBinary(t)
	work := t.TempDir()
	port := testpeers.FreePort(t)
	addr := fmt.Sprintf("localhost:%d", port)

	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	for i, b := range blocks {
		text := strings.ReplaceAll(b.text, "go run ./cmd/ferry", ferryBin)
		text = strings.ReplaceAll(text, "go run ./cmd/relay", relayBin)
		text = strings.ReplaceAll(text, "localhost:8080", addr)
		fmt.Fprintf(&script, "echo '=== block %d (README line %d) ==='\n", i, b.line)
		switch b.kind {
		case "file":
			if err := os.WriteFile(filepath.Join(work, b.name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		case "run":
			script.WriteString(text)
		case "background":
			// Everything but the last command runs in the shell (exports carry over); the
			// last one is the server, started in the background until its port answers.
			lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
			script.WriteString(strings.Join(lines[:len(lines)-1], "\n") + "\n")
			fmt.Fprintf(&script, "%s > relay.log 2>&1 &\nserver=$!\ntrap 'kill $server 2>/dev/null || true' EXIT\n", lines[len(lines)-1])
			fmt.Fprintf(&script, "for i in $(seq 1 200); do curl -sf http://%s/healthz >/dev/null && break; sleep 0.1; done\n", addr)
			fmt.Fprintf(&script, "curl -sf http://%s/healthz >/dev/null || { cat relay.log; exit 1; }\n", addr)
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
	for _, f := range []string{"keys/.capgo_key_v2", "keys/.capgo_key_v2.pub", "data/ferry.db"} {
		if _, err := os.Stat(filepath.Join(work, f)); err != nil {
			t.Errorf("after the quickstart: %v", err)
		}
	}
	for _, want := range []string{
		`"updateUrl": "http://` + addr + `/updates"`, // ferry keys' capacitor.config snippet
		"Decision: no update (no_new_version_available)",
		`"production"`, // the admin API lists the configured channels
		`"beta"`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("README quickstart output lacks %q:\n%s", want, out)
		}
	}
}

// ferryBinary returns the path of cmd/ferry, built with the relay and the action.
func ferryBinary(t *testing.T) string {
	t.Helper()
	relayBin, _ := binaries(t)
	return filepath.Join(filepath.Dir(relayBin), "ferry")
}
