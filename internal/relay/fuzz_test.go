package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// checkParsed holds for every request a parser accepts: identity present, every string
// bounded, valid UTF-8 without control characters, device id lower-cased.
func checkParsed(t *testing.T, r *deviceRequest) {
	t.Helper()
	if r.Info.AppID == "" || r.Info.DeviceID == "" {
		t.Fatalf("accepted a request without app_id or device_id: %+v", r.Info)
	}
	if r.Info.DeviceID != strings.ToLower(r.Info.DeviceID) {
		t.Fatalf("device_id %q not lower-cased", r.Info.DeviceID)
	}
	for _, v := range []string{r.Info.Platform, r.Info.AppID, r.Info.DeviceID, r.Info.VersionName, r.Info.VersionBuild,
		r.Info.DefaultChannel, r.Info.KeyID, r.Action, r.Channel, r.Version, r.OldVersionName} {
		if len(v) > MaxFieldLen || !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl) {
			t.Fatalf("accepted field %q", v)
		}
	}
}

// checkRefusal holds for every refusal: a requestError with a code the plugin knows.
func checkRefusal(t *testing.T, err error) {
	t.Helper()
	var re *requestError
	if !errors.As(err, &re) {
		t.Fatalf("refusal is not a requestError: %v", err)
	}
	switch re.Code {
	case "invalid_json_body", "missing_app_id", "missing_device_id":
	default:
		t.Fatalf("unexpected refusal code %q", re.Code)
	}
}

func FuzzParseObject(f *testing.F) {
	f.Add([]byte(info(nil)))
	f.Add([]byte(info(map[string]any{"is_prod": "false", "version_code": 7, "key_id": "MIIBCgKCAQEAwsCct5LR"})))
	f.Add([]byte(info(map[string]any{"manifest": []any{map[string]any{"file_name": "a.js", "file_hash": "00", "download_url": nil}}, "version": "1.0.0"})))
	f.Add([]byte(`{"app_id":"a","device_id":"D","platform":{"x":1}}`))
	f.Add([]byte(`{"app_id":"a","device_id":"d","is_prod":[]}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"app_id":"a\u0000","device_id":"d"}`))
	f.Add([]byte(`{"app_id":"a","device_id":"d"} {}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := parseObject(string(body))
		if err != nil {
			checkRefusal(t, err)
			return
		}
		checkParsed(t, r)
		// The decoded info survives a round trip through its own JSON form.
		b, err := json.Marshal(r.Info)
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseObject(string(b))
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		if diff := cmp.Diff(r.Info, again.Info); diff != "" {
			t.Fatalf("round trip changed the info (-first +second):\n%s", diff)
		}
	})
}

func FuzzParseStats(f *testing.F) {
	f.Add([]byte(info(map[string]any{"action": "set", "version_name": "1.0.0"})))
	f.Add([]byte(`[` + info(map[string]any{"action": "update_fail", "timestamp": 1, "metadata": map[string]string{"a": "b"}}) + `]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`[1,"a",null]`))
	f.Add([]byte(`[{"app_id":"a"}]`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, body []byte) {
		reqs, err := parseStats(string(body))
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if len(reqs) > MaxStatsEvents {
			t.Fatalf("accepted %d events", len(reqs))
		}
		for _, r := range reqs {
			checkParsed(t, r)
		}
	})
}

func FuzzParseQuery(f *testing.F) {
	f.Add("app_id=com.example.app&device_id=7239A82F-4ea8&platform=ios&is_prod=true&is_emulator=false&defaultChannel=beta")
	f.Add("app_id=a&device_id=d&is_prod=maybe")
	f.Add("app_id=%00&device_id=d")
	f.Add("device_id=d")
	f.Add("app_id=a&device_id=d&channel=%ff")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		r, err := parseQuery(q)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		checkParsed(t, r)
	})
}

// referenceDecode is the oracle for decodeObject: encoding/json with exact keys and the flex
// rules of flexString and flexBool.
func referenceDecode(b []byte) (*wireRequest, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	var w wireRequest
	strs := map[string]*flexString{
		"platform": &w.Platform, "device_id": &w.DeviceID, "app_id": &w.AppID, "custom_id": &w.CustomID,
		"version_build": &w.VersionBuild, "version_code": &w.VersionCode, "version_os": &w.VersionOS,
		"version_name": &w.VersionName, "plugin_version": &w.PluginVersion, "install_source": &w.InstallSource,
		"defaultChannel": &w.DefaultChannel, "key_id": &w.KeyID, "action": &w.Action,
		"old_version_name": &w.OldVersionName, "channel": &w.Channel, "version": &w.Version,
	}
	for k, raw := range m {
		var err error
		switch {
		case strs[k] != nil:
			err = strs[k].UnmarshalJSON(raw)
		case k == "is_emulator":
			err = referenceBool(&w.IsEmulator, raw)
		case k == "is_prod":
			err = referenceBool(&w.IsProd, raw)
		case k == "manifest":
			err = json.Unmarshal(raw, &w.Manifest)
		}
		if err != nil {
			return nil, err
		}
	}
	return &w, nil
}

// referenceBool applies the bool field rules with encoding/json: a bool, 1 or 0, null, or a
// string boolString accepts.
func referenceBool(dst *flexBool, raw json.RawMessage) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	switch v := v.(type) {
	case nil:
		*dst = flexBool{}
		return nil
	case bool:
		*dst = flexBool{set: true, v: v}
		return nil
	case float64:
		if string(raw) == "1" || string(raw) == "0" {
			*dst = flexBool{set: true, v: v == 1}
			return nil
		}
	case string:
		if b, ok := boolString(v); ok {
			*dst = b
			return nil
		}
	}
	return errors.New("not a bool")
}

// FuzzDecodeObject checks the hand-written scanner against encoding/json: it accepts
// exactly the valid JSON objects, and decodes the same values.
func FuzzDecodeObject(f *testing.F) {
	f.Add([]byte(info(nil)))
	f.Add([]byte(`{"app_id":"a\u00e9\ud83d\ude00\n","device_id":"d","is_prod":"0","version_code":-1.5e3,"x":[{"y":[null,true]}]}`))
	f.Add([]byte(`{"manifest":[{"file_name":"a","file_hash":null,"download_url":1}],"version":"1"}`))
	f.Add([]byte(`{"a":01}`))
	f.Add([]byte(`{"a":"\ud800"}`))
	f.Add([]byte(` { } `))
	f.Add([]byte(`{"is_emulator":2}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var got wireRequest
		err := decodeObject(string(body), &got)
		valid := json.Valid(body) && bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("{"))
		var se *syntaxError
		if errors.As(err, &se) == valid {
			t.Fatalf("decodeObject(%q) = %v, but json.Valid = %v", body, err, json.Valid(body))
		}
		if err != nil || !utf8.Valid(body) {
			return // encoding/json replaces invalid UTF-8; the relay refuses it later
		}
		want, rerr := referenceDecode(body)
		if rerr != nil {
			if !bytes.Contains(body, []byte(`\`)) {
				t.Fatalf("decodeObject accepted %q, encoding/json refused it: %v", body, rerr)
			}
			return
		}
		opts := cmp.Options{cmp.AllowUnexported(flexBool{}), cmpopts.EquateEmpty()}
		if diff := cmp.Diff(want, &got, opts); diff != "" {
			t.Fatalf("decodeObject(%q) differs from encoding/json (-json +scanner):\n%s", body, diff)
		}
	})
}

// FuzzCheckField: checkField's ASCII fast path accepts and refuses exactly what the full
// check (valid UTF-8, no Unicode control character, at most MaxFieldLen bytes) does.
func FuzzCheckField(f *testing.F) {
	for _, s := range []string{"", "1.2.3", "abc\x00", "\x7f", "é", "\u0085", "a\xffb", "\u200b", strings.Repeat("x", MaxFieldLen+1)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		want := len(v) <= MaxFieldLen && utf8.ValidString(v) && !strings.ContainsFunc(v, unicode.IsControl)
		if got := checkField("f", v) == nil; got != want {
			t.Fatalf("checkField(%q) accepts = %v, want %v", v, got, want)
		}
	})
}
