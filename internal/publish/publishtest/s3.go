package publishtest

import (
	"path/filepath"
	"testing"

	"github.com/ferryhq/ferry/internal/testpeers"
)

// S3 is a versitygw server with a posix backend, started for one test.
type S3 struct {
	*testpeers.S3
	// DataDir holds one directory per bucket; objects are plain files under it, so tests
	// can look at exactly what was stored (and what was not).
	DataDir string
}

// Versitygw starts versitygw (testpeers.Versitygw) and reports where it keeps objects.
func Versitygw(t testing.TB) *S3 {
	t.Helper()
	s := testpeers.Versitygw(t)
	return &S3{S3: s, DataDir: filepath.Join(s.Dir, "data")}
}
