//go:build race

package rollout

// raceEnabled reports whether the race detector is on; it slows the fleet simulation ~4x.
const raceEnabled = true
