package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ferryhq/ferry/internal/access"
	"github.com/ferryhq/ferry/internal/channel"
)

// Buckets of the access records (see doc.go). Sessions and logins are stored as
// <expiry, 8 bytes BE unix ns><JSON>, so the sweeper finds expired ones without decoding.
var (
	bTokens   = []byte("tokens")
	bSessions = []byte("sessions")
	bLogins   = []byte("logins")
)

// withExpiry prefixes a record's JSON with its expiry.
func withExpiry(exp time.Time, v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(expiry(exp), raw...), nil
}

// expiringExpired reports whether a <expiry><JSON> value expired at t (malformed counts).
func expiringExpired(v []byte, t time.Time) bool { return len(v) < 8 || expired(v[:8], t) }

// PutToken stores a new token; an existing id is channel.ErrConflict.
func (b *Bolt) PutToken(ctx context.Context, t *access.Token) error {
	if err := checkToken(t); err != nil {
		return fmt.Errorf("put token: %w", err)
	}
	val, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("put token: %w", err)
	}
	return b.update(ctx, "put token "+t.ID, func(tx *bolt.Tx) error {
		tokens := tx.Bucket(bTokens)
		if tokens.Get([]byte(t.ID)) != nil {
			return fmt.Errorf("a token with this id exists: %w", channel.ErrConflict)
		}
		return tokens.Put([]byte(t.ID), val)
	})
}

// GetToken returns one token (revoked and expired ones too).
func (b *Bolt) GetToken(ctx context.Context, id string) (*access.Token, error) {
	if err := checkAccessKey("token id", id); err != nil {
		return nil, fmt.Errorf("get token: %w", err)
	}
	var t *access.Token
	err := b.view(ctx, "get token "+id, func(tx *bolt.Tx) error {
		raw := tx.Bucket(bTokens).Get([]byte(id))
		if raw == nil {
			return channel.ErrNotFound
		}
		var err error
		t, err = decodeToken(raw)
		return err
	})
	return t, err
}

// ListTokens returns every token, newest first.
func (b *Bolt) ListTokens(ctx context.Context) ([]*access.Token, error) {
	var out []*access.Token
	err := b.view(ctx, "list tokens", func(tx *bolt.Tx) error {
		return tx.Bucket(bTokens).ForEach(func(_, v []byte) error {
			t, err := decodeToken(v)
			if err != nil {
				return err
			}
			out = append(out, t)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	sortTokens(out)
	return out, nil
}

// RevokeToken sets the token's RevokedAt to at (a zero at means now) unless it is revoked
// already, and notifies subscribers with [AccessChanged].
func (b *Bolt) RevokeToken(ctx context.Context, id string, at time.Time) (*access.Token, error) {
	if err := checkAccessKey("token id", id); err != nil {
		return nil, fmt.Errorf("revoke token: %w", err)
	}
	if at.IsZero() {
		at = now()
	}
	var t *access.Token
	err := b.update(ctx, "revoke token "+id, func(tx *bolt.Tx) error {
		tokens := tx.Bucket(bTokens)
		raw := tokens.Get([]byte(id))
		if raw == nil {
			return channel.ErrNotFound
		}
		var err error
		if t, err = decodeToken(raw); err != nil {
			return err
		}
		if !t.RevokedAt.IsZero() {
			return errNoWrite
		}
		t.RevokedAt = at
		val, err := json.Marshal(t)
		if err != nil {
			return err
		}
		return tokens.Put([]byte(id), val)
	})
	if err != nil {
		return nil, err
	}
	b.hub.publish(AccessChanged)
	return t, nil
}

// TouchToken moves the token's LastUsed forward to at; an unknown id is no error.
func (b *Bolt) TouchToken(ctx context.Context, id string, at time.Time) error {
	if err := checkAccessKey("token id", id); err != nil {
		return fmt.Errorf("touch token: %w", err)
	}
	// Most calls find LastUsed already later (another request of the same minute): check
	// in a read transaction first, so they cost no fsync.
	stale := false
	err := b.view(ctx, "touch token "+id, func(tx *bolt.Tx) error {
		if raw := tx.Bucket(bTokens).Get([]byte(id)); raw != nil {
			t, err := decodeToken(raw)
			if err != nil {
				return err
			}
			stale = at.After(t.LastUsed)
		}
		return nil
	})
	if err != nil || !stale {
		return err
	}
	return b.update(ctx, "touch token "+id, func(tx *bolt.Tx) error {
		tokens := tx.Bucket(bTokens)
		raw := tokens.Get([]byte(id))
		if raw == nil {
			return errNoWrite
		}
		t, err := decodeToken(raw)
		if err != nil {
			return err
		}
		if !at.After(t.LastUsed) {
			return errNoWrite
		}
		t.LastUsed = at
		val, err := json.Marshal(t)
		if err != nil {
			return err
		}
		return tokens.Put([]byte(id), val)
	})
}

// PutSession stores or replaces a session until its ExpiresAt.
func (b *Bolt) PutSession(ctx context.Context, s *access.Session) error {
	if err := checkSession(s); err != nil {
		return fmt.Errorf("put session: %w", err)
	}
	val, err := withExpiry(s.ExpiresAt, s)
	if err != nil {
		return fmt.Errorf("put session: %w", err)
	}
	return b.update(ctx, "put session", func(tx *bolt.Tx) error {
		return tx.Bucket(bSessions).Put([]byte(s.IDHash), val)
	})
}

// GetSession returns the session stored under idHash unless it expired.
func (b *Bolt) GetSession(ctx context.Context, idHash string) (*access.Session, error) {
	if err := checkAccessKey("session id hash", idHash); err != nil {
		return nil, fmt.Errorf("get session: %w", err)
	}
	var s *access.Session
	t := now()
	err := b.view(ctx, "get session", func(tx *bolt.Tx) error {
		v := tx.Bucket(bSessions).Get([]byte(idHash))
		if v == nil || expiringExpired(v, t) {
			return channel.ErrNotFound
		}
		var err error
		s, err = decodeSession(v[8:], t)
		return err
	})
	return s, err
}

// TouchSession moves the session's LastSeen forward to at in one write transaction that
// keeps its expiry; an unknown or expired session is no error and stays absent.
func (b *Bolt) TouchSession(ctx context.Context, idHash string, at time.Time) error {
	if err := checkAccessKey("session id hash", idHash); err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	t := now()
	return b.update(ctx, "touch session", func(tx *bolt.Tx) error {
		sessions := tx.Bucket(bSessions)
		v := sessions.Get([]byte(idHash))
		if v == nil || expiringExpired(v, t) {
			return errNoWrite
		}
		s, err := decodeSession(v[8:], t)
		if errors.Is(err, channel.ErrNotFound) || (err == nil && !at.After(s.LastSeen)) {
			return errNoWrite
		}
		if err != nil {
			return err
		}
		s.LastSeen = at
		val, err := withExpiry(s.ExpiresAt, s)
		if err != nil {
			return err
		}
		return sessions.Put([]byte(idHash), val)
	})
}

// DeleteSession removes a session and notifies subscribers with [AccessChanged]; an
// unknown one is no error.
func (b *Bolt) DeleteSession(ctx context.Context, idHash string) error {
	if err := checkAccessKey("session id hash", idHash); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	err := b.update(ctx, "delete session", func(tx *bolt.Tx) error {
		return tx.Bucket(bSessions).Delete([]byte(idHash))
	})
	if err != nil {
		return err
	}
	b.hub.publish(AccessChanged)
	return nil
}

// PutLogin stores a login in progress until its ExpiresAt.
func (b *Bolt) PutLogin(ctx context.Context, l *access.Login) error {
	if err := checkLogin(l); err != nil {
		return fmt.Errorf("put login: %w", err)
	}
	val, err := withExpiry(l.ExpiresAt, l)
	if err != nil {
		return fmt.Errorf("put login: %w", err)
	}
	return b.update(ctx, "put login", func(tx *bolt.Tx) error {
		return tx.Bucket(bLogins).Put([]byte(l.State), val)
	})
}

// TakeLogin returns and deletes the login stored under state in one write transaction; an
// expired one is deleted too, and reported as channel.ErrNotFound.
func (b *Bolt) TakeLogin(ctx context.Context, state string) (*access.Login, error) {
	if err := checkAccessKey("login state", state); err != nil {
		return nil, fmt.Errorf("take login: %w", err)
	}
	var raw []byte
	t := now()
	err := b.update(ctx, "take login", func(tx *bolt.Tx) error {
		logins := tx.Bucket(bLogins)
		v := logins.Get([]byte(state))
		if v == nil {
			return errNoWrite
		}
		if !expiringExpired(v, t) {
			raw = bytes.Clone(v[8:])
		}
		return logins.Delete([]byte(state))
	})
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, fmt.Errorf("take login: %w", channel.ErrNotFound)
	}
	l, err := decodeLogin(raw, t)
	if err != nil {
		return nil, fmt.Errorf("take login: %w", err)
	}
	return l, nil
}
