package channel

import (
	"encoding/json"
	"time"
)

// Bundle is one registered bundle: what the action built and published, and what the relay
// serves. Its JSON form is the body of POST /api/v1/bundles (docs/architecture.md §3.2) and the
// record the stores keep. A bundle is immutable once registered: the same (AppID, Version) with the
// same Checksum is the same bundle; with another Checksum it is a conflict.
type Bundle struct {
	AppID   string `json:"app_id"`
	Version string `json:"version"`
	// URL is where devices download the archive (encrypted when SessionKey is set).
	URL string `json:"url"`
	// Checksum is what devices verify: the V3-encrypted checksum (512 hex characters) for an
	// encrypted bundle, or the lowercase hex SHA-256 of the plain zip for an unencrypted one.
	Checksum string `json:"checksum"`
	// SHA256 is the lowercase hex SHA-256 of the plain zip, before encryption.
	SHA256 string `json:"sha256"`
	// Size is the byte size of the file at URL.
	Size int64 `json:"size"`
	// SessionKey is "b64(iv):b64(RSA-wrapped AES key)", empty for unencrypted bundles.
	SessionKey string `json:"session_key,omitempty"`
	// KeyID is the first 20 characters of the public key's PEM body, empty when unencrypted.
	KeyID string `json:"key_id,omitempty"`
	// Commit and Ref name the source. With OIDC registration they come from the token.
	Commit string `json:"commit"`
	Ref    string `json:"ref"`
	// Channel, when set, names the channel explicitly instead of the relay's ref rules.
	Channel string `json:"channel,omitempty"`
	// Native is a semver range of native app versions (version_build) the bundle supports,
	// e.g. ">=2.0.0 <3.0.0"; empty means every version.
	Native string `json:"native,omitempty"`
	// Manifest lists the bundle's files for delta updates; empty when not published.
	Manifest      []ManifestEntry `json:"manifest,omitempty"`
	ManifestURL   string          `json:"manifest_url,omitempty"`
	SignatureURL  string          `json:"signature_url,omitempty"`
	ProvenanceURL string          `json:"provenance_url,omitempty"`
	// Signature is what the publishing pipeline found when it verified the Sigstore bundle
	// at SignatureURL before uploading anything; nil when it was not sent. The relay stores
	// it as the publisher stated it and does not re-verify it.
	Signature *Signature `json:"signature,omitempty"`
	// Repository is the GitHub repository that published the bundle (from the OIDC token, or
	// the app's configured repository for HMAC registrations).
	Repository string `json:"repository,omitempty"`
	// Assets, when set, says the bundle's files are assets of a release in a private GitHub
	// repository, which devices cannot download directly. The relay then rewrites URL,
	// SignatureURL and ProvenanceURL at registration to its own download route
	// (/dl/{app}/{version}/{name}), which redirects each request to a short-lived URL GitHub
	// signs for the asset. Public repositories leave it nil and keep their public URLs.
	Assets *ReleaseAssets `json:"release_assets,omitempty"`
	// CreatedAt is when the relay first stored the bundle; set by the relay.
	CreatedAt time.Time `json:"created_at,omitzero"`
}

// Signature describes a bundle's Sigstore signature as the publishing pipeline verified it.
// Keyless signatures have an Identity (the certificate's SAN: the workflow that signed),
// an Issuer and, with a transparency log, a LogIndex and IntegratedTime; key signatures
// have a KeyHint and usually no log entry.
type Signature struct {
	// Mode is "keyless" or "key".
	Mode     string `json:"mode"`
	Identity string `json:"identity,omitempty"`
	Issuer   string `json:"issuer,omitempty"`
	// Workflow is the workflow file path of the signing run (keyless).
	Workflow string `json:"workflow,omitempty"`
	KeyHint  string `json:"key_hint,omitempty"`
	// LogIndex and IntegratedTime locate the transparency-log (Rekor) entry.
	LogIndex       *int64    `json:"log_index,omitempty"`
	IntegratedTime time.Time `json:"integrated_time,omitzero"`
	// Verified is set when the pipeline verified the signature against the trusted root
	// and the expected identity before publishing (it always does; false means unknown).
	Verified bool `json:"verified"`
}

// ReleaseAssets names the release assets of a bundle published to a private repository.
type ReleaseAssets struct {
	// Repository is the "owner/name" whose release holds the assets; it must be the app's.
	Repository string `json:"repository"`
	// Archive is the bundle's archive; Signature and Provenance its Sigstore bundles, when
	// published.
	Archive    ReleaseAsset  `json:"archive"`
	Signature  *ReleaseAsset `json:"signature,omitempty"`
	Provenance *ReleaseAsset `json:"provenance,omitempty"`
}

// ReleaseAsset is one asset of a GitHub release: its file name and GitHub's numeric id.
type ReleaseAsset struct {
	Name string `json:"name"`
	ID   int64  `json:"id"`
}

// Find returns the asset named name, or nil.
func (r *ReleaseAssets) Find(name string) *ReleaseAsset {
	if r == nil {
		return nil
	}
	for _, a := range []*ReleaseAsset{&r.Archive, r.Signature, r.Provenance} {
		if a != nil && a.Name == name {
			return a
		}
	}
	return nil
}

// Encrypted reports whether the bundle's archive is encrypted.
func (b *Bundle) Encrypted() bool { return b.SessionKey != "" }

// ManifestEntry is one file of a delta manifest, exactly as the plugin decodes it
// (docs/protocol.md §4). FileName ends in ".br" when the file is Brotli-compressed;
// FileHash is the hex SHA-256 of the original file, V3-encrypted for encrypted bundles.
type ManifestEntry struct {
	FileName    string `json:"file_name"`
	FileHash    string `json:"file_hash"`
	DownloadURL string `json:"download_url"`
	// Size is the byte size of the object at DownloadURL (not sent to devices in update
	// answers; used by /updates/manifest_size).
	Size int64 `json:"size,omitempty"`
}

// State is one channel of one app: the version it serves, the versions it served before
// (for rollback and native-version targeting), and an optional rollout of a candidate.
type State struct {
	App     string `json:"app"`
	Channel string `json:"channel"`
	// Version is the stable version every device in the channel gets; empty when the
	// channel has never been promoted.
	Version string `json:"version"`
	// Release is the release name Version was promoted under: the tag ("v2.0.0") whose push
	// or whose build put it there. Empty when the version came otherwise (a branch build, an
	// admin); cleared whenever Version changes.
	Release string `json:"release,omitempty"`
	// History holds earlier values of Version, most recent first, bounded by MaxHistory.
	History []string `json:"history,omitempty"`
	// Rollout, when Version is set, offers Rollout.Version to a sticky cohort of devices.
	Rollout *Rollout `json:"rollout,omitempty"`
	// Plan, when set, is the rollout plan driving Rollout (see [StartPlan]).
	Plan *PlanState `json:"plan,omitempty"`
	// Policy, when set, overrides the configured policy (set through the admin API).
	Policy *Policy `json:"policy,omitempty"`
	// Native maps a version of the channel (Version, a History entry or the rollout's) to
	// the native-version range set for it when it was promoted, which [Decide] uses instead
	// of the bundle's own Native (see [SetNative], [State.NativeFor]). Entries of versions
	// that leave the channel are pruned, so it holds at most MaxHistory+2 entries.
	Native map[string]string `json:"native,omitempty"`
	// LastPush records the newest GitHub push applied to the channel (see [CheckPush]), so
	// that a replayed or late push older than it changes nothing.
	LastPush *PushMark `json:"last_push,omitempty"`
	// Rev increases by one on every change; stores use it for compare-and-swap.
	Rev       int64     `json:"rev"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// MaxHistory bounds State.History.
const MaxHistory = 20

// Rollout offers a candidate version to Percent percent of the channel's devices, chosen
// by a sticky hash of (device_id, version). A paused rollout offers the candidate to no new
// device and keeps serving the stable version.
type Rollout struct {
	Version string `json:"version"`
	Percent int    `json:"percent"` // 0..100
	Paused  bool   `json:"paused,omitempty"`
}

// AuditEntry records one state change and its cause.
type AuditEntry struct {
	Time    time.Time `json:"time"`
	App     string    `json:"app"`
	Channel string    `json:"channel,omitempty"`
	// Action is a short verb: register, promote, rollback, rollout, pause, resume,
	// complete, policy, pending, tag_deleted, tag_push (a tag push recorded on a channel
	// that already served its bundle), clear_failed (a device's failed versions forgotten),
	// and for rollout plans plan_start, plan_step, plan_pause, plan_rollback,
	// plan_complete, plan_end.
	Action string `json:"action"`
	// Device is the device id an action on one device (clear_failed) was about.
	Device string `json:"device,omitempty"`
	// Version is the version the change is about, From the version served before.
	Version string `json:"version,omitempty"`
	From    string `json:"from,omitempty"`
	// Release is the release name (a tag such as "v2.0.0") the change gave Version, for
	// promotions by a tag push or a tag's build.
	Release string `json:"release,omitempty"`
	// Cause says who or what made the change: "webhook:<delivery id> push refs/tags/v1.2.0",
	// "admin", "registration <repository>@<commit>".
	Cause string `json:"cause"`
	// Actor names who made the change (nil in entries written before actors were recorded).
	Actor *Actor `json:"actor,omitempty"`
	// Before and After are the changed object's JSON before and after a configuration
	// change (a policy), or the device's failed versions before and after clear_failed,
	// so the log shows what changed; absent for other actions.
	Before json.RawMessage `json:"before,omitempty"`
	After  json.RawMessage `json:"after,omitempty"`
}

// Actor is who made a change recorded in the audit log.
type Actor struct {
	// Kind is "token" (an API token), "person" (signed in through single sign-on),
	// "bootstrap" (FERRY_ADMIN_TOKEN), "ci" (a registration), "webhook" (a GitHub push)
	// or "controller" (the relay itself, e.g. a rollout gate).
	Kind string `json:"kind"`
	// ID is the token id, the person's subject, the webhook delivery id or the CI run id.
	ID string `json:"id,omitempty"`
	// Name is the token's name, the person's name, or the repository for CI and webhooks.
	Name   string `json:"name,omitempty"`
	Email  string `json:"email,omitempty"`
	Issuer string `json:"issuer,omitempty"`
	// Workflow is the CI workflow (job_workflow_ref) of a registration.
	Workflow string `json:"workflow,omitempty"`
	// IP is the client address the request came from.
	IP string `json:"ip,omitempty"`
}

// String is a short human form: "token ci-nightly (tok_ab12)", "person ana@example.com".
func (a *Actor) String() string {
	if a == nil {
		return "unknown"
	}
	who := a.Name
	if a.Email != "" {
		who = a.Email
	}
	switch {
	case who != "" && a.ID != "" && who != a.ID:
		return a.Kind + " " + who + " (" + a.ID + ")"
	case who != "":
		return a.Kind + " " + who
	case a.ID != "":
		return a.Kind + " " + a.ID
	}
	return a.Kind
}

// Pending is a promotion waiting for its bundle: a tag was pushed for a commit whose bundle
// has not registered yet. It is applied when that bundle registers.
type Pending struct {
	Channel string    `json:"channel"`
	Ref     string    `json:"ref"`
	Cause   string    `json:"cause"`
	Time    time.Time `json:"time"`
	// PushedAt and PushKey identify the push that asked for the promotion (see
	// [CheckPush]); it is applied only if no newer push was applied to the channel
	// meanwhile. Zero for pushes that carry no time.
	PushedAt time.Time `json:"pushed_at,omitzero"`
	PushKey  string    `json:"push_key,omitempty"`
}

// StatEvent is one device stat (POST /stats) reduced to what the relay counts.
type StatEvent struct {
	Device  string `json:"device_id"`
	Version string `json:"version_name"`
	Action  string `json:"action"`
}

// VersionStats aggregates the stats of one version of an app.
type VersionStats struct {
	Version string           `json:"version"`
	Actions map[string]int64 `json:"actions"` // count per action (set, download_complete, update_fail, …)
	Devices int64            `json:"devices"` // distinct devices that reported any event for it
}

// Resolutions and retention of the store's time-bucketed counters (store.Series).
const (
	SeriesFine            = 5 * time.Minute     // width of a fine bucket
	SeriesFineRetention   = 8 * 24 * time.Hour  // how long fine buckets are kept
	SeriesCoarse          = time.Hour           // width of a coarse bucket
	SeriesCoarseRetention = 90 * 24 * time.Hour // how long coarse buckets are kept
)

// Metrics a series point counts besides the plugin's stats actions (which are counted
// under their own names, once per device, version and action per hour and relay).
const (
	MetricCheck    = "check"     // an update check answered
	MetricOffered  = "offered"   // an update check answered with a bundle to download
	MetricNoUpdate = "no_update" // an update check answered with nothing new
)

// SeriesPoint is one time-bucketed counter: N events of Metric for Version of an app on
// Channel ("" where the event names no channel, as device stats do) in the bucket that
// starts at Start.
type SeriesPoint struct {
	Start   time.Time `json:"start"`
	Channel string    `json:"channel,omitempty"`
	Version string    `json:"version"`
	Metric  string    `json:"metric"`
	N       int64     `json:"n"`
}

// SeriesQuery selects series points: buckets of width Step (SeriesFine or SeriesCoarse)
// starting in [From, To), optionally only one channel, version or metric.
type SeriesQuery struct {
	From, To time.Time
	Step     time.Duration
	Channel  string
	Version  string
	Metric   string
}
