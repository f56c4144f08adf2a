// Package channel is Ferry's pure domain: the vocabulary shared by the action and the relay
// (bundles, channel state, rollouts, audit entries), the rules that map git refs to channels,
// version ordering, rollout cohorts, native-version targeting, channel policies and the update
// decision that answers a device. It does no I/O and imports no other Ferry package; every
// function is safe for concurrent use.
//
// # Model
//
// A [Config] lists apps. Each [App] has a default channel, channel policies ([Policy]) and
// ordered ref rules ([Rule]): [App.MatchRef] maps a pushed ref to a channel, first match
// wins, "*" matches within a path segment, "**" across segments, and "$1" names the channel
// by a capture. [ParseConfig] decodes YAML strictly and [Config.Validate] reports every
// problem at once.
//
// A channel's [State] holds its stable Version, earlier versions in History (most recent
// first, distinct, at most [MaxHistory]) and an optional [Rollout] of a candidate. The state
// changes [Promote], [Rollback], [SetRollout], [PauseRollout], [ResumeRollout],
// [CompleteRollout], [CancelRollout] and [SetNative] (a native-range override set at
// promotion) are pure functions the store runs inside its atomic update; they never touch
// Rev or UpdatedAt, which the store owns, and never write into slices, maps or rollouts
// the caller shares.
//
// [Decide] answers one update check from a [Snapshot] (an app's configuration, channel
// states and the bundles they name) with exactly the responses of the Capgo plugin protocol
// (docs/protocol.md §1.3): an offer, {"version":"builtin"}, or an error code with the
// kind the plugin expects. Its invariants:
//
//   - a version the device reported update_fail for is never offered to it again;
//   - a bundle is offered only if its native range admits the device's version_build: the
//     range set when it was promoted to the channel ([SetNative]), else its own Native;
//     otherwise the newest older compatible bundle from the channel's History is;
//   - a device that sent key_id gets only a bundle encrypted for that key;
//   - a device outside a rollout's cohort ([InCohort], sticky per device and version) gets
//     the stable version; a paused rollout reaches no new device;
//   - "no update" is kind up_to_date and refusals by policy are kind blocked, so the plugin
//     reports download_fail only for real failures.
//
// Decide allocates nothing on the common paths (offers and up-to-date answers).
//
// # Usage
//
//	cfg, err := channel.ParseConfig(yamlBytes)
//	...
//	snap := &channel.Snapshot{App: cfg.App(appID), States: states, Bundles: bundles}
//	d := channel.Decide(snap, &device, failedVersions)
//	metrics.Inc(d.Outcome)
//	writeJSON(w, http.StatusOK, d.Response)
package channel
