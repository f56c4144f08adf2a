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
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferryhq/ferry/internal/archive"
	"github.com/ferryhq/ferry/internal/channel"
)

// probeRelay serves one encrypted bundle of a small site and answers /updates with it
// (or with tamper applied), recording the update-check bodies.
func probeRelay(t *testing.T, tamper func(*channel.UpdateResponse)) (url, pubFile string, bodies func() []map[string]any) {
	t.Helper()
	site := t.TempDir()
	for name, body := range map[string]string{"index.html": "<h1>hi</h1>", "app.js": "notifyAppReady()", "img/logo.svg": "<svg/>"} {
		p := filepath.Join(site, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	key, err := archive.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	var zip bytes.Buffer
	res, err := archive.Package(t.Context(), site, &zip, archive.Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	pubFile = filepath.Join(t.TempDir(), ".capgo_key_v2.pub")
	if err := os.WriteFile(pubFile, archive.MarshalPublicKey(&key.PublicKey), 0o644); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []map[string]any
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	mux.HandleFunc("POST /updates", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		seen = append(seen, body)
		mu.Unlock()
		ans := channel.UpdateResponse{Version: "1.0.1", URL: srv.URL + "/b.zip", Checksum: res.Checksum, SessionKey: res.SessionKey}
		if body["defaultChannel"] == "nothing" {
			ans = channel.UpdateResponse{Error: "no_new_version_available", Message: "No new version available", Kind: "up_to_date"}
		}
		if tamper != nil {
			tamper(&ans)
		}
		_ = json.NewEncoder(w).Encode(ans)
	})
	mux.HandleFunc("GET /channel_self", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("app_id") != "com.example.app" || r.URL.Query().Get("is_prod") != "true" {
			_, _ = io.WriteString(w, `{"error":"missing_info","message":"bad query"}`)
			return
		}
		_, _ = io.WriteString(w, `[{"id":7,"name":"beta","public":false,"allow_self_set":true},{"id":8,"name":"production","public":true,"allow_self_set":false}]`)
	})
	mux.HandleFunc("POST /channel_self", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		if body["channel"] == "nightly" { // as the relay answers setChannel for an unknown channel
			_, _ = io.WriteString(w, `{"error":"channel_not_found","message":"Channel nightly does not exist"}`)
			return
		}
		_, _ = io.WriteString(w, `{"status":"ok","allowSet":true}`)
	})
	mux.HandleFunc("GET /b.zip", func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "b.zip", time.Time{}, bytes.NewReader(zip.Bytes()))
	})
	return srv.URL, pubFile, func() []map[string]any {
		mu.Lock()
		defer mu.Unlock()
		return append([]map[string]any(nil), seen...)
	}
}

func TestProbeDownloadsAndVerifies(t *testing.T) {
	t.Parallel()
	url, pub, bodies := probeRelay(t, nil)
	dir := filepath.Join(t.TempDir(), "device")
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"probe", "--relay", url, "--app", "com.example.app", "--channel", "beta",
		"--native", "2.1.0", "--public-key", pub, "--device-id", "7239a82f-4ea8-4e33-9085-f4ad974d3fc4", "--download", "--dir", dir}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, &stdout, &stderr)
	}
	out := stdout.String()
	for _, want := range []string{"Decision: update to version 1.0.1", "decrypted with the app's public key", "checksum verified", "img/logo.svg", "Verdict: a device would install 1.0.1 and it verifies."} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if got, err := os.ReadFile(filepath.Join(dir, "bundles", "1.0.1", "app.js")); err != nil || string(got) != "notifyAppReady()" {
		t.Errorf("unpacked app.js = %q, %v", got, err)
	}
	b := bodies()[0]
	want := map[string]any{"app_id": "com.example.app", "defaultChannel": "beta", "version_build": "2.1.0", "device_id": "7239a82f-4ea8-4e33-9085-f4ad974d3fc4", "version_name": "builtin"}
	got := map[string]any{}
	for k := range want {
		got[k] = b[k]
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("update check body (-want +got):\n%s", diff)
	}
	if kid, _ := b["key_id"].(string); len(kid) != 20 {
		t.Errorf("key_id = %q, want 20 characters", kid)
	}
}

func TestProbeOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		tamper   func(*channel.UpdateResponse)
		args     []string
		wantCode int
		wantJSON map[string]any
	}{
		{"no update", nil, []string{"--channel", "nothing"}, 0, map[string]any{"outcome": "up_to_date"}},
		{"offer without download", nil, nil, 0, map[string]any{"outcome": "update"}},
		{"verified download", nil, []string{"--download"}, 0, map[string]any{"outcome": "update", "code": nil}},
		{"tampered checksum", func(r *channel.UpdateResponse) { r.Checksum = strings.Repeat("ab", 256) }, []string{"--download"}, 1, map[string]any{"outcome": "update", "code": "checksum_fail"}},
		{"missing session key", func(r *channel.UpdateResponse) { r.SessionKey = "" }, []string{"--download"}, 1, map[string]any{"outcome": "update", "code": "session_key_required"}},
		{"relay failure", func(r *channel.UpdateResponse) { *r = channel.UpdateResponse{Error: "no_bundle", Kind: "failed"} }, nil, 1, map[string]any{"outcome": "failed"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url, pub, _ := probeRelay(t, tc.tamper)
			var stdout, stderr bytes.Buffer
			args := append([]string{"probe", "--json", "--relay", url, "--app", "com.example.app", "--public-key", pub}, tc.args...)
			if code := run(t.Context(), args, &stdout, &stderr); code != tc.wantCode {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, tc.wantCode, &stdout, &stderr)
			}
			var rep map[string]any
			if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
				t.Fatalf("--json output %q: %v", &stdout, err)
			}
			got := map[string]any{}
			for k := range tc.wantJSON {
				got[k] = rep[k]
			}
			if diff := cmp.Diff(tc.wantJSON, got); diff != "" {
				t.Errorf("report (-want +got):\n%s", diff)
			}
		})
	}
}

func TestProbeUsage(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	if code := run(t.Context(), []string{"probe", "--app", "x"}, io.Discard, &stderr); code != 2 {
		t.Errorf("probe without --relay: exit %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "--relay is required") {
		t.Errorf("stderr = %q, want it to name --relay", stderr.String())
	}
}

func TestProbeListsChannels(t *testing.T) {
	t.Parallel()
	url, pub, _ := probeRelay(t, nil)
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"probe", "--relay", url, "--app", "com.example.app", "--public-key", pub, "--list-channels"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, &stdout, &stderr)
	}
	for _, want := range []string{"Channels this device may choose", "beta", "devices may select it", "production", "public"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, &stdout)
		}
	}
	stdout.Reset()
	if code := run(t.Context(), []string{"probe", "--json", "--relay", url, "--app", "com.example.app", "--public-key", pub, "--list-channels"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\n%s", code, &stderr)
	}
	var rep struct {
		Channels []struct {
			ID   int64  `json:"id"`
			Name string `json:"name"`
		} `json:"channels"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil || len(rep.Channels) != 2 || rep.Channels[0].ID != 7 {
		t.Errorf("--json channels = %+v, %v", rep.Channels, err)
	}
}
