package device_test

import (
	"bytes"
	"crypto/rsa"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/google/go-cmp/cmp"

	"github.com/ferryhq/ferry/internal/archive"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/device"
)

// publishDelta packages dir as version (zip plus per-file objects) and returns an answer
// with the manifest, and the stored size of each file by its manifest name.
func (f *fakeRelay) publishDelta(t *testing.T, dir, version string, key *rsa.PrivateKey) (*channel.UpdateResponse, map[string]int64) {
	t.Helper()
	resp := f.publish(t, dir, version+".zip", version, key)
	var session *archive.SessionKey
	if key != nil {
		var err error
		session, err = archive.UnwrapSessionKey(resp.SessionKey, &key.PublicKey)
		if err != nil {
			t.Fatalf("UnwrapSessionKey: %v", err)
		}
	}
	sizes := map[string]int64{}
	files, err := archive.Delta(t.Context(), dir, archive.DeltaOptions{Key: key, Session: session}, func(df archive.DeltaFile, body io.Reader) error {
		p := filepath.Join(f.files, filepath.FromSlash(df.Object))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		out, err := os.Create(p)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, body); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatalf("Delta: %v", err)
	}
	for _, df := range files {
		resp.Manifest = append(resp.Manifest, channel.ManifestEntry{FileName: df.FileName, FileHash: df.FileHash, DownloadURL: f.srv.URL + "/files/" + df.Object})
		sizes[df.FileName] = df.Size
	}
	return resp, sizes
}

func TestManifestUpdateDownloadsOnlyChangedFiles(t *testing.T) {
	t.Parallel()
	for _, encrypted := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "encrypted"}[encrypted], func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			key, pub := keysIf(t, encrypted)
			c := f.client(t, pub)

			// First install: every file is downloaded.
			v1, sizes1 := f.publishDelta(t, webDir(t, siteV1), "1.0.1", key)
			f.setAnswer(v1)
			res, err := c.Update(t.Context())
			if err != nil {
				t.Fatalf("Update v1: %v", err)
			}
			var all int64
			for _, s := range sizes1 {
				all += s
			}
			if res.Bundle.BytesTransferred != all || res.Bundle.FilesReused != 0 {
				t.Errorf("v1: transferred %d bytes, reused %d; want %d, 0", res.Bundle.BytesTransferred, res.Bundle.FilesReused, all)
			}
			c.NotifyAppReady()

			// v2 changes one file: only that file travels.
			site2 := map[string]string{}
			for k, v := range siteV1 {
				site2[k] = v
			}
			site2["app.js"] = "CapacitorUpdater.notifyAppReady(); console.log('v2')"
			v2, sizes2 := f.publishDelta(t, webDir(t, site2), "1.0.2", key)
			f.setAnswer(v2)
			res, err = c.Update(t.Context())
			if err != nil {
				t.Fatalf("Update v2: %v", err)
			}
			b := res.Bundle
			if b.BytesTransferred != sizes2["app.js"] || b.FilesDownloaded != 1 || b.FilesReused != len(siteV1)-1 {
				t.Errorf("v2: transferred %d bytes (want %d), downloaded %d (want 1), reused %d (want %d)",
					b.BytesTransferred, sizes2["app.js"], b.FilesDownloaded, b.FilesReused, len(siteV1)-1)
			}
			for name, body := range site2 {
				got, err := os.ReadFile(filepath.Join(b.Path, filepath.FromSlash(name)))
				if err != nil || string(got) != body {
					t.Errorf("%s = %.40q, %v", name, got, err)
				}
			}
		})
	}
}

func TestManifestRefusals(t *testing.T) {
	t.Parallel()
	f := setup(t)
	good, _ := f.publishDelta(t, webDir(t, siteV1), "1.0.1", nil)
	entry := good.Manifest[0]
	tests := []struct {
		name    string
		entries []channel.ManifestEntry
		wantErr error
	}{
		{"absolute", []channel.ManifestEntry{{FileName: "/etc/passwd", FileHash: entry.FileHash, DownloadURL: entry.DownloadURL}}, device.ErrManifestPathFail},
		{"dot dot", []channel.ManifestEntry{{FileName: "a/../../x", FileHash: entry.FileHash, DownloadURL: entry.DownloadURL}}, device.ErrManifestPathFail},
		{"backslash", []channel.ManifestEntry{{FileName: `a\b`, FileHash: entry.FileHash, DownloadURL: entry.DownloadURL}}, device.ErrManifestPathFail},
		{"duplicate target", []channel.ManifestEntry{{FileName: "x.js", FileHash: entry.FileHash, DownloadURL: entry.DownloadURL}, {FileName: "x.js.br", FileHash: entry.FileHash, DownloadURL: entry.DownloadURL}}, device.ErrManifestPathFail},
		{"wrong hash", []channel.ManifestEntry{{FileName: entry.FileName, FileHash: "00" + entry.FileHash[2:], DownloadURL: entry.DownloadURL}}, device.ErrManifestChecksumFail},
		{"missing file", []channel.ManifestEntry{{FileName: entry.FileName, FileHash: entry.FileHash, DownloadURL: f.srv.URL + "/files/none"}}, device.ErrManifestFileFail},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := f.client(t, nil)
			resp := *good
			resp.Manifest = tc.entries
			_, err := c.Download(t.Context(), &resp)
			if got := device.Code(err); got != tc.wantErr.Error() {
				t.Errorf("Download = %v (code %q), want %q", err, got, tc.wantErr.Error())
			}
		})
	}
}

func TestRollbackAfterAppReadyTimeout(t *testing.T) {
	t.Parallel()
	f := setup(t)
	c := f.client(t, nil)
	f.setAnswer(f.publish(t, webDir(t, siteV1), "v1.zip", "1.0.1", nil))
	if _, err := c.Update(t.Context()); err != nil {
		t.Fatal(err)
	}
	c.NotifyAppReady()
	broken := map[string]string{"index.html": "broken", "app.js": "throw 1"}
	f.setAnswer(f.publish(t, webDir(t, broken), "v2.zip", "1.0.2", nil))
	if _, err := c.Update(t.Context()); err != nil {
		t.Fatal(err)
	}
	back, err := c.AppReadyTimeout(t.Context(), 10000)
	if err != nil {
		t.Fatalf("AppReadyTimeout: %v", err)
	}
	if back != "1.0.1" || c.Running() != "1.0.1" {
		t.Errorf("after timeout running %q (returned %q), want 1.0.1", c.Running(), back)
	}
	want := []string{"download_complete@1.0.1", "set@1.0.1", "download_complete@1.0.2", "set@1.0.2",
		"app_launch_timeout@1.0.2", "update_fail@1.0.2", "reset@1.0.1"}
	if diff := cmp.Diff(want, f.actions()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	if got := c.Bundles()["1.0.2"].Status; got != device.StatusDeleted {
		t.Errorf("failed bundle status = %q, want deleted", got)
	}
	// A relay that keeps offering the broken version makes the plugin download it again:
	// this is the loop the relay must break by honouring update_fail.
	res, err := c.Update(t.Context())
	if err != nil || res.Reused || res.Outcome != "update" {
		t.Errorf("re-offer: outcome %q reused %v err %v; want a fresh download", res.Outcome, res.Reused, err)
	}
}

// Manifest file hashes compare case-insensitively, as Android does (docs/protocol.md §4, step 4),
// unlike the zip checksum (see "uppercase checksum is compared exactly").
func TestManifestHashCaseInsensitive(t *testing.T) {
	t.Parallel()
	f := setup(t)
	resp, _ := f.publishDelta(t, webDir(t, siteV1), "1.0.1", nil)
	up := *resp
	up.Manifest = nil
	for _, e := range resp.Manifest {
		e.FileHash = strings.ToUpper(e.FileHash)
		up.Manifest = append(up.Manifest, e)
	}
	b, err := f.client(t, nil).Download(t.Context(), &up)
	if err != nil {
		t.Fatalf("Download with uppercase manifest hashes: %v", err)
	}
	if b.FilesDownloaded != len(resp.Manifest) {
		t.Errorf("downloaded %d files, want %d", b.FilesDownloaded, len(resp.Manifest))
	}
}

// brotliOf is plain Brotli-compressed, as a web build's precompressed files are.
func brotliOf(t *testing.T, plain string) string {
	t.Helper()
	var buf bytes.Buffer
	w := brotli.NewWriterLevel(&buf, brotli.BestCompression)
	if _, err := io.WriteString(w, plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// readTree reads every regular file under root: its slash path -> its bytes.
func readTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, name := range filesUnder(t, root, "") {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
		if err != nil {
			t.Fatal(err)
		}
		out[name] = string(b)
	}
	return out
}

// TestDeltaAndZipInstallTheSameBuild: a build holding precompressed files (a lone
// assets/pre.js.br, and pre.js next to its pre.js.br) and empty files installs byte for byte
// as built through the delta (manifest) path and through the zip path, encrypted or not.
// The plugin strips one ".br" from a manifest name and Brotli-decodes the file, so a file
// whose own name ends in ".br" must travel wrapped, and an empty file must survive the
// plugin's refusal of empty decrypted data (docs/protocol.md §4).
func TestDeltaAndZipInstallTheSameBuild(t *testing.T) {
	t.Parallel()
	preJS := "CapacitorUpdater.notifyAppReady();\n" + strings.Repeat("export const a = 'precompressed';\n", 400)
	build := map[string]string{
		"index.html":       "<!doctype html><script src=a.js></script>",
		"a.js":             "CapacitorUpdater.notifyAppReady(); console.log('a')",
		"assets/pre.js.br": brotliOf(t, "console.log('only the precompressed copy ships')"),
		"pre.js":           preJS, // over 8192 bytes and compressible: its manifest name ends in .br too
		"pre.js.br":        brotliOf(t, preJS),
		"big.js.br":        strings.Repeat("not Brotli at all, and compressible ", 400),
		"assets/empty.txt": "",
		"empty.br":         "",
		"five.br":          "12345", // wrapped, it is as long as the plugin's quality-0 wrapper
	}
	for _, encrypted := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "encrypted"}[encrypted], func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			key, pub := keysIf(t, encrypted)
			dir := webDir(t, build)
			delta, _ := f.publishDelta(t, dir, "1.0.1", key)
			if len(delta.Manifest) != len(build) {
				t.Errorf("manifest has %d files, the build %d", len(delta.Manifest), len(build))
			}
			viaDelta, err := f.client(t, pub).Download(t.Context(), delta)
			if err != nil {
				t.Fatalf("delta install: %v (code %q)", err, device.Code(err))
			}
			zipped := *delta
			zipped.Manifest = nil
			viaZip, err := f.client(t, pub).Download(t.Context(), &zipped)
			if err != nil {
				t.Fatalf("zip install: %v", err)
			}
			for how, b := range map[string]*device.Bundle{"delta": viaDelta, "zip": viaZip} {
				if diff := cmp.Diff(build, readTree(t, b.Path)); diff != "" {
					t.Errorf("%s install differs from the build (-build +installed):\n%s", how, diff)
				}
			}
		})
	}
}
