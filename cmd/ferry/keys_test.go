package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/archive"
	"github.com/ferryhq/ferry/internal/testpeers"
)

func TestKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	if err := runKeys(t.Context(), []string{"--dir", dir, "--relay", "https://relay.example.com"}, &out, &errOut); err != nil {
		t.Fatalf("ferry keys: %v\n%s", err, errOut.String())
	}
	privPEM, err := os.ReadFile(filepath.Join(dir, ".capgo_key_v2"))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, ".capgo_key_v2"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("private key mode = %v, want 0600", fi.Mode().Perm())
	}
	priv, err := archive.ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := os.ReadFile(filepath.Join(dir, ".capgo_key_v2.pub"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := archive.ParsePublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(&priv.PublicKey) {
		t.Error("public key file does not match the private key")
	}
	report := out.String()
	for _, want := range []string{archive.KeyID(pub), "FERRY_ENCRYPTION_KEY", "https://relay.example.com/updates", "https://relay.example.com/stats", "https://relay.example.com/channel_self"} {
		if !strings.Contains(report, want) {
			t.Errorf("output lacks %q:\n%s", want, report)
		}
	}
	// The snippet is valid JSON carrying the public key.
	start, end := strings.Index(report, "{"), strings.LastIndex(report, "}")
	var cfg struct {
		Plugins struct{ CapacitorUpdater struct{ PublicKey string } }
	}
	if err := json.Unmarshal([]byte(report[start:end+1]), &cfg); err != nil {
		t.Fatalf("snippet: %v", err)
	}
	if cfg.Plugins.CapacitorUpdater.PublicKey != string(pubPEM) {
		t.Errorf("snippet publicKey = %q, want the .pub file", cfg.Plugins.CapacitorUpdater.PublicKey)
	}

	// No overwrite without --force; files unchanged.
	if err := runKeys(t.Context(), []string{"--dir", dir, "--relay", "https://relay.example.com"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("second ferry keys = %v, want refusal mentioning --force", err)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, ".capgo_key_v2")); !bytes.Equal(again, privPEM) {
		t.Error("refused run changed the private key")
	}
	// --force replaces both.
	if err := runKeys(t.Context(), []string{"--dir", dir, "--relay", "https://relay.example.com", "--force"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, ".capgo_key_v2")); bytes.Equal(again, privPEM) {
		t.Error("--force did not replace the key")
	}
}

func TestKeysUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
	}{
		{"no relay", []string{"--dir", "x"}},
		{"bad relay", []string{"--relay", "relay.example.com"}},
		{"extra args", []string{"--relay", "https://r.example.com", "extra"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			var out, errOut bytes.Buffer
			err := runKeys(t.Context(), append(tc.args, "--dir", dir), &out, &errOut)
			if !errors.Is(err, errUsage) {
				t.Errorf("runKeys(%q) = %v, want errUsage", tc.args, err)
			}
			if des, _ := os.ReadDir(dir); len(des) != 0 {
				t.Errorf("usage error wrote files: %v", des)
			}
		})
	}
}

// TestKeysCapgoAcceptsKey: `capgo bundle encrypt --key` accepts the private key ferry keys
// wrote, and Ferry opens the result with the public key.
func TestKeysCapgoAcceptsKey(t *testing.T) {
	t.Parallel()
	cli, peerDir := testpeers.Capgo(t)
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	if err := runKeys(t.Context(), []string{"--dir", dir, "--relay", "https://relay.example.com"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	mustT(t, os.Symlink(filepath.Join(peerDir, "node_modules"), filepath.Join(dir, "node_modules")))
	pkg, err := os.ReadFile(filepath.Join(peerDir, "package.json"))
	mustT(t, err)
	mustT(t, os.WriteFile(filepath.Join(dir, "package.json"), pkg, 0o644))
	pubPEM, err := os.ReadFile(filepath.Join(dir, ".capgo_key_v2.pub"))
	mustT(t, err)
	cfg, _ := json.Marshal(map[string]any{"appId": "com.example.app", "webDir": "dist",
		"plugins": map[string]any{"CapacitorUpdater": map[string]any{"publicKey": string(pubPEM)}}})
	mustT(t, os.WriteFile(filepath.Join(dir, "capacitor.config.json"), cfg, 0o644))
	payload := []byte("PK\x05\x06" + strings.Repeat("\x00", 18)) // an empty zip
	mustT(t, os.WriteFile(filepath.Join(dir, "b.zip"), payload, 0o644))
	sum := sha256.Sum256(payload)
	res, err := testpeers.Run(t, dir, testpeers.CapgoEnv(), cli, "bundle", "encrypt", "b.zip", hex.EncodeToString(sum[:]), "--key", ".capgo_key_v2", "--json")
	if err != nil {
		t.Fatalf("capgo bundle encrypt with ferry's key: %v\n%s", err, res)
	}
	var enc struct{ Checksum, IvSessionKey string }
	if err := json.Unmarshal([]byte(res[strings.LastIndex(res, "{\n"):]), &enc); err != nil {
		t.Fatalf("decode %q: %v", res, err)
	}
	pub, err := archive.ParsePublicKey(pubPEM)
	mustT(t, err)
	if _, err := archive.UnwrapSessionKey(enc.IvSessionKey, pub); err != nil {
		t.Errorf("unwrap CLI session key: %v", err)
	}
	if err := archive.VerifyChecksum(pub, enc.Checksum, sum[:]); err != nil {
		t.Errorf("CLI checksum: %v", err)
	}
}

func mustT(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestKeysSnippetPastesSafely: the publicKey ferry keys prints cannot be pasted with the
// leading whitespace that makes the Android plugin skip decryption (it decrypts only when
// publicKey starts with "-----BEGIN RSA PUBLIC KEY-----", CryptoCipher.decryptFile): it is one
// JSON string on one line whose value starts with the header, and a warning says why.
func TestKeysSnippetPastesSafely(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	if err := runKeys(t.Context(), []string{"--dir", dir, "--relay", "https://relay.example.com"}, &out, &errOut); err != nil {
		t.Fatalf("ferry keys: %v\n%s", err, errOut.String())
	}
	pubPEM, err := os.ReadFile(filepath.Join(dir, ".capgo_key_v2.pub"))
	mustT(t, err)
	var keyLines []string
	for line := range strings.Lines(out.String()) {
		if strings.Contains(line, `"publicKey"`) {
			keyLines = append(keyLines, line)
		}
	}
	if len(keyLines) != 1 {
		t.Fatalf("want one publicKey line, got %q in:\n%s", keyLines, out.String())
	}
	_, value, _ := strings.Cut(strings.TrimSpace(keyLines[0]), `"publicKey": `)
	value = strings.TrimSuffix(value, ",")
	if !strings.HasPrefix(value, `"-----BEGIN RSA PUBLIC KEY-----\n`) {
		t.Errorf("publicKey line %q: want a JSON string starting exactly with the PEM header", keyLines[0])
	}
	var decoded string
	if err := json.Unmarshal([]byte(value), &decoded); err != nil {
		t.Fatalf("publicKey value %s: %v", value, err)
	}
	if !strings.HasPrefix(decoded, "-----BEGIN RSA PUBLIC KEY-----") || decoded != string(pubPEM) {
		t.Errorf("publicKey decodes to %q, want the .pub file starting with the header", decoded)
	}
	for _, want := range []string{`starting with "-----BEGIN RSA PUBLIC KEY-----"`, "capacitor.config.ts", "checksum_fail"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("ferry keys output lacks the paste warning part %q:\n%s", want, out.String())
		}
	}
}
