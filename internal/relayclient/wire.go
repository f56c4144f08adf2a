package relayclient

import (
	"time"

	"github.com/ferryhq/ferry/internal/channel"
)

// Paths of the control API, below the relay's base URL.
const (
	// BundlesPath is where bundles are registered (POST, a channel.Bundle).
	BundlesPath = "/api/v1/bundles"
	// PreflightPath checks a registration before its files are uploaded (POST, a
	// [PreflightRequest]); it changes nothing.
	PreflightPath = "/api/v1/bundles/preflight"
	// AppsPath is the prefix of the admin API: AppsPath + "/{app}/…".
	AppsPath = "/api/v1/apps"
)

// Registration is the answer to POST /api/v1/bundles, whose body is a channel.Bundle.
type Registration struct {
	// Bundle is the bundle as stored (for an idempotent re-registration, the earlier one).
	Bundle *channel.Bundle `json:"bundle"`
	// Created is false when the same version with the same checksum was already registered.
	Created bool `json:"created"`
	// Channel is the channel the registration targets (the body's channel, or the first
	// rule matching the ref); empty when none.
	Channel string `json:"channel,omitempty"`
	// Promoted reports whether this request made Channel serve the bundle.
	Promoted bool `json:"promoted"`
	// Reason says why Channel did not move, when it did not.
	Reason string `json:"reason,omitempty"`
	// PendingApplied lists the channels promoted to the bundle by tag pushes that had
	// been waiting for it.
	PendingApplied []string `json:"pending_applied,omitempty"`
}

// PreflightRequest is the body of POST /api/v1/bundles/preflight: what the registration of
// a packaged but not yet uploaded bundle will carry, as far as the relay can check it
// before any file exists. It is authenticated exactly as the registration will be (an
// HMAC over this body, an OIDC token or a publisher API token).
type PreflightRequest struct {
	AppID   string `json:"app_id"`
	Version string `json:"version"`
	// Checksum is the checksum the registration will carry (channel.Bundle.Checksum): the
	// relay refuses a version it already has with another one.
	Checksum string `json:"checksum"`
	// Commit, Ref and Repository are as in channel.Bundle: an OIDC token's claims replace
	// them, HMAC and API token registrations need Commit.
	Commit     string `json:"commit,omitempty"`
	Ref        string `json:"ref,omitempty"`
	Repository string `json:"repository,omitempty"`
	// Channel is the explicit channel the registration will name, if any.
	Channel string `json:"channel,omitempty"`
	// Native is the bundle's native version range, if any.
	Native string `json:"native,omitempty"`
	// RegisterOnly says the publisher means to register a bundle that no channel takes (a
	// tag push promotes it later): a ref that matches no rule is then not refused.
	RegisterOnly bool `json:"register_only,omitempty"`
}

// Preflight is the answer to a preflight the registration would pass. A registration it
// would refuse is answered as the registration would be (401, 403, 404 app_not_found, 400
// channel_not_found, 409 version_conflict), or 422 no_matching_rule when the ref maps to no
// configured channel and RegisterOnly is false.
type Preflight struct {
	App     string `json:"app"`
	Version string `json:"version"`
	// Ref and Commit are what the registration will be recorded with (an OIDC token's).
	Ref    string `json:"ref,omitempty"`
	Commit string `json:"commit,omitempty"`
	// Registered is true when the relay already has this version with this checksum: the
	// registration will be an idempotent re-run.
	Registered bool `json:"registered"`
	// Channel is the channel the registration targets (the explicit one, or the first rule
	// matching the ref); empty when none.
	Channel string `json:"channel,omitempty"`
	// Reason says why the registration would move no channel, when that is already known
	// (no rule with register-only, a pull request, an explicit channel the ref may not
	// name). A channel that already serves the version is known only at registration.
	Reason string `json:"reason,omitempty"`
}

// ErrorBody is the body of every refusal: {"error": code, "message": text}. The relay's
// device endpoints add a "kind" the plugin reads.
type ErrorBody struct {
	// Code is a stable machine-readable code ("version_conflict", "unauthorized", …).
	Code string `json:"error"`
	// Message explains the refusal to a person.
	Message string `json:"message"`
	// Kind is set only by the device endpoints.
	Kind string `json:"kind,omitempty"`
}

// ChannelView is one channel in admin answers: configuration and state together.
type ChannelView struct {
	Name string `json:"name"`
	// Policy is the policy in effect: the admin override when set, else the configured one.
	Policy channel.Policy `json:"policy"`
	// Overridden reports whether Policy comes from an admin override.
	Overridden bool `json:"policy_overridden"`
	// Default reports whether this is the app's default channel.
	Default bool           `json:"default"`
	State   *channel.State `json:"state"`
}

// ChannelList is the answer to GET /api/v1/apps/{app}/channels: every configured channel,
// sorted by name.
type ChannelList struct {
	App      string        `json:"app"`
	Channels []ChannelView `json:"channels"`
}

// BundleList is the answer to GET /api/v1/apps/{app}/bundles: newest first, or with
// ?cursor= one page oldest first.
type BundleList struct {
	App     string            `json:"app"`
	Bundles []*channel.Bundle `json:"bundles"`
	// NextCursor is set only in answers to paged requests (?cursor=): the cursor of the
	// next page, "" after the last page. Unpaged answers, and relays older than paging,
	// leave it out.
	NextCursor *string `json:"next_cursor,omitempty"`
}

// AuditList is the answer to GET /api/v1/apps/{app}/audit, newest first.
type AuditList struct {
	App     string               `json:"app"`
	Entries []channel.AuditEntry `json:"entries"`
}

// NotificationList is the answer to GET /api/v1/apps/{app}/notifications: the relay
// instance's recent deliveries of the app's outgoing notifications, newest first. Each
// instance keeps its own bounded log in memory (docs/notifications.md).
type NotificationList struct {
	App        string                 `json:"app"`
	Deliveries []NotificationDelivery `json:"deliveries"`
}

// Delivery states of a [NotificationDelivery].
const (
	// DeliveryPending: queued or waiting for a retry.
	DeliveryPending = "pending"
	// DeliveryDelivered: the receiver answered 2xx.
	DeliveryDelivered = "delivered"
	// DeliveryFailed: the receiver refused it (4xx other than 429) or every attempt failed.
	DeliveryFailed = "failed"
	// DeliveryDropped: never sent, because the queue was full or the relay stopped first.
	DeliveryDropped = "dropped"
)

// NotificationDelivery is one event sent to one receiver, with every attempt.
type NotificationDelivery struct {
	// Event is the event's id (X-Ferry-Delivery), Kind and Channel what it is about.
	Event   string            `json:"event"`
	Kind    channel.EventKind `json:"kind"`
	Channel string            `json:"channel"`
	Version string            `json:"version,omitempty"`
	// Receiver is the receiver's URL without its path and query, which may hold its
	// secret; Format is generic or slack.
	Receiver string `json:"receiver"`
	Format   string `json:"format"`
	// Status is pending, delivered, failed or dropped.
	Status   string                `json:"status"`
	Queued   time.Time             `json:"queued"`
	Attempts []NotificationAttempt `json:"attempts"`
}

// NotificationAttempt is one POST of a delivery.
type NotificationAttempt struct {
	Time time.Time `json:"time"`
	// StatusCode is the receiver's HTTP status; 0 when no answer came (Error says why).
	StatusCode int    `json:"status_code,omitempty"`
	Error      string `json:"error,omitempty"`
	// DurationMS is how long the attempt took, in milliseconds.
	DurationMS int64 `json:"duration_ms"`
}

// Stats is the answer to GET /api/v1/apps/{app}/stats: device statistics per version.
type Stats struct {
	App string `json:"app"`
	// Time is when the relay answered, in whole seconds.
	Time     time.Time              `json:"time"`
	Versions []channel.VersionStats `json:"versions"`
}

// Series is the answer to GET /api/v1/apps/{app}/series: time-bucketed counters of
// update checks and device stats (docs/stats.md), sorted by Start, then Channel, Version
// and Metric.
type Series struct {
	App string `json:"app"`
	// Step is the bucket width, "5m" or "1h".
	Step string `json:"step"`
	// From and To are the range asked for: buckets starting in [From, To).
	From   time.Time             `json:"from"`
	To     time.Time             `json:"to"`
	Points []channel.SeriesPoint `json:"points"`
}

// ChangeResult is the answer to every admin state change.
type ChangeResult struct {
	// Changed is false when the request asked for the state the channel already had.
	Changed bool        `json:"changed"`
	Channel ChannelView `json:"channel"`
}

// DeviceView is the answer to GET …/devices?device=ID: the versions the device reported
// update_fail for, which the relay does not offer it again.
type DeviceView struct {
	App    string   `json:"app"`
	Device string   `json:"device"`
	Failed []string `json:"failed"`
}

// ClearFailedRequest is the body of POST …/devices/clear-failed.
type ClearFailedRequest struct {
	Device string `json:"device"`
}

// ClearFailedResult is the answer to POST …/devices/clear-failed.
type ClearFailedResult struct {
	App    string `json:"app"`
	Device string `json:"device"`
	// Cleared lists the versions forgotten (the relay offers them to the device again);
	// Changed is false when the device had none.
	Cleared []string `json:"cleared"`
	Changed bool     `json:"changed"`
}

// PromoteRequest is the body of POST …/channels/{channel}/promote. Version "builtin"
// sends devices back to the app's built-in assets.
type PromoteRequest struct {
	Version string `json:"version"`
	// Native, when set, is the native-version range (npm semver range syntax, as the
	// bundle's own) devices must run to be offered Version on this channel, instead of the
	// range the bundle was registered with; "" removes an earlier override, "*" admits
	// every native version. Absent keeps whatever range applies now. Not allowed with
	// "builtin".
	Native *string `json:"native,omitempty"`
}

// RolloutRequest is the body of PUT …/channels/{channel}/rollout: offer Version to Percent
// (0 to 100, required) of the channel's devices.
type RolloutRequest struct {
	Version string `json:"version"`
	Percent *int   `json:"percent"`
}

// Rollout operations: POST …/channels/{channel}/rollout/{op}.
const (
	RolloutPause    = "pause"
	RolloutResume   = "resume"
	RolloutComplete = "complete"
	RolloutCancel   = "cancel"
)

// PlanRequest is the body of POST …/channels/{channel}/plan: start the configured rollout
// plan Plan for Version (a registered bundle other than the channel's stable version).
type PlanRequest struct {
	Plan    string `json:"plan"`
	Version string `json:"version"`
}

// PlanView is the answer to GET …/channels/{channel}/plan: the channel's stable version,
// its rollout and the plan driving it (nil when none runs).
type PlanView struct {
	App     string             `json:"app"`
	Channel string             `json:"channel"`
	Version string             `json:"version"`
	Rollout *channel.Rollout   `json:"rollout"`
	Plan    *channel.PlanState `json:"plan"`
}

// PolicyRequest is the body of PUT …/channels/{channel}/policy. A nil Policy ("policy":
// null) removes the admin override.
type PolicyRequest struct {
	Policy *PolicyOverride `json:"policy"`
}

// PolicyOverride is a channel policy as written in the relay's YAML config: AllowEmulator
// and AllowDev default to true when absent. Fields left at their zero value are omitted
// when encoded, which the relay reads as their defaults.
type PolicyOverride struct {
	Public             bool     `json:"public,omitempty"`
	AllowDeviceSelfSet bool     `json:"allow_device_self_set,omitempty"`
	AllowEmulator      *bool    `json:"allow_emulator,omitempty"`
	AllowDev           *bool    `json:"allow_dev,omitempty"`
	DisableAutoUpdate  string   `json:"disable_auto_update,omitempty"`
	Platforms          []string `json:"platforms,omitempty"`
}
