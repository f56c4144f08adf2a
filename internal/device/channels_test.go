package device_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/device"
)

func TestChannelSelf(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var lastQuery url.Values
	var lastBody map[string]any
	mux := http.NewServeMux()
	mux.HandleFunc("/channel_self", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		lastBody = nil
		_ = json.Unmarshal(b, &lastBody)
		lastQuery = r.URL.Query()
		mu.Unlock()
		switch r.Method {
		case http.MethodPost:
			if lastBody["channel"] == "secret" {
				_, _ = io.WriteString(w, `{"error":"channel_self_set_not_allowed","message":"no"}`)
				return
			}
			if lastBody["channel"] == "production" {
				_, _ = io.WriteString(w, `{"status":"ok","unset":true}`)
				return
			}
			_, _ = io.WriteString(w, `{"status":"ok","allowSet":true}`)
		case http.MethodPut:
			_, _ = io.WriteString(w, `{"channel":"beta","status":"override","allowSet":true}`)
		case http.MethodGet:
			_, _ = io.WriteString(w, `[{"id":1,"name":"beta","public":false,"allow_self_set":true},{"id":2,"name":"production","public":true,"allow_self_set":false}]`)
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c := &device.Client{
		ChannelURL: srv.URL + "/channel_self",
		Info:       channel.DeviceInfo{AppID: "com.example.app", DeviceID: "d1", VersionBuild: "1.0.0", VersionOS: "17.5", Platform: "ios", IsProd: true},
		HTTPClient: srv.Client(),
	}

	if _, err := c.SetChannel(t.Context(), "beta"); err != nil {
		t.Fatalf("SetChannel: %v", err)
	}
	if c.Info.DefaultChannel != "beta" || lastBody["channel"] != "beta" || lastBody["app_id"] != "com.example.app" {
		t.Errorf("after SetChannel: local %q, body %v", c.Info.DefaultChannel, lastBody)
	}
	var ce *device.ChannelError
	if _, err := c.SetChannel(t.Context(), "secret"); !errors.As(err, &ce) || ce.Code != "channel_self_set_not_allowed" {
		t.Errorf("SetChannel(secret) = %v, want channel_self_set_not_allowed", err)
	}
	if c.Info.DefaultChannel != "beta" {
		t.Errorf("refused SetChannel changed the local channel to %q", c.Info.DefaultChannel)
	}
	if _, err := c.SetChannel(t.Context(), "production"); err != nil || c.Info.DefaultChannel != "" {
		t.Errorf("unset answer: local channel %q, err %v", c.Info.DefaultChannel, err)
	}

	ans, err := c.GetChannel(t.Context())
	if err != nil || ans.Channel != "beta" || c.Info.DefaultChannel != "beta" {
		t.Errorf("GetChannel = %+v, %v; local %q", ans, err, c.Info.DefaultChannel)
	}

	list, err := c.ListChannels(t.Context())
	if err != nil {
		t.Fatalf("ListChannels: %v", err)
	}
	want := []device.ChannelInfo{{ID: 1, Name: "beta", AllowSelfSet: true}, {ID: 2, Name: "production", Public: true}}
	if diff := cmp.Diff(want, list); diff != "" {
		t.Errorf("ListChannels (-want +got):\n%s", diff)
	}
	mu.Lock()
	defer mu.Unlock()
	for k, v := range map[string]string{"is_prod": "true", "is_emulator": "false", "platform": "ios", "defaultChannel": "beta", "device_id": "d1"} {
		if got := lastQuery.Get(k); got != v {
			t.Errorf("query %s = %q, want %q", k, got, v)
		}
	}
}
