package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMakeDemo runs scripts/demo.sh, the recipe of `make demo` and the README's first
// command, in a temporary work directory, and checks that each step a newcomer reads
// happened: the action registered 1.0.0 on production, the signature verified, the device
// installed and verified 1.0.0, 1.1.0 landed on beta and a tag push promoted it.
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
	cmd.Env = append(os.Environ(), "FERRY_DEMO_DIR="+filepath.Join(work, "demo"), "FERRY_DEMO_BIN="+filepath.Join(work, "bin"), "GOTOOLCHAIN=local")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/demo.sh: %v\n%s", err, out)
	}
	for _, want := range []string{
		`registered, channel production now serves it`,
		`Verified com.example.ferrydemo-1.0.0.zip`,
		`Decision: update to version 1.0.0 (encrypted`,
		`Verdict: a device would install 1.0.0 and it verifies.`,
		`registered, channel beta now serves it`,
		`"result":"promoted","version":"1.1.0"`,
		`Verdict: a device would install 1.1.0 and it verifies.`,
		`The new index.html says: Hello again: this is version 1.1.0`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if strings.Contains(string(out), "BEGIN RSA PRIVATE KEY") || strings.Contains(string(out), "::add-mask::") {
		t.Error("demo output shows private key material")
	}
	if t.Failed() {
		t.Logf("demo output:\n%s", out)
	}
}
