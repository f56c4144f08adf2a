package channel

// InCohort reports whether deviceID belongs to the rollout cohort of version at percent.
func InCohort(deviceID, version string, percent int) bool {
	panic("todo")
}
