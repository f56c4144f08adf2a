package device_test

import (
	"crypto/rsa"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferryhq/ferry/internal/archive"
	"github.com/ferryhq/ferry/internal/channel"
)

// publishEpoch publishes version of dir the way the action does with delta in a key epoch:
// the zip encrypted with the epoch's session key, and only the files whose epoch object the
// served directory (a file bucket) does not hold yet, listed from the directory itself.
// hints carries the file_hash earlier manifests gave each object. It returns the answer and
// the manifest names of the files it stored.
func (f *fakeRelay) publishEpoch(t *testing.T, dir, version string, key *rsa.PrivateKey, epoch *archive.Epoch, hints map[string]string) (*channel.UpdateResponse, []string) {
	t.Helper()
	out, err := os.Create(filepath.Join(f.files, version+".zip"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := archive.Package(t.Context(), dir, out, archive.Options{Key: key, Session: epoch.Session})
	if err != nil {
		t.Fatalf("Package: %v", err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	existing := map[string]archive.Stored{}
	listed, _ := os.ReadDir(filepath.Join(f.files, filepath.FromSlash(epoch.Prefix())))
	for _, e := range listed {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		name := epoch.Prefix() + e.Name()
		existing[name] = archive.Stored{Size: info.Size(), FileHash: hints[name]}
	}
	var stored []string
	files, err := archive.Delta(t.Context(), dir, archive.DeltaOptions{Key: key, Session: epoch.Session, Epoch: epoch, Existing: existing}, func(df archive.DeltaFile, body io.Reader) error {
		stored = append(stored, df.FileName)
		p := filepath.Join(f.files, filepath.FromSlash(df.Object))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		b, err := io.ReadAll(body)
		if err != nil {
			return err
		}
		return os.WriteFile(p, b, 0o644)
	})
	if err != nil {
		t.Fatalf("Delta: %v", err)
	}
	resp := &channel.UpdateResponse{Version: version, URL: f.srv.URL + "/files/" + version + ".zip", Checksum: res.Checksum, SessionKey: res.SessionKey}
	for _, df := range files {
		hints[df.Object] = df.FileHash
		resp.Manifest = append(resp.Manifest, channel.ManifestEntry{FileName: df.FileName, FileHash: df.FileHash, DownloadURL: f.srv.URL + "/files/" + df.Object, Size: df.Size})
	}
	return resp, stored
}

// TestDeviceUpdatesAcrossEpochReleases: a device on 1.0.0 updates to 1.0.1, two encrypted
// delta releases of one key epoch that differ in one file. The second release stored only
// that file; the device downloads only its object, copies the others from 1.0.0, verifies
// every file's checksum, and installs exactly the build, with the one session key the answer
// carries.
func TestDeviceUpdatesAcrossEpochReleases(t *testing.T) {
	t.Parallel()
	f := setup(t)
	key := newKey(t)
	epoch, err := archive.DeriveEpoch(key, "com.example.app", "1")
	if err != nil {
		t.Fatal(err)
	}
	c := f.client(t, &key.PublicKey)
	hints := map[string]string{}
	build := map[string]string{}
	for k, v := range siteV1 {
		build[k] = v
	}
	build["assets/vendor.js"] = strings.Repeat("export const vendor = 'unchanged';\n", 500)
	build["assets/empty.txt"] = ""

	v1, stored1 := f.publishEpoch(t, webDir(t, build), "1.0.0", key, epoch, hints)
	if len(stored1) != len(build) {
		t.Fatalf("1.0.0 stored %d of %d files", len(stored1), len(build))
	}
	f.setAnswer(v1)
	if _, err := c.Update(t.Context()); err != nil {
		t.Fatalf("Update 1.0.0: %v", err)
	}
	c.NotifyAppReady()

	build["app.js"] = "CapacitorUpdater.notifyAppReady(); console.log('1.0.1')"
	v2, stored2 := f.publishEpoch(t, webDir(t, build), "1.0.1", key, epoch, hints)
	if diff := cmp.Diff([]string{"app.js"}, stored2); diff != "" {
		t.Errorf("1.0.1 stored (-want +got):\n%s", diff)
	}
	if v2.SessionKey != v1.SessionKey {
		t.Error("the releases of one epoch carry different session keys")
	}
	hitsBefore := map[string]int{}
	for _, e := range v2.Manifest {
		hitsBefore[e.FileName] = f.hits(e.DownloadURL)
	}
	f.setAnswer(v2)
	res, err := c.Update(t.Context())
	if err != nil {
		t.Fatalf("Update 1.0.1: %v", err)
	}
	b := res.Bundle
	var changed channel.ManifestEntry
	for _, e := range v2.Manifest {
		if e.FileName == "app.js" {
			changed = e
		}
		if got := f.hits(e.DownloadURL) - hitsBefore[e.FileName]; got != map[bool]int{true: 1, false: 0}[e.FileName == "app.js"] {
			t.Errorf("%s: downloaded %d times during the update", e.FileName, got)
		}
	}
	if b.FilesDownloaded != 1 || b.FilesReused != len(build)-1 || b.BytesTransferred != changed.Size {
		t.Errorf("1.0.1: downloaded %d files (%d bytes), reused %d; want 1 (%d bytes), %d", b.FilesDownloaded, b.BytesTransferred, b.FilesReused, changed.Size, len(build)-1)
	}
	if diff := cmp.Diff(build, readTree(t, b.Path)); diff != "" {
		t.Errorf("installed 1.0.1 differs from the build (-build +installed):\n%s", diff)
	}
	if c.Running() != "1.0.1" {
		t.Errorf("running %q, want 1.0.1", c.Running())
	}
}
