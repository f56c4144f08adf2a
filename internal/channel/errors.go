package channel

import "errors"

// Errors shared by the stores and the relay. Stores wrap them; callers test with errors.Is.
var (
	// ErrNotFound means the bundle, channel or app asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a bundle with the same app and version but another checksum is
	// already registered; nothing was changed.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable means the store cannot be reached; the caller may retry later.
	ErrUnavailable = errors.New("store unavailable")
	// ErrInvalidCursor means a page cursor is not one the store returned (malformed, or past
	// the last item); the caller starts paging again without a cursor.
	ErrInvalidCursor = errors.New("invalid page cursor")
)

// Errors returned by the state changes of this package ([Promote], [Rollback], [SetRollout],
// [PauseRollout], [ResumeRollout], [CompleteRollout], [SetNative]) for requests that cannot
// apply; the relay answers them as a client error and changes nothing.
var (
	// ErrNoHistory means a rollback was asked for a channel with no earlier version.
	ErrNoHistory = errors.New("no earlier version to roll back to")
	// ErrNoRollout means a rollout action was asked for a channel with no rollout.
	ErrNoRollout = errors.New("no rollout in progress")
	// ErrInvalidRollout means a rollout request is malformed: percent outside 0..100, no
	// version, the version already stable, or no stable version to roll out against.
	ErrInvalidRollout = errors.New("invalid rollout")
	// ErrNotInChannel means a native-range override was asked for a version the channel
	// does not hold (neither its stable version, its history nor its rollout).
	ErrNotInChannel = errors.New("version is not in the channel")
	// ErrNoRule means no rule of the app maps a ref to a channel.
	ErrNoRule = errors.New("no rule matches the ref")
)
