package archive

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/testpeers"
	"github.com/google/go-cmp/cmp"
)

// capgoProject makes a scratch Capacitor project for @capgo/cli (docs/protocol.md §8): the peer's
// node_modules (CLI + updater 8.51.23, so V3 checksums), package.json, a
// capacitor.config.json with publicKey, the key pair, and dist/ holding the build in files.
func capgoProject(t *testing.T, priv *rsa.PrivateKey, files map[string]string) (cli, dir string) {
	t.Helper()
	cli, peerDir := testpeers.Capgo(t)
	dir = t.TempDir()
	must(t, os.Symlink(filepath.Join(peerDir, "node_modules"), filepath.Join(dir, "node_modules")))
	pkg, err := os.ReadFile(filepath.Join(peerDir, "package.json"))
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "package.json"), pkg, 0o644))
	cfg, err := json.Marshal(map[string]any{
		"appId": "com.example.app", "appName": "Example", "webDir": "dist",
		"plugins": map[string]any{"CapacitorUpdater": map[string]any{"publicKey": string(MarshalPublicKey(&priv.PublicKey))}},
	})
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "capacitor.config.json"), cfg, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, ".capgo_key_v2"), MarshalPrivateKey(priv), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, ".capgo_key_v2.pub"), MarshalPublicKey(&priv.PublicKey), 0o644))
	for name, content := range files {
		p := filepath.Join(dir, "dist", filepath.FromSlash(name))
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(content), 0o644))
	}
	return cli, dir
}

func capgo(t *testing.T, dir, cli string, args ...string) string {
	t.Helper()
	out, err := testpeers.Run(t, dir, testpeers.CapgoEnv(), cli, args...)
	if err != nil {
		t.Fatalf("capgo %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// lastJSON decodes the last {...} object in the CLI's output (it prints warnings first).
func lastJSON(t *testing.T, out string, v any) {
	t.Helper()
	i := strings.LastIndex(out, "\n{")
	if !strings.HasPrefix(out, "{") || i >= 0 {
		out = out[i+1:]
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("decode CLI JSON: %v\n%s", err, out)
	}
}

var interopFiles = map[string]string{
	"index.html":        "<!doctype html><script src=main.js></script>",
	"main.js":           "import {CapacitorUpdater} from '@capgo/capacitor-updater'; CapacitorUpdater.notifyAppReady()",
	"assets/big.js":     bigText(2*chunkSize+999, 11),
	"assets/style.css":  strings.Repeat("a{color:red}", 500),
	"assets/empty.json": "",
}

// TestInteropCLIDecryptsFerry: `capgo bundle decrypt --checksum` accepts Ferry's
// encrypted bundle and V3 checksum, and its output is Ferry's plain zip byte for byte.
func TestInteropCLIDecryptsFerry(t *testing.T) {
	t.Parallel()
	priv := sharedKey(t)
	cli, dir := capgoProject(t, priv, interopFiles)
	var enc bytes.Buffer
	res, err := Package(t.Context(), filepath.Join(dir, "dist"), &enc, Options{Key: priv})
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "ferry.zip"), enc.Bytes(), 0o644))
	out := capgo(t, dir, cli, "bundle", "decrypt", "ferry.zip", res.SessionKey, "--key", ".capgo_key_v2.pub", "--checksum", res.Checksum)
	if !strings.Contains(out, "Checksum matches") {
		t.Errorf("capgo bundle decrypt did not confirm the checksum:\n%s", out)
	}
	got, err := os.ReadFile(filepath.Join(dir, "ferry.zip_decrypted.zip"))
	must(t, err)
	want, _ := zipBytes(t, filepath.Join(dir, "dist"), ZipOptions{})
	if !bytes.Equal(got, want) {
		t.Error("CLI-decrypted bundle differs from Ferry's plain zip")
	}

	// A tampered checksum must make the CLI fail.
	bad := "00" + res.Checksum[2:]
	if out, err := testpeers.Run(t, dir, testpeers.CapgoEnv(), cli, "bundle", "decrypt", "ferry.zip", res.SessionKey, "--key", ".capgo_key_v2.pub", "--checksum", bad); err == nil {
		t.Errorf("capgo bundle decrypt accepted a tampered checksum:\n%s", out)
	}
}

// TestInteropFerryDecryptsCLI: Ferry unwraps, decrypts and verifies a bundle made by
// `capgo bundle zip` + `capgo bundle encrypt`, and Ferry's plain checksum convention
// (lowercase hex SHA-256 of the zip) is the one `bundle zip --json` reports.
func TestInteropFerryDecryptsCLI(t *testing.T) {
	t.Parallel()
	priv := sharedKey(t)
	cli, dir := capgoProject(t, priv, interopFiles)
	var zipped struct{ Filename, Checksum string }
	lastJSON(t, capgo(t, dir, cli, "bundle", "zip", "com.example.app", "--path", "dist", "--bundle", "1.0.1", "--json"), &zipped)
	plain, err := os.ReadFile(filepath.Join(dir, zipped.Filename))
	must(t, err)
	sum := sha256.Sum256(plain)
	if err := VerifyChecksum(nil, zipped.Checksum, sum[:]); err != nil {
		t.Errorf("bundle zip --json checksum vs Ferry's plain convention: %v", err)
	}
	// Ferry's unencrypted Package reports the same kind of value for its own zip.
	var own bytes.Buffer
	res, err := Package(t.Context(), filepath.Join(dir, "dist"), &own, Options{})
	must(t, err)
	ownSum := sha256.Sum256(own.Bytes())
	if res.Checksum != hex.EncodeToString(ownSum[:]) {
		t.Errorf("Package checksum %s, want sha256 hex of the zip %x", res.Checksum, ownSum)
	}

	var encd struct{ Checksum, Filename, IvSessionKey string }
	lastJSON(t, capgo(t, dir, cli, "bundle", "encrypt", zipped.Filename, zipped.Checksum, "--key", ".capgo_key_v2", "--json"), &encd)
	sk, err := UnwrapSessionKey(encd.IvSessionKey, &priv.PublicKey)
	must(t, err)
	f, err := os.Open(filepath.Join(dir, encd.Filename))
	must(t, err)
	defer f.Close()
	dec, err := io.ReadAll(sk.NewDecrypter(f))
	must(t, err)
	if !bytes.Equal(dec, plain) {
		t.Fatal("Ferry-decrypted CLI bundle differs from the CLI's zip")
	}
	decSum := sha256.Sum256(dec)
	if err := VerifyChecksum(&priv.PublicKey, encd.Checksum, decSum[:]); err != nil {
		t.Errorf("V3 checksum from the CLI: %v", err)
	}
	// And the device side unzips the CLI's zip to the same tree.
	zp := filepath.Join(t.TempDir(), "cli.zip")
	must(t, os.WriteFile(zp, dec, 0o644))
	dest := filepath.Join(t.TempDir(), "out")
	must(t, Extract(t.Context(), zp, dest, ExtractOptions{}))
	if diff := cmp.Diff(tree(t, filepath.Join(dir, "dist")), tree(t, dest)); diff != "" {
		t.Errorf("extracted CLI zip (-want +got):\n%s", diff)
	}
}
