package channel

// Promote makes version the stable version of s. The previous stable version moves to the
// front of History (which keeps distinct versions, most recent first, at most [MaxHistory]),
// version itself leaves History, and a rollout of version is cleared (it is now stable).
// It reports whether s changed. Promote does not touch Rev or UpdatedAt: the store sets them.
func Promote(s *State, version string) (changed bool) {
	panic("todo")
}

// Rollback makes History[0] the stable version again and drops it from History; the version
// rolled back from is not kept in History (the audit log records it), so native-version
// fallbacks never pick it again. A rollout of the restored version is cleared; any other
// rollout is kept. It returns the restored version, or an error wrapping [ErrNoHistory].
func Rollback(s *State) (to string, err error) {
	panic("todo")
}

// SetRollout offers version to percent percent of the channel's devices (see [InCohort]),
// replacing any rollout in progress and unpausing it. It returns an error wrapping
// [ErrInvalidRollout] when percent is outside 0..100, version is empty or already stable,
// or the channel has no stable version yet.
func SetRollout(s *State, version string, percent int) error {
	panic("todo")
}

// PauseRollout stops offering the rollout's version to devices; devices outside the cohort
// and inside it get the stable version. Pausing a paused rollout is a no-op. It returns an
// error wrapping [ErrNoRollout] when there is none.
func PauseRollout(s *State) error {
	panic("todo")
}

// ResumeRollout resumes a paused rollout. It returns an error wrapping [ErrNoRollout] when
// there is none.
func ResumeRollout(s *State) error {
	panic("todo")
}

// CompleteRollout promotes the rollout's version to stable for every device (as [Promote]).
// It returns an error wrapping [ErrNoRollout] when there is none.
func CompleteRollout(s *State) error {
	panic("todo")
}
