package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ferryhq/ferry/internal/channel"
)

// Decoding of the plugin's info object (docs/protocol.md §1.2), shared by every device
// endpoint. Decoding is lenient where plugins differ and strict where a value cannot mean
// anything: string fields accept strings, numbers (kept as written) and null; bool fields
// accept bools, "true"/"false" and null; absent is_emulator and is_prod take the protocol's
// defaults (false, true). Unknown keys are ignored. A body that is not a JSON object, or a
// field holding an object or array where a scalar belongs, is refused.

// requestError is a refused device request: its code and message become the 400 body.
type requestError struct {
	Code    string
	Message string
}

func (e *requestError) Error() string { return e.Code + ": " + e.Message }

var (
	errMissingAppID    = &requestError{Code: "missing_app_id", Message: "app_id is required"}
	errMissingDeviceID = &requestError{Code: "missing_device_id", Message: "device_id is required"}
)

func invalidJSON(format string, args ...any) *requestError {
	return &requestError{Code: "invalid_json_body", Message: fmt.Sprintf(format, args...)}
}

// flexString is a string field that also accepts a number or a bool (kept as written).
type flexString string

var stringType = reflect.TypeFor[string]()

func (f *flexString) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) == 0:
		return nil
	case b[0] == '"':
		// The decoder has already checked the syntax: without escapes the value is the
		// bytes between the quotes (invalid UTF-8 is refused later by checkField).
		if inner := b[1 : len(b)-1]; bytes.IndexByte(inner, '\\') < 0 {
			*f = flexString(inner)
			return nil
		}
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
	case b[0] == 'n': // null
		*f = ""
	case b[0] == 't' || b[0] == 'f' || b[0] == '-' || (b[0] >= '0' && b[0] <= '9'):
		*f = flexString(b)
	case b[0] == '{':
		return &json.UnmarshalTypeError{Value: "object", Type: stringType}
	default:
		return &json.UnmarshalTypeError{Value: "array", Type: stringType}
	}
	return nil
}

// flexBool is a bool field that also accepts "true"/"false" (query strings, old plugins).
type flexBool struct {
	set bool
	v   bool
}

// boolString reads a bool sent as a string: "true"/"1" or "false"/"0"/"" (query strings
// and old plugins).
func boolString(v string) (flexBool, bool) {
	switch v {
	case "true", "1":
		return flexBool{set: true, v: true}, true
	case "false", "0", "":
		return flexBool{set: true, v: false}, true
	}
	return flexBool{}, false
}

func (f flexBool) or(def bool) bool {
	if f.set {
		return f.v
	}
	return def
}

// wireRequest is every field a device endpoint reads (decoded by decodeObject): the info object plus the extras of
// /stats (action, old_version_name), /channel_self (channel) and manifest_size (version,
// manifest).
type wireRequest struct {
	Platform       flexString `json:"platform"`
	DeviceID       flexString `json:"device_id"`
	AppID          flexString `json:"app_id"`
	CustomID       flexString `json:"custom_id"`
	VersionBuild   flexString `json:"version_build"`
	VersionCode    flexString `json:"version_code"`
	VersionOS      flexString `json:"version_os"`
	VersionName    flexString `json:"version_name"`
	PluginVersion  flexString `json:"plugin_version"`
	IsEmulator     flexBool   `json:"is_emulator"`
	IsProd         flexBool   `json:"is_prod"`
	InstallSource  flexString `json:"install_source"`
	DefaultChannel flexString `json:"defaultChannel"`
	KeyID          flexString `json:"key_id"`

	Action         flexString `json:"action"`
	OldVersionName flexString `json:"old_version_name"`
	Channel        flexString `json:"channel"`
	Version        flexString `json:"version"`
	Manifest       []wireFile `json:"manifest"`
}

// wireFile is one entry of a manifest_size request.
type wireFile struct {
	FileName    flexString `json:"file_name"`
	FileHash    flexString `json:"file_hash"`
	DownloadURL flexString `json:"download_url"`
}

// deviceRequest is a decoded, checked device request.
type deviceRequest struct {
	Info           channel.DeviceInfo
	Action         string
	OldVersionName string
	Channel        string
	Version        string
	Manifest       []channel.ManifestEntry
}

// parseObject decodes a body holding one JSON object into a deviceRequest. app_id and
// device_id are required. The request's strings may be slices of body, which they keep
// alive: clone what outlives the request (see stats).
func parseObject(body string) (*deviceRequest, error) {
	r := new(deviceRequest)
	if err := parseObjectInto(body, r); err != nil {
		return nil, err
	}
	return r, nil
}

// parseObjectInto is parseObject into r, which the update check keeps on its stack.
func parseObjectInto(body string, r *deviceRequest) error {
	b := trimJSONSpace(body)
	if len(b) == 0 || b[0] != '{' {
		return invalidJSON("body must be a JSON object")
	}
	var w wireRequest
	if err := decodeObject(b, &w); err != nil {
		return decodeError(err)
	}
	return w.check(r)
}

func decodeError(err error) *requestError {
	var fe *fieldTypeError
	if errors.As(err, &fe) {
		return invalidJSON("%v", fe)
	}
	var se *syntaxError
	if errors.As(err, &se) {
		return invalidJSON("malformed JSON at %v", se)
	}
	var le *limitError
	if errors.As(err, &le) {
		return invalidJSON("batch holds %v; at most %d events are allowed", le, MaxStatsEvents)
	}
	return invalidJSON("malformed JSON: %v", err)
}

// check validates and normalises a decoded request: device ids are lower-cased (the plugin
// sends lowercase UUIDs; older iOS plugins sent uppercase), strings are bounded and free of
// control characters, and the protocol's defaults are applied.
func (w *wireRequest) check(r *deviceRequest) error {
	*r = deviceRequest{
		Info: channel.DeviceInfo{
			Platform:       strings.ToLower(string(w.Platform)),
			DeviceID:       strings.ToLower(string(w.DeviceID)),
			AppID:          string(w.AppID),
			CustomID:       string(w.CustomID),
			VersionBuild:   string(w.VersionBuild),
			VersionCode:    string(w.VersionCode),
			VersionOS:      string(w.VersionOS),
			VersionName:    string(w.VersionName),
			PluginVersion:  string(w.PluginVersion),
			IsEmulator:     w.IsEmulator.or(false),
			IsProd:         w.IsProd.or(true),
			InstallSource:  string(w.InstallSource),
			DefaultChannel: string(w.DefaultChannel),
			KeyID:          string(w.KeyID),
		},
		Action:         string(w.Action),
		OldVersionName: string(w.OldVersionName),
		Channel:        string(w.Channel),
		Version:        string(w.Version),
	}
	fields := []struct {
		name string
		v    string
	}{
		{"platform", r.Info.Platform}, {"device_id", r.Info.DeviceID}, {"app_id", r.Info.AppID},
		{"custom_id", r.Info.CustomID}, {"version_build", r.Info.VersionBuild},
		{"version_code", r.Info.VersionCode}, {"version_os", r.Info.VersionOS},
		{"version_name", r.Info.VersionName}, {"plugin_version", r.Info.PluginVersion},
		{"install_source", r.Info.InstallSource}, {"defaultChannel", r.Info.DefaultChannel},
		{"key_id", r.Info.KeyID}, {"action", r.Action}, {"old_version_name", r.OldVersionName},
		{"channel", r.Channel}, {"version", r.Version},
	}
	for _, f := range fields {
		if err := checkField(f.name, f.v); err != nil {
			return err
		}
	}
	if len(w.Manifest) > MaxManifestFiles {
		return invalidJSON("manifest lists %d files; at most %d are allowed", len(w.Manifest), MaxManifestFiles)
	}
	for i, f := range w.Manifest {
		e := channel.ManifestEntry{FileName: string(f.FileName), FileHash: string(f.FileHash), DownloadURL: string(f.DownloadURL)}
		for _, v := range []string{e.FileName, e.FileHash, e.DownloadURL} {
			if err := checkField("manifest["+strconv.Itoa(i)+"]", v); err != nil {
				return err
			}
		}
		r.Manifest = append(r.Manifest, e)
	}
	if r.Info.AppID == "" {
		return errMissingAppID
	}
	if r.Info.DeviceID == "" {
		return errMissingDeviceID
	}
	return nil
}

func checkField(name, v string) *requestError {
	if len(v) > MaxFieldLen {
		return invalidJSON("field %s is longer than %d bytes", name, MaxFieldLen)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c >= utf8.RuneSelf {
			// Not ASCII (rare in the plugin's fields): the full check, which also catches
			// the C1 controls.
			if !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl) {
				return invalidJSON("field %s holds invalid UTF-8 or control characters", name)
			}
			return nil
		}
		if c < 0x20 || c == 0x7f { // the ASCII controls unicode.IsControl reports
			return invalidJSON("field %s holds invalid UTF-8 or control characters", name)
		}
	}
	return nil
}

// parseQuery decodes the info object from a query string (GET and DELETE /channel_self,
// where the plugin sends every field as a parameter and bools as "true"/"false").
func parseQuery(q url.Values) (*deviceRequest, error) {
	var w wireRequest
	str := func(dst *flexString, key string) { *dst = flexString(q.Get(key)) }
	str(&w.Platform, "platform")
	str(&w.DeviceID, "device_id")
	str(&w.AppID, "app_id")
	str(&w.CustomID, "custom_id")
	str(&w.VersionBuild, "version_build")
	str(&w.VersionCode, "version_code")
	str(&w.VersionOS, "version_os")
	str(&w.VersionName, "version_name")
	str(&w.PluginVersion, "plugin_version")
	str(&w.InstallSource, "install_source")
	str(&w.DefaultChannel, "defaultChannel")
	str(&w.KeyID, "key_id")
	str(&w.Channel, "channel")
	for key, dst := range map[string]*flexBool{"is_emulator": &w.IsEmulator, "is_prod": &w.IsProd} {
		if !q.Has(key) {
			continue
		}
		b, ok := boolString(q.Get(key))
		if !ok {
			return nil, invalidJSON("parameter %s: want true or false", key)
		}
		*dst = b
	}
	r := new(deviceRequest)
	if err := w.check(r); err != nil {
		return nil, err
	}
	return r, nil
}

// parseStats decodes a /stats body: one event object or an array of them. Each event must
// be an object; events without app_id or device_id are refused with the whole body, since
// the plugin always sends them. As with parseObject, the events' strings may be slices of
// body.
func parseStats(body string) ([]*deviceRequest, error) {
	b := trimJSONSpace(body)
	if len(b) == 0 || (b[0] != '{' && b[0] != '[') {
		return nil, invalidJSON("body must be a JSON object or an array of objects")
	}
	if b[0] == '{' {
		r, err := parseObject(b)
		if err != nil {
			return nil, err
		}
		return []*deviceRequest{r}, nil
	}
	raw, err := splitArray(b, MaxStatsEvents)
	if err != nil {
		return nil, decodeError(err)
	}
	out := make([]*deviceRequest, 0, len(raw))
	for i, ev := range raw {
		r, err := parseObject(ev)
		if err != nil {
			var re *requestError
			if errors.As(err, &re) {
				return nil, &requestError{Code: re.Code, Message: "event " + strconv.Itoa(i) + ": " + re.Message}
			}
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}
