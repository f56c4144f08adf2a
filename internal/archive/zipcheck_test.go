package archive

import (
	"archive/zip"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/testpeers"
)

// TestZipCheckJava runs testdata/ZipCheck.java (the Android plugin's ZipInputStream unzip,
// compiled with FERRY_JAVAC) over Ferry's zips of several shapes, and over zips the plugin
// must refuse.
func TestZipCheckJava(t *testing.T) {
	t.Parallel()
	javac := testpeers.Path(t, testpeers.Javac)
	java := testpeers.Path(t, testpeers.Java)
	classes := t.TempDir()
	if out, err := exec.Command(javac, "-d", classes, filepath.Join("testdata", "ZipCheck.java")).CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	check := func(t *testing.T, zipData []byte) (string, error) {
		t.Helper()
		zp := filepath.Join(t.TempDir(), "bundle.zip")
		must(t, os.WriteFile(zp, zipData, 0o644))
		out, err := exec.Command(java, "-cp", classes, "ZipCheck", zp, filepath.Join(t.TempDir(), "out")).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}

	shapes := []struct {
		name  string
		files map[string]string
		opts  ZipOptions
	}{
		{"minimal", map[string]string{"index.html": "x"}, ZipOptions{}},
		{"sample tree (multi-chunk files, empty file, unicode, .well-known)", nil, ZipOptions{}},
		{"hidden files included, epoch time", map[string]string{"index.html": "x", ".env": "a", ".hidden/x.js": "y"}, ZipOptions{IncludeHidden: true, ModTime: DefaultModTime.AddDate(40, 0, 0)}},
		{"deep nesting", map[string]string{"index.html": "x", "a/b/c/d/e/f/g/h.js": bigText(20000, 3)}, ZipOptions{}},
	}
	for _, tc := range shapes {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var dir string
			if tc.files == nil {
				dir = sampleTree(t)
			} else {
				dir = writeTree(t, tc.files)
			}
			data, _ := zipBytes(t, dir, tc.opts)
			out, err := check(t, data)
			if err != nil || !strings.HasPrefix(out, "OK ") {
				t.Errorf("ZipCheck refused Ferry's zip: %v\n%s", err, out)
			}
		})
	}

	bad := []struct {
		name     string
		zip      func(t *testing.T) []byte
		wantStat string
	}{
		{"stored entry with data descriptor", func(t *testing.T) []byte {
			var buf bytes.Buffer
			zw := zip.NewWriter(&buf)
			w, err := zw.CreateHeader(&zip.FileHeader{Name: "index.html", Method: zip.Store}) // Go sets flag 0x8
			must(t, err)
			_, err = w.Write([]byte("<html>"))
			must(t, err)
			must(t, zw.Close())
			return buf.Bytes()
		}, "unzip_fail: java.util.zip.ZipException: only DEFLATED entries can have EXT descriptor"},
		{"traversal", func(t *testing.T) []byte {
			return rawZip(t, []zentry{{name: "index.html", body: "x"}, {name: "../../evil.js", body: "x"}})
		}, "canonical_path_fail"},
		{"backslash", func(t *testing.T) []byte {
			return rawZip(t, []zentry{{name: "index.html", body: "x"}, {name: `assets\a.js`, body: "x"}})
		}, "windows_path_fail"},
		{"no index.html", func(t *testing.T) []byte {
			return rawZip(t, []zentry{{name: "main.js", body: "x"}})
		}, "set_fail"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := check(t, tc.zip(t))
			if err == nil || !strings.Contains(out, "FAIL "+tc.wantStat) {
				t.Errorf("ZipCheck = %v %q, want FAIL %s", err, out, tc.wantStat)
			}
		})
	}
}

// rawZip is makeZip returning the bytes.
func rawZip(t *testing.T, entries []zentry) []byte {
	t.Helper()
	b, err := os.ReadFile(makeZip(t, entries))
	must(t, err)
	return b
}
