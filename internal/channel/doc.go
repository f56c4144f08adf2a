// Package channel is Ferry's pure domain: the vocabulary shared by the action and the relay
// (bundles, channel state, rollouts, audit entries), the rules that map git refs to channels,
// version ordering, rollout cohorts, native-version targeting, channel policies and the update
// decision that answers a device. It does no I/O and imports no other Ferry package.
package channel
