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
)
