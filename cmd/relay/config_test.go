package main

import (
	"io"
	"strings"
	"testing"
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
