package device_test

import (
	"archive/zip"
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferryhq/ferry/internal/archive"
	"github.com/ferryhq/ferry/internal/archive/archivetest"
	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/device"
)

// fakeRelay is an httptest server speaking the device protocol from canned answers, and
// serving published files (with Range support) under /files/.
type fakeRelay struct {
	srv   *httptest.Server
	files string // directory served under /files/

	mu       sync.Mutex
	answer   any              // the /updates answer
	checks   []recorded       // /updates requests
	events   []map[string]any // every stat event received
	ranges   []string         // Range headers seen under /files/
	fileHits map[string]int
}

type recorded struct {
	Header http.Header
	Body   []byte
}

func setup(t *testing.T) *fakeRelay {
	t.Helper()
	f := &fakeRelay{files: t.TempDir(), fileHits: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /updates", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.checks = append(f.checks, recorded{r.Header.Clone(), b})
		ans := f.answer
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(ans)
	})
	mux.HandleFunc("POST /stats", func(w http.ResponseWriter, r *http.Request) {
		var batch []map[string]any
		if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
			http.Error(w, `{"error":"invalid_json_body"}`, http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.events = append(f.events, batch...)
		f.mu.Unlock()
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	})
	fs := http.StripPrefix("/files/", http.FileServer(http.Dir(f.files)))
	mux.HandleFunc("GET /files/", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		if rg := r.Header.Get("Range"); rg != "" {
			f.ranges = append(f.ranges, rg)
		}
		f.fileHits[r.URL.Path]++
		f.mu.Unlock()
		fs.ServeHTTP(w, r)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeRelay) setAnswer(a any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer = a
}

func (f *fakeRelay) actions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, e := range f.events {
		out = append(out, e["action"].(string)+"@"+e["version_name"].(string))
	}
	return out
}

func (f *fakeRelay) client(t *testing.T, pub *rsa.PublicKey) *device.Client {
	t.Helper()
	return &device.Client{
		UpdateURL:  f.srv.URL + "/updates",
		StatsURL:   f.srv.URL + "/stats",
		ChannelURL: f.srv.URL + "/channel_self",
		Info: channel.DeviceInfo{
			Platform: "android", DeviceID: "7239a82f-4ea8-4e33-9085-f4ad974d3fc4", AppID: "com.example.app",
			VersionBuild: "1.0.0", VersionCode: "7", VersionOS: "14", IsProd: true,
			InstallSource: "google_play", DefaultChannel: "beta",
		},
		PublicKey:  pub,
		HTTPClient: f.srv.Client(),
		Dir:        t.TempDir(),
	}
}

// webDir writes a small web build and returns its directory.
func webDir(t *testing.T, files map[string]string) string {
	t.Helper()
	return archivetest.WriteTree(t, t.TempDir(), files)
}

var siteV1 = map[string]string{
	"index.html":         "<!doctype html><script src=app.js></script>v1",
	"app.js":             "CapacitorUpdater.notifyAppReady(); console.log('v1')",
	"css/style.css":      "body{color:red}",
	"assets/img/big.txt": string(bytes.Repeat([]byte("ferry "), 4000)),
}

// publish packages dir (encrypted when key is set) into the served files as name and
// returns the update answer a relay would send for it.
func (f *fakeRelay) publish(t *testing.T, dir, name, version string, key *rsa.PrivateKey) *channel.UpdateResponse {
	t.Helper()
	out, err := os.Create(filepath.Join(f.files, name))
	if err != nil {
		t.Fatal(err)
	}
	res, err := archive.Package(t.Context(), dir, out, archive.Options{Key: key})
	if err != nil {
		t.Fatalf("Package: %v", err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return &channel.UpdateResponse{Version: version, URL: f.srv.URL + "/files/" + name, Checksum: res.Checksum, SessionKey: res.SessionKey}
}

// keysIf returns a new key pair when encrypted, and nils for a plain bundle.
func keysIf(t *testing.T, encrypted bool) (*rsa.PrivateKey, *rsa.PublicKey) {
	t.Helper()
	if !encrypted {
		return nil, nil
	}
	k := newKey(t)
	return k, &k.PublicKey
}

func newKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := archive.GenerateKey()
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	return k
}

func TestCheckSendsThePluginsRequest(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.setAnswer(map[string]string{"error": "no_new_version_available", "message": "No new version available", "kind": "up_to_date"})
	key := newKey(t)
	c := f.client(t, &key.PublicKey)
	resp, err := c.Check(t.Context())
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if got := device.Outcome(resp, c.Running()); got != "up_to_date" {
		t.Errorf("Outcome = %q, want up_to_date", got)
	}
	checks := f.recordedChecks()
	req := checks[0]
	want := `{"platform":"android","device_id":"7239a82f-4ea8-4e33-9085-f4ad974d3fc4","app_id":"com.example.app",` +
		`"custom_id":"","version_build":"1.0.0","version_code":"7","version_os":"14","version_name":"builtin",` +
		`"plugin_version":"8.51.23","is_emulator":false,"is_prod":true,"install_source":"google_play",` +
		`"defaultChannel":"beta","key_id":"` + archive.KeyID(&key.PublicKey) + `"}`
	if diff := cmp.Diff(want, string(req.Body)); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
	if got, want := req.Header.Get("User-Agent"), "CapacitorUpdater/8.51.23 (com.example.app) android/14"; got != want {
		t.Errorf("User-Agent = %q, want %q", got, want)
	}
	if got, want := req.Header.Get("Content-Type"), "application/json; charset=utf-8"; got != want {
		t.Errorf("Content-Type = %q, want %q", got, want)
	}

	// Without a public key there is no key_id, and iOS omits an empty install_source.
	c2 := f.client(t, nil)
	c2.Info.Platform, c2.Info.InstallSource = "ios", ""
	if _, err := c2.Check(t.Context()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	var body map[string]any
	if err := json.Unmarshal(f.recordedChecks()[1].Body, &body); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"key_id", "install_source"} {
		if _, ok := body[k]; ok {
			t.Errorf("iOS body without key has %q: %s", k, f.recordedChecks()[1].Body)
		}
	}
	if got := f.recordedChecks()[1].Header.Get("Accept"); got != "application/json" {
		t.Errorf("iOS Accept = %q", got)
	}
}

func TestKeyIDVector(t *testing.T) {
	t.Parallel()
	// docs/protocol.md §5.6 vector B.
	const pemKey = `-----BEGIN RSA PUBLIC KEY-----
MIIBCgKCAQEAwsCct5LRX5Do95QUkVJXMY8I6GvWxfcp95VtLk5xmMCf2/GT5lxT
RYWHAFX/P+zM2yHIZLz+6hMW0H20qdHa1+rKD2mkUg7oIWHTgGt0RB6wfKNfdHl3
mzTiyoxb/Sf0dKMgRJUaJ2tX1n0vKiL2+Du/36gmLPf9Dznh9i3PrdEx/GSoLZXM
zCAWNJ8sqigBIVWbTrT7iQPgig4+ZDpyc3cFGLOHRvFwaA20AewLHZIw4/kjHxl9
sCfAzdTSC8mmGSOOuIi5Rg4F7X0Gzaebi6RiBvt9pkzHVEdlqVTqe9+P7Twoxlb/
1BWtqTwMqyLRpYZyl3MCaA9/DWz9UpoNAwIDAQAB
-----END RSA PUBLIC KEY-----
`
	pub, err := archive.ParsePublicKey([]byte(pemKey))
	if err != nil {
		t.Fatalf("ParsePublicKey: %v", err)
	}
	if got, want := archive.KeyID(pub), "MIIBCgKCAQEAwsCct5LR"; got != want {
		t.Errorf("KeyID = %q, want %q", got, want)
	}
	if _, err := archive.ParsePublicKey([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")); err == nil {
		t.Error("ParsePublicKey accepted a non-PKCS#1 PEM")
	}
}

func TestUpdateInstallsAndReportsStats(t *testing.T) {
	t.Parallel()
	for _, encrypted := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "encrypted"}[encrypted]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			key, pub := keysIf(t, encrypted)
			f.setAnswer(f.publish(t, webDir(t, siteV1), "v1.zip", "1.0.1", key))
			c := f.client(t, pub)
			res, err := c.Update(t.Context())
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			if res.Outcome != "update" || res.Bundle == nil {
				t.Fatalf("Outcome = %q, bundle %v", res.Outcome, res.Bundle)
			}
			wantFiles := []string{"app.js", "assets/img/big.txt", "css/style.css", "index.html"}
			if diff := cmp.Diff(wantFiles, res.Bundle.Files); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
			got, err := os.ReadFile(filepath.Join(res.Bundle.Path, "css", "style.css"))
			if err != nil || string(got) != siteV1["css/style.css"] {
				t.Errorf("css/style.css = %q, %v", got, err)
			}
			if res.Bundle.Encrypted != encrypted {
				t.Errorf("Encrypted = %v, want %v", res.Bundle.Encrypted, encrypted)
			}
			if c.Running() != "1.0.1" {
				t.Errorf("Running = %q, want 1.0.1", c.Running())
			}
			if diff := cmp.Diff([]string{"download_complete@1.0.1", "set@1.0.1"}, f.actions()); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
			ev := f.recordedEvents()[1]
			if ev["old_version_name"] != "builtin" || ev["timestamp"] == nil || ev["device_id"] != c.Info.DeviceID {
				t.Errorf("set event = %v", ev)
			}
			// The next check reports the new version_name and gets "same version".
			res, err = c.Update(t.Context())
			if err != nil || res.Outcome != "same_version" {
				t.Errorf("second Update = %q, %v", res.Outcome, err)
			}
		})
	}
}

func TestDownloadRefusals(t *testing.T) {
	t.Parallel()
	f := setup(t)
	key := newKey(t)
	other := newKey(t)
	site := webDir(t, siteV1)
	enc := f.publish(t, site, "enc.zip", "2.0.0", key)
	plain := f.publish(t, site, "plain.zip", "2.0.0", nil)
	noIndex := f.rawZip(t, "noindex.zip", map[string]string{"main.js": "x", "css/a.css": "y"})
	escape := f.rawZip(t, "escape.zip", map[string]string{"index.html": "x", "../../evil.js": "y"})
	windows := f.rawZip(t, "windows.zip", map[string]string{"index.html": "x", `assets\app.js`: "y"})
	nested := f.rawZip(t, "nested.zip", map[string]string{"dist/index.html": "x", "dist/app.js": "y"})
	notZip := f.rawFile(t, "notzip.zip", []byte("this is not a zip"))
	plainHex := plain.Checksum
	flipped := []byte(plainHex)
	flipped[0] ^= 1

	tests := []struct {
		name    string
		pub     *rsa.PublicKey
		resp    channel.UpdateResponse
		wantErr error
	}{
		{"wrong plain checksum", nil, channel.UpdateResponse{Version: "2.0.0", URL: plain.URL, Checksum: string(flipped)}, device.ErrChecksumFail},
		{"uppercase checksum is compared exactly", nil, channel.UpdateResponse{Version: "2.0.0", URL: plain.URL, Checksum: upper(plainHex)}, device.ErrChecksumFail},
		{"no checksum", nil, channel.UpdateResponse{Version: "2.0.0", URL: plain.URL}, device.ErrChecksumRequired},
		{"key but no session key", &key.PublicKey, channel.UpdateResponse{Version: "2.0.0", URL: enc.URL, Checksum: enc.Checksum}, device.ErrSessionKeyRequired},
		{"session key of another key", &other.PublicKey, *enc, device.ErrDecryptFail},
		{"encrypted bundle to a device without key", nil, *enc, device.ErrChecksumFail},
		{"plain checksum to a device with key", &key.PublicKey, channel.UpdateResponse{Version: "2.0.0", URL: enc.URL, Checksum: plainHex, SessionKey: enc.SessionKey}, device.ErrChecksumFail},
		{"no index.html", nil, *noIndex, device.ErrSetFail},
		{"entry escaping the bundle", nil, *escape, device.ErrCanonicalPathFail},
		{"entry with a backslash", nil, *windows, device.ErrWindowsPathFail},
		{"not a zip", nil, *notZip, device.ErrUnzipFail},
		{"no url", nil, channel.UpdateResponse{Version: "2.0.0", Checksum: plainHex}, device.ErrDownloadFail},
		{"missing file", nil, channel.UpdateResponse{Version: "2.0.0", URL: f.srv.URL + "/files/nope.zip", Checksum: plainHex}, device.ErrDownloadFail},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := f.client(t, tc.pub)
			_, err := c.Download(t.Context(), &tc.resp)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Download = %v, want %v", err, tc.wantErr)
			}
			if got := device.Code(err); got != tc.wantErr.Error() {
				t.Errorf("Code = %q, want %q", got, tc.wantErr.Error())
			}
			entries, _ := os.ReadDir(filepath.Join(c.Dir, "bundles"))
			if len(entries) != 0 {
				t.Errorf("bundles left after a refusal: %v", entries)
			}
		})
	}
	t.Run("single top folder is unwrapped", func(t *testing.T) {
		t.Parallel()
		b, err := f.client(t, nil).Download(t.Context(), nested)
		if err != nil {
			t.Fatalf("Download: %v", err)
		}
		if diff := cmp.Diff([]string{"app.js", "index.html"}, b.Files); diff != "" {
			t.Errorf("files (-want +got):\n%s", diff)
		}
	})
}

// rawZip writes a zip with exactly these entries (no checks, unlike archive.Package) and
// returns an unencrypted answer for it.
func (f *fakeRelay) rawZip(t *testing.T, name string, files map[string]string) *channel.UpdateResponse {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: n, Method: zip.Deflate})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, files[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return f.rawFile(t, name, buf.Bytes())
}

func (f *fakeRelay) rawFile(t *testing.T, name string, data []byte) *channel.UpdateResponse {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.files, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return &channel.UpdateResponse{Version: "2.0.0", URL: f.srv.URL + "/files/" + name, Checksum: hex.EncodeToString(sum[:])}
}

func upper(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if ch >= 'a' && ch <= 'f' {
			b[i] = ch - 32
		}
	}
	return string(b)
}

func TestDownloadResumesWithRange(t *testing.T) {
	t.Parallel()
	f := setup(t)
	resp := f.publish(t, webDir(t, siteV1), "v1.zip", "1.0.1", nil)
	full, err := os.ReadFile(filepath.Join(f.files, "v1.zip"))
	if err != nil {
		t.Fatal(err)
	}
	c := f.client(t, nil)
	// An interrupted earlier attempt left the first 100 bytes.
	if err := os.MkdirAll(filepath.Join(c.Dir, "downloads"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.Dir, "downloads", "1.0.1.part"), full[:100], 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := c.Download(t.Context(), resp)
	if err != nil {
		t.Fatalf("Download: %v", err)
	}
	if got, want := b.BytesTransferred, int64(len(full)-100); got != want {
		t.Errorf("BytesTransferred = %d, want %d", got, want)
	}
	if diff := cmp.Diff([]string{"bytes=100-"}, f.recordedRanges()); diff != "" {
		t.Errorf("Range headers (-want +got):\n%s", diff)
	}
	sum := sha256.Sum256(full)
	if b.Checksum != hex.EncodeToString(sum[:]) {
		t.Errorf("Checksum = %s", b.Checksum)
	}

	// A partial file that is in fact complete gets 416, which counts as complete.
	c2 := f.client(t, nil)
	if err := os.MkdirAll(filepath.Join(c2.Dir, "downloads"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c2.Dir, "downloads", "1.0.1.part"), full, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err = c2.Download(t.Context(), resp)
	if err != nil {
		t.Fatalf("Download after 416: %v", err)
	}
	if b.BytesTransferred != 0 {
		t.Errorf("BytesTransferred after 416 = %d, want 0", b.BytesTransferred)
	}
}

func (f *fakeRelay) recordedChecks() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.checks...)
}

func (f *fakeRelay) recordedEvents() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]any(nil), f.events...)
}

func (f *fakeRelay) recordedRanges() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ranges...)
}
