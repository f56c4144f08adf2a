package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
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
	// TouchSession sets the stored session's LastSeen to at if at is later, in one atomic
	// step that changes no other field and keeps its expiry. An unknown or expired session
	// is no error and is not recreated: a touch racing with a logout never brings the
	// session back.
	TouchSession(ctx context.Context, idHash string, at time.Time) error
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

// checkAccessKey validates an identifier of an access record (a token id, a session's id
// hash, a login state): not empty, no control characters. The message does not quote the
// value: a login state is a one-time secret until it is taken.
func checkAccessKey(what, v string) error {
	if v == "" {
		return fmt.Errorf("empty %s: %w", what, ErrInvalid)
	}
	if strings.ContainsFunc(v, unicode.IsControl) {
		return fmt.Errorf("%s: control characters are not allowed: %w", what, ErrInvalid)
	}
	return nil
}

func checkToken(t *access.Token) error {
	if t == nil {
		return fmt.Errorf("nil token: %w", ErrInvalid)
	}
	if err := checkAccessKey("token id", t.ID); err != nil {
		return err
	}
	return checkAccessKey("token hash", t.Hash)
}

// checkExpiry requires an expiry a store can keep (after 1970: Redis takes PXAT in
// milliseconds since the epoch, and zero would mean "never").
func checkExpiry(what string, t time.Time) error {
	if t.UnixMilli() <= 0 {
		return fmt.Errorf("%s without an expiry: %w", what, ErrInvalid)
	}
	return nil
}

func checkSession(s *access.Session) error {
	if s == nil {
		return fmt.Errorf("nil session: %w", ErrInvalid)
	}
	if err := checkAccessKey("session id hash", s.IDHash); err != nil {
		return err
	}
	return checkExpiry("session", s.ExpiresAt)
}

func checkLogin(l *access.Login) error {
	if l == nil {
		return fmt.Errorf("nil login: %w", ErrInvalid)
	}
	if err := checkAccessKey("login state", l.State); err != nil {
		return err
	}
	return checkExpiry("login", l.ExpiresAt)
}

// sortTokens orders tokens as ListTokens returns them: newest CreatedAt first, ties by ID.
func sortTokens(ts []*access.Token) {
	slices.SortFunc(ts, func(a, b *access.Token) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

func decodeToken(raw []byte) (*access.Token, error) {
	var t access.Token
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("decode token: %w", err)
	}
	return &t, nil
}

// decodeSession decodes a stored session, reporting channel.ErrNotFound once it expired at
// t (a store's own expiry may lag: bbolt sweeps hourly, Redis's clock may differ).
func decodeSession(raw []byte, t time.Time) (*access.Session, error) {
	var s access.Session
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("decode session: %w", err)
	}
	if !s.ExpiresAt.After(t) {
		return nil, channel.ErrNotFound
	}
	return &s, nil
}

// decodeLogin decodes a stored login, reporting channel.ErrNotFound once it expired at t.
func decodeLogin(raw []byte, t time.Time) (*access.Login, error) {
	var l access.Login
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, fmt.Errorf("decode login: %w", err)
	}
	if !l.ExpiresAt.After(t) {
		return nil, channel.ErrNotFound
	}
	return &l, nil
}
