package relay

import (
	"net/http"
	"testing"

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
