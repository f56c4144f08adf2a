package pipeline

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"

	"github.com/ferryhq/ferry/internal/archive"
	"github.com/ferryhq/ferry/internal/archive/archivetest"
	"github.com/ferryhq/ferry/internal/channel"
)

type discardUI struct{}

func (discardUI) Group(string)  {}
func (discardUI) EndGroup()     {}
func (discardUI) Warn(string)   {}
func (discardUI) Notice(string) {}
func (discardUI) Mask(string)   {}

// TestDeltaRefusedBeforePublishing: with delta on, a build whose file names a delta
// manifest cannot hold fails the Package stage, and nothing reaches the destination.
func TestDeltaRefusedBeforePublishing(t *testing.T) {
	t.Parallel()
	build := archivetest.WriteTree(t, t.TempDir(), map[string]string{"index.html": "<html></html>", "line\nbreak.js": "x"})
	dest := t.TempDir()
	p := &Pipeline{
		Config: &Config{AppID: "com.example.app", Version: "1.0.0", BuildDir: build, Destination: "file://" + filepath.ToSlash(dest),
			Signing: signingNone, Delta: true, TempDir: t.TempDir()},
		UI: discardUI{}, Log: slog.New(slog.DiscardHandler), Getenv: func(string) string { return "" },
	}
	res, err := p.Run(t.Context())
	if !errors.Is(err, archive.ErrUnsafeFile) || !strings.Contains(err.Error(), "delta") || res.FailedStage != "package" {
		t.Fatalf("Run = %v (failed stage %q), want ErrUnsafeFile from the package stage", err, res.FailedStage)
	}
	if left, _ := os.ReadDir(dest); len(left) != 0 {
		t.Errorf("destination holds %d entries after a refused build", len(left))
	}
}

// publishVersion runs the pipeline for version of build into the file:// bucket dest with
// delta on, encrypted with key, in key epoch epoch.
func publishVersion(t *testing.T, build, dest, version, epoch string, key []byte) *Result {
	t.Helper()
	p := &Pipeline{
		Config: &Config{AppID: "com.example.app", Version: version, BuildDir: build, Destination: "file://" + filepath.ToSlash(dest),
			Signing: signingNone, Delta: true, DeltaEpoch: epoch, EncKey: key, TempDir: t.TempDir()},
		UI: discardUI{}, Log: slog.New(slog.DiscardHandler), Getenv: func(string) string { return "" },
	}
	res, err := p.Run(t.Context())
	if err != nil {
		t.Fatalf("publish %s: %v", version, err)
	}
	return res
}

// objectsUnder returns the bytes of every file under dir/com.example.app/files, by path.
func objectsUnder(t *testing.T, dest string) map[string]string {
	t.Helper()
	root := filepath.Join(dest, "com.example.app", "files")
	out := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, ".attrs") { // fileblob's metadata
			return err
		}
		b, err := os.ReadFile(path)
		out[path] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDeltaReleasesReuseObjects: the second release of a key epoch, with one file changed,
// stores exactly one new object and leaves the others' bytes alone; its manifest points the
// unchanged files at the first release's objects, and every entry decrypts, with the
// session_key the answer carries for this bundle, to the build's file and matches its
// file_hash. Rotating the epoch starts fresh objects under a new session key.
func TestDeltaReleasesReuseObjects(t *testing.T) {
	t.Parallel()
	priv, err := archive.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pemKey := archive.MarshalPrivateKey(priv)
	files := map[string]string{
		"index.html":    "<html>v1</html>",
		"assets/app.js": strings.Repeat("console.log('compressible');\n", 1000),
		"assets/lib.js": strings.Repeat("export const x = 1;\n", 300),
		"empty.txt":     "",
	}
	build := archivetest.WriteTree(t, t.TempDir(), files)
	dest := t.TempDir()

	v1 := publishVersion(t, build, dest, "1.0.0", "1", pemKey)
	before := objectsUnder(t, dest)
	if len(before) != len(files) || v1.deltaNew != len(files) {
		t.Fatalf("first release: %d objects, %d new; want %d", len(before), v1.deltaNew, len(files))
	}
	files["index.html"] = "<html>v2</html>"
	archivetest.WriteTree(t, build, map[string]string{"index.html": files["index.html"]})
	v2 := publishVersion(t, build, dest, "1.0.1", "1", pemKey)
	after := objectsUnder(t, dest)
	if len(after) != len(before)+1 || v2.deltaNew != 1 || v2.deltaFiles != len(files) {
		t.Errorf("second release: %d objects (was %d), %d of %d files new; want one new object", len(after), len(before), v2.deltaNew, v2.deltaFiles)
	}
	for path, b := range before {
		if after[path] != b {
			t.Errorf("%s changed", path)
		}
	}
	if v2.pk.SessionKey != v1.pk.SessionKey {
		t.Error("two bundles of one epoch have different session keys")
	}
	for i, e := range v2.manifest {
		if (e.DownloadURL == v1.manifest[i].DownloadURL) == (e.FileName == "index.html") {
			t.Errorf("%s: download URL %s, first release %s", e.FileName, e.DownloadURL, v1.manifest[i].DownloadURL)
		}
	}
	checkManifest(t, v2, priv, files)

	v3 := publishVersion(t, build, dest, "1.0.2", "2", pemKey)
	if v3.deltaNew != len(files) || v3.pk.SessionKey == v2.pk.SessionKey || len(objectsUnder(t, dest)) != len(after)+len(files) {
		t.Errorf("epoch 2: %d of %d files new, session key changed %v; want all new under a new key", v3.deltaNew, len(files), v3.pk.SessionKey != v2.pk.SessionKey)
	}
	checkManifest(t, v3, priv, files)
}

// checkManifest does what a device does with each manifest entry of res: download, decrypt
// with the bundle's session_key, un-Brotli a ".br" name, and compare with the file_hash and
// the build's file.
func checkManifest(t *testing.T, res *Result, priv *rsa.PrivateKey, files map[string]string) {
	t.Helper()
	session, err := archive.UnwrapSessionKey(res.pk.SessionKey, &priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.manifest) != len(files) {
		t.Errorf("manifest has %d entries, the build %d files", len(res.manifest), len(files))
	}
	for _, e := range res.manifest {
		u, err := url.Parse(e.DownloadURL)
		if err != nil {
			t.Fatal(err)
		}
		stored, err := os.ReadFile(filepath.FromSlash(u.Path))
		if err != nil {
			t.Fatalf("%s: %v", e.FileName, err)
		}
		if int64(len(stored)) != e.Size {
			t.Errorf("%s: manifest size %d, object %d bytes", e.FileName, e.Size, len(stored))
		}
		r := session.NewDecrypter(bytes.NewReader(stored))
		name, br := strings.CutSuffix(e.FileName, ".br")
		if br {
			r = brotli.NewReader(r)
		}
		plain, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("%s: %v", e.FileName, err)
		}
		sum := sha256.Sum256(plain)
		if err := archive.VerifyChecksum(&priv.PublicKey, e.FileHash, sum[:]); err != nil || string(plain) != files[name] {
			t.Errorf("%s: file_hash %v, content matches %v", e.FileName, err, string(plain) == files[name])
		}
	}
}

func TestDeltaKeyEpochInput(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"": "1", "2": "2", "2026-q1": "2026-q1"} {
		var p problems
		c := &Config{}
		c.checkBundleOptions("true", in, &p)
		if len(p) != 0 || c.DeltaEpoch != want {
			t.Errorf("delta-key-epoch %q: epoch %q, problems %v; want %q", in, c.DeltaEpoch, p, want)
		}
	}
	for _, bad := range []string{"a b", strings.Repeat("9", archive.MaxEpochLabel+1), "é"} {
		var p problems
		(&Config{}).checkBundleOptions("true", bad, &p)
		if len(p) != 1 || !strings.Contains(p[0].Error(), "delta key epoch") {
			t.Errorf("delta-key-epoch %q: problems %v, want one about the epoch", bad, p)
		}
	}
}

// TestDeltaHintTagsRoundTrip: the manifest stored in the bucket tags each entry's file_hash
// for its key epoch, and the next release reads those tags: a file_hash whose tag checks is
// reused as it is (here one the test tags itself, which only the key holder can do), and one
// whose tag was not rewritten with it is checked and signed again, so an edit of the stored
// manifest cannot reach the next one.
func TestDeltaHintTagsRoundTrip(t *testing.T) {
	t.Parallel()
	priv, err := archive.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pemKey := archive.MarshalPrivateKey(priv)
	epoch, err := archive.DeriveEpoch(priv, "com.example.app", "1")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"index.html": "<html>v1</html>", "a.js": strings.Repeat("a();\n", 3000), "b.js": "b()"}
	build := archivetest.WriteTree(t, t.TempDir(), files)
	dest := t.TempDir()
	v1 := publishVersion(t, build, dest, "1.0.0", "1", pemKey)
	manifestPath := filepath.Join(dest, "com.example.app", "1.0.0", "com.example.app-1.0.0.zip.manifest.json")
	b, err := os.ReadFile(manifestPath)
	if err != nil {
		t.Fatal(err)
	}
	var stored []storedManifestEntry
	if err := json.Unmarshal(b, &stored); err != nil || len(stored) != len(files) {
		t.Fatalf("stored manifest: %d entries, %v", len(stored), err)
	}
	object := func(e channel.ManifestEntry) string {
		return e.DownloadURL[strings.LastIndex(e.DownloadURL, "/"+epoch.Prefix())+1:]
	}
	for i, e := range stored {
		if e.ManifestEntry != v1.manifest[i] || e.HintTag != epoch.HintTag(object(e.ManifestEntry), e.FileHash) {
			t.Errorf("stored entry %+v, registered %+v: want the same entry tagged for the epoch", e, v1.manifest[i])
		}
	}
	// a.js: a file_hash tagged anew (taken as it is); b.js: an edited file_hash under its old tag.
	for i := range stored {
		switch stored[i].FileName {
		case "a.js.br":
			stored[i].FileHash = "feed"
			stored[i].HintTag = epoch.HintTag(object(stored[i].ManifestEntry), "feed")
		case "b.js": // index.html's: a valid checksum, of other content
			stored[i].FileHash = v1.manifest[len(v1.manifest)-1].FileHash
		}
	}
	if b, err = json.Marshal(stored); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(manifestPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	archivetest.WriteTree(t, build, map[string]string{"index.html": "<html>v2</html>"})
	v2 := publishVersion(t, build, dest, "1.0.1", "1", pemKey)
	for i, e := range v2.manifest {
		switch e.FileName {
		case "a.js.br":
			if e.FileHash != "feed" {
				t.Errorf("a.js: file_hash %.16q…, want the tagged hint", e.FileHash)
			}
		case "b.js":
			if e.FileHash != v1.manifest[i].FileHash {
				t.Errorf("b.js: file_hash %.16q…, want its checksum, not the edited hint", e.FileHash)
			}
		}
	}
}

// A first delta release, which signs and compresses every file, says how far it has got
// while it runs.
func TestDeltaReportsProgress(t *testing.T) {
	t.Parallel()
	priv, err := archive.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"index.html": "<html>v1</html>"}
	for i := range 80 { // 80 signatures: tens of milliseconds at least
		files[fmt.Sprintf("assets/chunk-%02d.js", i)] = strings.Repeat(fmt.Sprintf("export const c%d = %d;\n", i, i), 50)
	}
	build := archivetest.WriteTree(t, t.TempDir(), files)
	// Run waits for the progress logger to stop, so the buffer is read after its last write.
	var logs bytes.Buffer
	p := &Pipeline{
		Config: &Config{AppID: "com.example.app", Version: "1.0.0", BuildDir: build, Destination: "file://" + filepath.ToSlash(t.TempDir()),
			Signing: signingNone, Delta: true, DeltaEpoch: "1", EncKey: archive.MarshalPrivateKey(priv), TempDir: t.TempDir()},
		UI: discardUI{}, Log: slog.New(slog.NewJSONHandler(&logs, nil)), Getenv: func(string) string { return "" },
		progressEvery: time.Millisecond,
	}
	res, err := p.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	type report struct {
		New        int64  `json:"new"`
		NewSize    string `json:"new_size"`
		BuildFiles int    `json:"build_files"`
	}
	var reports []report
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, `"msg":"storing delta files"`) {
			var r report
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatal(err)
			}
			reports = append(reports, r)
		}
	}
	if len(reports) == 0 {
		t.Fatalf("no progress logged; logs:\n%s", logs.String())
	}
	last := int64(0)
	for _, r := range reports {
		if r.New < last || r.New > int64(len(files)) || r.BuildFiles != len(files) || r.NewSize == "" {
			t.Errorf("progress %+v after %d stored; want a count that only grows, up to the build's %d files", r, last, len(files))
		}
		last = r.New
	}
	if res.deltaNew != len(files) {
		t.Errorf("%d new delta files, want %d", res.deltaNew, len(files))
	}
	// Nothing is logged once the stage is over.
	n := strings.Count(logs.String(), "storing delta files")
	time.Sleep(20 * time.Millisecond)
	if m := strings.Count(logs.String(), "storing delta files"); m != n {
		t.Errorf("%d progress lines after the release, want none", m-n)
	}
}
