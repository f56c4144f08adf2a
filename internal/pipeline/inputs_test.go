package pipeline

import (
	"strings"
	"testing"
)

// TestKeyGivenAsPath: an encryption-key or signing-key input holding a file path instead of
// the key's PEM text is told to pass the content, not the path; PEM text and a wrong but
// path-less value are not mistaken for a path.
func TestKeyGivenAsPath(t *testing.T) {
	t.Parallel()
	rc := &Context{Repository: "acme/app", Ref: "refs/tags/v1.0.0", RefName: "v1.0.0", RefType: "tag", SHA: strings.Repeat("a", 40)}
	validate := func(inputs map[string]string) string {
		t.Helper()
		in := map[string]string{"app-id": "com.a.b", "build-dir": ".", "destination": "file:///tmp/x", "signing": "none"}
		for k, v := range inputs {
			in[k] = v
		}
		vals := ReadInputs(func(name string) string { return in[name] })
		_, err := Validate(vals, func(k string) string { return map[string]string{"GITHUB_WORKSPACE": t.TempDir()}[k] }, rc)
		if err == nil {
			return ""
		}
		return err.Error()
	}
	const hint = "pass the key's content, not its path"
	for _, path := range []string{".capgo_key_v2", "./keys/.capgo_key_v2", "/ci/app/.capgo_key_v2", "~/keys/private.pem", `C:\keys\app.key`} {
		if msg := validate(map[string]string{"encryption-key": path}); !strings.Contains(msg, "encryption-key looks like a file path: "+hint) {
			t.Errorf("encryption-key %q: %q, want %q", path, msg, hint)
		}
		if msg := validate(map[string]string{"signing": "key", "signing-key": path}); !strings.Contains(msg, "signing-key looks like a file path: "+hint) {
			t.Errorf("signing-key %q: %q, want %q", path, msg, hint)
		}
	}
	for _, notPath := range []string{"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----", "secret", strings.Repeat("AB+/", 300)} {
		if msg := validate(map[string]string{"encryption-key": notPath}); strings.Contains(msg, hint) || !strings.Contains(msg, "encryption-key") {
			t.Errorf("encryption-key %.20q…: %q; want a key error that does not speak of a path", notPath, msg)
		}
	}
}
