package relay

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferryhq/ferry/internal/store"
)

func TestChannelSelf(t *testing.T) {
	onSeededBackends(t, func(t *testing.T, st store.Store) {
		h := newServer(t, st, nil).Handler()
		query := func(over map[string]string) string {
			q := url.Values{}
			for k, v := range map[string]string{
				"platform": "android", "device_id": "7239a82f-4ea8-4e33-9085-f4ad974d3fc4", "app_id": testApp,
				"custom_id": "", "version_build": "1.0.0", "version_code": "7", "version_os": "14",
				"version_name": "builtin", "plugin_version": "8.51.23", "is_emulator": "false", "is_prod": "true",
				"defaultChannel": "",
			} {
				q.Set(k, v)
			}
			for k, v := range over {
				q.Set(k, v)
			}
			return "/channel_self?" + q.Encode()
		}
		tests := []struct {
			name, method, target, body string
			wantCode                   int
			golden                     string
		}{
			{"set self-settable", "POST", "/channel_self", info(map[string]any{"channel": "beta"}), 200, "channel_set_ok.json"},
			{"set default channel", "POST", "/channel_self", info(map[string]any{"channel": "production"}), 200, "channel_set_ok.json"},
			{"set unknown channel", "POST", "/channel_self", info(map[string]any{"channel": "nope"}), 200, "channel_set_not_found.json"},
			{"set private channel", "POST", "/channel_self", info(map[string]any{"channel": "locked"}), 200, "channel_set_not_allowed.json"},
			{"set channel refusing emulators", "POST", "/channel_self", info(map[string]any{"channel": "internal", "is_emulator": true}), 200, "channel_set_not_eligible.json"},
			{"set without channel", "POST", "/channel_self", info(nil), 200, "channel_set_missing.json"},
			{"set unknown app", "POST", "/channel_self", info(map[string]any{"app_id": "com.other.app", "channel": "beta"}), 200, "channel_unknown_app.json"},
			{"set not an object", "POST", "/channel_self", `[]`, 400, "channel_invalid_json_body.json"},
			{"get default", "PUT", "/channel_self", info(nil), 200, "channel_get_default.json"},
			{"get override", "PUT", "/channel_self", info(map[string]any{"defaultChannel": "beta"}), 200, "channel_get_override.json"},
			{"get removed channel falls back", "PUT", "/channel_self", info(map[string]any{"defaultChannel": "gone"}), 200, "channel_get_default.json"},
			{"list android", "GET", query(nil), "", 200, "channel_list_android.json"},
			{"list ios", "GET", query(map[string]string{"platform": "ios"}), "", 200, "channel_list_ios.json"},
			{"list bad bool", "GET", query(map[string]string{"is_prod": "maybe"}), "", 400, "channel_list_bad_bool.json"},
			{"list unknown app", "GET", query(map[string]string{"app_id": "com.other.app"}), "", 200, "channel_unknown_app.json"},
			{"unset (old plugins)", "DELETE", query(nil), "", 200, "channel_unset.json"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				w := do(t, h, tc.method, tc.target, tc.body)
				if w.Code != tc.wantCode {
					t.Errorf("%s %s = %d %s, want %d", tc.method, tc.target, w.Code, w.Body, tc.wantCode)
				}
				golden(t, tc.golden, w.Body.Bytes())
			})
		}
	})
}

// TestChannelListShape: GET answers a bare array whose ids are JSON numbers (Android throws
// on anything else) and stable across servers.
func TestChannelListShape(t *testing.T) {
	t.Parallel()
	st := openBolt(t)
	target := "/channel_self?app_id=" + testApp + "&device_id=7239a82f-4ea8-4e33-9085-f4ad974d3fc4&platform=android&is_prod=true&is_emulator=false"
	var lists [2][]map[string]any
	for i := range lists {
		w := do(t, newServer(t, st, nil).Handler(), http.MethodGet, target, "")
		if err := json.Unmarshal(w.Body.Bytes(), &lists[i]); err != nil {
			t.Fatalf("GET /channel_self is not a bare array: %v: %s", err, w.Body)
		}
	}
	if diff := cmp.Diff(lists[0], lists[1]); diff != "" {
		t.Errorf("channel list differs between two servers (-first +second):\n%s", diff)
	}
	if len(lists[0]) == 0 {
		t.Fatal("empty channel list")
	}
	for _, ch := range lists[0] {
		if _, ok := ch["id"].(float64); !ok {
			t.Errorf("id %v of %v is not a JSON number", ch["id"], ch["name"])
		}
		for key, want := range map[string]string{"name": "string", "public": "bool", "allow_self_set": "bool"} {
			var ok bool
			switch want {
			case "string":
				_, ok = ch[key].(string)
			case "bool":
				_, ok = ch[key].(bool)
			}
			if !ok {
				t.Errorf("%s of %v is %T, want a %s", key, ch["name"], ch[key], want)
			}
		}
	}
}
