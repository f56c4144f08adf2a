package reliability

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferryhq/ferry/internal/archive"
	"github.com/ferryhq/ferry/internal/relay/relaytest"
)

type zipEntry struct {
	name    string
	body    string
	zeros   int64 // body of this many zero bytes instead
	symlink bool
}

// writeZip writes entries (names verbatim, as an attacker would) to a file.
func writeZip(t *testing.T, entries []zipEntry) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bundle.zip")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, flate.BestCompression) })
	for _, e := range entries {
		fh := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		if e.symlink {
			fh.SetMode(fs.ModeSymlink | 0o777)
		}
		w, err := zw.CreateHeader(fh)
		if err != nil {
			t.Fatal(err)
		}
		if e.zeros > 0 {
			if _, err := io.CopyN(w, zeroReader{}, e.zeros); err != nil {
				t.Fatal(err)
			}
		} else if _, err := io.WriteString(w, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestExtractHostileZips feeds the device-side extractor crafted zips: path traversal,
// absolute and drive names, backslashes, NUL bytes, symlinks, duplicates, a zip bomb and
// an entry-count bomb. Each is refused with the plugin's error class, nothing is written
// outside the destination, and a bomb writes no more than the byte limit.
func TestExtractHostileZips(t *testing.T) {
	t.Parallel()
	index := zipEntry{name: "index.html", body: "<html></html>"}
	many := []zipEntry{index}
	for i := range 300 {
		many = append(many, zipEntry{name: "f/" + relaytest.Hex(string(rune(i)), 12) + ".js", body: "x"})
	}
	const limit = 8 << 20
	cases := []struct {
		name    string
		entries []zipEntry
		want    error
	}{
		{"dot-dot", []zipEntry{index, {name: "../evil.js", body: "pwn"}}, archive.ErrUnsafePath},
		{"nested dot-dot", []zipEntry{index, {name: "js/../../evil.js", body: "pwn"}}, archive.ErrUnsafePath},
		{"absolute", []zipEntry{index, {name: "/tmp/evil.js", body: "pwn"}}, archive.ErrUnsafePath},
		{"drive letter", []zipEntry{index, {name: "C:/evil.js", body: "pwn"}}, archive.ErrUnsafePath},
		{"backslash traversal", []zipEntry{index, {name: `..\evil.js`, body: "pwn"}}, archive.ErrUnsafePath},
		{"nul byte", []zipEntry{index, {name: "evil.js\x00.png", body: "pwn"}}, archive.ErrUnsafePath},
		{"symlink out", []zipEntry{index, {name: "link", body: "../../../etc", symlink: true}}, archive.ErrUnsafePath},
		{"duplicate index", []zipEntry{index, {name: "./index.html", body: "evil"}}, archive.ErrUnsafePath},
		{"duplicate after clean", []zipEntry{index, {name: "a.js", body: "1"}, {name: "a.js", body: "2"}}, archive.ErrUnsafePath},
		{"zip bomb", []zipEntry{index, {name: "bomb.bin", zeros: 64 << 20}}, archive.ErrTooLarge},
		{"bomb split over entries", []zipEntry{index, {name: "a.bin", zeros: 6 << 20}, {name: "b.bin", zeros: 6 << 20}}, archive.ErrTooLarge},
		{"entry count bomb", many, archive.ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			zipPath := writeZip(t, tc.entries)
			parent := t.TempDir()
			dest := filepath.Join(parent, "bundle")
			err := archive.Extract(context.Background(), zipPath, dest, archive.ExtractOptions{MaxFiles: 100, MaxBytes: limit})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Extract = %v, want %v", err, tc.want)
			}
			var written int64
			_ = filepath.WalkDir(parent, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(parent, p)
				if rel != "." && rel != "bundle" && filepath.Dir(rel) == "." {
					t.Errorf("%s written outside the destination", rel)
				}
				if d.Type()&fs.ModeSymlink != 0 {
					t.Errorf("symlink %s created", rel)
				}
				if info, err := d.Info(); err == nil && info.Mode().IsRegular() {
					written += info.Size()
				}
				return nil
			})
			if written > limit+1 {
				t.Errorf("%d bytes written, limit %d", written, limit)
			}
			if fi, serr := os.Stat(zipPath); serr == nil {
				t.Logf("zip %d bytes, %d bytes written before refusal: %v", fi.Size(), written, err)
			}
		})
	}
	// The same extractor accepts an honest bundle.
	t.Run("honest", func(t *testing.T) {
		p := writeZip(t, []zipEntry{{name: "dist/index.html", body: "<html></html>"}, {name: "dist/js/app.js", body: "ok"}})
		dest := filepath.Join(t.TempDir(), "bundle")
		if err := archive.Extract(context.Background(), p, dest, archive.ExtractOptions{MaxFiles: 100, MaxBytes: limit}); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(dest, "js", "app.js")); err != nil || !bytes.Equal(b, []byte("ok")) {
			t.Fatalf("app.js = %q, %v", b, err)
		}
	})
}
