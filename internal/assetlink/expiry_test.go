package assetlink_test

import (
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/assetlink"
)

func TestExpiry(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name, url string
		want      time.Time
	}{
		{"aws v4", "https://o.example/x?X-Amz-Date=20261205T115900Z&X-Amz-Expires=300", now.Add(4 * time.Minute)},
		{"azure sas", "https://o.example/x?sp=r&se=2026-12-05T13%3A00%3A00Z&sig=abc", now.Add(time.Hour)},
		{"expires", "https://o.example/x?Expires=1796472300", time.Unix(1796472300, 0)},
		{"none", "https://o.example/x", now.Add(assetlink.UnknownLifetime)},
		{"bad date", "https://o.example/x?X-Amz-Date=yesterday&X-Amz-Expires=300", now.Add(assetlink.UnknownLifetime)},
		{"negative", "https://o.example/x?X-Amz-Date=20261205T115900Z&X-Amz-Expires=-5", now.Add(assetlink.UnknownLifetime)},
		{"already expired", "https://o.example/x?se=2020-01-01T00%3A00%3A00Z", now},
		{"too long", "https://o.example/x?se=2030-01-01T00%3A00%3A00Z", now.Add(7 * 24 * time.Hour)},
		{"not a url", "%zz", now.Add(assetlink.UnknownLifetime)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := assetlink.Expiry(tc.url, now); !got.Equal(tc.want) {
				t.Errorf("Expiry(%q) = %v, want %v", tc.url, got, tc.want)
			}
		})
	}
}

// FuzzExpiry: whatever the URL, the expiry is within [now, now+7 days].
func FuzzExpiry(f *testing.F) {
	for _, s := range []string{"https://o/x?X-Amz-Date=20261205T115900Z&X-Amz-Expires=300", "https://o/x?se=2026-12-05T13:00:00Z", "https://o/x?Expires=1", "%zz"} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, u string) {
		got := assetlink.Expiry(u, now)
		if got.Before(now) || got.After(now.Add(7*24*time.Hour)) {
			t.Errorf("Expiry(%q) = %v, outside [now, now+7d]", u, got)
		}
	})
}
