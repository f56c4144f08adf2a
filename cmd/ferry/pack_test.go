package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferryhq/ferry/internal/archive"
)

func TestPack(t *testing.T) {
	t.Parallel()
	build := t.TempDir()
	mustT(t, os.WriteFile(filepath.Join(build, "index.html"), []byte("<html>"), 0o644))
	mustT(t, os.MkdirAll(filepath.Join(build, "assets"), 0o755))
	mustT(t, os.WriteFile(filepath.Join(build, "assets", "app.js"), bytes.Repeat([]byte("console.log(1);"), 1000), 0o644))
	key, err := archive.GenerateKey()
	mustT(t, err)
	keyPath := filepath.Join(t.TempDir(), ".capgo_key_v2")
	mustT(t, os.WriteFile(keyPath, archive.MarshalPrivateKey(key), 0o600))

	outDir := t.TempDir()
	plainPath := filepath.Join(outDir, "plain.zip")
	var out, errOut bytes.Buffer
	if err := runPack(t.Context(), []string{"--dir", build, "--out", plainPath, "--source-date-epoch", "1700000000"}, &out, &errOut); err != nil {
		t.Fatalf("pack: %v\n%s", err, errOut.String())
	}
	plain, err := os.ReadFile(plainPath)
	mustT(t, err)

	encPath := filepath.Join(outDir, "enc.zip")
	out.Reset()
	if err := runPack(t.Context(), []string{"--dir", build, "--out", encPath, "--key", keyPath, "--json", "--source-date-epoch", "1700000000"}, &out, &errOut); err != nil {
		t.Fatalf("pack --key: %v\n%s", err, errOut.String())
	}
	var res struct {
		Checksum   string `json:"checksum"`
		SessionKey string `json:"session_key"`
		SHA256     string `json:"sha256"`
		Size       int64  `json:"size"`
	}
	mustT(t, json.Unmarshal(out.Bytes(), &res))
	f, err := os.Open(encPath)
	mustT(t, err)
	defer f.Close()
	sk, err := archive.UnwrapSessionKey(res.SessionKey, &key.PublicKey)
	mustT(t, err)
	dec, err := io.ReadAll(sk.NewDecrypter(f))
	mustT(t, err)
	if !bytes.Equal(dec, plain) {
		t.Error("decrypted --key bundle differs from the plain bundle of the same build")
	}
	sum := sha256.Sum256(dec)
	if res.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("sha256 = %s, want %x", res.SHA256, sum)
	}
	mustT(t, archive.VerifyChecksum(&key.PublicKey, res.Checksum, sum[:]))
}

func TestPackErrors(t *testing.T) {
	t.Parallel()
	noIndex := t.TempDir()
	mustT(t, os.WriteFile(filepath.Join(noIndex, "main.js"), []byte("x"), 0o644))
	pkcs8 := filepath.Join(t.TempDir(), "k.pem")
	mustT(t, os.WriteFile(pkcs8, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600))
	tests := []struct {
		name string
		args func(out string) []string
	}{
		{"missing index.html", func(out string) []string { return []string{"--dir", noIndex, "--out", out} }},
		{"pkcs8 key", func(out string) []string { return []string{"--dir", noIndex, "--out", out, "--key", pkcs8} }},
		{"no dir", func(out string) []string { return []string{"--out", out} }},
		{"bad epoch", func(out string) []string { return []string{"--dir", noIndex, "--out", out, "--source-date-epoch", "x"} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			outDir := t.TempDir()
			var out, errOut bytes.Buffer
			if err := runPack(t.Context(), tc.args(filepath.Join(outDir, "b.zip")), &out, &errOut); err == nil {
				t.Fatal("pack succeeded")
			}
			if des, _ := os.ReadDir(outDir); len(des) != 0 {
				t.Errorf("failed pack left files: %v", des)
			}
		})
	}
}
