package channel

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// EventKind names what happened in a notification [Event].
type EventKind string

// The kinds of [Event]. The control plane emits the first seven for the changes it makes;
// a rollout controller emits the rollout ones for its own decisions (a gate pausing a
// rollout is [EventRolloutPaused] with actor kind "controller" and a Reason).
const (
	// EventPromoted: a channel now serves Version (From before), by any path: the admin
	// API, a tag push, a registration, a pending promotion applied.
	EventPromoted EventKind = "promoted"
	// EventRolledBack: a channel went back from From to Version.
	EventRolledBack EventKind = "rolled_back"
	// EventRolloutStarted: Version is offered to Percent % of the channel's devices, on top
	// of the stable From.
	EventRolloutStarted EventKind = "rollout_started"
	// EventRolloutAdvanced: the running rollout of Version moved to Percent % (by hand or
	// by a plan's step).
	EventRolloutAdvanced EventKind = "rollout_advanced"
	// EventRolloutPaused: the rollout of Version stopped growing and is offered to no
	// device not already on it.
	EventRolloutPaused EventKind = "rollout_paused"
	// EventRolloutResumed: a paused rollout of Version is offered again.
	EventRolloutResumed EventKind = "rollout_resumed"
	// EventRolloutCompleted: Version became the channel's stable version for every device.
	EventRolloutCompleted EventKind = "rollout_completed"
	// EventRolloutCancelled: the rollout of Version was dropped; the channel serves From.
	EventRolloutCancelled EventKind = "rollout_cancelled"
)

// EventKinds lists every [EventKind], in the order of the documentation.
var EventKinds = []EventKind{EventPromoted, EventRolledBack, EventRolloutStarted, EventRolloutAdvanced,
	EventRolloutPaused, EventRolloutResumed, EventRolloutCompleted, EventRolloutCancelled}

// Event is one change worth telling people about, as outgoing notifications carry it
// (docs/notifications.md). It is built after the change was stored.
type Event struct {
	// ID identifies the event uniquely; receivers see it as X-Ferry-Delivery and should
	// ignore a second delivery with an ID they already processed.
	ID   string    `json:"id"`
	Kind EventKind `json:"kind"`
	// Time is when the change was made (the audit entry's time).
	Time    time.Time `json:"time"`
	App     string    `json:"app"`
	Channel string    `json:"channel"`
	// Version is the version the change is about; From the version served before it.
	Version string `json:"version,omitempty"`
	From    string `json:"from,omitempty"`
	// Percent is the rollout percentage after the change, for rollout events.
	Percent *int `json:"percent,omitempty"`
	// Actor is who made the change; Cause the audit log's cause.
	Actor *Actor `json:"actor,omitempty"`
	Cause string `json:"cause,omitempty"`
	// Reason explains a decision taken by the relay itself (a health gate), and Figures
	// are the numbers behind it ("failure_ratio": 0.31, "devices": 412).
	Reason  string             `json:"reason,omitempty"`
	Figures map[string]float64 `json:"figures,omitempty"`
}

// Notification formats.
const (
	// FormatGeneric sends the [Event] itself as JSON.
	FormatGeneric = "generic"
	// FormatSlack sends a Slack incoming-webhook message: {"text": …, "blocks": […]}.
	FormatSlack = "slack"
)

// Notification configures one receiver of an app's outgoing notifications
// (docs/notifications.md).
type Notification struct {
	// URL receives a POST per event. It must be https, except on a loopback host.
	URL string `yaml:"url" json:"url"`
	// Format is generic (default) or slack.
	Format string `yaml:"format" json:"format,omitempty"`
	// SecretEnv names the environment variable holding the HMAC secret that signs each
	// delivery (X-Ferry-Signature-256). Empty sends unsigned deliveries. The relay refuses
	// to start when the variable is named but unset or empty.
	SecretEnv string `yaml:"secret_env" json:"secret_env,omitempty"`
	// Events filters the kinds sent ([EventKinds]); empty sends every kind.
	Events []EventKind `yaml:"events" json:"events,omitempty"`
}

// Wants reports whether the receiver takes events of kind k.
func (n *Notification) Wants(k EventKind) bool {
	return len(n.Events) == 0 || slices.Contains(n.Events, k)
}

// validate returns the problems of one notification receiver; where names it. The URL is
// never quoted whole: its path may be the receiver's secret (a Slack webhook's is).
func (n *Notification) validate(where string) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(where+": "+format, args...)) }
	u, err := url.Parse(n.URL)
	switch {
	case n.URL == "":
		add("url is required")
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		add("url must be an absolute https URL")
	case u.User != nil:
		add("url must not carry user info; sign deliveries with secret_env instead")
	case u.Scheme == "http" && !loopbackHost(u.Hostname()):
		add("url must be https (http is allowed only to a loopback host such as 127.0.0.1), not http://%s", u.Host)
	}
	if n.Format != "" && n.Format != FormatGeneric && n.Format != FormatSlack {
		add("format %q must be generic or slack", n.Format)
	}
	if n.SecretEnv != "" && !validEnvName(n.SecretEnv) {
		add("secret_env %q must be an environment variable name (letters, digits and '_', not starting with a digit)", n.SecretEnv)
	}
	for k, e := range n.Events {
		switch {
		case !slices.Contains(EventKinds, e):
			add("events[%d] %q is not an event kind (known: %s)", k, e, joinKinds(EventKinds))
		case slices.Index(n.Events, e) != k:
			add("events[%d] %q listed twice", k, e)
		}
	}
	return errs
}

func loopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func joinKinds(ks []EventKind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}
