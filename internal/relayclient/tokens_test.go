package relayclient_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/relayclient"
)

func TestParseLifetime(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want time.Duration
	}{
		{"90d", 90 * 24 * time.Hour},
		{"1d", 24 * time.Hour},
		{"720h", 720 * time.Hour},
		{"1h30m", 90 * time.Minute},
		{"1825d", relayclient.MaxTokenLifetime},
	} {
		got, err := relayclient.ParseLifetime(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseLifetime(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "d", "0d", "-1d", "+1d", "1.5d", "90 d", "1826d", "99999999999d", "0h", "-1h", "forever", "1w", "d90", "1e3d"} {
		if got, err := relayclient.ParseLifetime(in); err == nil {
			t.Errorf("ParseLifetime(%q) = %v, want an error", in, got)
		}
	}
}

func FuzzParseLifetime(f *testing.F) {
	for _, s := range []string{"90d", "720h", "1h30m", "-1d", "0d", "1826d", "99999999999999999999d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := relayclient.ParseLifetime(s)
		if err != nil {
			if d != 0 || err.Error() == "" {
				t.Fatalf("ParseLifetime(%q) = %v with error %v", s, d, err)
			}
			return
		}
		if d <= 0 || d > relayclient.MaxTokenLifetime {
			t.Fatalf("ParseLifetime(%q) = %v, outside (0, %v]", s, d, relayclient.MaxTokenLifetime)
		}
	})
}

func TestTokenRequestCheck(t *testing.T) {
	t.Parallel()
	ok := relayclient.TokenRequest{Name: "ci nightly", Grants: []access.Grant{{App: "com.example.app", Role: access.Publisher}}, ExpiresIn: "90d"}
	if err := ok.Check(); err != nil {
		t.Errorf("Check(%+v) = %v", ok, err)
	}
	bad := relayclient.TokenRequest{Name: " ", Grants: []access.Grant{{App: "a", Role: access.Viewer}, {App: "a", Role: access.Viewer}, {Role: "boss"}}, ExpiresIn: "0d"}
	err := bad.Check()
	for _, want := range []string{"name", "listed twice", "grants[2]", "expires_in"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check(%+v) = %v; want it to mention %q", bad, err, want)
		}
	}
}
