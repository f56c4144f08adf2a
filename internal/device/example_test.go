package device_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/ferryhq/ferry/internal/archive"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/device"
)

// ExampleClient_Update plays one device against a tiny relay that offers an encrypted
// bundle: the device checks, downloads, decrypts, verifies and unpacks it, then reports
// download_complete and set.
func ExampleClient_Update() {
	ctx := context.Background()
	site, _ := os.MkdirTemp("", "site-")
	defer os.RemoveAll(site)
	_ = os.WriteFile(filepath.Join(site, "index.html"), []byte("<h1>v2</h1>"), 0o644)
	_ = os.WriteFile(filepath.Join(site, "app.js"), []byte("CapacitorUpdater.notifyAppReady()"), 0o644)

	key, _ := archive.GenerateKey()
	var zip bytes.Buffer
	pkg, _ := archive.Package(ctx, site, &zip, archive.Options{Key: key})

	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	mux.HandleFunc("POST /updates", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(channel.UpdateResponse{Version: "2.0.0", URL: srv.URL + "/bundle.zip", Checksum: pkg.Checksum, SessionKey: pkg.SessionKey})
	})
	mux.HandleFunc("GET /bundle.zip", func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "bundle.zip", time.Time{}, bytes.NewReader(zip.Bytes()))
	})
	var stats []map[string]any
	mux.HandleFunc("POST /stats", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewDecoder(r.Body).Decode(&stats)
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})

	dir, _ := os.MkdirTemp("", "device-")
	defer os.RemoveAll(dir)
	c := &device.Client{
		UpdateURL: srv.URL + "/updates",
		StatsURL:  srv.URL + "/stats",
		Info:      channel.DeviceInfo{AppID: "com.example.app", DeviceID: "7239a82f-4ea8-4e33-9085-f4ad974d3fc4", VersionBuild: "1.0.0", VersionOS: "14", IsProd: true},
		PublicKey: &key.PublicKey,
		Dir:       dir,
	}
	res, err := c.Update(ctx)
	if err != nil {
		fmt.Println("update failed:", device.Code(err), err)
		return
	}
	c.NotifyAppReady()
	fmt.Println(res.Outcome, res.Bundle.Version, "encrypted:", res.Bundle.Encrypted, res.Bundle.Files)
	for _, s := range stats {
		fmt.Println("stat:", s["action"], s["version_name"])
	}
	fmt.Println("running:", c.Running())
	// Output:
	// update 2.0.0 encrypted: true [app.js index.html]
	// stat: download_complete 2.0.0
	// stat: set 2.0.0
	// running: 2.0.0
}
