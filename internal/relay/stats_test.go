package relay

import (
	"context"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferryhq/ferry/internal/channel"
)

func TestStats(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			st := be.open(t)
			h := newServer(t, st, nil).Handler()
			dev1, dev2 := "7239a82f-4ea8-4e33-9085-f4ad974d3fc4", "1b7f3c9e-2d4a-4c5b-8e6f-0a1b2c3d4e5f"
			tests := []struct {
				name     string
				body     string
				wantCode int
				wantBody string
			}{
				{"single object (Android DownloadService)", info(map[string]any{"device_id": dev1, "version_name": "1.1.0", "action": "download_zip_start"}), 200, `{"status":"ok"}`},
				{"batch", `[` + info(map[string]any{"device_id": dev1, "version_name": "1.1.0", "action": "set", "old_version_name": "builtin", "timestamp": 1732450000000, "metadata": map[string]string{"k": "v"}}) +
					`,` + info(map[string]any{"device_id": dev2, "version_name": "1.1.0", "action": "download_complete", "timestamp": 1732450000001}) + `]`, 200, `{"status":"ok"}`},
				{"unknown action accepted", info(map[string]any{"device_id": dev2, "version_name": "1.1.0", "action": "session_key_required"}), 200, `{"status":"ok"}`},
				{"empty batch", `[]`, 200, `{"status":"ok"}`},
				{"unknown app accepted and dropped", info(map[string]any{"app_id": "com.other.app", "action": "set", "version_name": "9.9.9"}), 200, `{"status":"ok"}`},
				{"not json", `hello`, 400, `{"error":"invalid_json_body","message":"body must be a JSON object or an array of objects"}`},
				{"array of non-objects", `[1,2]`, 400, `{"error":"invalid_json_body","message":"event 0: body must be a JSON object"}`},
				{"event without device", `[{"app_id":"com.example.app","action":"set"}]`, 400, `{"error":"missing_device_id","message":"event 0: device_id is required"}`},
			}
			for _, tc := range tests {
				w := do(t, h, http.MethodPost, "/stats", tc.body)
				if w.Code != tc.wantCode || w.Body.String() != tc.wantBody {
					t.Errorf("%s: POST /stats = %d %s, want %d %s", tc.name, w.Code, w.Body, tc.wantCode, tc.wantBody)
				}
			}
			got, err := st.Stats(context.Background(), testApp)
			if err != nil {
				t.Fatal(err)
			}
			want := []channel.VersionStats{{
				Version: "1.1.0",
				Actions: map[string]int64{"download_zip_start": 1, "set": 1, "download_complete": 1, "session_key_required": 1},
				Devices: 2,
			}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("recorded stats (-want +got):\n%s", diff)
			}
			if other, err := st.Stats(context.Background(), "com.other.app"); err != nil || len(other) != 0 {
				t.Errorf("stats of an unknown app were recorded: %v %v", other, err)
			}
		})
	}
}

// TestStatsStoreDown: while the store is unreachable /stats answers 503, so the plugin keeps
// the batch and retries it (an update_fail must not be lost), never 429 or 4xx.
func TestStatsStoreDown(t *testing.T) {
	t.Parallel()
	f := &flaky{Store: openBolt(t)}
	f.down.Store(true)
	h := newServer(t, f, nil).Handler()
	w := do(t, h, http.MethodPost, "/stats", info(map[string]any{"action": "update_fail", "version_name": "1.2.0"}))
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("POST /stats with the store down = %d %s, want 503", w.Code, w.Body)
	}
}
