package device

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSafeJoin(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	outside := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Skipf("symlinks unavailable: %v", err)
	}
	for _, name := range []string{"a", "a/b.js", "real/x", "real/new/deeper.part", ".hidden", "...", "_..", "a b"} {
		got, err := safeJoin(root, name)
		if want := filepath.Join(root, filepath.FromSlash(name)); err != nil || got != want {
			t.Errorf("safeJoin(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
	for _, name := range []string{"", "/etc/passwd", "../x", "a/../../x", "a/..", "..", ".", "a//b", "a/./b", "a/", `a\b`, `..\x`, "a\x00b", "link", "link/x", "real/../link/x"} {
		if got, err := safeJoin(root, name); !errors.Is(err, errUnsafePath) {
			t.Errorf("safeJoin(%q) = %q, %v; want errUnsafePath", name, got, err)
		}
	}
}

func TestValidFileHash(t *testing.T) {
	t.Parallel()
	hex64 := strings.Repeat("0123456789abcdef", 4)
	for _, h := range []string{hex64, strings.ToUpper(hex64), "ABCDEF" + hex64[6:]} {
		if !validFileHash(h) {
			t.Errorf("validFileHash(%q) = false", h)
		}
	}
	for _, h := range []string{"", hex64[:63], hex64 + "0", "../" + hex64[3:], hex64[:63] + "g", hex64[:63] + "/", hex64[:63] + "\x00", "deadbeef"} {
		if validFileHash(h) {
			t.Errorf("validFileHash(%q) = true", h)
		}
	}
}
