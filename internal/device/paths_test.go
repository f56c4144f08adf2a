package device_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/device"
)

// TestHostileRelayCannotTouchFilesOutsideDir plays a relay that puts paths where the device
// protocol has a hash or a version (the review's ferry probe --download attack): the device
// must refuse before fetching anything, create nothing outside Client.Dir, and leave an
// existing file outside it untouched (a Range-resumed ".part" path used to be appended to and
// then deleted).
func TestHostileRelayCannotTouchFilesOutsideDir(t *testing.T) {
	t.Parallel()
	f := setup(t)
	good, _ := f.publishDelta(t, webDir(t, siteV1), "1.0.1", nil)
	entry := good.Manifest[0]

	tests := []struct {
		name     string
		fileHash func(outsideFromFiles string) string // file_hash given the way from Dir/downloads/files to the outside directory
		fileName string
	}{
		{"file_hash with the review's path", func(string) string { return "../../planted_evil.js" }, "app.js"},
		{"file_hash planting outside Dir", func(rel string) string { return rel + "/planted_evil.js" }, "app.js"},
		{"file_hash naming an existing file outside Dir", func(rel string) string { return rel + "/victim" }, "app.js"},
		{"file_hash absolute", func(string) string { return "/tmp/planted" }, "app.js"},
		{"file_hash 64 characters with a path", func(string) string { return "../" + strings.Repeat("a", 61) }, "app.js"},
		{"file_hash too short", func(string) string { return strings.Repeat("a", 63) }, "app.js"},
		{"file_hash not hex", func(string) string { return strings.Repeat("g", 64) }, "app.js"},
		{"file_hash with a NUL byte", func(string) string { return strings.Repeat("a", 63) + "\x00" }, "app.js"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			parent := t.TempDir()
			outside := filepath.Join(parent, "outside")
			c := f.client(t, nil)
			c.Dir = filepath.Join(parent, "device")
			for _, d := range []string{outside, filepath.Join(c.Dir, "downloads", "files")} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			// Bigger than the served file, so a resumed download gets 416 and the old code
			// took the victim for a complete download, then deleted it.
			victim := filepath.Join(outside, "victim_app.js.part")
			victimBody := strings.Repeat("keep me ", 1000)
			if err := os.WriteFile(victim, []byte(victimBody), 0o644); err != nil {
				t.Fatal(err)
			}
			resp := *good
			resp.Manifest = []channel.ManifestEntry{{FileName: tc.fileName, FileHash: tc.fileHash("../../../outside"), DownloadURL: entry.DownloadURL}}
			before := f.hits(entry.DownloadURL)
			_, err := c.Download(t.Context(), &resp)
			if got := device.Code(err); got != device.ErrManifestChecksumFail.Error() {
				t.Errorf("Download = %v (code %q), want %q", err, got, device.ErrManifestChecksumFail)
			}
			if n := f.hits(entry.DownloadURL) - before; n != 0 {
				t.Errorf("fetched the file %d times; a malformed file_hash must be refused before any download", n)
			}
			if got, err := os.ReadFile(victim); err != nil || string(got) != victimBody {
				t.Errorf("file outside Dir changed: %d bytes, %v", len(got), err)
			}
			if diff := cmp.Diff([]string{"outside/victim_app.js.part"}, filesUnder(t, parent, c.Dir)); diff != "" {
				t.Errorf("files outside Dir (-want +got):\n%s", diff)
			}
		})
	}
}

// TestHostileVersionStaysInDir checks that a version carrying a path is used as one file
// name under Dir: the bundle and its download land inside, nothing outside.
func TestHostileVersionStaysInDir(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, version := range []string{"../../../outside/evil", `..\..\evil`, "..", "/abs/evil", "a/../../b"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			parent := t.TempDir()
			c := f.client(t, nil)
			c.Dir = filepath.Join(parent, "device")
			resp := f.publish(t, webDir(t, siteV1), "v-"+strings.NewReplacer("/", "_", `\`, "_").Replace(version)+".zip", version, nil)
			b, err := c.Download(t.Context(), resp)
			if err != nil {
				t.Fatalf("Download: %v", err)
			}
			if rel, err := filepath.Rel(filepath.Join(c.Dir, "bundles"), b.Path); err != nil || strings.Contains(rel, string(filepath.Separator)) || !filepath.IsLocal(rel) {
				t.Errorf("bundle installed at %s, not one element under Dir/bundles", b.Path)
			}
			if got := filesUnder(t, parent, c.Dir); len(got) != 0 {
				t.Errorf("files outside Dir: %v", got)
			}
		})
	}
}

// TestSymlinkInDirIsNotFollowed plants a symlink where the device keeps a partial download
// (someone sharing the --dir of ferry probe): the device must not write through it.
func TestSymlinkInDirIsNotFollowed(t *testing.T) {
	t.Parallel()
	f := setup(t)
	resp := f.publish(t, webDir(t, siteV1), "v1.zip", "1.0.1", nil)
	parent := t.TempDir()
	c := f.client(t, nil)
	c.Dir = filepath.Join(parent, "device")
	victim := filepath.Join(parent, "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(c.Dir, "downloads"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(c.Dir, "downloads", "1.0.1.part")); err != nil {
		t.Skipf("symlinks unavailable: %v", err)
	}
	_, err := c.Download(t.Context(), resp)
	if got := device.Code(err); got != device.ErrDownloadFail.Error() {
		t.Errorf("Download = %v (code %q), want %q", err, got, device.ErrDownloadFail)
	}
	if got, err := os.ReadFile(victim); err != nil || string(got) != "keep" {
		t.Errorf("symlink target changed: now %d bytes (%q at first), %v", len(got), got[:min(len(got), 8)], err)
	}
}

// hits returns how often the file at u was requested.
func (f *fakeRelay) hits(u string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fileHits[strings.TrimPrefix(u, f.srv.URL)]
}

// filesUnder lists the files under root, slash-separated, except those under skip.
func filesUnder(t *testing.T, root, skip string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == skip && d.IsDir() {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
