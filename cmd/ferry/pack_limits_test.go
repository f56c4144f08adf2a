package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPackRefusesUnpackableBundles: ferry pack (and so the action, through the same
// internal/archive path) refuses builds a device cannot unpack as built, naming the paths,
// and leaves no output; where every phone still copes (NFC/NFD twins with the same bytes,
// case twins) it packs and warns.
func TestPackRefusesUnpackableBundles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		setup     func(t *testing.T, dir string)
		wantErr   []string // substrings of the error; nil means success
		wantWarns []string // substrings of stderr
	}{
		// Expected names are as printed: normalization twins escaped to ASCII (they look alike).
		{"2.1 GiB file", func(t *testing.T, dir string) {
			f, err := os.Create(filepath.Join(dir, "video.mp4"))
			mustT(t, err)
			mustT(t, f.Truncate(2<<30+100<<20)) // sparse: no disk used, refused before reading
			mustT(t, f.Close())
		}, []string{`"video.mp4"`, "a device unpacks at most"}, nil},
		{"NFC and NFD twins", func(t *testing.T, dir string) {
			mustT(t, os.WriteFile(filepath.Join(dir, "caf\u00e9.css"), []byte("one"), 0o644))
			mustT(t, os.WriteFile(filepath.Join(dir, "cafe\u0301.css"), []byte("two"), 0o644))
		}, []string{`"caf\u00e9.css"`, `"cafe\u0301.css"`, "Unicode normalization"}, nil},
		{"NFC and NFD twins with the same bytes", func(t *testing.T, dir string) {
			mustT(t, os.WriteFile(filepath.Join(dir, "caf\u00e9.css"), []byte("same"), 0o644))
			mustT(t, os.WriteFile(filepath.Join(dir, "cafe\u0301.css"), []byte("same"), 0o644))
		}, nil, []string{"warning:", "Unicode normalization"}},
		{"case twins", func(t *testing.T, dir string) {
			mustT(t, os.WriteFile(filepath.Join(dir, "App.js"), []byte("one"), 0o644))
			mustT(t, os.WriteFile(filepath.Join(dir, "app.js"), []byte("two"), 0o644))
		}, nil, []string{"warning:", `"App.js"`, `"app.js"`, "letter case"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			mustT(t, os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>hi</h1>"), 0o644))
			tc.setup(t, dir)
			if des, _ := os.ReadDir(dir); strings.Contains(tc.name, "twins") && len(des) != 3 {
				t.Skipf("this file system merges the twins (%d entries)", len(des))
			}
			outDir := t.TempDir()
			var stdout, stderr bytes.Buffer
			err := runPack(t.Context(), []string{"--dir", dir, "--out", filepath.Join(outDir, "b.zip")}, &stdout, &stderr)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("pack: %v", err)
				}
			} else {
				if err == nil {
					t.Fatal("pack succeeded")
				}
				for _, s := range tc.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q lacks %q", err, s)
					}
				}
				if des, _ := os.ReadDir(outDir); len(des) != 0 {
					t.Errorf("refused pack left files: %v", des)
				}
			}
			for _, s := range tc.wantWarns {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr %q lacks %q", &stderr, s)
				}
			}
		})
	}
}
