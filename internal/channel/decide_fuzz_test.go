package channel

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// FuzzDecide feeds update-check bodies, decoded as the relay decodes them (absent is_prod
// means true), and failed-version lists to Decide over the fixture. Every answer must be
// either an offer, {"version":"builtin"}, or an error with a known kind, and must pass the
// iOS-strict decoding rules; an offer must respect failed versions, native ranges and keys.
func FuzzDecide(f *testing.F) {
	f.Add([]byte(`{"platform":"android","device_id":"7239a82f-4ea8-4e33-9085-f4ad974d3fc4","app_id":"com.example.app","custom_id":"","version_build":"1.0.0","version_code":"7","version_os":"14","version_name":"builtin","plugin_version":"8.51.23","is_emulator":false,"is_prod":true,"install_source":"google_play","defaultChannel":"beta","key_id":"MIIBCgKCAQEAwsCct5LR"}`), "")
	f.Add([]byte(`{"platform":"ios","device_id":"00000000-0000-4000-8000-000000000000","app_id":"com.example.app","version_build":"2.5","version_name":"2.1.0","plugin_version":"7.51.13","defaultChannel":"native"}`), "3.0.0")
	f.Add([]byte(`{"platform":"android","device_id":"a","app_id":"com.example.app","version_build":"1.0","version_name":"1.0.0","defaultChannel":"rollout"}`), "1.1.0")
	f.Add([]byte(`{"platform":"electron","device_id":"b","app_id":"com.example.app","version_build":"x","version_name":"1.2.0","defaultChannel":"major","is_emulator":true,"is_prod":false}`), "1.2.0,1.1.0")
	f.Add([]byte(`{"platform":"ios","device_id":"c","app_id":"com.example.app","version_build":"1","version_name":"builtin","defaultChannel":"secure","plugin_version":"6.0.0"}`), "")
	f.Add([]byte(`{"app_id":"com.other"}`), "")
	f.Add([]byte(`{}`), "")
	s := fixture(f)
	f.Fuzz(func(t *testing.T, body []byte, failedList string) {
		req := &DeviceInfo{IsProd: true}
		if err := json.Unmarshal(body, req); err != nil {
			return
		}
		var failed []string
		if failedList != "" {
			failed = strings.Split(failedList, ",")
		}
		d := Decide(s, req, failed)
		r := d.Response
		switch {
		case r.Error != "":
			if r.Kind != KindUpToDate && r.Kind != KindBlocked && r.Kind != KindFailed {
				t.Fatalf("error %q with kind %q", r.Error, r.Kind)
			}
			if r.Message == "" || d.Outcome == "" || d.Bundle != nil || r.URL != "" {
				t.Fatalf("bad refusal %+v", d)
			}
		case r.Version == builtin:
			if d.Outcome != OutcomeBuiltin || r.URL != "" {
				t.Fatalf("bad builtin answer %+v", d)
			}
		default:
			b := d.Bundle
			if !r.Offers() || b == nil || d.Outcome != OutcomeOffered {
				t.Fatalf("neither offer nor error: %+v", d)
			}
			if slices.Contains(failed, b.Version) {
				t.Fatalf("offered failed version %s", b.Version)
			}
			if ok, err := NativeAllows(b.Native, req.VersionBuild); !ok || err != nil {
				t.Fatalf("offered %s (native %q) to version_build %q", b.Version, b.Native, req.VersionBuild)
			}
			if req.KeyID != "" && (!b.Encrypted() || !keyMatches(req.KeyID, b.KeyID)) {
				t.Fatalf("offered %s (key %q) to device key %q", b.Version, b.KeyID, req.KeyID)
			}
			if r.Version == req.VersionName {
				t.Fatalf("offered the version the device runs: %s", r.Version)
			}
		}
		out, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		if p := checkIOSStrict(out); len(p) > 0 {
			t.Fatalf("iOS-strict check of %s: %v", out, p)
		}
	})
}
