package archive

import (
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestListingSharedByPackageAndDelta: a Package given a Listing writes the same bytes as one
// that walks the build, and records the SHA-256 of every file, including one zipped in
// several chunks; a Delta given the listing gives the same entries as one that walks the
// build, does not read again a file whose object is stored (it may even be gone), and
// refuses a file it must prepare that changed since it was zipped.
func TestListingSharedByPackageAndDelta(t *testing.T) {
	t.Parallel()
	priv := sharedKey(t)
	epoch, err := DeriveEpoch(priv, "com.example.app", "1")
	if err != nil {
		t.Fatal(err)
	}
	dir := deltaTree(t)
	if err := os.WriteFile(filepath.Join(dir, "assets", "big.js"), []byte(bigText(2*chunkSize+12345, 9)), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := Options{Key: priv, Session: epoch.Session}
	pack := func(l *Listing) []byte {
		t.Helper()
		var out bytes.Buffer
		o := opts
		o.Listing = l
		if _, err := Package(t.Context(), dir, &out, o); err != nil {
			t.Fatal(err)
		}
		return out.Bytes()
	}
	scan := func() *Listing {
		t.Helper()
		l, err := Scan(dir, ZipOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	want := pack(nil)
	l := scan()
	if got := pack(l); !bytes.Equal(got, want) {
		t.Fatal("Package with a listing wrote other bytes")
	}
	files := 0
	for _, e := range l.entries {
		if e.dir {
			continue
		}
		files++
		b, err := os.ReadFile(e.path)
		if err != nil {
			t.Fatal(err)
		}
		if !e.hashed || e.sum != sha256.Sum256(b) {
			t.Errorf("%s: hashed %v, sum %x, want %x", e.name, e.hashed, e.sum, sha256.Sum256(b))
		}
	}
	if files != 8 {
		t.Fatalf("listing holds %d files, want 8", files)
	}

	dopts := DeltaOptions{Key: priv, Session: epoch.Session, Epoch: epoch}
	walked := &epochStore{bytes: map[string][]byte{}, hashes: map[string]string{}}
	v1, _ := walked.publish(t, dir, dopts)
	listed := &epochStore{bytes: map[string][]byte{}, hashes: map[string]string{}}
	dopts.Listing = l
	v1l, _ := listed.publish(t, dir, dopts)
	if diff := cmp.Diff(v1, v1l); diff != "" {
		t.Errorf("Delta with a listing (-walked +listed):\n%s", diff)
	}

	// Next release: index.html changed; the unchanged files are not read again.
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<html>v2</html>"), 0o644); err != nil {
		t.Fatal(err)
	}
	l2 := scan()
	pack(l2)
	if err := os.Remove(filepath.Join(dir, "assets", "app.js")); err != nil {
		t.Fatal(err)
	}
	dopts.Listing = l2
	v2, put := listed.publish(t, dir, dopts)
	if len(put) != 1 || put[0] != "index.html" || len(v2) != len(v1) {
		t.Errorf("second release put %q of %d entries, want index.html of %d", put, len(v2), len(v1))
	}

	// A file to prepare that changed since it was zipped is refused.
	if err := os.WriteFile(filepath.Join(dir, "assets", "app.js"), []byte("back"), 0o644); err != nil {
		t.Fatal(err)
	}
	l3 := scan()
	pack(l3)
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<html>v3</html>"), 0o644); err != nil {
		t.Fatal(err)
	}
	dopts.Listing = l3
	dopts.Existing = nil
	if _, err := Delta(t.Context(), dir, dopts, func(DeltaFile, io.Reader) error { return nil }); err == nil || !strings.Contains(err.Error(), "changed since the bundle was zipped") {
		t.Errorf("Delta of a file changed after the zip: %v, want a refusal", err)
	}
	// A listing of another directory, or with another file policy, is refused.
	if _, err := Delta(t.Context(), t.TempDir(), dopts, func(DeltaFile, io.Reader) error { return nil }); err == nil {
		t.Error("Delta with the listing of another directory: no error")
	}
	o := opts
	o.Listing, o.Zip.IncludeHidden = l3, true
	if _, err := Package(t.Context(), dir, io.Discard, o); err == nil {
		t.Error("Package with a listing of another file policy: no error")
	}
}
