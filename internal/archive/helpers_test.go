package archive

import (
	"crypto/rsa"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

var (
	keyOnce sync.Once
	testKey *rsa.PrivateKey
	keyErr  error
)

// sharedKey returns one generated 2048-bit key for the package's tests (generation is slow).
func sharedKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	keyOnce.Do(func() { testKey, keyErr = GenerateKey() })
	if keyErr != nil {
		t.Fatal(keyErr)
	}
	return testKey
}

// writeTree creates files (name -> content, "/"-separated) under a new temp dir.
func writeTree(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func crcOf(b []byte) uint32 { return crc32.ChecksumIEEE(b) }
