package relay

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ferryhq/ferry/internal/channel"
)

func TestStats(t *testing.T) {
	t.Parallel()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			st := be.open(t)
			seed(t, st)
			// 1.3.0 is registered but on no channel: not in the relay's snapshot.
			if _, _, err := st.PutBundle(context.Background(), &channel.Bundle{AppID: testApp, Version: "1.3.0", URL: "https://cdn.example.com/1.3.0.zip",
				Checksum: strings.Repeat("f", 64), SHA256: strings.Repeat("f", 64), Commit: "c130", Ref: "refs/heads/feature"}, nil); err != nil {
				t.Fatal(err)
			}
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
				{"per-file failure counted under its version", info(map[string]any{"device_id": dev1, "version_name": "1.2.0:assets/app.js.br", "action": "download_manifest_file_fail"}), 200, `{"status":"ok"}`},
				{"registered version outside the snapshot", info(map[string]any{"device_id": dev1, "version_name": "1.3.0", "action": "update_fail"}), 200, `{"status":"ok"}`},
				{"unregistered version counted as other", info(map[string]any{"device_id": dev1, "version_name": "9.9.9-junk", "action": "set"}), 200, `{"status":"ok"}`},
				{"odd action counted as other", info(map[string]any{"device_id": dev2, "version_name": "1.1.0", "action": "Robert'); DROP TABLE"}), 200, `{"status":"ok"}`},
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
			want := []channel.VersionStats{
				{Version: "1.1.0", Actions: map[string]int64{"download_zip_start": 1, "set": 1, "download_complete": 1, "session_key_required": 1, "other": 1}, Devices: 2},
				{Version: "1.2.0", Actions: map[string]int64{"download_manifest_file_fail": 1}, Devices: 1},
				{Version: "1.3.0", Actions: map[string]int64{"update_fail": 1}, Devices: 1},
				{Version: "other", Actions: map[string]int64{"set": 1}, Devices: 1},
			}
			// (The two stores order "other" differently among the versions; the order is not
			// what this test is about.)
			byVersion := cmpopts.SortSlices(func(a, b channel.VersionStats) bool { return a.Version < b.Version })
			if diff := cmp.Diff(want, got, byVersion); diff != "" {
				t.Errorf("recorded stats (-want +got):\n%s", diff)
			}
			if other, err := st.Stats(context.Background(), "com.other.app"); err != nil || len(other) != 0 {
				t.Errorf("stats of an unknown app were recorded: %v %v", other, err)
			}
			if failed, err := st.FailedVersions(context.Background(), testApp, dev1); err != nil || !slices.Equal(failed, []string{"1.3.0"}) {
				t.Errorf("failed versions of %s = %v, %v; want [1.3.0]", dev1, failed, err)
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
