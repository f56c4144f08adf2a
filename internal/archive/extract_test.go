package archive

import (
	"archive/zip"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type zentry struct {
	name    string
	body    string
	symlink bool
}

// makeZip writes a zip with the given entries (names used verbatim) and returns its path.
func makeZip(t testing.TB, entries []zentry) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		fh := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		if e.symlink {
			fh.SetMode(os.ModeSymlink | 0o777)
		}
		w, err := zw.CreateHeader(fh)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "b.zip")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// tree lists the files under dir as "name=content".
func tree(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out = append(out, filepath.ToSlash(rel)+"="+string(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestExtractLayouts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		entries []zentry
		want    []string
	}{
		{"root", []zentry{{name: "index.html", body: "i"}, {name: "assets/"}, {name: "assets/a.js", body: "a"}}, []string{"assets/a.js=a", "index.html=i"}},
		{"single folder unwrapped", []zentry{{name: "dist/"}, {name: "dist/index.html", body: "i"}, {name: "dist/x/y.css", body: "y"}}, []string{"index.html=i", "x/y.css=y"}},
		{"folder without dir entry, with __MACOSX and dotfile", []zentry{
			{name: "www/index.html", body: "i"}, {name: "__MACOSX/www/._index.html", body: "m"}, {name: ".DS_Store", body: "d"},
		}, []string{"index.html=i"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dest := filepath.Join(t.TempDir(), "out")
			if err := Extract(t.Context(), makeZip(t, tc.entries), dest, ExtractOptions{}); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, tree(t, dest)); diff != "" {
				t.Errorf("extracted (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExtractRefuses(t *testing.T) {
	t.Parallel()
	ok := zentry{name: "index.html", body: "i"}
	tests := []struct {
		name     string
		entries  []zentry
		opts     ExtractOptions
		wantStat string
		wantErr  error
	}{
		{"dotdot", []zentry{ok, {name: "../evil.js", body: "x"}}, ExtractOptions{}, StatCanonicalPath, ErrUnsafePath},
		{"nested dotdot", []zentry{ok, {name: "a/../../evil.js", body: "x"}}, ExtractOptions{}, StatCanonicalPath, ErrUnsafePath},
		{"absolute", []zentry{ok, {name: "/etc/evil", body: "x"}}, ExtractOptions{}, StatCanonicalPath, ErrUnsafePath},
		{"drive letter", []zentry{ok, {name: "C:/evil", body: "x"}}, ExtractOptions{}, StatCanonicalPath, ErrUnsafePath},
		{"backslash", []zentry{ok, {name: `a\..\..\evil`, body: "x"}}, ExtractOptions{}, StatWindowsPath, ErrUnsafePath},
		{"nul", []zentry{ok, {name: "a\x00.js", body: "x"}}, ExtractOptions{}, StatCanonicalPath, ErrUnsafePath},
		{"symlink entry", []zentry{ok, {name: "link", body: "/etc/passwd", symlink: true}}, ExtractOptions{}, StatCanonicalPath, ErrUnsafePath},
		{"duplicate", []zentry{ok, {name: "a.js", body: "1"}, {name: "a.js", body: "2"}}, ExtractOptions{}, StatUnzip, ErrUnsafePath},
		{"no index", []zentry{{name: "main.js", body: "m"}, {name: "x/index.html"}}, ExtractOptions{}, "", ErrNoIndex},
		{"too many files", []zentry{ok, {name: "a", body: "1"}, {name: "b", body: "2"}}, ExtractOptions{MaxFiles: 2}, "", ErrTooLarge},
		{"too many bytes", []zentry{ok, {name: "big", body: strings.Repeat("z", 1000)}}, ExtractOptions{MaxBytes: 500}, "", ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base := t.TempDir()
			dest := filepath.Join(base, "out")
			err := Extract(t.Context(), makeZip(t, tc.entries), dest, tc.opts)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Extract = %v, want %v", err, tc.wantErr)
			}
			var pe *PathError
			if tc.wantStat != "" && (!errors.As(err, &pe) || pe.Stat != tc.wantStat) {
				t.Errorf("Extract = %v, want stat %s", err, tc.wantStat)
			}
			// Nothing may appear beside dest.
			des, _ := os.ReadDir(base)
			for _, d := range des {
				if d.Name() != "out" {
					t.Errorf("Extract wrote %q outside dest", d.Name())
				}
			}
		})
	}
}

func TestExtractOwnZip(t *testing.T) {
	t.Parallel()
	dir := sampleTree(t)
	data, _ := zipBytes(t, dir, ZipOptions{})
	zp := filepath.Join(t.TempDir(), "own.zip")
	if err := os.WriteFile(zp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "out")
	if err := Extract(t.Context(), zp, dest, ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"index.html", "assets/big.js", ".well-known/assetlinks.json", "assets/ünïcode name.css"} {
		want, _ := os.ReadFile(filepath.Join(dir, name))
		got, err := os.ReadFile(filepath.Join(dest, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: extracted content differs (%v)", name, err)
		}
	}
}

func TestValidateEntryName(t *testing.T) {
	t.Parallel()
	for _, good := range []string{"index.html", "assets/", "a/b/c.js", "..foo", "a..b/c", "ünï code.css"} {
		if err := ValidateEntryName(good); err != nil {
			t.Errorf("ValidateEntryName(%q) = %v, want nil", good, err)
		}
	}
	for _, bad := range []string{"", "..", "../a", "a/..", "/a", "a//b", "./a", `a\b`, "a\x00", "C:x"} {
		if err := ValidateEntryName(bad); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("ValidateEntryName(%q) = %v, want ErrUnsafePath", bad, err)
		}
	}
}
