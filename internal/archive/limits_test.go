package archive

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	nfc = "caf\u00e9.js"  // é as one code point
	nfd = "cafe\u0301.js" // e followed by a combining acute accent
)

// twinTree writes a build directory holding files (relative names) and skips the test when
// the file system merges two of the names (case- or normalization-insensitive, as on
// macOS): the twins cannot be built there in the first place.
func twinTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Skipf("this file system merges names that differ in case or normalization: %v", err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Skipf("this file system merges names that differ in case or normalization: %v", err)
		}
	}
	var n int
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(files) {
		t.Skipf("this file system merges names that differ in case or normalization (%d of %d files)", n, len(files))
	}
	return dir
}

// TestWriteZipNameTwins: two paths iOS takes for one file (NFC and NFD spellings) would make
// a device there silently keep one of them, so the packager refuses them, naming both; with
// the same bytes it only warns. Paths differing only in case are kept apart by phones, so
// they only warn (desktop file systems merge them), and not at all with the same bytes.
func TestWriteZipNameTwins(t *testing.T) {
	t.Parallel()
	const refuse, warn, fine = "refuse", "warn", "fine"
	tests := []struct {
		name      string
		files     map[string]string
		want      string
		wantNames []string // quoted in the error or the warning
		wantHow   string
	}{
		{"NFC and NFD twins", map[string]string{nfc: "a", nfd: "b"}, refuse, []string{nfc, nfd}, "Unicode normalization"},
		{"NFC file and NFD directory", map[string]string{nfc: "a", nfd + "/x.js": "b"}, refuse, []string{nfc, nfd + "/"}, "Unicode normalization"},
		{"NFC and NFD twins with the same bytes", map[string]string{nfc: "same", nfd: "same"}, warn, []string{nfc, nfd}, "Unicode normalization"},
		{"case twins", map[string]string{"App.js": "a", "app.js": "b"}, warn, []string{"App.js", "app.js"}, "letter case"},
		{"case twins in subdirectories", map[string]string{"Assets/logo.svg": "a", "assets/logo.svg": "b"}, warn, []string{"Assets/logo.svg", "assets/logo.svg"}, "letter case"},
		{"case and normalization twins", map[string]string{"Caf\u00e9.js": "a", nfd: "b"}, warn, []string{"Caf\u00e9.js", nfd}, "letter case"},
		{"full case folding", map[string]string{"stra\u00dfe.js": "a", "STRASSE.js": "b"}, warn, []string{"STRASSE.js", "stra\u00dfe.js"}, "letter case"},
		{"file and directory case twins", map[string]string{"Lib": "a", "lib/x.js": "b"}, warn, []string{"Lib", "lib/"}, "letter case"},
		{"case twins with the same bytes", map[string]string{"Logo.svg": "<svg/>", "logo.svg": "<svg/>"}, fine, nil, ""},
		{"directory twins merge", map[string]string{"Assets/a.js": "a", "assets/b.js": "b", nfc + "/c.js": "c", nfd + "/d.js": "d"}, fine, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			files := map[string]string{"index.html": "x"}
			for k, v := range tc.files {
				files[k] = v
			}
			dir := twinTree(t, files)
			st, err := WriteZip(t.Context(), &bytes.Buffer{}, dir, ZipOptions{})
			msg := ""
			switch {
			case tc.want == refuse && !errors.Is(err, ErrUnsafeFile):
				t.Fatalf("WriteZip = %v, want ErrUnsafeFile", err)
			case tc.want == refuse:
				msg = err.Error()
			case err != nil:
				t.Fatalf("WriteZip = %v", err)
			case tc.want == fine && len(st.Warnings) != 0:
				t.Errorf("warnings %q, want none", st.Warnings)
			case tc.want == warn && len(st.Warnings) != 1:
				t.Fatalf("warnings %q, want one", st.Warnings)
			case tc.want == warn:
				msg = st.Warnings[0]
			}
			for _, n := range tc.wantNames {
				quote := strconv.Quote
				if strings.Contains(tc.wantHow, "normalization") {
					quote = strconv.QuoteToASCII // the two would print alike
				}
				if !strings.Contains(msg, quote(n)) {
					t.Errorf("%q does not name %q", msg, n)
				}
			}
			if !strings.Contains(msg, tc.wantHow) {
				t.Errorf("%q does not say %q", msg, tc.wantHow)
			}
		})
	}
}

// A folder spelled both in NFC and in NFD, holding the same files, twins every file in it:
// the warnings stay bounded, with a count of the rest.
func TestWriteZipWarningsAreBounded(t *testing.T) {
	t.Parallel()
	files := map[string]string{"index.html": "x"}
	for i := range 50 {
		files[fmt.Sprintf("%s/%02d.js", nfc, i)] = "a"
		files[fmt.Sprintf("%s/%02d.js", nfd, i)] = "a"
	}
	dir := twinTree(t, files)
	st, err := WriteZip(t.Context(), io.Discard, dir, ZipOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Warnings) != maxWarnings+1 || !strings.Contains(st.Warnings[maxWarnings], "and 30 more") {
		t.Errorf("%d warnings, last %q; want %d and a count of the rest", len(st.Warnings), st.Warnings[len(st.Warnings)-1], maxWarnings+1)
	}
}

// TestPackageRefusesOversizedBuild packs a build with a 2.1 GiB file (sparse: it costs no
// disk and is refused before any byte is read): a device unpacks at most MaxBundleBytes.
func TestPackageRefusesOversizedBuild(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{"index.html": "x", "app.js": "y"})
	f, err := os.Create(filepath.Join(dir, "movie.bin"))
	if err != nil {
		t.Fatal(err)
	}
	const size = 2<<30 + 100<<20 // 2.1 GiB
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, opts := range []Options{{}, {Key: sharedKey(t)}, {Key: sharedKey(t), DeriveSession: &SessionContext{AppID: "com.example.app", Version: "1.0.0"}, TempDir: t.TempDir()}} {
		var out bytes.Buffer
		_, err := Package(t.Context(), dir, &out, opts)
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Package(encrypted %v) = %v, want ErrTooLarge", opts.Key != nil, err)
		}
		if !strings.Contains(err.Error(), `"movie.bin"`) || !strings.Contains(err.Error(), strconv.Itoa(size)) {
			t.Errorf("error %q does not name the file and its size", err)
		}
		if out.Len() != 0 {
			t.Errorf("wrote %d bytes before refusing", out.Len())
		}
	}
	if _, err := Delta(t.Context(), dir, DeltaOptions{}, nil); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Delta = %v, want ErrTooLarge", err)
	}
}

func TestCheckBundleLimits(t *testing.T) {
	t.Parallel()
	entries := []entry{{name: "a/", dir: true}, {name: "a/x.js", size: 600}, {name: "index.html", size: 400}}
	if w, err := checkBundle(entries, 3, 1000); err != nil || len(w) != 0 {
		t.Errorf("at the limits: %q, %v", w, err)
	}
	_, err := checkBundle(entries, 2, 1000)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "3 files and directories") {
		t.Errorf("one entry over: %v", err)
	}
	_, err = checkBundle(entries, 3, 999)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), `"a/x.js" (600 bytes)`) {
		t.Errorf("one byte over: %v", err)
	}
	// The limits are the ones internal/device applies: they must not drift.
	if diff := cmp.Diff([2]int64{50_000, 2 << 30}, [2]int64{MaxBundleEntries, MaxBundleBytes}); diff != "" {
		t.Errorf("limits (-want +got):\n%s", diff)
	}
}

func TestFoldName(t *testing.T) {
	t.Parallel()
	for _, pair := range [][2]string{{"App.js", "app.js"}, {nfc, nfd}, {"CAF\u00c9.JS", nfd}, {"stra\u00dfe", "STRASSE"}, {"\u212b", "\u00e5"}} {
		if foldName(pair[0]) != foldName(pair[1]) {
			t.Errorf("foldName(%q) != foldName(%q)", pair[0], pair[1])
		}
	}
	for _, pair := range [][2]string{{"app.js", "app.jsx"}, {"a/b", "a_b"}, {"\u00e9", "e"}} {
		if foldName(pair[0]) == foldName(pair[1]) {
			t.Errorf("foldName(%q) == foldName(%q)", pair[0], pair[1])
		}
	}
}
