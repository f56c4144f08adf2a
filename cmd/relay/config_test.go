package main

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestRunRateLimitNotFinite: NaN and infinities, which strconv.ParseFloat accepts, are
// refused for both rate limits (NaN used to pass the "< 0" check and disable limiting).
func TestRunRateLimitNotFinite(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"NaN", "nan", "Inf", "+Inf", "-Inf", "infinity", "1e400"} {
		err := run(t.Context(), []string{"--rate-limit", v}, env(map[string]string{"FERRY_DEVICE_RATE_LIMIT": v}), io.Discard, io.Discard)
		if err == nil {
			t.Fatalf("run accepted rate limits %q", v)
		}
		for _, want := range []string{
			`--rate-limit (FERRY_RATE_LIMIT) "` + v + `": want a finite number >= 0`,
			`--device-rate-limit (FERRY_DEVICE_RATE_LIMIT) "` + v + `": want a finite number >= 0`,
		} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("rate limits %q: error does not list %q:\n%v", v, want, err)
			}
		}
	}
}

// TestRunHelpShowsTypes: --help names each flag's type, and a variable's value is the
// default it shows.
func TestRunHelpShowsTypes(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	if err := run(t.Context(), []string{"--help"}, env(map[string]string{"FERRY_RATE_BURST": "7"}), io.Discard, &stderr); !errors.Is(err, errUsage) {
		t.Fatalf("--help: %v, want errUsage", err)
	}
	for _, want := range []string{
		"-rate-limit float\n", "-device-rate-limit float\n", "-rate-burst int\n", "-device-rate-burst int\n",
		"-snapshot-ttl duration\n", "-shutdown-timeout duration\n", "-webhook-lease duration\n", "-rollout-interval duration\n",
		"-addr string\n", "-trusted-proxies list\n",
		"(env FERRY_RATE_LIMIT) (default 50)\n", "(env FERRY_RATE_BURST) (default 7)\n", `(env FERRY_ADDR) (default ":8080")`,
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("--help does not show %q:\n%s", want, stderr.String())
		}
	}
}

// TestRunBadTypedValues: a value that is not of the flag's type names the flag and its
// variable, whether it came from the flag or from the variable.
func TestRunBadTypedValues(t *testing.T) {
	t.Parallel()
	err := run(t.Context(), []string{"--device-rate-burst", "many", "--webhook-lease", "soon"},
		env(map[string]string{"FERRY_DEVICE_RATE_LIMIT": "fast", "FERRY_SHUTDOWN_TIMEOUT": "-1s"}), io.Discard, io.Discard)
	if err == nil {
		t.Fatal("run accepted bad values")
	}
	for _, want := range []string{
		`--device-rate-burst (FERRY_DEVICE_RATE_BURST) "many": want an integer >= 1`,
		`--webhook-lease (FERRY_WEBHOOK_LEASE) "soon": want a duration between 100ms and 1h`,
		`--device-rate-limit (FERRY_DEVICE_RATE_LIMIT) "fast": want a finite number >= 0`,
		`--shutdown-timeout (FERRY_SHUTDOWN_TIMEOUT) "-1s": want a positive duration`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not list %q:\n%v", want, err)
		}
	}
}

// TestParseFlagsTypedFields: flags win over variables, which win over defaults, and each
// lands in its typed field.
func TestParseFlagsTypedFields(t *testing.T) {
	t.Parallel()
	c, err := parseFlags([]string{"--config", "apps.yaml", "--rate-limit", "2.5", "--trusted-proxies", " 10.0.0.0/8, ,::1 "},
		env(map[string]string{"FERRY_RATE_LIMIT": "9", "FERRY_RATE_BURST": "3", "FERRY_SNAPSHOT_TTL": "1m30s"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got := []any{c.RateLimit, c.RateBurst, c.DeviceRateLimit, c.DeviceRateBurst, c.SnapshotTTL, c.ShutdownTimeout, c.WebhookLease, c.TrustedProxies, c.Addr}
	want := []any{2.5, 3, 0.5, 60, 90 * time.Second, 10 * time.Second, 2 * time.Minute, []string{"10.0.0.0/8", "::1"}, ":8080"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}
