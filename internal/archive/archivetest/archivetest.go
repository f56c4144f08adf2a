// Package archivetest writes the web builds that tests package, unpack and serve.
package archivetest

import (
	"os"
	"path/filepath"
	"testing"
)

// WriteTree writes files (a "/"-separated path -> its content) under dir, creating the
// directories they need, and returns dir. A file that exists is replaced.
func WriteTree(t testing.TB, dir string, files map[string]string) string {
	t.Helper()
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
