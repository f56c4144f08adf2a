package relay

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/store"
)

func TestManifestSize(t *testing.T) {
	onSeededBackends(t, func(t *testing.T, st store.Store) {
		h := newServer(t, st, nil).Handler()
		file := func(name, hash string) map[string]any {
			return map[string]any{"file_name": name, "file_hash": hash, "download_url": "https://cdn.example.com/app/1.2.0/" + name}
		}
		tests := []struct {
			name   string
			body   string
			golden string
		}{
			{"every file of the bundle", info(map[string]any{"version": "1.2.0"}), "manifest_size_all.json"},
			{"known and unknown files", info(map[string]any{"version": "1.2.0", "manifest": []any{
				file("index.html", "1111111111111111111111111111111111111111111111111111111111111111"),
				file("missing.js", "3333333333333333333333333333333333333333333333333333333333333333"),
				file("assets/app.js.br", "ffff"),
			}}), "manifest_size_mixed.json"},
			{"bundle without manifest", info(map[string]any{"version": "1.1.0"}), "manifest_size_empty.json"},
			{"unknown version", info(map[string]any{"version": "9.9.9"}), "manifest_size_no_bundle.json"},
			{"no version", info(nil), "manifest_size_missing_version.json"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				w := do(t, h, http.MethodPost, "/updates/manifest_size", tc.body)
				if w.Code != http.StatusOK {
					t.Errorf("POST /updates/manifest_size = %d %s, want 200", w.Code, w.Body)
				}
				golden(t, tc.golden, w.Body.Bytes())
			})
		}
	})
}

// TestManifestSizeOnlyOfferableVersions: manifest_size answers only for versions a device
// could be offered on a channel it may use (the default channel, or one allowing device
// self-set): a pull request's build registered without a channel, a version only a locked
// channel serves, a version of a channel whose policy override forbids self-set, and a
// history entry newer than the stable version get the answer of an unregistered version.
// Asking about far more files than the version has is refused.
func TestManifestSizeOnlyOfferableVersions(t *testing.T) {
	t.Parallel()
	st := openBolt(t)
	seed(t, st)
	ctx := context.Background()
	put := func(v string) {
		b := &channel.Bundle{AppID: testApp, Version: v, URL: "https://cdn.example.com/app/" + v + ".zip", Checksum: strings.Repeat("f", 64),
			SHA256: strings.Repeat("f", 64), Size: 10, Commit: "c" + v, Ref: "refs/pull/7/merge",
			Manifest: []channel.ManifestEntry{{FileName: "secret.js", FileHash: strings.Repeat("5", 64), DownloadURL: "https://internal.example.com/" + v + "/secret.js", Size: 9}}}
		if _, _, err := st.PutBundle(ctx, b, nil); err != nil {
			t.Fatal(err)
		}
	}
	put("3.0.0") // a pull request's build: no channel
	put("3.1.0")
	promote(t, st, "locked", "3.1.0") // neither default nor self-settable
	put("0.9.0")
	promote(t, st, "internal", "0.9.0") // internal: 1.1.0 → 0.9.0, so 1.1.0 is a newer history entry there (still stable on production)
	put("5.0.0")
	promote(t, st, "beta", "5.0.0")
	promote(t, st, "beta", "2.0.0-beta.1") // rolled back: 5.0.0 stays only as a newer history entry
	h := newServer(t, st, nil).Handler()

	ask := func(version string, files int) *httptest.ResponseRecorder {
		var m []any
		for i := range files {
			m = append(m, map[string]any{"file_name": fmt.Sprintf("f%d.js", i), "file_hash": strings.Repeat("1", 64), "download_url": "https://x.example/f"})
		}
		over := map[string]any{"version": version}
		if m != nil {
			over["manifest"] = m
		}
		return do(t, h, http.MethodPost, "/updates/manifest_size", info(over))
	}
	for _, v := range []string{"1.0.0", "1.1.0", "1.2.0", "2.0.0-beta.1", "0.9.0"} {
		if w := ask(v, 0); w.Code != http.StatusOK || strings.Contains(w.Body.String(), `"error"`) {
			t.Errorf("version %s (offerable): %d %s", v, w.Code, w.Body)
		}
	}
	for _, v := range []string{"3.0.0", "3.1.0", "5.0.0"} {
		w := ask(v, 0)
		if want := `{"error":"no_bundle","message":"Version ` + v + ` does not exist","kind":"failed"}`; w.Code != http.StatusOK || w.Body.String() != want {
			t.Errorf("version %s (not offerable) = %d %s, want 200 %s", v, w.Code, w.Body, want)
		}
	}

	// A policy override that forbids self-set hides the channel's versions.
	change(t, st, "beta", func(s *channel.State) error {
		s.Policy = &channel.Policy{}
		return nil
	})
	h = newServer(t, st, nil).Handler()
	if w := ask("2.0.0-beta.1", 0); !strings.Contains(w.Body.String(), `"no_bundle"`) {
		t.Errorf("version of a channel no longer self-settable = %d %s, want no_bundle", w.Code, w.Body)
	}

	// 1.2.0 has two files: a few unknown ones are answered, thousands are refused.
	if w := ask("1.2.0", 2+manifestSizeSlack); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"unknownFiles"`) {
		t.Errorf("%d files for 1.2.0 = %d %s, want 200", 2+manifestSizeSlack, w.Code, w.Body)
	}
	if w := ask("1.2.0", 3000); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `"too_many_files"`) {
		t.Errorf("3000 files for 1.2.0 = %d %.200s, want 400 too_many_files", w.Code, w.Body)
	}
}
