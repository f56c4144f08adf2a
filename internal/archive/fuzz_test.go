package archive

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func vectorBPub(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/vector-b.pub")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzExtract feeds arbitrary bytes to Extract: it must never panic, and never create
// anything outside dest or any symlink inside it.
func FuzzExtract(f *testing.F) {
	seed := func(entries []zentry) []byte {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		for _, e := range entries {
			w, _ := zw.Create(e.name)
			_, _ = w.Write([]byte(e.body))
		}
		_ = zw.Close()
		return buf.Bytes()
	}
	f.Add(seed([]zentry{{name: "index.html", body: "i"}}))
	f.Add(seed([]zentry{{name: "dist/index.html", body: "i"}, {name: "dist/a/b.js", body: "b"}}))
	f.Add(seed([]zentry{{name: "index.html"}, {name: "../x", body: "x"}}))
	f.Add(seed([]zentry{{name: "index.html"}, {name: "a/./../../x", body: "x"}}))
	f.Add(seed([]zentry{{name: "index.html"}, {name: "a/", body: ""}, {name: "a", body: "x"}}))
	f.Add([]byte("PK\x03\x04garbage"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		zp := filepath.Join(base, "in.zip")
		if err := os.WriteFile(zp, data, 0o644); err != nil {
			t.Fatal(err)
		}
		dest := filepath.Join(base, "out")
		_ = Extract(context.Background(), zp, dest, ExtractOptions{MaxFiles: 200, MaxBytes: 1 << 20})
		des, err := os.ReadDir(base)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range des {
			if d.Name() != "in.zip" && d.Name() != "out" {
				t.Fatalf("Extract created %q outside dest", d.Name())
			}
		}
		_ = filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type()&fs.ModeSymlink != 0 {
				t.Fatalf("Extract created symlink %q", p)
			}
			return nil
		})
	})
}

// FuzzValidateEntryName checks that every accepted name stays inside the target directory
// and carries none of the refused characters.
func FuzzValidateEntryName(f *testing.F) {
	for _, s := range []string{"index.html", "a/b", "../a", "a/../b", `a\b`, "/abs", "a\x00b", "C:/x", "a//b", "..", "...", "./a", "a/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidateEntryName(name) != nil {
			return
		}
		if strings.ContainsAny(name, "\\\x00") || strings.HasPrefix(name, "/") {
			t.Fatalf("accepted %q", name)
		}
		root := "/dest"
		p := filepath.Join(root, filepath.FromSlash(name))
		if !within(root, p) || p == root {
			t.Fatalf("accepted %q resolving to %q", name, p)
		}
	})
}

// FuzzParseKey: the key parsers never panic, and whatever they accept is a 2048-bit key.
func FuzzParseKey(f *testing.F) {
	f.Add(vectorBPub(f))
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if k, err := ParsePrivateKey(data); err == nil && k.N.BitLen() != KeyBits {
			t.Fatalf("ParsePrivateKey accepted a %d-bit key", k.N.BitLen())
		}
		if k, err := ParsePublicKey(data); err == nil && k.N.BitLen() != KeyBits {
			t.Fatalf("ParsePublicKey accepted a %d-bit key", k.N.BitLen())
		}
	})
}

// FuzzUnwrapSessionKey: never panics; anything accepted has the plugin's shape.
func FuzzUnwrapSessionKey(f *testing.F) {
	pub, err := ParsePublicKey(vectorBPub(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(vecBSessionKey)
	f.Add("a:b")
	f.Add(":")
	f.Add("AAAAAAAAAAAAAAAAAAAAAA==:" + strings.Repeat("A", 344))
	f.Fuzz(func(t *testing.T, s string) {
		sk, err := UnwrapSessionKey(s, pub)
		if err != nil {
			return
		}
		if strings.Count(s, ":") != 1 {
			t.Fatalf("accepted %q", s)
		}
		// Round trip through the decrypter must not panic either.
		_, _ = io.ReadAll(sk.NewDecrypter(strings.NewReader(s)))
	})
}

// FuzzOpenChecksumV3: never panics; anything accepted opens to a 32-byte digest.
func FuzzOpenChecksumV3(f *testing.F) {
	pub, err := ParsePublicKey(vectorBPub(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(vecBChecksum)
	f.Add(vecBChecksum[:510])
	f.Add(strings.Repeat("f", 512))
	f.Add("not-hex-not-base64")
	f.Fuzz(func(t *testing.T, s string) {
		sum, err := OpenChecksumV3(pub, s)
		if err == nil && len(sum) != 32 {
			t.Fatalf("OpenChecksumV3(%q) = %d bytes", s, len(sum))
		}
	})
}

// FuzzDecrypter: arbitrary ciphertext never panics and yields an error or bytes.
func FuzzDecrypter(f *testing.F) {
	f.Add(mustHexF(f, vecBCipher))
	f.Add([]byte{})
	f.Add(make([]byte, 17))
	sk := &SessionKey{}
	copy(sk.Key[:], mustHexF(f, vecBKey))
	copy(sk.IV[:], mustHexF(f, vecBIV))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := io.ReadAll(sk.NewDecrypter(bytes.NewReader(data)))
		if err == nil && len(out) >= len(data) {
			t.Fatalf("decrypted %d bytes from %d", len(out), len(data))
		}
	})
}

func mustHexF(f *testing.F, s string) []byte { return mustHex(f, s) }
