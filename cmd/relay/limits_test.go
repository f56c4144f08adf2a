package main

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/relay"
	"github.com/ferryhq/ferry/internal/relay/relaytest"
	"github.com/ferryhq/ferry/internal/testpeers"
)

// TestRunLimitFlags: the body budget takes sizes with KiB/MiB/GiB, refuses one too small
// for the largest body, and 0 disables it; the connection cap takes an integer >= 0.
func TestRunLimitFlags(t *testing.T) {
	t.Parallel()
	base := []string{"--config", "ferry.yaml"}
	for _, tc := range []struct {
		args    []string
		budget  int64
		conns   int
		wantErr string
	}{
		{nil, 48 << 20, 2048, ""},
		{[]string{"--body-budget", "64MiB", "--max-conns", "0"}, 64 << 20, 0, ""},
		{[]string{"--body-budget", "1GiB"}, 1 << 30, 2048, ""},
		{[]string{"--body-budget", "0"}, 0, 2048, ""},
		{[]string{"--body-budget", fmt.Sprint(relay.MinBodyBudget)}, relay.MinBodyBudget, 2048, ""},
		{[]string{"--body-budget", "16MiB"}, 0, 0, `--body-budget (FERRY_BODY_BUDGET) "16MiB": want 0 or a size of at least 29MiB`},
		{[]string{"--body-budget", "lots"}, 0, 0, `--body-budget (FERRY_BODY_BUDGET) "lots"`},
		{[]string{"--body-budget", "-5MiB"}, 0, 0, `--body-budget (FERRY_BODY_BUDGET) "-5MiB"`},
		{[]string{"--max-conns", "-1"}, 0, 0, `--max-conns (FERRY_MAX_CONNS) "-1": want an integer >= 0`},
	} {
		cfg, err := parseFlags(append(base, tc.args...), env(nil), io.Discard)
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want %q", tc.args, err, tc.wantErr)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.args, err)
		case cfg.BodyBudget != tc.budget || cfg.MaxConns != tc.conns:
			t.Errorf("%q: budget %d, conns %d; want %d, %d", tc.args, cfg.BodyBudget, cfg.MaxConns, tc.budget, tc.conns)
		}
	}
	cfg, err := parseFlags(base, env(map[string]string{"FERRY_BODY_BUDGET": "40MiB", "FERRY_MAX_CONNS": "100", "FERRY_METRICS_ADDR": "127.0.0.1:9090"}), io.Discard)
	if err != nil || cfg.BodyBudget != 40<<20 || cfg.MaxConns != 100 || cfg.MetricsAddr != "127.0.0.1:9090" {
		t.Errorf("from the environment: %+v, %v", cfg, err)
	}
}

// TestServeMetricsExposure: FERRY_METRICS_TOKEN makes /metrics require the token, and
// --metrics-addr moves /metrics to its own listener (404 on --addr); the token never
// reaches the logs.
func TestServeMetricsExposure(t *testing.T) {
	t.Parallel()
	const token = "metrics-token-do-not-log"
	auth := map[string]string{"Authorization": "Bearer " + token}
	args := []string{"--config", relaytest.WriteConfig(t, testConfig), "--addr", "127.0.0.1:0", "--data-dir", t.TempDir()}

	p := startInProcess(t, args, map[string]string{"FERRY_METRICS_TOKEN": token})
	if code, _ := relaytest.Call(t, "GET", p.base+"/metrics", nil, nil); code != 401 {
		t.Errorf("GET /metrics without the token = %d, want 401", code)
	}
	if code, body := relaytest.Call(t, "GET", p.base+"/metrics", nil, auth); code != 200 || !strings.Contains(body, "ferry_body_budget_bytes 5.0331648e+07") {
		t.Errorf("GET /metrics with the token = %d, or the body budget gauge is missing", code)
	}
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	if logs := p.stdout.String(); strings.Contains(logs, token) || !strings.Contains(logs, `"metrics_token":"set"`) {
		t.Errorf("logs leak the metrics token or do not say it is set")
	}

	maddr := fmt.Sprintf("127.0.0.1:%d", testpeers.FreePort(t))
	p = startInProcess(t, append(args, "--metrics-addr", maddr), nil)
	if code, _ := relaytest.Call(t, "GET", p.base+"/metrics", nil, nil); code != 404 {
		t.Errorf("GET /metrics on --addr with --metrics-addr = %d, want 404", code)
	}
	if code, body := relaytest.Call(t, "GET", "http://"+maddr+"/metrics", nil, nil); code != 200 || !strings.Contains(body, "ferry_http_requests_total") {
		t.Errorf("GET /metrics on --metrics-addr = %d", code)
	}
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
}
