package device_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferryhq/ferry/internal/channel"
	"github.com/ferryhq/ferry/internal/device"
)

// TestUpdateHandlesAnswersLikeThePlugin covers docs/protocol.md §1.4 and §1.3(e): refusals by kind,
// revert to builtin, answers without a usable url, and transport-level failures.
func TestUpdateHandlesAnswersLikeThePlugin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		status      int
		body        string
		wantOutcome string
		wantErr     bool
		wantStats   []string
	}{
		{"no new version", 200, `{"error":"no_new_version_available","message":"No new version available","kind":"up_to_date"}`, "up_to_date", false, nil},
		{"blocked", 200, `{"error":"key_id_mismatch","message":"m","kind":"blocked","deviceKeyId":"a","bundleKeyId":"b"}`, "blocked", false, nil},
		{"failed kind", 200, `{"error":"no_bundle","message":"m","kind":"failed"}`, "failed", false, []string{"download_fail@builtin"}},
		{"error without kind is failed", 200, `{"error":"something_new","message":"m"}`, "failed", false, []string{"download_fail@builtin"}},
		{"unknown kind is failed", 200, `{"error":"x","kind":"weird"}`, "failed", false, []string{"download_fail@builtin"}},
		{"revert to builtin", 200, `{"version":"builtin"}`, "builtin", false, []string{"reset@builtin"}},
		{"no url", 200, `{"version":"2.0.0","checksum":"ab"}`, "invalid", true, []string{"download_fail@2.0.0"}},
		{"empty object", 200, `{}`, "invalid", true, []string{"download_fail@builtin"}},
		{"zip without checksum", 200, `{"version":"2.0.0","url":"https://x.example/b.zip"}`, "update", true, []string{"checksum_required@2.0.0", "download_fail@2.0.0"}},
		{"HTTP 400 with an error body", 400, `{"error":"missing_app_id","message":"m"}`, "failed", true, []string{"download_fail@builtin"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			mux := http.NewServeMux()
			mux.HandleFunc("POST /updates", func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			})
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)
			c := f.client(t, nil)
			c.UpdateURL = srv.URL + "/updates"
			res, err := c.Update(t.Context())
			if (err != nil) != tc.wantErr {
				t.Fatalf("Update error = %v, want error %v", err, tc.wantErr)
			}
			if res == nil || res.Outcome != tc.wantOutcome {
				t.Fatalf("Update = %+v, want outcome %q", res, tc.wantOutcome)
			}
			if diff := cmp.Diff(tc.wantStats, f.actions()); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckTransportFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		status  int
		body    string
		wantErr error
		wantRE  int
	}{
		{"not JSON", 200, `<html>proxy error</html>`, device.ErrParse, 0},
		{"JSON array", 200, `[1,2]`, device.ErrParse, 0},
		{"HTTP 500 without body", 500, ``, nil, 500},
		{"HTTP 429", 429, `{"error":"rate_limited","message":"slow down"}`, nil, 429},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			t.Cleanup(srv.Close)
			c := &device.Client{UpdateURL: srv.URL, Info: channel.DeviceInfo{AppID: "a", DeviceID: "d", VersionBuild: "1.0.0"}, HTTPClient: srv.Client()}
			_, err := c.Check(t.Context())
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("Check = %v, want %v", err, tc.wantErr)
			}
			var re *device.ResponseError
			if tc.wantRE != 0 && (!errors.As(err, &re) || re.StatusCode != tc.wantRE) {
				t.Errorf("Check = %v, want *ResponseError with status %d", err, tc.wantRE)
			}
		})
	}
}
