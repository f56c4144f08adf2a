package store

import (
	"context"
	"time"

	"github.com/ferryhq/ferry/internal/access"
)

// AccessChanged is the message [Store.Subscribe] delivers after a token is revoked or a
// session deleted, so every instance drops its cached access lookups at once. App ids
// cannot contain control characters, so it never collides with one.
const AccessChanged = "\x00access"

// Access is the part of the store contract that keeps API tokens, single sign-on sessions
// and logins in progress (package access describes the records). Records are keyed by
// values that carry at least 60 random bits (token ids) or by hashes of secrets (sessions),
// never by a secret itself.
type Access interface {
	// PutToken stores a new token. A token with the same ID already stored is an error
	// wrapping channel.ErrConflict, and nothing changes.
	PutToken(ctx context.Context, t *access.Token) error
	// GetToken returns one token (revoked and expired ones too), or an error wrapping
	// channel.ErrNotFound.
	GetToken(ctx context.Context, id string) (*access.Token, error)
	// ListTokens returns every token, newest first.
	ListTokens(ctx context.Context) ([]*access.Token, error)
	// RevokeToken sets the token's RevokedAt to at (if it is not revoked already), notifies
	// subscribers with [AccessChanged], and returns the token as stored; an unknown id is
	// an error wrapping channel.ErrNotFound.
	RevokeToken(ctx context.Context, id string, at time.Time) (*access.Token, error)
	// TouchToken sets the token's LastUsed to at if at is later; an unknown id is no error.
	TouchToken(ctx context.Context, id string, at time.Time) error

	// PutSession stores or replaces a session under s.IDHash until s.ExpiresAt, after
	// which it is gone (GetSession reports channel.ErrNotFound).
	PutSession(ctx context.Context, s *access.Session) error
	// GetSession returns the session stored under idHash, or an error wrapping
	// channel.ErrNotFound if there is none or it expired.
	GetSession(ctx context.Context, idHash string) (*access.Session, error)
	// DeleteSession removes a session and notifies subscribers with [AccessChanged]; an
	// unknown one is no error.
	DeleteSession(ctx context.Context, idHash string) error

	// PutLogin stores a login in progress under l.State until l.ExpiresAt.
	PutLogin(ctx context.Context, l *access.Login) error
	// TakeLogin returns and deletes the login stored under state in one atomic step, so of
	// concurrent callers with one state at most one gets it; others, and callers after it
	// expired, get an error wrapping channel.ErrNotFound.
	TakeLogin(ctx context.Context, state string) (*access.Login, error)
}
