package redact

import (
	"strings"
	"testing"
)

// TestURL: what the action logs of bucket and relay URLs, and what device errors show of
// update-check URLs, carries no credentials.
func TestURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://relay.example.com":                                   "https://relay.example.com",
		"https://ci:s3cret@relay.example.com/base":                    "https://relay.example.com/base",
		"s3://bucket?region=eu-west-1&endpoint=http://k:s@minio:9000": "s3://bucket",
		"file:///srv/bundles":                                         "file:///srv/bundles",
		"":                                                            "",
		"github-release":                                              "github-release",
		"https://relay.example.com/channel_self?app_id=a&device_id=d": "https://relay.example.com/channel_self",
		"https://cdn.example.com/scope/b.zip#frag":                    "https://cdn.example.com/scope/b.zip",
		"https://ci:s3/cret@relay.example.com/base":                   "https://<redacted>",
		"https://ci:s3?cret@relay.example.com/base":                   "https://<redacted>",
		"https://[::1]:8080/updates?x=1":                              "https://[::1]:8080/updates",
		"ci:s3cret@relay.example.com":                                 "<redacted>",
		":s3cret@://relay":                                            "<redacted>",
		"x:///:s3#cret@h":                                             "x://<redacted>",
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPasswords: Redis URLs keep their user and options but lose their passwords.
func TestPasswords(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"redis://localhost:6379/0", "redis://localhost:6379/0"},
		{"redis://user:hunter2@h:1/0", "redis://user:xxxxx@h:1/0"},
		{"redis-sentinel://:hunter2@s1,s2/m?sentinel_password=hunter3", "redis-sentinel://:xxxxx@s1,s2/m?sentinel_password=xxxxx"},
		{"redis://h?password=hunter2&addr=x:1", "redis://h?addr=x%3A1&password=xxxxx"},
		{"user:hunter2@h", "<redacted>"},
		{"", ""},
		{"redis://h/0?a=%zz&password=hunter2", "redis://h/0?<redacted>"},
		{"redis://h/0:hunter2@x", "redis://<redacted>"},
		{"redis://u:hun/ter2@h/0", "redis://<redacted>"},
		{"redis://h/0?addr=u:hunter2@x", "redis://h/<redacted>"},
		{"redis://u:hun#ter2@h/0", "redis://<redacted>"},
		{"redis-cluster://u:p@h1:1,[::1]:2,h3", "redis-cluster://u:xxxxx@h1:1,[::1]:2,h3"},
	}
	for _, tc := range tests {
		if got := Passwords(tc.in); got != tc.want {
			t.Errorf("Passwords(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzRedact checks that a password written as user:SECRETPW@, or with a '/' in it as
// user:SEKRIT/PASSWD@ (or '?' or '#' for the '/'), never shows even in part, whatever surrounds it. Each secret word
// must appear once in the input, so that the fuzzer cannot also use it as a host name.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{
		"https://u:SECRETPW@h/p?q=1", "redis://u:SECRETPW@h:1/0", "u:SECRETPW@h", "s3://b?e=http://k:SECRETPW@m",
		"redis-cluster://u:SECRETPW@h1:1,,h2", "x://a/b:SECRETPW@c", "://u:SECRETPW@h", "x://u:SEKRIT/PASSWD@h", "x://u:SEKRIT/PASSWD@h:1/p?q",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var words []string
		switch {
		case strings.Contains(raw, ":SECRETPW@") && strings.Count(raw, "SECRETPW") == 1:
			words = []string{"SECRETPW"}
		case strings.Count(raw, "SEKRIT") == 1 && strings.Count(raw, "PASSWD") == 1 && hasSplitPassword(raw):
			words = []string{"SEKRIT", "PASSWD"}
		default:
			return
		}
		for name, fn := range map[string]func(string) string{"URL": URL, "Passwords": Passwords} {
			got := fn(raw)
			for _, w := range words {
				if strings.Contains(got, w) {
					t.Errorf("%s(%q) = %q shows %s", name, raw, got, w)
				}
			}
		}
	})
}

func hasSplitPassword(raw string) bool {
	for _, sep := range []string{"/", "?", "#"} {
		if strings.Contains(raw, ":SEKRIT"+sep+"PASSWD@") {
			return true
		}
	}
	return false
}
