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

// FuzzRangeStart checks the Content-Range parser on what any server may send: it never
// panics and only accepts a non-negative start that it read from the header.
func FuzzRangeStart(f *testing.F) {
	for _, s := range []string{"bytes 100-199/200", "bytes 0-0/1", "bytes */200", "bytes -5-10/20", "items 1-2/3", "", "bytes 99999999999999999999-1/2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		n, ok := rangeStart(h)
		if ok && (!strings.HasPrefix(h, "bytes ") || n < 0) {
			t.Fatalf("rangeStart(%q) = %d, true", h, n)
		}
	})
}

// FuzzSafeJoin checks that whatever name a relay's strings make, safeJoin returns a path
// under root or an error.
func FuzzSafeJoin(f *testing.F) {
	for _, s := range []string{"a", "a/b.js", "../x", "/abs", `a\b`, "a/./b", "..", "", "x\x00y", "C:/x", "files/" + strings.Repeat("a", 64) + "_app.js.part"} {
		f.Add(s)
	}
	root := f.TempDir()
	f.Fuzz(func(t *testing.T, name string) {
		p, err := safeJoin(root, name)
		if err != nil {
			return
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || !filepath.IsLocal(rel) {
			t.Fatalf("safeJoin(%q) = %q, outside %q", name, p, root)
		}
	})
}
