package main

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/x509"
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
		{"app without version", func(out string) []string { return []string{"--dir", noIndex, "--out", out, "--app", "a"} }},
		{"app and version without key", func(out string) []string {
			return []string{"--dir", noIndex, "--out", out, "--app", "a", "--version", "1"}
		}},
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

// With --app, --version and --key, `ferry pack` derives the session key as the action does:
// two runs give identical bytes and session key, equal to archive.Package with the action's
// options, and the key is the action's HKDF derivation (salt and info pinned here).
func TestPackDerivedMatchesAction(t *testing.T) {
	t.Parallel()
	build := t.TempDir()
	mustT(t, os.WriteFile(filepath.Join(build, "index.html"), []byte("<html>"), 0o644))
	mustT(t, os.WriteFile(filepath.Join(build, "app.js"), bytes.Repeat([]byte("let a=1;"), 5000), 0o644))
	key, err := archive.GenerateKey()
	mustT(t, err)
	keyPath := filepath.Join(t.TempDir(), ".capgo_key_v2")
	mustT(t, os.WriteFile(keyPath, archive.MarshalPrivateKey(key), 0o600))

	type result struct {
		Checksum   string `json:"checksum"`
		SessionKey string `json:"session_key"`
		SHA256     string `json:"sha256"`
	}
	run := func(name string) ([]byte, result) {
		out := filepath.Join(t.TempDir(), name)
		var stdout, stderr bytes.Buffer
		args := []string{"--dir", build, "--out", out, "--key", keyPath, "--app", "com.example.app", "--version", "1.2.3", "--json", "--source-date-epoch", "1700000000"}
		if err := runPack(t.Context(), args, &stdout, &stderr); err != nil {
			t.Fatalf("pack: %v\n%s", err, stderr.String())
		}
		var r result
		mustT(t, json.Unmarshal(stdout.Bytes(), &r))
		data, err := os.ReadFile(out)
		mustT(t, err)
		if des, _ := os.ReadDir(filepath.Dir(out)); len(des) != 1 {
			t.Errorf("pack left temporary files: %v", des)
		}
		return data, r
	}
	a, ra := run("a.zip")
	b, rb := run("b.zip")
	if !bytes.Equal(a, b) || ra != rb {
		t.Fatalf("two runs differ: session keys %q vs %q", ra.SessionKey, rb.SessionKey)
	}

	mod, err := archive.ModTimeFromEpoch("1700000000")
	mustT(t, err)
	var want bytes.Buffer
	res, err := archive.Package(t.Context(), build, &want, archive.Options{
		Key: key, Zip: archive.ZipOptions{ModTime: mod},
		DeriveSession: &archive.SessionContext{AppID: "com.example.app", Version: "1.2.3"}, TempDir: t.TempDir(),
	})
	mustT(t, err)
	if !bytes.Equal(a, want.Bytes()) || ra.SessionKey != res.SessionKey || ra.Checksum != res.Checksum {
		t.Error("ferry pack --app --version differs from archive.Package with the action's options")
	}

	info := "ferry bundle session key v1\x00com.example.app\x001.2.3\x00" + ra.SHA256
	okm, err := hkdf.Key(sha256.New, x509.MarshalPKCS1PrivateKey(key), []byte("ferry/session"), info, 32)
	mustT(t, err)
	sk, err := archive.UnwrapSessionKey(ra.SessionKey, &key.PublicKey)
	mustT(t, err)
	if !bytes.Equal(sk.Key[:], okm[:16]) || !bytes.Equal(sk.IV[:], okm[16:]) {
		t.Error("session key is not the action's HKDF derivation")
	}

	// Without --app/--version the key stays random.
	var stdout, stderr bytes.Buffer
	out := filepath.Join(t.TempDir(), "r.zip")
	mustT(t, runPack(t.Context(), []string{"--dir", build, "--out", out, "--key", keyPath, "--json", "--source-date-epoch", "1700000000"}, &stdout, &stderr))
	var rr result
	mustT(t, json.Unmarshal(stdout.Bytes(), &rr))
	if rr.SessionKey == ra.SessionKey {
		t.Error("random-key pack reused the derived session key")
	}
}
