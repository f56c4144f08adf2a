package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ferryhq/ferry/internal/channel"
)

// TestProbeDownloadHostileRelayStaysInDir replays the review's attack on ferry probe
// --download: a relay answering a device without a public key with a delta manifest whose
// file_hash is a path. The probe must fail with the plugin's stat, fetch nothing, and
// neither create nor change anything outside --dir.
func TestProbeDownloadHostileRelayStaysInDir(t *testing.T) {
	t.Parallel()
	var fetched atomic.Int64
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	hashes := []string{"../../../outside/victim", "../../../outside/planted_evil.js", "../../planted_evil.js"}
	mux.HandleFunc("POST /updates", func(w http.ResponseWriter, r *http.Request) {
		var manifest []channel.ManifestEntry
		for i, h := range hashes {
			manifest = append(manifest, channel.ManifestEntry{FileName: []string{"app.js", "evil.js", "index.html"}[i], FileHash: h, DownloadURL: srv.URL + "/f/" + h})
		}
		_ = json.NewEncoder(w).Encode(channel.UpdateResponse{Version: "6.6.6", URL: srv.URL + "/b.zip", Manifest: manifest})
	})
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		_, _ = io.WriteString(w, "planted")
	})

	parent := t.TempDir()
	outside := filepath.Join(parent, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(outside, "victim_app.js.part")
	if err := os.WriteFile(victim, []byte("keep me, I am bigger than the planted body"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"probe", "--relay", srv.URL, "--app", "com.example.app", "--download", "--dir", filepath.Join(parent, "device")}, &stdout, &stderr)
	if code != 1 {
		t.Errorf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, &stdout, &stderr)
	}
	if !strings.Contains(stdout.String(), "download_manifest_checksum_fail") {
		t.Errorf("output does not name the plugin's stat:\n%s", &stdout)
	}
	if n := fetched.Load(); n != 0 {
		t.Errorf("the probe fetched %d files from a manifest it must refuse", n)
	}
	if got, err := os.ReadFile(victim); err != nil || string(got) != "keep me, I am bigger than the planted body" {
		t.Errorf("file outside --dir changed: %q, %v", got, err)
	}
	var outsideFiles []string
	_ = filepath.WalkDir(parent, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && p == filepath.Join(parent, "device") {
			return filepath.SkipDir
		}
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(parent, p)
			outsideFiles = append(outsideFiles, filepath.ToSlash(rel))
		}
		return nil
	})
	if len(outsideFiles) != 1 || outsideFiles[0] != "outside/victim_app.js.part" {
		t.Errorf("files outside --dir: %v, want only the victim", outsideFiles)
	}
}
