package relay

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferryhq/ferry/internal/channel"
)

// stdEncode is what encoding/json writes for v with HTML escaping off.
func stdEncode(t testing.TB, v any) string {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

func TestAppendUpdateResponse(t *testing.T) {
	t.Parallel()
	// A new field in UpdateResponse or ManifestEntry must be added to appendUpdateResponse.
	if n := reflect.TypeFor[channel.UpdateResponse]().NumField(); n != 15 {
		t.Fatalf("channel.UpdateResponse has %d fields; appendUpdateResponse encodes 15: update it", n)
	}
	if n := reflect.TypeFor[channel.ManifestEntry]().NumField(); n != 4 {
		t.Fatalf("channel.ManifestEntry has %d fields; appendUpdateResponse encodes 4: update it", n)
	}
	tests := []channel.UpdateResponse{
		{},
		{Version: "1.0.0", URL: "https://x/a.zip?a=1&b=<2>", Checksum: "ab", SessionKey: "iv:key"},
		{Error: "disable_auto_update_to_major", Message: "quote \" backslash \\ nl \n tab \t ctl \x01 \u2028 bad \xff é", Kind: "blocked", Major: true, Version: "2.0.0", Old: "1.0.0"},
		{Error: "key_id_mismatch", Kind: "blocked", DeviceKeyID: "a", BundleKeyID: "b", Breaking: true, Link: "l", Comment: "c"},
		{Version: "1", URL: "u", Manifest: []channel.ManifestEntry{{FileName: "a", FileHash: "h", DownloadURL: "d"}, {FileName: "", Size: 12}}},
	}
	for _, r := range tests {
		got := string(appendUpdateResponse(nil, &r))
		if diff := cmp.Diff(stdEncode(t, &r), got); diff != "" {
			t.Errorf("appendUpdateResponse(%+v) (-encoding/json +got):\n%s", r, diff)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "\"\\\b\f\n\r\t\x00\x1f\x7f", "\u2028\u2029", "\xff\xfe", "é😀<>&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(appendJSONString(nil, s)), stdEncode(t, s); got != want {
			t.Fatalf("appendJSONString(%q) = %s, encoding/json = %s", s, got, want)
		}
	})
}
