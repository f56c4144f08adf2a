package channel

// DeviceInfo is the info object every plugin request carries (docs/protocol.md §1.2):
// the body of POST /updates, the base of each stat event and of /channel_self calls. Older
// plugins omit fields; absent strings are "" and absent bools take the protocol's defaults
// (is_emulator false, is_prod true), which the relay applies when decoding.
type DeviceInfo struct {
	Platform      string `json:"platform"`
	DeviceID      string `json:"device_id"`
	AppID         string `json:"app_id"`
	CustomID      string `json:"custom_id,omitempty"`
	VersionBuild  string `json:"version_build"`
	VersionCode   string `json:"version_code,omitempty"`
	VersionOS     string `json:"version_os,omitempty"`
	VersionName   string `json:"version_name"`
	PluginVersion string `json:"plugin_version"`
	IsEmulator    bool   `json:"is_emulator"`
	IsProd        bool   `json:"is_prod"`
	InstallSource string `json:"install_source,omitempty"`
	// DefaultChannel is the device's channel (client-held state, docs/protocol.md §3).
	DefaultChannel string `json:"defaultChannel,omitempty"`
	// KeyID is present only when the app has a publicKey configured.
	KeyID string `json:"key_id,omitempty"`
}

// Kind values of a refusal or no-update answer (docs/protocol.md §1.3(c)).
const (
	KindUpToDate = "up_to_date"
	KindBlocked  = "blocked"
	KindFailed   = "failed"
)

// UpdateResponse is the JSON answer to POST /updates (docs/protocol.md §1.3). Either the update
// fields (Version, URL, Checksum, SessionKey, Manifest) are set, or Error, Message and Kind are,
// with the extras some codes carry. Every field has the JSON type iOS decodes strictly.
type UpdateResponse struct {
	Version    string          `json:"version,omitempty"`
	URL        string          `json:"url,omitempty"`
	Checksum   string          `json:"checksum,omitempty"`
	SessionKey string          `json:"session_key,omitempty"`
	Manifest   []ManifestEntry `json:"manifest,omitempty"`
	Breaking   bool            `json:"breaking,omitempty"`
	Major      bool            `json:"major,omitempty"`
	Link       string          `json:"link,omitempty"`
	Comment    string          `json:"comment,omitempty"`

	Error   string `json:"error,omitempty"`
	Message string `json:"message,omitempty"`
	Kind    string `json:"kind,omitempty"`
	// Old is the device's current version, sent with disable_auto_update_* codes.
	Old string `json:"old,omitempty"`
	// DeviceKeyID and BundleKeyID are sent with key_id_mismatch.
	DeviceKeyID string `json:"deviceKeyId,omitempty"`
	BundleKeyID string `json:"bundleKeyId,omitempty"`
}

// Offers reports whether the answer offers a bundle (rather than an error or builtin).
func (r *UpdateResponse) Offers() bool { return r.Error == "" && r.URL != "" }
