package device

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
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
	err := unpackFile(src, dst, nil, true, hash, &budget)
	if !errors.Is(err, ErrManifestBrotliFail) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("unpackFile(bomb) = %v, want ErrManifestBrotliFail naming the limit", err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Errorf("dst left behind: %v", err)
	}

	// The same file within budget unpacks and verifies.
	budget = 64 << 20
	if err := unpackFile(src, dst, nil, true, hash, &budget); err != nil {
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
	if err := unpackFile(src, filepath.Join(dir, "a"), nil, true, hash, &budget); err != nil {
		t.Fatalf("first file: %v", err)
	}
	if err := unpackFile(src, filepath.Join(dir, "b"), nil, true, hash, &budget); !errors.Is(err, ErrManifestBrotliFail) {
		t.Fatalf("second file past the manifest budget = %v, want ErrManifestBrotliFail", err)
	}
}
