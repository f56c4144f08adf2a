package relayclient

import (
	"time"

	"github.com/ferryhq/ferry/internal/channel"
)

// Paths of the control API, below the relay's base URL.
const (
	// BundlesPath is where bundles are registered (POST, a channel.Bundle).
	BundlesPath = "/api/v1/bundles"
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

// BundleList is the answer to GET /api/v1/apps/{app}/bundles, newest first.
type BundleList struct {
	App     string            `json:"app"`
	Bundles []*channel.Bundle `json:"bundles"`
}

// AuditList is the answer to GET /api/v1/apps/{app}/audit, newest first.
type AuditList struct {
	App     string               `json:"app"`
	Entries []channel.AuditEntry `json:"entries"`
}

// Stats is the answer to GET /api/v1/apps/{app}/stats: device statistics per version.
type Stats struct {
	App string `json:"app"`
	// Time is when the relay answered, in whole seconds.
	Time     time.Time              `json:"time"`
	Versions []channel.VersionStats `json:"versions"`
}

// ChangeResult is the answer to every admin state change.
type ChangeResult struct {
	// Changed is false when the request asked for the state the channel already had.
	Changed bool        `json:"changed"`
	Channel ChannelView `json:"channel"`
}

// PromoteRequest is the body of POST …/channels/{channel}/promote. Version "builtin"
// sends devices back to the app's built-in assets.
type PromoteRequest struct {
	Version string `json:"version"`
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
