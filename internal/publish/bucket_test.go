package publish_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/publish"
	"github.com/ferryhq/ferry/internal/publish/publishtest"
	"github.com/google/go-cmp/cmp"
	"gocloud.dev/blob"
)

// backend is a bucket destination under test and a way to look at what it stores.
type backend struct {
	url    string
	getenv func(string) string
	// stored returns the bytes stored under key straight from the backend's files, and
	// whether a file exists there at all.
	stored func(key string) ([]byte, bool)
	// files lists every file in the backend's data directory (to catch partial objects).
	files func() []string
}

func envMap(kv []string) func(string) string {
	m := map[string]string{}
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		m[k] = v
	}
	return func(k string) string { return m[k] }
}

func listFiles(t *testing.T, dir string) func() []string {
	return func() []string {
		var out []string
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(dir, p)
				out = append(out, filepath.ToSlash(rel))
			}
			return nil
		})
		return out
	}
}

func readStored(dir string) func(string) ([]byte, bool) {
	return func(key string) ([]byte, bool) {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(key)))
		return b, err == nil
	}
}

func fileBackend(t *testing.T, query string) backend {
	t.Helper()
	dir := t.TempDir()
	u := "file://" + filepath.ToSlash(dir) + query
	return backend{url: u, stored: readStored(dir), files: listFiles(t, dir)}
}

func s3Backend(t *testing.T) backend {
	t.Helper()
	s3 := publishtest.Versitygw(t)
	s3.CreateBucket(t, "web")
	dir := filepath.Join(s3.DataDir, "web")
	return backend{url: s3.BucketURL("web"), getenv: envMap(s3.Env()), stored: readStored(dir), files: listFiles(t, dir)}
}

func backends(t *testing.T) map[string]func(t *testing.T) backend {
	return map[string]func(t *testing.T) backend{
		"file":         func(t *testing.T) backend { return fileBackend(t, "") },
		"file-nometa":  func(t *testing.T) backend { return fileBackend(t, "?metadata=skip") },
		"s3-versitygw": s3Backend,
	}
}

func open(t *testing.T, be backend, base string) *publish.Bucket {
	t.Helper()
	b, err := publish.OpenBucket(t.Context(), be.url, publish.Options{PublicBaseURL: base, Getenv: be.getenv, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("OpenBucket(%q): %v", be.url, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestBucketPut(t *testing.T) {
	t.Parallel()
	content := bytes.Repeat([]byte("bundle bytes "), 10000)
	other := bytes.Repeat([]byte("BUNDLE BYTES "), 10000)
	const key = "com.acme.app/1.2.3/bundle.zip"
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			be := mk(t)
			b := open(t, be, "https://cdn.example.com/web/")
			obj, err := b.Put(t.Context(), publish.File{Name: key, Body: bytes.NewReader(content), ContentType: "application/zip"})
			if err != nil {
				t.Fatalf("Put() error = %v", err)
			}
			want := &publish.Object{Name: key, URL: "https://cdn.example.com/web/" + key, Size: int64(len(content)), SHA256: sum(content)}
			if diff := cmp.Diff(want, obj); diff != "" {
				t.Errorf("Put() (-want +got):\n%s", diff)
			}
			if got, ok := be.stored(key); !ok || !bytes.Equal(got, content) {
				t.Errorf("stored %d bytes (exists %v), want the %d put", len(got), ok, len(content))
			}

			// Re-run: identical bytes are reused.
			obj, err = b.Put(t.Context(), publish.File{Name: key, Body: bytes.NewReader(content), ContentType: "application/zip"})
			if err != nil || !obj.Reused {
				t.Errorf("Put(same) = %+v, %v; want Reused", obj, err)
			}
			// Different bytes under the same key are refused and change nothing.
			_, err = b.Put(t.Context(), publish.File{Name: key, Body: bytes.NewReader(other), ContentType: "application/zip"})
			var ee *publish.ExistsError
			if !errors.Is(err, publish.ErrAssetExists) || !errors.As(err, &ee) || ee.URL != want.URL {
				t.Errorf("Put(different) error = %#v, want an ExistsError with the existing URL %q", err, want.URL)
			}
			_, err = b.Put(t.Context(), publish.File{Name: key, Body: bytes.NewReader(content[:100]), ContentType: "application/zip"})
			if !errors.Is(err, publish.ErrAssetExists) {
				t.Errorf("Put(shorter) error = %v, want ErrAssetExists", err)
			}
			if got, _ := be.stored(key); !bytes.Equal(got, content) {
				t.Error("stored object changed")
			}
		})
	}
}

// failingReader serves data, but on every pass after the first (the first is the hashing
// pass) fails once half of it has been read, like a disk or pipe error mid-upload.
// It does not embed the bytes.Reader, so io.Copy cannot bypass Read through WriteTo.
type failingReader struct {
	r      *bytes.Reader
	size   int64
	passes int
}

func (f *failingReader) Seek(off int64, whence int) (int64, error) {
	if off == 0 && whence == io.SeekStart {
		f.passes++
	}
	return f.r.Seek(off, whence)
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.passes >= 2 { // digest seeks to the start before and after hashing
		pos := f.size - int64(f.r.Len())
		if pos >= f.size/2 {
			return 0, errors.New("disk on fire")
		}
		p = p[:min(int64(len(p)), f.size/2-pos)]
	}
	return f.r.Read(p)
}

// ReadAt fails the same way past the middle (publish.File.Body must be an io.ReaderAt; the
// bucket path reads through Read).
func (f *failingReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.size/2 {
		return 0, errors.New("disk on fire")
	}
	return f.r.ReadAt(p, off)
}

func TestBucketFailedUploadLeavesNothing(t *testing.T) {
	t.Parallel()
	sizes := []int{1 << 20, 20 << 20} // single PUT and S3 multipart
	for name, mk := range backends(t) {
		for _, size := range sizes {
			t.Run(fmt.Sprintf("%s/%dMiB", name, size>>20), func(t *testing.T) {
				t.Parallel()
				be := mk(t)
				b := open(t, be, "https://cdn.example.com")
				data := bytes.Repeat([]byte{0xA5}, size)
				r := &failingReader{r: bytes.NewReader(data), size: int64(size)}
				_, err := b.Put(t.Context(), publish.File{Name: "app/1.0.0/bundle.zip", Body: r})
				if err == nil || !strings.Contains(err.Error(), "disk on fire") {
					t.Fatalf("Put() error = %v, want the reader's error", err)
				}
				if _, ok := be.stored("app/1.0.0/bundle.zip"); ok {
					t.Error("a partial object was committed")
				}
				for _, f := range be.files() {
					if strings.HasPrefix(f, "app/") {
						t.Errorf("file %q left behind", f)
					}
				}
				// The key is still free: a retry succeeds.
				obj, err := b.Put(t.Context(), publish.File{Name: "app/1.0.0/bundle.zip", Body: bytes.NewReader(data)})
				if err != nil || obj.Reused {
					t.Errorf("retry Put() = %+v, %v", obj, err)
				}
			})
		}
	}
}

func TestBucketPresignedURL(t *testing.T) {
	t.Parallel()
	be := s3Backend(t)
	b := open(t, be, "")
	content := []byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`)
	obj, err := b.Put(t.Context(), publish.File{Name: "app/1.0.0/bundle.zip.sigstore.json", Body: bytes.NewReader(content), ContentType: "application/json"})
	if err != nil {
		t.Fatal(err)
	}
	if obj.Expires.IsZero() || !strings.Contains(obj.URL, "X-Amz-Signature=") {
		t.Fatalf("Put() = %+v, want a presigned URL with an expiry", obj)
	}
	resp, err := http.Get(obj.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Equal(got, content) {
		t.Fatalf("GET presigned = %s %q", resp.Status, got)
	}
	hdr := map[string]string{"Content-Type": resp.Header.Get("Content-Type"), "Cache-Control": resp.Header.Get("Cache-Control"), "X-Amz-Meta-Sha256": resp.Header.Get("X-Amz-Meta-Sha256")}
	want := map[string]string{"Content-Type": "application/json", "Cache-Control": publish.CacheControl, "X-Amz-Meta-Sha256": sum(content)}
	if diff := cmp.Diff(want, hdr); diff != "" {
		t.Errorf("object headers (-want +got):\n%s", diff)
	}
	// Anonymous access without the signature is refused: the URL is the only way in.
	plain := strings.SplitN(obj.URL, "?", 2)[0]
	if r2, err := http.Get(plain); err == nil {
		r2.Body.Close()
		if r2.StatusCode == 200 {
			t.Error("unsigned GET succeeded")
		}
	}
}

func TestBucketPrefixAndFileURL(t *testing.T) {
	t.Parallel()
	be := fileBackend(t, "?prefix=ferry/")
	b := open(t, be, "")
	obj, err := b.Put(t.Context(), publish.File{Name: "a/b.zip", Body: bytes.NewReader([]byte("x"))})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(obj.URL, "file:///") || !strings.HasSuffix(obj.URL, "/ferry/a/b.zip") {
		t.Errorf("URL = %q, want a file URL ending in /ferry/a/b.zip", obj.URL)
	}
	if _, ok := be.stored("ferry/a/b.zip"); !ok {
		t.Error("object not stored under the prefix")
	}
	b2 := open(t, be, "https://cdn.example.com/")
	obj, err = b2.Put(t.Context(), publish.File{Name: "a/b.zip", Body: bytes.NewReader([]byte("x"))})
	if err != nil || obj.URL != "https://cdn.example.com/ferry/a/b.zip" || !obj.Reused {
		t.Errorf("Put() = %+v, %v; want the public URL including the prefix, reused", obj, err)
	}
}

func TestOpenBucketRefusesBadDestinations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, dest, base string
	}{
		{"unknown scheme", "ftp://host/dir", ""},
		{"not a URL", "::", ""},
		{"relative public base", "file:///tmp", "cdn.example.com"},
		{"unknown s3 parameter", "s3://b?colour=blue", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := publish.New(t.Context(), tc.dest, publish.Options{PublicBaseURL: tc.base})
			if !errors.Is(err, publish.ErrDestination) {
				t.Errorf("New(%q) error = %v, want ErrDestination", tc.dest, err)
			}
		})
	}
}

// TestBucketListDelete lists what Put stored under a prefix (keys, sizes, times; not other
// prefixes, not the file backend's attribute files) and deletes one object; deleting a
// missing key is no error.
func TestBucketListDelete(t *testing.T) {
	t.Parallel()
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			be := mk(t)
			b := open(t, be, "https://cdn.example.com/web/")
			ctx := t.Context()
			start := time.Now().Add(-time.Minute)
			for _, k := range []string{"app/2.0.0/b.zip", "app/1.0.0/a.zip", "app/files/0f", "apple/1.0.0/x.zip"} {
				if _, err := b.Put(ctx, publish.File{Name: k, Body: strings.NewReader("body of " + k)}); err != nil {
					t.Fatal(err)
				}
			}
			got, err := b.List(ctx, "app/")
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, o := range got {
				keys = append(keys, o.Key)
				if o.Size != int64(len("body of "+o.Key)) || o.ModTime.Before(start) {
					t.Errorf("listed %+v: want its size and a recent time", o)
				}
			}
			if want := []string{"app/1.0.0/a.zip", "app/2.0.0/b.zip", "app/files/0f"}; !slices.Equal(keys, want) {
				t.Errorf("List(app/) = %v, want %v", keys, want)
			}
			if err := b.Delete(ctx, "app/1.0.0/a.zip"); err != nil {
				t.Fatal(err)
			}
			if err := b.Delete(ctx, "app/1.0.0/a.zip"); err != nil {
				t.Errorf("deleting a missing key: %v, want no error", err)
			}
			if _, ok := be.stored("app/1.0.0/a.zip"); ok {
				t.Error("the deleted object is still stored")
			}
			if _, ok := be.stored("app/2.0.0/b.zip"); !ok {
				t.Error("Delete removed another object")
			}
		})
	}
}

// TestBucketListURLRead: List finds what Put stored under a prefix (and nothing outside it),
// URL gives a stored object's download URL without touching it, and Read returns its bytes
// but refuses one over the limit.
func TestBucketListURLRead(t *testing.T) {
	t.Parallel()
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			be := mk(t)
			b := open(t, be, "https://cdn.example.com/web/")
			stored := map[string]string{"app/files/e1/aa": "one", "app/files/e1/bb": "second", "app/1.0.0/app-1.0.0.zip": "zip", "other/files/e1/aa": "x"}
			for k, v := range stored {
				if _, err := b.Put(t.Context(), publish.File{Name: k, Body: strings.NewReader(v)}); err != nil {
					t.Fatal(err)
				}
			}
			got, err := b.List(t.Context(), "app/files/")
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			sizes := map[string]int64{}
			for _, o := range got {
				sizes[o.Key] = o.Size
				if o.ModTime.IsZero() {
					t.Errorf("%s: no modification time", o.Key)
				}
			}
			if diff := cmp.Diff(map[string]int64{"app/files/e1/aa": 3, "app/files/e1/bb": 6}, sizes); diff != "" {
				t.Errorf("List (-want +got):\n%s", diff)
			}
			obj, err := b.URL(t.Context(), "app/files/e1/bb")
			if err != nil || obj.URL != "https://cdn.example.com/web/app/files/e1/bb" || !obj.Reused {
				t.Errorf("URL = %+v, %v", obj, err)
			}
			if body, err := b.Read(t.Context(), "app/files/e1/bb", 6); err != nil || string(body) != "second" {
				t.Errorf("Read = %q, %v", body, err)
			}
			if _, err := b.Read(t.Context(), "app/files/e1/bb", 5); err == nil || !strings.Contains(err.Error(), "more than the 5") {
				t.Errorf("Read over the limit: %v, want a refusal", err)
			}
			if _, err := b.Read(t.Context(), "app/files/e1/none", 5); err == nil {
				t.Error("Read of a missing object: no error")
			}
		})
	}
}

// TestBucketListFileMatchesFileblob: List of a file:// bucket, which walks the directory
// itself, finds what gocloud's fileblob lists (keys, sizes, times), with a prefix parameter,
// and through fileblob when a key holds its escape sequence.
func TestBucketListFileMatchesFileblob(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	u := "file://" + filepath.ToSlash(dir) + "?prefix=live/"
	b, err := publish.OpenBucket(t.Context(), u, publish.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ref, err := blob.OpenBucket(t.Context(), "file://"+filepath.ToSlash(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	fileblobList := func(prefix string) []publish.ListedObject {
		var out []publish.ListedObject
		it := ref.List(&blob.ListOptions{Prefix: "live/" + prefix})
		for {
			o, err := it.Next(t.Context())
			if errors.Is(err, io.EOF) {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, publish.ListedObject{Key: strings.TrimPrefix(o.Key, "live/"), Size: o.Size, ModTime: o.ModTime})
		}
	}
	put := func(keys ...string) {
		for _, k := range keys {
			if _, err := b.Put(t.Context(), publish.File{Name: k, Body: strings.NewReader("body of " + k)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	put("app/1.0.0/app-1.0.0.zip", "app/1.0.0/app-1.0.0.zip.manifest.json", "app/files/e1/aa", "app/files/e1/bb", "apple/1.0.0/x.zip", "ap")
	if err := os.WriteFile(filepath.Join(dir, "live", "app", "files", "e1", "plain"), []byte("not through gocloud"), 0o644); err != nil {
		t.Fatal(err)
	}
	check := func() {
		t.Helper()
		for _, prefix := range []string{"app/", "app/files/e1/", "ap", "none/", ""} {
			got, err := b.List(t.Context(), prefix)
			if err != nil {
				t.Fatalf("List(%q): %v", prefix, err)
			}
			if diff := cmp.Diff(fileblobList(prefix), got); diff != "" {
				t.Errorf("List(%q) (-fileblob +got):\n%s", prefix, diff)
			}
		}
	}
	check()
	put("app/files/e1/a__0x2f__b") // fileblob escapes it: List must give the key, not the file name
	check()
}

// gatedReader is a body whose upload (the pass after digest's, see failingReader) stops
// half-way until release is closed; started is closed when it gets there. It does not embed
// the bytes.Reader, whose WriteTo io.Copy would call instead of Read.
type gatedReader struct {
	r                *bytes.Reader
	passes           int
	started, release chan struct{}
}

func (g *gatedReader) Seek(off int64, whence int) (int64, error) {
	if off == 0 && whence == io.SeekStart {
		g.passes++
	}
	return g.r.Seek(off, whence)
}

func (g *gatedReader) ReadAt(p []byte, off int64) (int, error) { return g.r.ReadAt(p, off) }

func (g *gatedReader) Read(p []byte) (int, error) {
	size := g.r.Size()
	if g.passes >= 2 {
		pos := size - int64(g.r.Len())
		if pos == size/2 && g.started != nil {
			close(g.started)
			g.started = nil
			<-g.release
		}
		if pos < size/2 {
			p = p[:min(int64(len(p)), size/2-pos)]
		}
	}
	return g.r.Read(p)
}

// A file:// object is written to a temporary file next to it, not in the system's
// temporary directory, so that the final rename works when the bucket's directory is on
// another filesystem; List never shows the temporary file, whether a write is under way or
// a dead writer left it.
func TestBucketFileTempBesideObject(t *testing.T) {
	dir, sysTmp := t.TempDir(), t.TempDir()
	t.Setenv("TMPDIR", sysTmp)
	b := open(t, backend{url: "file://" + filepath.ToSlash(dir)}, "https://cdn.example.com")

	started, release := make(chan struct{}), make(chan struct{})
	r := &gatedReader{r: bytes.NewReader(bytes.Repeat([]byte("ferry "), 200_000)), started: started, release: release}
	done := make(chan error, 1)
	go func() {
		_, err := b.Put(t.Context(), publish.File{Name: "app/1.0.0/bundle.zip", Body: r})
		done <- err
	}()
	releaseOnce := sync.OnceFunc(func() { close(release) })
	defer releaseOnce() // a failed check below must not leave the upload blocked
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("Put ended before its body was half read: %v", err)
	}
	if left, _ := os.ReadDir(sysTmp); len(left) != 0 {
		t.Errorf("the system's temporary directory holds %d entries during the write, want none", len(left))
	}
	var temps []string
	for _, f := range listFiles(t, dir)() {
		if strings.HasPrefix(f, "app/1.0.0/bundle.zip.") && strings.HasSuffix(f, ".tmp") {
			temps = append(temps, f)
		}
	}
	if len(temps) != 1 {
		t.Fatalf("files beside the object during the write = %q, want one temporary file", listFiles(t, dir)())
	}
	got, err := b.List(t.Context(), "app/")
	if err != nil || len(got) != 0 {
		t.Errorf("List during the write = %+v, %v; want nothing", got, err)
	}
	releaseOnce()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// A dead writer's leftover, and keys that only look alike.
	for _, name := range []string{temps[0], "app/1.0.0/notes.tmp", "app/1.0.0/x.tmp.zip", "app/1.0.0/y.NOTHEX.tmp"} {
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(name)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err = b.List(t.Context(), "app/")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range got {
		keys = append(keys, o.Key)
	}
	want := []string{"app/1.0.0/bundle.zip", "app/1.0.0/notes.tmp", "app/1.0.0/x.tmp.zip", "app/1.0.0/y.NOTHEX.tmp"}
	if !slices.Equal(keys, want) {
		t.Errorf("List = %q, want %q", keys, want)
	}
	if left, _ := os.ReadDir(sysTmp); len(left) != 0 {
		t.Errorf("the system's temporary directory holds %d entries, want none", len(left))
	}
}
