package archive

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// bigText returns n bytes of compressible, deterministic pseudo-JavaScript.
func bigText(n int, seed uint64) string {
	r := rand.New(rand.NewPCG(seed, seed))
	words := []string{"function", "return", "const", "let", "this.", "=>", "{", "}", "(", ")", ";\n", "value", "props", "state", "render", "0x", "null"}
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
		b.WriteByte(' ')
		if r.IntN(8) == 0 {
			fmt.Fprintf(&b, "%d", r.IntN(100000))
		}
	}
	return b.String()[:n]
}

func sampleTree(t testing.TB) string {
	t.Helper()
	return writeTree(t, map[string]string{
		"index.html":                    "<!doctype html><script src=main.js></script>",
		"main.js":                       "CapacitorUpdater.notifyAppReady()",
		"assets/big.js":                 bigText(2*chunkSize+12345, 1), // three chunks
		"assets/empty.txt":              "",
		"assets/img/logo.svg":           "<svg/>",
		"a.txt":                         "sorts before a/ in byte order",
		"a/b.txt":                       "b",
		".env":                          "SECRET=1",
		".git/config":                   "[core]",
		".well-known/assetlinks.json":   "[]",
		"assets/.DS_Store":              "junk",
		"assets/ünïcode name.css":       "body{}",
		"assets/exactly-one-chunk.js":   bigText(chunkSize, 2),
		"assets/one-chunk-plus-one.bin": bigText(chunkSize+1, 3),
		"assets/font.woff2":             string(randomBytes(t, chunkSize+5)), // incompressible, two chunks
	})
}

func zipBytes(t testing.TB, dir string, opts ZipOptions) ([]byte, *ZipStats) {
	t.Helper()
	var buf bytes.Buffer
	st, err := WriteZip(t.Context(), &buf, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), st
}

// listing renders every entry header of a zip, one line each, for golden comparison.
func listing(t testing.TB, data []byte) string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range zr.File {
		fmt.Fprintf(&b, "%-40s method=%d flags=%#x mode=%v time=%s size=%d csize=%d crc=%08x\n",
			f.Name, f.Method, f.Flags, f.Mode(), f.Modified.UTC().Format(time.RFC3339), f.UncompressedSize64, f.CompressedSize64, f.CRC32)
	}
	sum := sha256.Sum256(data)
	fmt.Fprintf(&b, "zip size=%d sha256=%x\n", len(data), sum)
	return b.String()
}

func TestWriteZipGolden(t *testing.T) {
	t.Parallel()
	data, st := zipBytes(t, sampleTree(t), ZipOptions{})
	got := listing(t, data)
	golden := filepath.Join("testdata", "zip-listing.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("zip listing (-want +got):\n%s", diff)
	}
	sum := sha256.Sum256(data)
	if st.SHA256 != hex.EncodeToString(sum[:]) || st.ZipSize != int64(len(data)) {
		t.Errorf("stats = %+v, want sha256 %x size %d", st, sum, len(data))
	}
	if st.Files != 12 {
		t.Errorf("Files = %d, want 12", st.Files)
	}
}

func TestWriteZipDeterministic(t *testing.T) {
	t.Parallel()
	a := sampleTree(t)
	b := sampleTree(t) // same content, other path, other mtimes and creation order
	if err := os.Chtimes(filepath.Join(b, "main.js"), time.Now(), time.Unix(1e9, 0)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(b, "main.js"), 0o600); err != nil {
		t.Fatal(err)
	}
	first, _ := zipBytes(t, a, ZipOptions{})
	for _, tc := range []struct {
		name string
		dir  string
		opts ZipOptions
	}{
		{"same dir again", a, ZipOptions{}},
		{"copy of the tree", b, ZipOptions{}},
		{"one worker", a, ZipOptions{Workers: 1}},
		{"seven workers", a, ZipOptions{Workers: 7}},
	} {
		got, _ := zipBytes(t, tc.dir, tc.opts)
		if !bytes.Equal(first, got) {
			t.Errorf("%s: zip differs (%d vs %d bytes)", tc.name, len(first), len(got))
		}
	}
	// Options that change the bytes, on a smaller tree.
	small := writeTree(t, map[string]string{"index.html": "x", "app.js": bigText(100000, 8)})
	smallZip, _ := zipBytes(t, small, ZipOptions{})
	fast, _ := zipBytes(t, small, ZipOptions{Level: 1})
	if bytes.Equal(smallZip, fast) || listing(t, fast) == listing(t, smallZip) {
		t.Error("Level 1 gave the same zip as the default level")
	}
	if _, err := WriteZip(t.Context(), io.Discard, small, ZipOptions{Level: 10}); err == nil {
		t.Error("WriteZip(Level 10) succeeded")
	}
	later, _ := zipBytes(t, small, ZipOptions{ModTime: time.Date(2024, 5, 6, 7, 8, 10, 0, time.UTC)})
	if bytes.Equal(smallZip, later) {
		t.Error("ModTime did not change the zip")
	}
	if l := listing(t, later); !strings.Contains(l, "time=2024-05-06T07:08:10Z") {
		t.Errorf("listing with ModTime lacks the time:\n%s", l)
	}
}

// TestWriteZipContent reads every entry back (archive/zip checks each CRC) and compares it
// with the source file.
func TestWriteZipContent(t *testing.T) {
	t.Parallel()
	dir := sampleTree(t)
	data, _ := zipBytes(t, dir, ZipOptions{IncludeHidden: true})
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
		if f.Method != zip.Deflate && !strings.HasSuffix(f.Name, "/") {
			t.Errorf("%s: method %d, want Deflate", f.Name, f.Method)
		}
		if f.Method == zip.Store && f.Flags&0x8 != 0 {
			t.Errorf("%s: stored entry with data descriptor (ZipInputStream refuses it)", f.Name)
		}
		if strings.HasSuffix(f.Name, "/") {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		want, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Name)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: content differs", f.Name)
		}
	}
	for _, want := range []string{".env", ".git/", ".git/config", "assets/.DS_Store"} {
		if !strings.Contains(strings.Join(names, "\n")+"\n", want+"\n") {
			t.Errorf("IncludeHidden: %q missing from %q", want, names)
		}
	}
}

func TestWriteZipHiddenSkipped(t *testing.T) {
	t.Parallel()
	data, _ := zipBytes(t, sampleTree(t), ZipOptions{})
	l := listing(t, data)
	for _, hidden := range []string{".env", ".git", ".DS_Store"} {
		if strings.Contains(l, hidden) {
			t.Errorf("listing includes hidden %q:\n%s", hidden, l)
		}
	}
	if !strings.Contains(l, ".well-known/assetlinks.json") {
		t.Errorf(".well-known missing:\n%s", l)
	}
}

func TestWriteZipSymlinks(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{"index.html": "hi", "real/app.js": "js"})
	if err := os.Symlink("real/app.js", filepath.Join(dir, "alias.js")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(dir, "linkdir")); err != nil {
		t.Fatal(err)
	}
	data, _ := zipBytes(t, dir, ZipOptions{})
	want := []string{"alias.js", "index.html", "linkdir/", "linkdir/app.js", "real/", "real/app.js"}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range zr.File {
		got = append(got, f.Name)
		if f.Mode()&os.ModeSymlink != 0 {
			t.Errorf("%s stored as a symlink", f.Name)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
}

func TestWriteZipErrors(t *testing.T) {
	t.Parallel()
	outside := writeTree(t, map[string]string{"secret": "s"})
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string)
		wantErr error
	}{
		{"no index.html", func(t *testing.T, dir string) { must(t, os.Remove(filepath.Join(dir, "index.html"))) }, ErrNoIndex},
		{"index.html only in a subfolder", func(t *testing.T, dir string) {
			must(t, os.Rename(filepath.Join(dir, "index.html"), filepath.Join(dir, "sub", "index.html")))
		}, ErrNoIndex},
		{"index.html is a directory", func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, "index.html")))
			must(t, os.Mkdir(filepath.Join(dir, "index.html"), 0o755))
		}, ErrNoIndex},
		{"symlink escaping", func(t *testing.T, dir string) {
			must(t, os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "leak")))
		}, ErrUnsafeFile},
		{"symlink to parent", func(t *testing.T, dir string) { must(t, os.Symlink("..", filepath.Join(dir, "sub", "up2"))) }, ErrUnsafeFile},
		{"symlink cycle", func(t *testing.T, dir string) { must(t, os.Symlink(".", filepath.Join(dir, "sub", "self"))) }, ErrUnsafeFile},
		{"dangling symlink", func(t *testing.T, dir string) { must(t, os.Symlink("nope", filepath.Join(dir, "dangling"))) }, ErrUnsafeFile},
		{"fifo", func(t *testing.T, dir string) { must(t, syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644)) }, ErrUnsafeFile},
		{"backslash in name", func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, `a\b.js`), nil, 0o644))
		}, ErrUnsafeFile},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := writeTree(t, map[string]string{"index.html": "x", "sub/a.js": "a"})
			tc.setup(t, dir)
			var buf bytes.Buffer
			_, err := WriteZip(t.Context(), &buf, dir, ZipOptions{})
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("WriteZip = %v, want %v", err, tc.wantErr)
			}
		})
	}
	t.Run("not a directory", func(t *testing.T) {
		t.Parallel()
		if _, err := WriteZip(t.Context(), io.Discard, filepath.Join(outside, "secret"), ZipOptions{}); err == nil {
			t.Error("WriteZip(file) succeeded")
		}
	})
}

func TestWriteZipCancel(t *testing.T) {
	t.Parallel()
	dir := sampleTree(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := WriteZip(ctx, io.Discard, dir, ZipOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("WriteZip(cancelled) = %v, want context.Canceled", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestModTimeFromEpoch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{"", time.Time{}, false},
		{"1700000000", time.Unix(1700000000, 0).UTC(), false},
		{"315532800", DefaultModTime, false},
		{"0", time.Time{}, true},
		{"abc", time.Time{}, true},
		{"-5", time.Time{}, true},
		{"99999999999", time.Time{}, true},
	}
	for _, tc := range tests {
		got, err := ModTimeFromEpoch(tc.in)
		if (err != nil) != tc.wantErr || !got.Equal(tc.want) {
			t.Errorf("ModTimeFromEpoch(%q) = %v, %v; want %v, err %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestCRC32Combine(t *testing.T) {
	t.Parallel()
	data := []byte(bigText(100000, 9))
	for _, cut := range []int{0, 1, 7, 4096, 65536, 99999, 100000} {
		a, b := data[:cut], data[cut:]
		got := crc32Combine(crcOf(a), crcOf(b), int64(len(b)))
		if want := crcOf(data); got != want {
			t.Errorf("crc32Combine at %d = %08x, want %08x", cut, got, want)
		}
	}
}

func TestIncompressible(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []byte
		want bool
	}{
		{"random", randomBytes(t, 20000), true},
		{"random, short", randomBytes(t, 1000), false},
		{"javascript", []byte(bigText(20000, 1)), false},
		{"base64 of random", []byte(hex.EncodeToString(randomBytes(t, 10000))), false},
		{"zeros", make([]byte, 20000), false},
	}
	for _, tc := range tests {
		if got := incompressible(tc.in); got != tc.want {
			t.Errorf("incompressible(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// failWriter accepts n bytes, then fails.
type failWriter struct{ n int }

var errDiskFull = errors.New("disk full")

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errDiskFull
	}
	w.n -= len(p)
	return len(p), nil
}

func TestWriteZipWriteError(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{"index.html": "x", "app.js": bigText(chunkSize+5000, 12)})
	for _, n := range []int{0, 100, 100_000} {
		if _, err := WriteZip(t.Context(), &failWriter{n: n}, dir, ZipOptions{}); !errors.Is(err, errDiskFull) {
			t.Errorf("WriteZip(writer failing after %d bytes) = %v, want errDiskFull", n, err)
		}
		if _, err := Package(t.Context(), dir, &failWriter{n: n}, Options{Key: sharedKey(t)}); !errors.Is(err, errDiskFull) {
			t.Errorf("Package(writer failing after %d bytes) = %v, want errDiskFull", n, err)
		}
	}
}

// A symlink whose target is a hidden path inside the build directory is refused, naming the
// link and its target, unless IncludeHidden is set; a link into .well-known is followed.
func TestWriteZipSymlinkToHidden(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, link, target string }{
		{"file link to .env", "config.js", ".env"},
		{"directory link into .git", "assets", ".git/objects"},
		{"file link through hidden dir", "sub/key.pem", "../.secrets/key.pem"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := writeTree(t, map[string]string{
				"index.html": "x", "sub/a.js": "a", ".env": "SECRET=1",
				".git/objects/ab": "blob", ".secrets/key.pem": "pem",
			})
			must(t, os.Symlink(tc.target, filepath.Join(dir, filepath.FromSlash(tc.link))))
			_, err := WriteZip(t.Context(), io.Discard, dir, ZipOptions{})
			if !errors.Is(err, ErrUnsafeFile) {
				t.Fatalf("WriteZip = %v, want ErrUnsafeFile", err)
			}
			if !strings.Contains(err.Error(), strconv.Quote(tc.link)) || !strings.Contains(err.Error(), "hidden") {
				t.Errorf("error %q does not name the link %q and say hidden", err, tc.link)
			}
			if _, err := WriteZip(t.Context(), io.Discard, dir, ZipOptions{IncludeHidden: true}); err != nil {
				t.Errorf("WriteZip(IncludeHidden) = %v", err)
			}
		})
	}
	t.Run("link into .well-known", func(t *testing.T) {
		t.Parallel()
		dir := writeTree(t, map[string]string{"index.html": "x", ".well-known/assetlinks.json": "[]"})
		must(t, os.Symlink(".well-known/assetlinks.json", filepath.Join(dir, "links.json")))
		data, _ := zipBytes(t, dir, ZipOptions{})
		if !strings.Contains(listing(t, data), "links.json") {
			t.Errorf("link into .well-known not shipped:\n%s", listing(t, data))
		}
	})
}
