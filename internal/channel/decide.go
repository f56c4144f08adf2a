package channel

// Snapshot is the in-process view of one app the relay answers devices from. It is read-only
// once built: [Decide] may be called on it from many goroutines at once.
type Snapshot struct {
	App     *App
	States  map[string]*State  // by channel name
	Bundles map[string]*Bundle // by version: every version referenced by States
}

// Versions returns, sorted and without duplicates, every version the snapshot's states
// reference (Version, History, Rollout.Version), i.e. the bundles the relay must load into
// Bundles. "builtin" is not a bundle and is left out.
func (s *Snapshot) Versions() []string {
	panic("todo")
}

// Decision is the answer to one update check.
type Decision struct {
	// Response is the JSON body to send (always with HTTP 200).
	Response UpdateResponse
	// Outcome is a bounded label for metrics: "offered", "builtin", "up_to_date", or the
	// error code of Response.
	Outcome string
	// Channel is the channel the decision used; empty when none was chosen.
	Channel string
	// Bundle is the bundle offered, nil otherwise.
	Bundle *Bundle
}

// Decide answers an update check from device req against snapshot s. failed lists the
// versions this device reported update_fail for; they are never offered again.
func Decide(s *Snapshot, req *DeviceInfo, failed []string) Decision {
	panic("todo")
}
