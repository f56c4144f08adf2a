package device

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"

	"github.com/ferryhq/ferry/internal/archive"
)

// writeBrotli writes the Brotli compression of plain to a file and returns its path and the
// plain SHA-256, so the hash check alone would accept it.
func writeBrotli(t *testing.T, plain []byte) (string, string) {
	t.Helper()
	var buf bytes.Buffer
	w := brotli.NewWriterLevel(&buf, brotli.BestCompression)
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "f.br")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(plain)
	return p, hex.EncodeToString(sum[:])
}

// A Brotli bomb (a few KiB expanding to 32 MiB) is refused once it passes the manifest's
// byte budget, before its hash is checked, and nothing is left at dst.
func TestUnpackFileBrotliBomb(t *testing.T) {
	t.Parallel()
	src, hash := writeBrotli(t, make([]byte, 32<<20))
	if fi, _ := os.Stat(src); fi.Size() > 64<<10 {
		t.Fatalf("bomb is %d bytes compressed; not a bomb", fi.Size())
	}
	dst := filepath.Join(t.TempDir(), "out.js")
	budget := int64(1 << 20)
	err := unpackFile(src, "", dst, nil, true, hash, &budget)
	if !errors.Is(err, ErrManifestBrotliFail) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("unpackFile(bomb) = %v, want ErrManifestBrotliFail naming the limit", err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Errorf("dst left behind: %v", err)
	}

	// The same file within budget unpacks and verifies.
	budget = 64 << 20
	if err := unpackFile(src, "", dst, nil, true, hash, &budget); err != nil {
		t.Fatalf("unpackFile within budget: %v", err)
	}
	if budget != 32<<20 {
		t.Errorf("budget after one 32 MiB file = %d, want %d", budget, 32<<20)
	}
}

// The budget counts over the whole manifest: files each under it together exceed it.
func TestUnpackFileBudgetIsPerManifest(t *testing.T) {
	t.Parallel()
	src, hash := writeBrotli(t, bytes.Repeat([]byte("a"), 600<<10))
	budget := int64(1 << 20)
	dir := t.TempDir()
	if err := unpackFile(src, "", filepath.Join(dir, "a"), nil, true, hash, &budget); err != nil {
		t.Fatalf("first file: %v", err)
	}
	if err := unpackFile(src, "", filepath.Join(dir, "b"), nil, true, hash, &budget); !errors.Is(err, ErrManifestBrotliFail) {
		t.Fatalf("second file past the manifest budget = %v, want ErrManifestBrotliFail", err)
	}
}

// brotliBody follows the plugin's decompressBrotli, shortcuts included: they copy bytes
// rather than decode them, so a stream matching one reads as the plugin reads it.
func TestBrotliBodyShortcuts(t *testing.T) {
	t.Parallel()
	real, _ := writeBrotli(t, []byte("decoded"))
	realBytes, err := os.ReadFile(real)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty file", nil, ""},
		{"empty marker", []byte{0x1b, 0x00, 0x06}, ""},
		{"quality-0 wrapper", []byte{0x0b, 0x02, 0x80, 'h', 'e', 'l', 'l', 'o', 0x03}, "hello"},
		{"empty-marker wrapper", []byte{0x1b, 0x00, 0x06, 'x', 'y', 0x03}, "xy"},
		{"Brotli stream", realBytes, "decoded"},
	} {
		p := filepath.Join(t.TempDir(), "f.br")
		if err := os.WriteFile(p, tc.in, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		r, err := brotliBody(f)
		var got []byte
		if err == nil {
			got, err = io.ReadAll(r)
		}
		f.Close()
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: read %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

// Like the plugin's decryptAesFile, an encrypted manifest file that is empty, or decrypts
// to nothing, is refused: an empty file must travel in a non-empty form (docs/protocol.md §4).
func TestUnpackFileRefusesEmptyEncryptedData(t *testing.T) {
	t.Parallel()
	sk, err := archive.NewSessionKey()
	if err != nil {
		t.Fatal(err)
	}
	var enc bytes.Buffer
	w := sk.NewEncrypter(&enc)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	empty := sha256.Sum256(nil)
	for name, stored := range map[string][]byte{"empty download": nil, "empty plaintext": enc.Bytes()} {
		dir := t.TempDir()
		src := filepath.Join(dir, "f.part")
		if err := os.WriteFile(src, stored, 0o644); err != nil {
			t.Fatal(err)
		}
		budget := int64(1 << 20)
		err := unpackFile(src, filepath.Join(dir, "f.work"), filepath.Join(dir, "f"), sk, false, hex.EncodeToString(empty[:]), &budget)
		if !errors.Is(err, ErrDecryptFail) {
			t.Errorf("%s: unpackFile = %v, want ErrDecryptFail", name, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "f.work")); !os.IsNotExist(err) {
			t.Errorf("%s: work file left behind: %v", name, err)
		}
	}
}
