package device_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferryhq/ferry/internal/archive"
	"github.com/ferryhq/ferry/internal/archive/archivetest"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/testpeers"
)

// TestInstallsBundleMadeByCapgoCLI: the device installs a bundle zipped and encrypted by
// the real @capgo/cli 8.68.1 (`bundle zip` + `bundle encrypt`), as the plugin would:
// download, RSA-unwrap the session key, decrypt, open the V3 checksum, unzip the CLI's
// AdmZip layout (with directory entries) and find index.html.
func TestInstallsBundleMadeByCapgoCLI(t *testing.T) {
	t.Parallel()
	cli, peerDir := testpeers.Capgo(t)
	key := newKey(t)
	proj := t.TempDir()
	if err := os.Symlink(filepath.Join(peerDir, "node_modules"), filepath.Join(proj, "node_modules")); err != nil {
		t.Fatal(err)
	}
	// The CLI finds the updater (8.51.23, so it writes V3 checksums) through package.json.
	pkg, err := os.ReadFile(filepath.Join(peerDir, "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"package.json":                 string(pkg),
		".capgo_key_v2":                string(archive.MarshalPrivateKey(key)),
		"dist/index.html":              "<!doctype html><script src=main.js></script>",
		"dist/main.js":                 "CapacitorUpdater.notifyAppReady()",
		"dist/assets/css/app.css":      "body{}",
		"dist/assets/img/nested/x.txt": strings.Repeat("x", 10000),
	}
	cfg, _ := json.Marshal(map[string]any{"appId": "com.example.app", "appName": "interop", "webDir": "dist",
		"plugins": map[string]any{"CapacitorUpdater": map[string]any{"publicKey": string(archive.MarshalPublicKey(&key.PublicKey))}}})
	files["capacitor.config.json"] = string(cfg)
	archivetest.WriteTree(t, proj, files)
	var zipped struct{ Filename, Checksum string }
	lastJSONLine(t, runCapgo(t, proj, cli, "bundle", "zip", "com.example.app", "--path", "dist", "--bundle", "1.0.1", "--json"), &zipped)
	var enc struct {
		Checksum     string `json:"checksum"`
		Filename     string `json:"filename"`
		IVSessionKey string `json:"ivSessionKey"`
	}
	lastJSONLine(t, runCapgo(t, proj, cli, "bundle", "encrypt", zipped.Filename, zipped.Checksum, "--key", ".capgo_key_v2", "--json"), &enc)

	f := setup(t)
	var data []byte
	data, err = os.ReadFile(filepath.Join(proj, enc.Filename))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.files, "cli.zip"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	c := f.client(t, &key.PublicKey)
	b, err := c.Download(t.Context(), &channel.UpdateResponse{Version: "1.0.1", URL: f.srv.URL + "/files/cli.zip", Checksum: enc.Checksum, SessionKey: enc.IVSessionKey})
	if err != nil {
		t.Fatalf("Download of the CLI's bundle: %v", err)
	}
	want := []string{"assets/css/app.css", "assets/img/nested/x.txt", "index.html", "main.js"}
	if diff := cmp.Diff(want, b.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if b.Checksum != zipped.Checksum {
		t.Errorf("verified SHA-256 %s, CLI's plain checksum %s", b.Checksum, zipped.Checksum)
	}
}

func runCapgo(t *testing.T, dir, cli string, args ...string) string {
	t.Helper()
	out, err := testpeers.Run(t, dir, testpeers.CapgoEnv(), cli, args...)
	if err != nil {
		t.Fatalf("capgo %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// lastJSONLine decodes the last JSON object in CLI output (the CLI pretty-prints it over
// several lines, after any warnings).
func lastJSONLine(t *testing.T, out string, v any) {
	t.Helper()
	lines := strings.Split(out, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "{") {
			if err := json.Unmarshal([]byte(strings.Join(lines[i:], "\n")), v); err == nil {
				return
			}
		}
	}
	t.Fatalf("no JSON object in CLI output:\n%s", out)
}
