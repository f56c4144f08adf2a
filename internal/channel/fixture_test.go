package channel

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// testKeyID is a realistic key_id (the first 20 characters of a 2048-bit PKCS#1 public PEM).
const testKeyID = "MIIBCgKCAQEAwsCct5LR"

// fixtureConfig is the relay config the Decide tests run against.
const fixtureConfig = `
apps:
  - id: com.example.app
    repository: acme/mobile-app
    default_channel: production
    channels:
      production: {}
      beta: { allow_device_self_set: true, public: true }
      private: {}
      empty: { allow_device_self_set: true }
      iosonly: { allow_device_self_set: true, platforms: [ios] }
      strict: { allow_device_self_set: true, allow_emulator: false, allow_dev: false }
      major: { allow_device_self_set: true, disable_auto_update: major }
      minor: { allow_device_self_set: true, disable_auto_update: minor }
      patch: { allow_device_self_set: true, disable_auto_update: patch }
      native: { allow_device_self_set: true }
      secure: { allow_device_self_set: true }
      rollout: { allow_device_self_set: true }
      revert: { allow_device_self_set: true }
      broken: { allow_device_self_set: true }
      delta: { allow_device_self_set: true }
    rules:
      - { ref: refs/heads/main, channel: beta }
      - { ref: "refs/tags/v*", channel: production }
`

// plainBundle returns an unencrypted bundle with a deterministic checksum.
func plainBundle(version, native string) *Bundle {
	sum := hex.EncodeToString(bytes.Repeat([]byte{byte(len(version))}, 32))
	return &Bundle{
		AppID:    "com.example.app",
		Version:  version,
		URL:      "https://github.com/acme/mobile-app/releases/download/v" + version + "/bundle.zip",
		Checksum: sum,
		SHA256:   sum,
		Size:     123456,
		Commit:   "0123456789abcdef0123456789abcdef01234567",
		Ref:      "refs/tags/v" + version,
		Native:   native,
	}
}

// encryptedBundle returns a bundle encrypted for keyID, with a realistic session key and V3
// checksum (512 hex characters).
func encryptedBundle(version, keyID string) *Bundle {
	b := plainBundle(version, "")
	b.URL = "https://bundles.example.com/com.example.app/" + version + ".zip"
	b.Checksum = hex.EncodeToString(bytes.Repeat([]byte{0xab}, 256))
	b.SessionKey = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 16)) + ":" +
		base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 256))
	b.KeyID = keyID
	return b
}

// fixture returns a fresh snapshot: every test may change it.
func fixture(t testing.TB) *Snapshot {
	t.Helper()
	cfg, err := ParseConfig([]byte(fixtureConfig))
	if err != nil {
		t.Fatalf("ParseConfig(fixture): %v", err)
	}
	bundles := map[string]*Bundle{}
	for _, b := range []*Bundle{
		plainBundle("1.0.0", ""), plainBundle("1.1.0", ""), plainBundle("1.2.0", ""),
		plainBundle("1.2.1", ""), plainBundle("1.3.0", ""), plainBundle("2.0.0", ""),
		plainBundle("1.3.0-beta.1", ""),
		plainBundle("3.0.0", ">=3.0.0"), plainBundle("2.1.0", "^2.0"), plainBundle("1.5.0", "~1.4"),
		plainBundle("0.9.0", "<1.0.0"),
		encryptedBundle("2.0.0-enc", testKeyID),
	} {
		bundles[b.Version] = b
	}
	delta := plainBundle("1.4.0", "")
	delta.Manifest = []ManifestEntry{
		{FileName: "index.html", FileHash: strings.Repeat("1", 64), DownloadURL: "https://bundles.example.com/files/index.html", Size: 512},
		{FileName: "assets/app.js.br", FileHash: strings.Repeat("2", 64), DownloadURL: "https://bundles.example.com/files/assets/app.js.br", Size: 90210},
	}
	bundles[delta.Version] = delta
	nourl := plainBundle("1.9.0", "")
	nourl.URL = ""
	bundles[nourl.Version] = nourl

	st := func(ch, version string, history ...string) *State {
		return &State{App: "com.example.app", Channel: ch, Version: version, History: history}
	}
	states := map[string]*State{
		"production": st("production", "1.2.0", "1.1.0", "1.0.0"),
		"beta":       st("beta", "1.3.0-beta.1", "1.2.0"),
		"private":    st("private", "1.3.0"),
		"iosonly":    st("iosonly", "1.2.0"),
		"strict":     st("strict", "1.2.0"),
		"major":      st("major", "2.0.0"),
		"minor":      st("minor", "1.3.0"),
		"patch":      st("patch", "1.2.1"),
		"native":     st("native", "3.0.0", "2.1.0", "1.5.0", "0.9.0"),
		"secure":     st("secure", "2.0.0-enc"),
		"rollout":    st("rollout", "1.0.0"),
		"revert":     st("revert", builtin, "1.0.0"),
		"broken":     st("broken", "9.9.9"),
		"delta":      st("delta", "1.4.0"),
	}
	states["rollout"].Rollout = &Rollout{Version: "1.1.0", Percent: 50}
	return &Snapshot{App: cfg.App("com.example.app"), States: states, Bundles: bundles}
}

// baseDevice is an Android 8.51.23 device on its built-in assets, as in docs/protocol.md §1.2.
func baseDevice() *DeviceInfo {
	return &DeviceInfo{
		Platform:      "android",
		DeviceID:      "7239a82f-4ea8-4e33-9085-f4ad974d3fc4",
		AppID:         "com.example.app",
		VersionBuild:  "1.0.0",
		VersionCode:   "7",
		VersionOS:     "14",
		VersionName:   builtin,
		PluginVersion: "8.51.23",
		IsProd:        true,
		InstallSource: "google_play",
	}
}

// deviceIDs returns n deterministic UUID-shaped device ids.
func deviceIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%08x-4ea8-4e33-9085-%012x", i*2654435761%(1<<32), i)
	}
	return ids
}

// cohortDevice returns a device id inside (in=true) or outside the cohort of version at
// percent.
func cohortDevice(t testing.TB, version string, percent int, in bool) string {
	t.Helper()
	for _, id := range deviceIDs(1000) {
		if InCohort(id, version, percent) == in {
			return id
		}
	}
	t.Fatalf("no device with InCohort(_, %q, %d) = %v among 1000", version, percent, in)
	return ""
}

// checkIOSStrict decodes an update answer the way the iOS plugin's Decodable does
// (docs/protocol.md §1.3) and checks what the plugin then requires. It returns every
// violation: the top level must be a JSON object; version, url, checksum, session_key,
// message, error, kind, link and comment must be strings; major and breaking bools; each
// manifest entry an object whose file_name, file_hash and download_url are strings or null;
// data an object of strings. Beyond typing: an answer with error has a kind Capgo defines; an
// answer without error is either {"version":"builtin"} or an offer with a non-empty version,
// an absolute http(s) url, a checksum, a session_key of two standard-base64 parts around ":"
// when present, and manifest entries with all three fields.
func checkIOSStrict(body []byte) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var top any
	if err := dec.Decode(&top); err != nil {
		return []string{"not JSON: " + err.Error()}
	}
	if dec.More() {
		bad("trailing data after the JSON object")
	}
	obj, ok := top.(map[string]any)
	if !ok {
		return []string{fmt.Sprintf("top level is %T, not an object", top)}
	}
	str := func(key string) (string, bool) {
		v, present := obj[key]
		if !present {
			return "", false
		}
		s, ok := v.(string)
		if !ok {
			bad("%s is %T, want string", key, v)
		}
		return s, ok
	}
	for _, k := range []string{"version", "url", "checksum", "session_key", "message", "error", "kind", "link", "comment", "old", "deviceKeyId", "bundleKeyId"} {
		str(k)
	}
	for _, k := range []string{"major", "breaking"} {
		if v, present := obj[k]; present {
			if _, ok := v.(bool); !ok {
				bad("%s is %T, want bool", k, v)
			}
		}
	}
	if v, present := obj["data"]; present {
		m, ok := v.(map[string]any)
		if !ok {
			bad("data is %T, want object", v)
		}
		for k, x := range m {
			if _, ok := x.(string); !ok {
				bad("data[%q] is %T, want string", k, x)
			}
		}
	}
	var entries []any
	if v, present := obj["manifest"]; present {
		var ok bool
		if entries, ok = v.([]any); !ok {
			bad("manifest is %T, want array", v)
		}
		for i, e := range entries {
			m, ok := e.(map[string]any)
			if !ok {
				bad("manifest[%d] is %T, want object", i, e)
				continue
			}
			for _, k := range []string{"file_name", "file_hash", "download_url"} {
				switch x := m[k].(type) {
				case string:
					if x == "" {
						bad("manifest[%d].%s is empty", i, k)
					}
				case nil:
					bad("manifest[%d].%s is missing or null", i, k)
				default:
					bad("manifest[%d].%s is %T, want string", i, k, x)
				}
			}
			for k := range m {
				if k != "file_name" && k != "file_hash" && k != "download_url" {
					bad("manifest[%d] has extra key %q", i, k)
				}
			}
		}
	}
	errCode, hasErr := str("error")
	kind, hasKind := str("kind")
	version, _ := str("version")
	switch {
	case hasErr || hasKind:
		if errCode == "" {
			bad("kind without error")
		}
		if kind != KindUpToDate && kind != KindBlocked && kind != KindFailed {
			bad("kind %q is not up_to_date, blocked or failed", kind)
		}
		if msg, _ := str("message"); msg == "" {
			bad("error without message")
		}
		if _, ok := obj["url"]; ok {
			bad("error answer carries a url")
		}
	case version == builtin:
		if len(obj) != 1 {
			bad("builtin answer has keys besides version: %v", obj)
		}
	default:
		if version == "" {
			bad("offer without version")
		}
		raw, _ := str("url")
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("url %q is not an absolute http(s) URL", raw)
		}
		if sum, _ := str("checksum"); sum == "" && entries == nil {
			bad("zip offer without checksum")
		}
		if sk, present := str("session_key"); present {
			iv, key, ok := strings.Cut(sk, ":")
			_, e1 := base64.StdEncoding.Strict().DecodeString(iv)
			_, e2 := base64.StdEncoding.Strict().DecodeString(key)
			if !ok || iv == "" || key == "" || e1 != nil || e2 != nil {
				bad("session_key %q is not b64:b64", sk)
			}
		}
	}
	return problems
}
