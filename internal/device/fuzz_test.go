package device

import (
	"path/filepath"
	"strings"
	"testing"
)

// FuzzManifestTarget checks that no manifest file name a relay sends can make the device
// write outside the bundle directory.
func FuzzManifestTarget(f *testing.F) {
	for _, s := range []string{"index.html", "assets/app.js.br", "../x", "/abs", `a\b`, "a/./b", "a/../b", ".br", "x\x00y", "", "a//b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		target, err := manifestTarget(name)
		if err != nil {
			return
		}
		if !filepath.IsLocal(filepath.FromSlash(target)) || strings.ContainsAny(target, "\\\x00") {
			t.Fatalf("manifestTarget(%q) = %q, escapes the bundle", name, target)
		}
	})
}
