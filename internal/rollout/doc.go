// Package rollout runs staged rollout plans (docs/rollouts.md): the controller that, on
// every tick, advances each channel's plan when its step has baked and its health gate
// holds, and pauses or rolls it back when the gate fails.
//
// The health gate is a pure function ([Evaluate]) over the store's time-bucketed counters
// (channel.SeriesPoint): the candidate's failures against its installs, with a minimum
// sample and a comparison to the stable version's baseline. The controller reads the
// counters, decides ([Decide]), and writes through the store's UpdateState, re-checking in
// the update that the plan is still at the revision and step it judged, so a repeated or
// concurrent tick never applies a step twice. One relay instance runs the controller at a
// time: it holds a lease in the store (store.Lease) and renews it on every tick.
package rollout
