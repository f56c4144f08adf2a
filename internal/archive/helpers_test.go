package archive

import (
	"crypto/rsa"
	"hash/crc32"
	"sync"
	"testing"

	"github.com/ferryhq/ferry/internal/archive/archivetest"
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
	return archivetest.WriteTree(t, t.TempDir(), files)
}

func crcOf(b []byte) uint32 { return crc32.ChecksumIEEE(b) }
